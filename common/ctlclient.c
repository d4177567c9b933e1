// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctlclient.h"

struct CtlClient {
	int fd;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_client_connect(const char *path, int timeout_ms, CtlClient **ret)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;

	if (!path || !*path)
		return -EINVAL;
	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);

	/* A blocking connect with a send timeout: on a unix socket whose listen backlog is full,
	 * connect(2) then waits for room (up to SO_SNDTIMEO) instead of failing. A non-blocking
	 * connect would return EAGAIN and leave the socket unconnected, not "in progress". */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negative_errno();
	if (timeout_ms >= 0) {
		struct timeval tv = {.tv_sec = timeout_ms / 1000,
				     .tv_usec = (timeout_ms % 1000) * 1000};
		if (tv.tv_sec == 0 && tv.tv_usec == 0)
			tv.tv_usec = 1000; /* 0 would mean "no timeout" */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
			return negative_errno();
	}
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EISCONN) /* an interrupted connect that completed */
			break;
		/* The send timeout ran out while the backlog stayed full. */
		if (errno == EAGAIN || errno == EINPROGRESS)
			return -ETIMEDOUT;
		return negative_errno();
	}

	CtlClient *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->fd = TAKE_FD(fd);
	*ret = c;
	return 0;
}

CtlClient *ctl_client_free(CtlClient *c)
{
	if (!c)
		return NULL;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return NULL;
}

DEFINE_CLEANUP_FUNC(CtlClient, ctl_client_free)

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		/* MSG_NOSIGNAL: a daemon that went away must give -EPIPE, not kill us. */
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return -ETIMEDOUT;
			return negative_errno();
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int ctl_client_call(CtlClient *c, const KvMsg *req, int timeout_ms, KvMsg **ret_reply)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	long long start = now_ms();
	int r;

	r = kv_format(req, &buf, &len);
	if (r < 0)
		return r;
	r = write_all(c->fd, buf, len);
	if (r < 0)
		return r;
	int left = -1;
	if (timeout_ms >= 0) {
		long long l = timeout_ms - (now_ms() - start);
		left = l > 0 ? (int)l : 0;
	}
	return kv_read_fd(c->fd, CTL_REPLY_MAX, left, ret_reply);
}

int ctl_call(const char *path, const KvMsg *req, int timeout_ms, KvMsg **ret_reply)
{
	_cleanup_(ctl_client_freep) CtlClient *c = NULL;
	long long start = now_ms();
	int r;

	r = ctl_client_connect(path, timeout_ms, &c);
	if (r < 0)
		return r;
	int left = -1;
	if (timeout_ms >= 0) {
		long long l = timeout_ms - (now_ms() - start);
		left = l > 0 ? (int)l : 0;
	}
	return ctl_client_call(c, req, left, ret_reply);
}

int ctl_reply_status(const KvMsg *reply)
{
	const char *s = kv_get(reply, "status");
	char *end;
	long v;

	if (!s || !*s)
		return -EBADMSG;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v > 0 || v < -4095)
		return -EBADMSG;
	return (int)v;
}

const char *ctl_reply_error(const KvMsg *reply)
{
	const char *e = reply ? kv_get(reply, "error") : NULL;
	return e && *e ? e : "the daemon gave no reason";
}
