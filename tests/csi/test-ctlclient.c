// SPDX-License-Identifier: Apache-2.0
/* The control-socket client against a tiny in-process fake server (not the daemon: the daemon is
 * exercised by the integration suite). */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctlclient.h"

static char dir[64], path[128];
static int lfd = -1;
static pthread_t thr;

typedef enum { FAKE_ECHO, FAKE_SILENT, FAKE_CLOSE, FAKE_TWO } FakeMode;
static FakeMode mode;

/* Serves one connection: echoes op back with status=0, or misbehaves as told. */
static void *serve(void *arg)
{
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	for (int round = 0; round < (mode == FAKE_TWO ? 2 : 1); round++) {
		KvMsg *req = NULL;
		if (kv_read_fd(fd, 65536, 5000, &req) < 0)
			break;
		if (mode == FAKE_SILENT) {
			/* Never answer: hold the connection until the client gives up (bounded). */
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			char c;
			while (poll(&pfd, 1, 10000) > 0 && read(fd, &c, 1) > 0)
				;
			kv_free(req);
			break;
		}
		if (mode == FAKE_CLOSE) {
			kv_free(req);
			break;
		}
		KvMsg *rep = NULL;
		kv_new(&rep);
		const char *op = kv_get(req, "op");
		if (op && strcmp(op, "fail") == 0) {
			kv_add(rep, "status", "-22");
			kv_add(rep, "error", "bad request: no such thing");
		} else {
			kv_add(rep, "status", "0");
			kv_add(rep, "echo", op ? op : "");
			kv_addf(rep, "round", "%d", round);
		}
		kv_write_fd(fd, rep);
		kv_free(rep);
		kv_free(req);
	}
	close(fd);
	return NULL;
}

static void start(FakeMode m)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(dir, "/tmp/svidfs-test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/control.sock", dir);
	strcpy(sa.sun_path, path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	mode = m;
	pthread_create(&thr, NULL, serve, NULL);
}

static void stop(void)
{
	shutdown(lfd, SHUT_RDWR);
	pthread_join(thr, NULL);
	close(lfd);
	unlink(path);
	rmdir(dir);
}

static KvMsg *req_op(const char *op)
{
	KvMsg *m = NULL;
	cr_assert_eq(kv_new(&m), 0);
	cr_assert_eq(kv_add(m, "op", op), 0);
	return m;
}

Test(ctlclient, call_and_status)
{
	start(FAKE_ECHO);
	KvMsg *req = req_op("ping"), *rep = NULL;
	cr_assert_eq(ctl_call(path, req, 2000, &rep), 0);
	cr_assert_eq(ctl_reply_status(rep), 0);
	cr_assert_str_eq(kv_get(rep, "echo"), "ping");
	cr_assert_str_eq(ctl_reply_error(rep), "the daemon gave no reason");
	kv_free(rep);
	kv_free(req);
	stop();
}

Test(ctlclient, error_reply)
{
	start(FAKE_ECHO);
	KvMsg *req = req_op("fail"), *rep = NULL;
	cr_assert_eq(ctl_call(path, req, 2000, &rep), 0, "a reply is not a transport error");
	cr_assert_eq(ctl_reply_status(rep), -22);
	cr_assert_str_eq(ctl_reply_error(rep), "bad request: no such thing");
	kv_free(rep);
	kv_free(req);
	stop();
}

Test(ctlclient, two_requests_one_connection)
{
	start(FAKE_TWO);
	CtlClient *c = NULL;
	KvMsg *req = req_op("a"), *rep = NULL;
	cr_assert_eq(ctl_client_connect(path, 2000, &c), 0);
	cr_assert_eq(ctl_client_call(c, req, 2000, &rep), 0);
	cr_assert_str_eq(kv_get(rep, "round"), "0");
	kv_free(rep);
	cr_assert_eq(ctl_client_call(c, req, 2000, &rep), 0);
	cr_assert_str_eq(kv_get(rep, "round"), "1");
	kv_free(rep);
	kv_free(req);
	ctl_client_free(c);
	stop();
}

Test(ctlclient, timeout)
{
	start(FAKE_SILENT);
	KvMsg *req = req_op("wait"), *rep = NULL;
	cr_assert_eq(ctl_call(path, req, 200, &rep), -ETIMEDOUT);
	kv_free(req);
	stop();
}

Test(ctlclient, daemon_hangs_up)
{
	start(FAKE_CLOSE);
	KvMsg *req = req_op("x"), *rep = NULL;
	cr_assert_eq(ctl_call(path, req, 2000, &rep), -ECONNRESET);
	kv_free(req);
	stop();
}

