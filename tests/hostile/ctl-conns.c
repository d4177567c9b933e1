// SPDX-License-Identifier: Apache-2.0
/* ctl-conns: hostile and heavy clients of the daemon's control socket, for the t-control-*
 * tests. Root only (the socket is).
 *   hold SOCK N STATUS      open N connections and keep them idle; STATUS (rewritten every
 *                           50 ms) says how many the daemon closed, and how many of those it
 *                           refused with a reply: "opened=N closed=C busy=B"
 *   pipeline SOCK           two requests in one write: both replies, in order
 *   big SOCK                a request over the size limit: one error reply, then EOF
 *   halfclose SOCK          a request, then shutdown(SHUT_WR): its reply, then EOF
 *   register SOCK N SEED    N pods over one connection (UIDs from the number SEED):
 *                           "ok=K ms=T"
 *   latency SOCK N          N pings, each on a new connection: "p50_us= p99_us= max_us="
 *   latency-during SOCK PID the same, one ping every 5 ms for as long as process PID lives
 * Exit status 0 unless the command could not run at all. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctlclient.h"
#include "kv.h"

/* A checked count: the whole argument, 1..1000000. */
static int count_arg(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 100000000) {
		fprintf(stderr, "not a count: %s\n", s);
		exit(2);
	}
	return (int)v;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static void write_status(const char *path, const char *text)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
	rename(tmp, path);
}

static int cmd_hold(const char *sock, int n, const char *status)
{
	struct pollfd *p = calloc((size_t)n, sizeof *p);
	int opened = 0, closed = 0, busy = 0, failed = 0;
	char text[256];

	if (!p)
		return 1;
	for (int i = 0; i < n; i++) {
		p[i].fd = connect_to(sock);
		p[i].events = POLLIN;
		if (p[i].fd < 0) {
			failed++;
			p[i].fd = -1;
		} else
			opened++;
	}
	for (;;) {
		int k = poll(p, (nfds_t)n, 50);
		for (int i = 0; k > 0 && i < n; i++) {
			char buf[256];
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			ssize_t m = recv(p[i].fd, buf, sizeof buf - 1, MSG_DONTWAIT);
			if (m > 0) {
				buf[m] = 0;
				busy += strstr(buf, "status=-16") != NULL;
				continue; /* EOF follows */
			}
			if (m < 0 && errno == EAGAIN)
				continue;
			close(p[i].fd);
			p[i].fd = -1;
			closed++;
		}
		snprintf(text, sizeof text, "opened=%d closed=%d busy=%d failed=%d\n", opened,
			 closed, busy, failed);
		write_status(status, text);
		if (closed == opened)
			return 0;
	}
}

static int read_replies(int fd, int want, char *buf, size_t len)
{
	size_t got = 0;
	int seen = 0;
	double t0 = now_us();

	while (seen < want && now_us() - t0 < 10e6) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t m = recv(fd, buf + got, len - 1 - got, 0);
		if (m <= 0)
			break;
		got += (size_t)m;
		buf[got] = 0;
		seen = 0;
		for (const char *q = buf; (q = strstr(q, "\n\n")); q += 2)
			seen++;
	}
	buf[got] = 0;
	return seen;
}

static int cmd_pipeline(const char *sock)
{
	static const char req[] = "op=ping\n\nop=status\nworkload=pods/none\n\n";
	char buf[4096];
	int fd = connect_to(sock);

	if (fd < 0 || send(fd, req, sizeof req - 1, MSG_NOSIGNAL) < 0)
		return 1;
	int n = read_replies(fd, 2, buf, sizeof buf);
	close(fd);
	/* The ping's reply first (it has version=), then the status refusal. */
	const char *v = strstr(buf, "version="), *e = strstr(buf, "status=-2\n");
	printf("replies=%d ordered=%s\n", n, v && e && v < e ? "yes" : "no");
	return 0;
}

static int cmd_halfclose(const char *sock)
{
	static const char req[] = "op=ping\n\n";
	char buf[4096];
	int fd = connect_to(sock);

	if (fd < 0 || send(fd, req, sizeof req - 1, MSG_NOSIGNAL) < 0 || shutdown(fd, SHUT_WR) < 0)
		return 1;
	int n = read_replies(fd, 1, buf, sizeof buf);
	char c;
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	bool eof = poll(&pf, 1, 10000) > 0 && recv(fd, &c, 1, MSG_DONTWAIT) == 0;
	printf("replies=%d ping=%s eof=%s\n", n, strstr(buf, "version=") ? "yes" : "no",
	       eof ? "yes" : "no");
	close(fd);
	return 0;
}

