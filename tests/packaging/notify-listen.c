// SPDX-License-Identifier: Apache-2.0
/* notify-listen: the systemd side of sd_notify(3) for tests. Binds a datagram socket at PATH
 * (what systemd passes as $NOTIFY_SOCKET), and prints each received assignment as
 * "<ms since start> <pid> KEY=VALUE", one per line, flushed. With --check-mount DIR, on READY=1
 * it immediately statfs()es DIR and prints "<ms> <pid> CHECK-MOUNT=fuse" (or =other/=error),
 * which tells whether the mount answered before the daemon claimed readiness. Exits after
 * STOPPING=1 plus 500 ms, or after --timeout seconds (default 60). */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "macro.h"

#define FUSE_SUPER_MAGIC 0x65735546

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int bind_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, one = 1;

	if (strlen(path) >= sizeof sa.sun_path)
		return log_error_errno(-ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_error_errno(negative_errno(), "socket");
	/* The sender's pid arrives with SCM_CREDENTIALS, as systemd reads it. */
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
	    (unlink(path) < 0 && errno != ENOENT) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int r = log_error_errno(negative_errno(), "cannot bind %s", path);
		close(fd);
		return r;
	}
	return fd;
}

static const char *mount_kind(const char *dir)
{
	struct statfs st;
	if (statfs(dir, &st) < 0)
		return "error";
	return st.f_type == FUSE_SUPER_MAGIC ? "fuse" : "other";
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"check-mount", required_argument, NULL, 'm'},
		{"timeout", required_argument, NULL, 't'},
		{},
	};
	const char *check_mount = NULL;
	long long start = now_ms(), deadline, stop_at = -1;
	_cleanup_close_ int fd = -1;
	int c;

	log_set_ident("notify-listen");
	deadline = start + 60000;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		if (c == 'm')
			check_mount = optarg;
		else if (c == 't')
			deadline = start + atoll(optarg) * 1000;
		else
			return EXIT_FAILURE;
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: notify-listen [--check-mount DIR] [--timeout S] PATH\n");
		return EXIT_FAILURE;
	}
	fd = bind_socket(argv[optind]);
	if (fd < 0)
		return EXIT_FAILURE;
	printf("%lld 0 LISTENING=1\n", now_ms() - start);
	fflush(stdout);

	for (;;) {
		long long t = now_ms(), until = stop_at >= 0 ? MIN(stop_at, deadline) : deadline;
		if (t >= until)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, (int)(until - t));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return log_error_errno(negative_errno(), "poll"), EXIT_FAILURE;
		if (n == 0)
			continue;

		char buf[4096];
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct iovec iov = {buf, sizeof buf - 1};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
				    .msg_controllen = sizeof ctl};
		ssize_t len = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (len < 0)
			continue;
		buf[len] = 0;
		pid_t pid = 0;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
			if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS) {
				struct ucred uc;
				memcpy(&uc, CMSG_DATA(h), sizeof uc);
				pid = uc.pid;
			}
		long long at = now_ms() - start;
		bool ready = false;
		for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save)) {
			printf("%lld %d %s\n", at, (int)pid, l);
			if (streq(l, "READY=1"))
				ready = true;
			if (streq(l, "STOPPING=1"))
				stop_at = now_ms() + 500;
		}
		if (ready && check_mount)
			printf("%lld %d CHECK-MOUNT=%s\n", now_ms() - start, (int)pid,
			       mount_kind(check_mount));
		fflush(stdout);
	}
	unlink(argv[optind]);
	return EXIT_SUCCESS;
}