Test(ctlclient, no_daemon)
{
	KvMsg *req = req_op("ping"), *rep = NULL;
	cr_assert_eq(ctl_call("/tmp/svidfs-test-nonexistent/control.sock", req, 500, &rep),
		     -ENOENT);
	char longp[200];
	memset(longp, 'a', sizeof longp - 1);
	longp[0] = '/';
	longp[sizeof longp - 1] = 0;
	cr_assert_eq(ctl_call(longp, req, 500, &rep), -ENAMETOOLONG);
	kv_free(req);
}

Test(ctlclient, status_parsing)
{
	const char *cases[][2] = {{"0", "0"},	{"-110", "-110"}, {"", "bad"},
				  {"1", "bad"}, {"-x", "bad"},	  {"-99999", "bad"}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		KvMsg *m = NULL;
		kv_new(&m);
		kv_add(m, "status", cases[i][0]);
		int want = strcmp(cases[i][1], "bad") == 0 ? -EBADMSG : atoi(cases[i][1]);
		cr_assert_eq(ctl_reply_status(m), want, "status=%s", cases[i][0]);
		kv_free(m);
	}
	KvMsg *m = NULL;
	kv_new(&m);
	cr_assert_eq(ctl_reply_status(m), -EBADMSG, "missing status");
	kv_free(m);
}

/* Regression (pod-start with 100 pods at once): a non-blocking connect to a unix socket whose
 * listen backlog was full returned EAGAIN, the client polled, then wrote on an unconnected socket
 * and failed with ENOTCONN. Now connect waits for room in the backlog. */
#define N_BURST 16
static int burst_lfd;
static unsigned burst_started; /* clients about to connect (atomic) */

static void *burst_server(void *arg)
{
	/* Accept only once every client is on its way to connect: the backlog (1) fills up. A
	 * bounded wait for that, not a fixed sleep. */
	for (int i = 0; i < 1000 && __atomic_load_n(&burst_started, __ATOMIC_ACQUIRE) < N_BURST;
	     i++)
		usleep(10 * 1000);
	for (int i = 0; i < N_BURST; i++) {
		/* Clients that failed never arrive: stop after 3 s without one. */
		struct pollfd pfd = {.fd = burst_lfd, .events = POLLIN};
		if (poll(&pfd, 1, 3000) <= 0)
			return NULL;
		int fd = accept(burst_lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		KvMsg *req = NULL, *rep = NULL;
		if (kv_read_fd(fd, 4096, 5000, &req) == 0) {
			kv_new(&rep);
			kv_add(rep, "status", "0");
			kv_write_fd(fd, rep);
			kv_free(rep);
		}
		kv_free(req);
		close(fd);
	}
	return NULL;
}

static void *burst_client(void *arg)
{
	KvMsg *req = req_op("ping"), *rep = NULL;
	__atomic_add_fetch(&burst_started, 1, __ATOMIC_RELEASE);
	intptr_t r = ctl_call(path, req, 5000, &rep);
	if (r == 0)
		r = ctl_reply_status(rep);
	kv_free(rep);
	kv_free(req);
	return (void *)r;
}

Test(ctlclient, connect_waits_for_a_full_backlog)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	pthread_t srv, cl[N_BURST];

	strcpy(dir, "/tmp/svidfs-test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/control.sock", dir);
	strcpy(sa.sun_path, path);
	burst_lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(burst_lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(burst_lfd, 1), 0);
	pthread_create(&srv, NULL, burst_server, NULL);
	for (int i = 0; i < N_BURST; i++)
		pthread_create(&cl[i], NULL, burst_client, NULL);
	int failed = 0;
	for (int i = 0; i < N_BURST; i++) {
		void *r;
		pthread_join(cl[i], &r);
		if ((intptr_t)r != 0) {
			cr_log_error("client %d: %s", i, strerror(-(int)(intptr_t)r));
			failed++;
		}
	}
	pthread_join(srv, NULL);
	close(burst_lfd);
	unlink(path);
	rmdir(dir);
	cr_assert_eq(failed, 0, "%d of %d clients failed", failed, N_BURST);
}

Test(ctlclient, connect_times_out_when_never_accepted)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	CtlClient *c[8] = {0};
	int timeouts = 0;

	strcpy(dir, "/tmp/svidfs-test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/control.sock", dir);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(fd, 0), 0);
	/* Nobody accepts: once the backlog is full, connect gives up after its timeout. */
	for (int i = 0; i < 8; i++) {
		int r = ctl_client_connect(path, 100, &c[i]);
		if (r == -ETIMEDOUT)
			timeouts++;
		else
			cr_assert_eq(r, 0);
	}
	cr_assert_gt(timeouts, 0);
	for (int i = 0; i < 8; i++)
		ctl_client_free(c[i]);
	close(fd);
	unlink(path);
	rmdir(dir);
}