static int cmd_big(const char *sock)
{
	size_t len = 70 * 1024;
	char *req = malloc(len + 16), buf[4096];
	int fd = connect_to(sock);

	if (!req || fd < 0)
		return 1;
	memcpy(req, "op=ping\nx=", 10);
	memset(req + 10, 'a', len - 10);
	/* No end of message: the daemon must give up at its limit, not wait for more. */
	ssize_t sent = send(fd, req, len, MSG_NOSIGNAL);
	int n = read_replies(fd, 1, buf, sizeof buf);
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	bool eof = false;
	for (int i = 0; i < 100 && !eof; i++) {
		char c;
		if (poll(&pf, 1, 100) > 0)
			eof = recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
	}
	printf("sent=%zd replies=%d emsgsize=%s eof=%s\n", sent, n,
	       strstr(buf, "status=-90\n") ? "yes" : "no", eof ? "yes" : "no");
	close(fd);
	free(req);
	return 0;
}

static int cmd_register(const char *sock, int n, unsigned seed)
{
	CtlClient *c = NULL;
	int ok = 0, r = ctl_client_connect(sock, 5000, &c);
	double t0 = now_us();

	if (r < 0) {
		fprintf(stderr, "connect: %s\n", strerror(-r));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		KvMsg *req = NULL, *reply = NULL;
		char uid[40];
		snprintf(uid, sizeof uid, "%08x-0000-4000-8000-%012d", seed, i);
		kv_new(&req);
		kv_add(req, "op", "register");
		kv_add(req, "pod_uid", uid);
		kv_add(req, "namespace", "bulk");
		kv_add(req, "service_account", "sa");
		kv_add(req, "ref", "vol-bulk");
		r = ctl_client_call(c, req, 30000, &reply);
		if (r == 0 && ctl_reply_status(reply) == 0)
			ok++;
		else if (ok == i)
			fprintf(stderr, "register %d: %s\n", i,
				r < 0 ? strerror(-r) : ctl_reply_error(reply));
		kv_free(req);
		kv_free(reply);
	}
	ctl_client_free(c);
	printf("ok=%d ms=%.0f\n", ok, (now_us() - t0) / 1000);
	return 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* n pings (or, with pid > 0, pings every 5 ms while pid lives), each on a new connection. */
static int cmd_latency(const char *sock, int n, pid_t pid)
{
	size_t cap = pid > 0 ? 1024 : (size_t)n, sent = 0, ok = 0;
	double *t = calloc(cap, sizeof *t);

	if (!t)
		return 1;
	while (pid > 0 ? kill(pid, 0) == 0 : sent < (size_t)n) {
		KvMsg *req = NULL, *reply = NULL;
		if (ok == cap) {
			double *p = realloc(t, cap * 2 * sizeof *t);
			if (!p)
				break;
			t = p;
			cap *= 2;
		}
		kv_new(&req);
		kv_add(req, "op", "ping");
		double t0 = now_us();
		sent++;
		if (ctl_call(sock, req, 30000, &reply) == 0 && ctl_reply_status(reply) == 0)
			t[ok++] = now_us() - t0;
		kv_free(req);
		kv_free(reply);
		if (pid > 0)
			usleep(5000);
	}
	qsort(t, ok, sizeof *t, cmp_d);
	printf("sent=%zu ok=%zu p50_us=%.0f p99_us=%.0f max_us=%.0f\n", sent, ok,
	       ok ? t[ok / 2] : 0, ok ? t[(ok * 99) / 100] : 0, ok ? t[ok - 1] : 0);
	free(t);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "hold"))
		return cmd_hold(argv[2], count_arg(argv[3]), argv[4]);
	if (argc >= 3 && !strcmp(argv[1], "pipeline"))
		return cmd_pipeline(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "big"))
		return cmd_big(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "halfclose"))
		return cmd_halfclose(argv[2]);
	if (argc >= 5 && !strcmp(argv[1], "register"))
		return cmd_register(argv[2], count_arg(argv[3]), (unsigned)count_arg(argv[4]));
	if (argc >= 4 && !strcmp(argv[1], "latency"))
		return cmd_latency(argv[2], count_arg(argv[3]), 0);
	if (argc >= 4 && !strcmp(argv[1], "latency-during"))
		return cmd_latency(argv[2], 0, (pid_t)count_arg(argv[3]));
	fprintf(stderr, "usage: see the comment at the top of ctl-conns.c\n");
	return 2;
}
