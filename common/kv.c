// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "kv.h"

struct KvMsg {
	size_t n, cap;
	char **keys, **values;
};

int kv_new(KvMsg **ret)
{
	KvMsg *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	*ret = m;
	return 0;
}

KvMsg *kv_free(KvMsg *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n; i++) {
		free(m->keys[i]);
		free(m->values[i]);
	}
	free(m->keys);
	free(m->values);
	free(m);
	return NULL;
}

static int key_valid(const char *k)
{
	if (!k || !*k)
		return 0;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' ||
		      *k == '.' || *k == '-'))
			return 0;
	return 1;
}

int kv_add(KvMsg *m, const char *key, const char *value)
{
	if (!key_valid(key) || !value || strchr(value, '\n'))
		return -EINVAL;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		char **k = realloc(m->keys, cap * sizeof *k);
		if (!k)
			return -ENOMEM;
		m->keys = k;
		char **v = realloc(m->values, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		m->values = v;
		m->cap = cap;
	}
	char *k = strdup(key), *v = strdup(value);
	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	m->keys[m->n] = k;
	m->values[m->n] = v;
	m->n++;
	return 0;
}

int kv_addf(KvMsg *m, const char *key, const char *fmt, ...)
{
	_cleanup_free_ char *v = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&v, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	return kv_add(m, key, v);
}

const char *kv_get(const KvMsg *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (streq(m->keys[i], key))
			return m->values[i];
	return NULL;
}

size_t kv_count(const KvMsg *m)
{
	return m->n;
}

const char *kv_key(const KvMsg *m, size_t i)
{
	return i < m->n ? m->keys[i] : NULL;
}

const char *kv_value(const KvMsg *m, size_t i)
{
	return i < m->n ? m->values[i] : NULL;
}

int kv_format(const KvMsg *m, char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, "%s=%s\n", m->keys[i], m->values[i]);
	fputc('\n', f);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	if (ret_len)
		*ret_len = len;
	return 0;
}

int kv_parse(const char *buf, size_t len, KvMsg **ret)
{
	KvMsg *m = NULL;
	const char *p = buf, *end = buf + len;
	int r = kv_new(&m);

	if (r < 0)
		return r;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (le == p) /* empty line: end of message */
			break;
		const char *eq = memchr(p, '=', (size_t)(le - p));
		if (!eq || memchr(p, 0, (size_t)(le - p))) {
			kv_free(m);
			return -EINVAL;
		}
		_cleanup_free_ char *k = strndup(p, (size_t)(eq - p));
		_cleanup_free_ char *v = strndup(eq + 1, (size_t)(le - eq - 1));
		if (!k || !v) {
			kv_free(m);
			return -ENOMEM;
		}
		r = kv_add(m, k, v);
		if (r < 0) {
			kv_free(m);
			return r;
		}
		p = nl ? nl + 1 : end;
	}
	*ret = m;
	return 0;
}

int kv_write_fd(int fd, const KvMsg *m)
{
	_cleanup_free_ char *buf = NULL;
	size_t len, off = 0;
	int r = kv_format(m, &buf, &len);

	if (r < 0)
		return r;
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		off += (size_t)n;
	}
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kv_read_fd(int fd, size_t max, int timeout_ms, KvMsg **ret)
{
	_cleanup_free_ char *buf = malloc(max + 1);
	size_t len = 0;
	long long deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		/* A message ends with "\n\n" (or is a lone "\n": the empty message). */
		if ((len >= 2 && buf[len - 1] == '\n' && buf[len - 2] == '\n') ||
		    (len == 1 && buf[0] == '\n'))
			return kv_parse(buf, len, ret);
		if (len == max)
			return -EMSGSIZE;
		if (deadline >= 0) {
			long long left = deadline - now_ms();
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			if (left <= 0)
				return -ETIMEDOUT;
			int pr = poll(&pfd, 1, (int)left);
			if (pr < 0 && errno != EINTR)
				return negative_errno();
			if (pr <= 0)
				continue;
		}
		/* The protocol strictly alternates request and reply, so a read never carries
		 * bytes of a following message. */
		ssize_t n = read(fd, buf + len, max - len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return negative_errno();
		}
		if (n == 0)
			return -ECONNRESET;
		len += (size_t)n;
	}
}

int kv_read_file(const char *path, size_t max, KvMsg **ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	/* Up to the size fstat saw; a file that grows meanwhile is read to that size. */
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return negative_errno();
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return kv_parse(buf, len, ret);
}

size_t kv_message_length(const char *buf, size_t len)
{
	if (len >= 1 && buf[0] == '\n')
		return 1; /* the empty message */
	const char *p = len >= 2 ? memmem(buf, len, "\n\n", 2) : NULL;
	return p ? (size_t)(p - buf) + 2 : 0;
}
