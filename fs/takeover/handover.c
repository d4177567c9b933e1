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
#include <stdio.h>
#include <sys/mman.h>
#include <systemd/sd-daemon.h>

#include "handover.h"
#include "util.h"

DEFINE_CLEANUP_FUNC(KvMsg, kv_free)

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
	return unix_connect(path, SOCK_SEQPACKET);
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

#define FDNAME_FUSE "svidfs-fuse"
#define FDNAME_LEDGER "svidfs-ledger"
#define FDNAME_FACTS "svidfs-facts"

static int systemd_remove_all(void)
{
	static const char *const names[] = {FDNAME_FUSE, FDNAME_LEDGER, FDNAME_FACTS};
	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		char msg[64];
		snprintf(msg, sizeof msg, "FDSTOREREMOVE=1\nFDNAME=%s", names[i]);
		sd_notify(0, msg);
	}
	return 0;
}

static int systemd_stash(const int *fds, size_t n_fds, const KvMsg *facts)
{
	static const char *const names[] = {FDNAME_FUSE, FDNAME_LEDGER};
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int mfd = -1;
	size_t len;
	int r;

	if (!getenv("NOTIFY_SOCKET"))
		return -ENOTCONN;
	r = kv_format(facts, &text, &len);
	if (r < 0)
		return r;
	/* Facts ride in a sealed memfd: the store keeps fds only. */
	mfd = memfd_create(FDNAME_FACTS, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		return negative_errno();
	if (write(mfd, text, len) != (ssize_t)len ||
	    fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return negative_errno();
	systemd_remove_all();
	for (size_t i = 0; i < n_fds && i < ELEMENTSOF(names); i++) {
		char msg[64];
		snprintf(msg, sizeof msg, "FDSTORE=1\nFDNAME=%s", names[i]);
		r = sd_pid_notify_with_fds(0, 0, msg, &fds[i], 1);
		if (r <= 0)
			return r < 0 ? r : -ENOTCONN;
	}
	r = sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=" FDNAME_FACTS, &mfd, 1);
	return r < 0 ? r : r == 0 ? -ENOTCONN : 0;
}

static int systemd_fetch(int *ret_fds, size_t *ret_n_fds, KvMsg **ret_facts)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(0, &names);
	int fuse_fd = -1, ledger_fd = -1, facts_fd = -1, r;

	if (n <= 0) {
		free(names);
		return n < 0 ? n : -ENOENT;
	}
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		if (names && names[i] && streq(names[i], FDNAME_FUSE))
			fuse_fd = fd;
		else if (names && names[i] && streq(names[i], FDNAME_LEDGER))
			ledger_fd = fd;
		else if (names && names[i] && streq(names[i], FDNAME_FACTS))
			facts_fd = fd;
		else
			close(fd);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	for (int i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	if (fuse_fd < 0 || facts_fd < 0) {
		if (fuse_fd >= 0)
			close(fuse_fd);
		if (ledger_fd >= 0)
			close(ledger_fd);
		if (facts_fd >= 0)
			close(facts_fd);
		return -ENOENT;
	}
	{
		char buf[HANDOVER_MAX_MSG];
		ssize_t l = pread(facts_fd, buf, sizeof buf, 0);
		close(facts_fd);
		r = l < 0 ? negative_errno() : kv_parse(buf, (size_t)l, ret_facts);
	}
	if (r < 0) {
		close(fuse_fd);
		if (ledger_fd >= 0)
			close(ledger_fd);
		return r;
	}
	ret_fds[0] = fuse_fd;
	*ret_n_fds = 1;
	if (ledger_fd >= 0)
		ret_fds[(*ret_n_fds)++] = ledger_fd;
	return 0;
}

int handover_stash(const HandoverKeeper *k, const int *fds, size_t n_fds, const KvMsg *facts)
{
	_cleanup_(kv_freep) KvMsg *req = NULL, *rep = NULL;
	int r;

	switch (k->type) {
	case HANDOVER_KEEPER_SYSTEMD:
		return systemd_stash(fds, n_fds, facts);
	case HANDOVER_KEEPER_SOCKET:
		r = kv_new(&req);
		if (r < 0)
			return r;
		kv_add(req, "op", "put");
		for (size_t i = 0; i < kv_count(facts); i++)
			kv_add(req, kv_key(facts, i), kv_value(facts, i));
		r = handover_call(k->path, req, fds, n_fds, 5000, &rep, NULL, NULL);
		if (r < 0)
			return r;
		return kv_get(rep, "status") ? atoi(kv_get(rep, "status")) : -EPROTO;
	default:
		return 0;
	}
}

int handover_fetch(const HandoverKeeper *k, int *ret_fds, size_t *ret_n_fds, KvMsg **ret_facts)
{
	_cleanup_(kv_freep) KvMsg *req = NULL, *rep = NULL;
	int fds[HANDOVER_MAX_FDS];
	size_t n = 0;
	int r;

	switch (k->type) {
	case HANDOVER_KEEPER_SYSTEMD:
		return systemd_fetch(ret_fds, ret_n_fds, ret_facts);
	case HANDOVER_KEEPER_SOCKET:
		r = kv_new(&req);
		if (r < 0)
			return r;
		kv_add(req, "op", "get");
		r = handover_call(k->path, req, NULL, 0, 5000, &rep, fds, &n);
		if (r < 0)
			return r == -ECONNREFUSED ? -ENOENT : r;
		r = kv_get(rep, "status") ? atoi(kv_get(rep, "status")) : -EPROTO;
		if (r < 0 || n == 0) {
			for (size_t i = 0; i < n; i++)
				close(fds[i]);
			return r < 0 ? r : -ENOENT;
		}
		memcpy(ret_fds, fds, n * sizeof(int));
		*ret_n_fds = n;
		*ret_facts = TAKE_PTR(rep);
		return 0;
	default:
		return -ENOENT;
	}
}

int handover_release(const HandoverKeeper *k)
{
	_cleanup_(kv_freep) KvMsg *req = NULL, *rep = NULL;
	int r;

	switch (k->type) {
	case HANDOVER_KEEPER_SYSTEMD:
		return systemd_remove_all();
	case HANDOVER_KEEPER_SOCKET:
		r = kv_new(&req);
		if (r < 0)
			return r;
		kv_add(req, "op", "drop");
		return handover_call(k->path, req, NULL, 0, 5000, &rep, NULL, NULL);
	default:
		return 0;
	}
}
