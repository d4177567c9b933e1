// SPDX-License-Identifier: Apache-2.0
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "config.h"
#include "macro.h"

int config_parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int config_parse_duration(const char *s, uint64_t *ret_ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	uint64_t total = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		uint64_t v = 0;
		const char *start = p;
		while (*p >= '0' && *p <= '9') {
			unsigned d = (unsigned)(*p - '0');
			if (v > (UINT64_MAX - d) / 10)
				return -ERANGE;
			v = v * 10 + d;
			p++;
		}
		if (p == start)
			return -EINVAL;
		uint64_t mult = 0;
		if (*p == '\0') {
			if (start != s) /* "1m30" is ambiguous */
				return -EINVAL;
			mult = 1000;
		} else {
			for (size_t i = 0; i < ELEMENTSOF(units); i++) {
				size_t len = strlen(units[i].unit);
				if (strncmp(p, units[i].unit, len) == 0 &&
				    !(p[len] >= 'a' && p[len] <= 'z')) {
					mult = units[i].ms;
					p += len;
					break;
				}
			}
			if (!mult)
				return -EINVAL;
		}
		if (v > UINT64_MAX / mult || total > UINT64_MAX - v * mult)
			return -ERANGE;
		total += v * mult;
	}
	*ret_ms = total;
	return 0;
}

int config_parse_size(const char *s, uint64_t *ret)
{
	_cleanup_free_ char *num = NULL;
	uint64_t mult = 1, v;
	size_t len = s ? strlen(s) : 0;
	int r;

	if (len == 0)
		return -EINVAL;
	switch (s[len - 1]) {
	case 'k': case 'K': mult = 1024; len--; break;
	case 'm': case 'M': mult = 1024 * 1024; len--; break;
	case 'g': case 'G': mult = 1024 * 1024 * 1024; len--; break;
	default: break;
	}
	if (!(num = strndup(s, len)))
		return -ENOMEM;
	if ((r = config_parse_uint(num, UINT64_MAX / mult, &v)) < 0)
		return r;
	*ret = v * mult;
	return 0;
}

int config_split_line(const char *line, char **ret_key, char **ret_value)
{
	const char *p = line, *end;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#') {
		*ret_key = NULL;
		*ret_value = NULL;
		return 0;
	}
	const char *kend = p;
	while (*kend && !isspace((unsigned char)*kend))
		kend++;
	const char *v = kend;
	while (isspace((unsigned char)*v))
		v++;
	end = v + strlen(v);
	while (end > v && isspace((unsigned char)end[-1]))
		end--;
	_cleanup_free_ char *key = strndup(p, (size_t)(kend - p));
	char *value = strndup(v, (size_t)(end - v));
	if (!key || !value) {
		free(value);
		return -ENOMEM;
	}
	*ret_key = TAKE_PTR(key);
	*ret_value = value;
	return 0;
}

int config_parse_file(const char *path, ConfigLineFn fn, void *userdata, unsigned *ret_line)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;

	*ret_line = 0;
	if (!f)
		return negative_errno();
	for (;;) {
		errno = 0;
		ssize_t n = getline(&line, &cap, f);
		if (n < 0) {
			if (errno != 0 && !feof(f))
				return negative_errno();
			return 0;
		}
		lineno++;
		_cleanup_free_ char *key = NULL, *value = NULL;
		int r = config_split_line(line, &key, &value);
		if (r >= 0 && key)
			r = fn(key, value, userdata);
		if (r < 0) {
			*ret_line = lineno;
			return r;
		}
	}
}
