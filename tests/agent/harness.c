// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "harness.h"

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- TAP ---- */

static unsigned tap_n, tap_failed;

void tap_ok(bool ok, const char *fmt, ...)
{
	va_list ap;
	printf("%s %u - ", ok ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		tap_failed++;
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

int tap_done(void)
{
	printf("1..%u\n", tap_n);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

/* ---- development agent ---- */

int da_init(DevAgent *d, const char *bin)
{
	memset(d, 0, sizeof(*d));
	d->bin = bin;
	d->pid = -1;
	strcpy(d->dir, "/tmp/svidfs-test.XXXXXX");
	if (!mkdtemp(d->dir))
		return -errno;
	snprintf(d->admin, sizeof(d->admin), "%s/admin.sock", d->dir);
	snprintf(d->workload, sizeof(d->workload), "%s/workload.sock", d->dir);
	snprintf(d->control, sizeof(d->control), "%s/control.sock", d->dir);
	return 0;
}

static int ctl_connect(DevAgent *d)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->control);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int da_start(DevAgent *d, const char *const *extra)
{
	const char *argv[64];
	size_t n = 0;

	argv[n++] = d->bin;
	argv[n++] = "--trust-domain=" TD;
	argv[n++] = "--admin-socket";
	argv[n++] = d->admin;
	argv[n++] = "--socket";
	argv[n++] = d->workload;
	argv[n++] = "--control";
	argv[n++] = d->control;
	for (size_t i = 0; extra && extra[i] && n < ELEMENTSOF(argv) - 1; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;

	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* The agent's log goes to our stderr (meson keeps it), not into the TAP stream. */
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execv(d->bin, (char *const *)argv);
		_exit(127);
	}
	d->pid = pid;
	for (int i = 0; i < 1000; i++) {
		int fd = ctl_connect(d);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			d->pid = -1;
			return -ECHILD;
		}
		usleep(10000);
	}
	da_kill(d);
	return -ETIMEDOUT;
}

static void da_wait(DevAgent *d, int first_sig)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, first_sig);
	for (int i = 0; i < 500; i++) {
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			d->pid = -1;
			return;
		}
		usleep(10000);
	}
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = -1;
}

void da_stop(DevAgent *d)
{
	da_wait(d, SIGTERM);
}

void da_kill(DevAgent *d)
{
	da_wait(d, SIGKILL);
}

void da_done(DevAgent *d)
{
	da_stop(d);
	if (d->dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", d->dir);
	}
}

int da_ctl(DevAgent *d, KvMsg **ret, const char *op, ...)
{
	KvMsg *req = NULL, *reply = NULL;
	va_list ap;
	int r, fd;

	if (kv_new(&req) < 0 || kv_add(req, "op", op) < 0)
		return -ENOMEM;
	va_start(ap, op);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		kv_add(req, k, v);
	}
	va_end(ap);
	fd = ctl_connect(d);
	if (fd < 0) {
		kv_free(req);
		return fd;
	}
	r = kv_write_fd(fd, req);
	if (r >= 0)
		r = kv_read_fd(fd, 1 << 20, 10000, &reply);
	close(fd);
	kv_free(req);
	if (r < 0)
		return r;
	const char *st = kv_get(reply, "status");
	r = st ? atoi(st) : -EPROTO;
	if (r < 0 && kv_get(reply, "error"))
		tap_diag("control %s: %s", op, kv_get(reply, "error"));
	if (ret)
		*ret = reply;
	else
		kv_free(reply);
	return r;
}

char *da_uri(const char *path)
{
	char *s = NULL;
	if (asprintf(&s, "unix://%s", path) < 0)
		abort();
	return s;
}

/* ---- Recorder ---- */

void rec_init(Recorder *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
}

void rec_done(Recorder *r)
{
	free(r->leaf);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
}

void rec_x509(void *userdata, const SvidX509Update *u)
{
	Recorder *r = userdata;
	pthread_mutex_lock(&r->lock);
	if (r->block) {
		r->blocked++;
		pthread_cond_broadcast(&r->cond);
		while (r->block)
			pthread_cond_wait(&r->cond, &r->lock);
		r->blocked--;
	}
	r->updates++;
	r->last_ns = now_ns();
	r->n_svids = u->n_svids;
	r->spiffe_id[0] = '\0';
	free(r->leaf);
	r->leaf = NULL;
	r->leaf_len = 0;
	if (u->n_svids > 0) {
		snprintf(r->spiffe_id, sizeof(r->spiffe_id), "%s", u->svids[0].spiffe_id);
		r->leaf = malloc(u->svids[0].chain_len);
		memcpy(r->leaf, u->svids[0].chain, u->svids[0].chain_len);
		r->leaf_len = u->svids[0].chain_len;
	}
	r->n_bundles = u->n_bundles;
	AgentSub *c = r->cancel_me;
	r->cancel_me = NULL;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (c)
		agent_sub_cancel(c);
}

void rec_bundles(void *userdata, const SvidBundleInput *b, size_t n)
{
	Recorder *r = userdata;
	pthread_mutex_lock(&r->lock);
	r->updates++;
	r->last_ns = now_ns();
	r->n_bundles = n;
	snprintf(r->bundle_td, sizeof(r->bundle_td), "%s", n ? b[0].trust_domain : "");
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

bool rec_wait(Recorder *r, unsigned n, int timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&r->lock);
	while (r->updates < n)
		if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT)
			break;
	ok = r->updates >= n;
	pthread_mutex_unlock(&r->lock);
	return ok;
}

unsigned rec_updates(Recorder *r)
{
	pthread_mutex_lock(&r->lock);
	unsigned n = r->updates;
	pthread_mutex_unlock(&r->lock);
	return n;
}
