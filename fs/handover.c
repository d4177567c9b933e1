// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "handover.h"

int handover_send(int sock, const KvMsg *m, const int *fds, size_t n_fds)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	union {
		char b[CMSG_SPACE(sizeof(int) * HANDOVER_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	int r;

	if (n_fds > HANDOVER_MAX_FDS)
		return -EINVAL;
	r = kv_format(m, &buf, &len);
	if (r < 0)
		return r;
	if (len > HANDOVER_MAX_MSG)
		return -EMSGSIZE;
	iov.iov_base = buf;
	iov.iov_len = len;
	if (n_fds > 0) {
		memset(&ctl, 0, sizeof ctl);
		msg.msg_control = ctl.b;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n >= 0)
			return n == (ssize_t)len ? 0 : -EIO;
		if (errno != EINTR)
			return negative_errno();
	}
}

int handover_recv(int sock, int timeout_ms, KvMsg **ret, int *ret_fds, size_t *ret_n_fds)
{
	_cleanup_free_ char *buf = malloc(HANDOVER_MAX_MSG);
	union {
		char b[CMSG_SPACE(sizeof(int) * HANDOVER_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = HANDOVER_MAX_MSG};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			     .msg_controllen = sizeof ctl.b};
	struct pollfd p = {.fd = sock, .events = POLLIN};
	size_t n_fds = 0;
	ssize_t n;
	int r;

	if (!buf)
		return -ENOMEM;
	r = poll(&p, 1, timeout_ms);
	if (r < 0)
		return negative_errno();
	if (r == 0)
		return -ETIMEDOUT;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return negative_errno();
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < k; i++) {
			if (n_fds < HANDOVER_MAX_FDS && ret_fds)
				ret_fds[n_fds++] = in[i];
			else
				close(in[i]);
		}
	}
	if (n == 0 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		for (size_t i = 0; i < n_fds; i++)
			close(ret_fds[i]);
		return n == 0 ? -ECONNRESET : -EMSGSIZE;
	}
	r = kv_parse(buf, (size_t)n, ret);
	if (r < 0) {
		for (size_t i = 0; i < n_fds; i++)
			close(ret_fds[i]);
		return r;
	}
	if (ret_n_fds)
		*ret_n_fds = n_fds;
	return 0;
}

int handover_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negative_errno();
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int r = negative_errno();
		close(fd);
		return r;
	}
	return fd;
}

int handover_call(const char *path, const KvMsg *req, const int *fds, size_t n_fds,
		  int timeout_ms, KvMsg **ret, int *ret_fds, size_t *ret_n_fds)
{
	_cleanup_close_ int s = handover_connect(path);
	int r;

	if (s < 0)
		return s;
	r = handover_send(s, req, fds, n_fds);
	if (r < 0)
		return r;
	return handover_recv(s, timeout_ms, ret, ret_fds, ret_n_fds);
}

int handover_hex_encode(const void *p, size_t n, char **ret)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b = p;
	char *s = malloc(2 * n + 1);

	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = hex[b[i] >> 4];
		s[2 * i + 1] = hex[b[i] & 15];
	}
	s[2 * n] = 0;
	*ret = s;
	return 0;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int handover_hex_decode(const char *s, void *buf, size_t max, size_t *ret_n)
{
	size_t l = strlen(s);
	unsigned char *b = buf;

	if (l % 2 || l / 2 > max)
		return -EINVAL;
	for (size_t i = 0; i < l / 2; i++) {
		int hi = unhex(s[2 * i]), lo = unhex(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		b[i] = (unsigned char)(hi << 4 | lo);
	}
	*ret_n = l / 2;
	return 0;
}
