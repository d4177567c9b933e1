// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;
static const char *ident = "svidfs";
static int use_journal = -1; /* -1: not yet decided */

void log_set_max_level(int level)
{
	max_level = level;
}

int log_get_max_level(void)
{
	return max_level;
}

void log_set_ident(const char *s)
{
	ident = s;
}

int log_parse_level(const char *s)
{
	static const char *const names[] = {"emerg", "alert", "crit", "err",
					    "warning", "notice", "info", "debug"};
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (streq(s, names[i]))
			return (int)i;
	if (streq(s, "error"))
		return LOG_ERR;
	if (streq(s, "warn"))
		return LOG_WARNING;
	if (s[0] >= '0' && s[0] <= '7' && s[1] == 0)
		return s[0] - '0';
	return -EINVAL;
}

/* systemd sets JOURNAL_STREAM=<dev>:<ino> when stderr is connected to the journal. */
static int journal_stream_is_stderr(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return st.st_dev == dev && st.st_ino == ino;
}

int log_internal(int level, int error, const char *file, int line, const char *func,
		 const char *fmt, ...)
{
	char msg[2048];
	int saved = errno;
	int n;
	va_list ap;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = 0;
	if (error != 0) {
		size_t l = strlen(msg);
		snprintf(msg + l, sizeof msg - l, ": %s", strerror(error < 0 ? -error : error));
	}

	if (use_journal < 0)
		use_journal = journal_stream_is_stderr();
	if (use_journal) {
		char fl[32];
		snprintf(fl, sizeof fl, "CODE_LINE=%d", line);
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, "CODE_FILE=%s", file,
				"CODE_FUNC=%s", func, "SYSLOG_IDENTIFIER=%s", ident,
				error ? "ERRNO=%d" : "ERRNO_UNSET=%d", error < 0 ? -error : error,
				NULL);
	} else {
		/* One write(2) per line so concurrent threads never interleave a line. */
		char buf[2200];
		int len = snprintf(buf, sizeof buf, "<%d>%s: %s\n", level, ident, msg);
		if (len > (int)sizeof buf - 1)
			len = sizeof buf - 1;
		if (len > 0 && write(STDERR_FILENO, buf, (size_t)len) < 0) {
			/* nothing sensible to do */
		}
	}
	errno = saved;
	return error < 0 ? error : -error;
}
