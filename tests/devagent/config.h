/* SPDX-License-Identifier: Apache-2.0 */
/* config.h: parsing for the development agent's command line and config file: durations
 * ("1h", "30s", "250ms", "1h30m"), sizes ("4096", "16k", "2M") and the config file's line format
 * (one long option per line, "<option> <value>", '#' comments; see docs/devagent.md). Pure apart
 * from reading the file in config_parse_file(); never logs; any thread. */
#pragma once

#include <stdint.h>

/* Units: ms, s, m, h, d; a bare number is seconds. Components may be chained ("1m30s").
 * -EINVAL on junk, -ERANGE on overflow. */
int config_parse_duration(const char *s, uint64_t *ret_ms);
/* Bytes with an optional k/K (1024), m/M (1024^2) or g/G suffix. */
int config_parse_size(const char *s, uint64_t *ret);
/* Parses a non-negative integer (decimal) that fits in max; -EINVAL / -ERANGE. */
int config_parse_uint(const char *s, uint64_t max, uint64_t *ret);

/* One config-file line: leading/trailing blanks and '#' comment lines dropped. For a blank line
 * *ret_key is NULL. Otherwise key = first word, value = the rest with blanks trimmed ("" if none).
 * Both are malloc'd. */
int config_split_line(const char *line, char **ret_key, char **ret_value);

/* Calls fn for every non-blank line of the file. Stops at the first negative return (of fn, or
 * -errno from reading) and stores the 1-based line number in *ret_line (0 for open errors). */
typedef int (*ConfigLineFn)(const char *key, const char *value, void *userdata);
int config_parse_file(const char *path, ConfigLineFn fn, void *userdata, unsigned *ret_line);
