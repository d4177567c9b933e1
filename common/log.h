/* SPDX-License-Identifier: Apache-2.0 */
/* log.h: one-line logging to stderr (with <N> priority prefix) or journald when stderr is the
 * journal stream. Global level; thread-safe. Never pass key material, JWTs or PEM. */
#pragma once

#include <syslog.h>
#include "macro.h"

void log_set_max_level(int level);
int log_get_max_level(void);
int log_parse_level(const char *s); /* "debug", "info", ... or 0-7; -EINVAL when unknown */
void log_set_ident(const char *ident);

/* Logs and returns `error` (a negative errno or 0). `error` adds ": <strerror>" to the line.
 * Extra journald fields may be given as a NULL-terminated list in log_fields(). */
int log_internal(int level, int error, const char *file, int line, const char *func,
		 const char *fmt, ...) _printf_(6, 7);

#define log_full_errno(level, error, ...)                                                          \
	({                                                                                         \
		int _lvl = (level), _e = (error);                                                  \
		_lvl <= log_get_max_level()                                                        \
			? log_internal(_lvl, _e, __FILE__, __LINE__, __func__, __VA_ARGS__)        \
			: (_e < 0 ? _e : -_e);                                                     \
	})

#define log_error_errno(error, ...) log_full_errno(LOG_ERR, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, (error), __VA_ARGS__)
#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, (error), __VA_ARGS__)
#define log_error(...) ((void)log_full_errno(LOG_ERR, 0, __VA_ARGS__))
#define log_warning(...) ((void)log_full_errno(LOG_WARNING, 0, __VA_ARGS__))
#define log_notice(...) ((void)log_full_errno(LOG_NOTICE, 0, __VA_ARGS__))
#define log_info(...) ((void)log_full_errno(LOG_INFO, 0, __VA_ARGS__))
#define log_debug(...) ((void)log_full_errno(LOG_DEBUG, 0, __VA_ARGS__))
