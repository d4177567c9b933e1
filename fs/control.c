// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "cleanup.h"
#include "control.h"
#include "kv.h"
#include "log.h"
#include "macro.h"
#include "registration.h"
#include "util.h"

#define MAX_REQUEST (64 * 1024)
#define IDLE_TIMEOUT_MS (5 * 60 * 1000)
#define MAX_WAIT_MS (10 * 60 * 1000)

DEFINE_CLEANUP_FUNC(KvMsg, kv_free)
DEFINE_CLEANUP_FUNC(SvidSet, svid_set_unref)
DEFINE_CLEANUP_FUNC(Workload, workload_unref)

struct Control {
	ControlContext ctx;
	int fd;
	int stop_pipe[2];
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned n_conns;
	int *conn_fds;
	size_t n_conn_fds;
	bool stop;
	int64_t mounted_at;
	unsigned takeovers;
};

int control_new(const ControlContext *ctx, Control **ret)
{
	Control *c = calloc(1, sizeof *c);

	if (!c)
		return -ENOMEM;
	c->ctx = *ctx;
	c->fd = -1;
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	*ret = c;
	return 0;
}

void control_set_mounted_at(Control *c, int64_t t)
{
	pthread_mutex_lock(&c->lock);
	c->mounted_at = t;
	pthread_mutex_unlock(&c->lock);
}

void control_set_takeovers(Control *c, unsigned n)
{
	pthread_mutex_lock(&c->lock);
	c->takeovers = n;
	pthread_mutex_unlock(&c->lock);
}

static int reply_error(KvMsg *reply, int r, const char *msg)
{
	kv_addf(reply, "status", "%d", r);
	kv_add(reply, "error", msg ? msg : strerror(-r));
	return r;
}

static int op_register(Control *c, const KvMsg *req, KvMsg *reply)
{
	Registration *reg = NULL;
	const char *why = NULL;
	_cleanup_free_ char *name = NULL;
	unsigned refs = 0;
	int r;

	r = registration_from_kv(req, &reg, &why);
	if (r < 0)
		return reply_error(reply, r, why);
	if (reg->kind == REGISTRATION_SELF) {
		registration_free(reg);
		return reply_error(reply, -EINVAL,
				   "self/ comes from the config, not from register");
	}
	r = sessions_register(c->ctx.sessions, reg, kv_get(req, "ref"), true, &name, &refs, &why);
	if (r < 0)
		return reply_error(reply, r, why);
	kv_add(reply, "status", "0");
	kv_add(reply, "workload", name);
	kv_addf(reply, "refs", "%u", refs);
	return 0;
}

static int op_unregister(Control *c, const KvMsg *req, KvMsg *reply)
{
	const char *name = kv_get(req, "workload");
	unsigned refs = 0;
	bool removed = false;
	int r;

	if (!name)
		return reply_error(reply, -EINVAL, "workload is required");
	r = sessions_unregister(c->ctx.sessions, name, kv_get(req, "ref"), &refs, &removed);
	if (r == -ENOENT) {
		/* Idempotent: a second unregister of a removed workload succeeds. */
		kv_add(reply, "status", "0");
		kv_add(reply, "refs", "0");
		kv_add(reply, "removed", "true");
		return 0;
	}
	if (r < 0)
		return reply_error(reply, r, NULL);
	kv_add(reply, "status", "0");
	kv_addf(reply, "refs", "%u", refs);
	kv_add(reply, "removed", removed ? "true" : "false");
	return 0;
}

static int op_wait(Control *c, const KvMsg *req, KvMsg *reply)
{
	const char *name = kv_get(req, "workload"), *t = kv_get(req, "timeout_ms");
	long timeout = t ? strtol(t, NULL, 10) : 10000;
	size_t n = 0;
	int r = -ETIMEDOUT;

	if (!name)
		return reply_error(reply, -EINVAL, "workload is required");
	timeout = MAX(0L, MIN(timeout, (long)MAX_WAIT_MS));
	/* In slices, so shutdown does not wait for a long wait. */
	for (long left = timeout; left >= 0; left -= 250) {
		r = sessions_wait(c->ctx.sessions, name, (int)MIN(left, 250L), &n);
		pthread_mutex_lock(&c->lock);
		bool stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (r != -ETIMEDOUT || stop || left == 0)
			break;
	}
	if (r == -ETIMEDOUT)
		return reply_error(reply, r, "no SVID arrived in time");
	if (r < 0)
		return reply_error(reply, r, NULL);
	kv_add(reply, "status", "0");
	kv_addf(reply, "svids", "%zu", n);
	return 0;
}

static void stream_of(Control *c, const char *name, char *agent, size_t al, char *stream, size_t sl)
{
	_cleanup_(workload_unrefp) Workload *w = sessions_get(c->ctx.sessions, name);
	WorkloadStream ws = {};

	if (w)
		workload_get_stream(w, &ws);
	snprintf(agent, al, "%s", ws.agent[0] ? ws.agent : "-");
	snprintf(stream, sl, "%s", ws.state[0] ? ws.state : "none");
}

static int op_status(Control *c, const KvMsg *req, KvMsg *reply)
{
	const char *name = kv_get(req, "workload");
	_cleanup_(svid_set_unrefp) SvidSet *set = NULL;
	char agent[64], stream[512];
	int r;

	if (!name)
		return reply_error(reply, -EINVAL, "workload is required");
	r = svid_store_get(c->ctx.store, name, &set);
	if (r < 0)
		return reply_error(reply, r, r == -ENOENT ? "no such workload" : NULL);
	stream_of(c, name, agent, sizeof agent, stream, sizeof stream);
	size_t n = svid_set_n_svids(set);
	kv_add(reply, "status", "0");
	kv_add(reply, "workload", name);
	kv_addf(reply, "generation", "%llu", (unsigned long long)svid_set_generation(set));
	kv_addf(reply, "svids", "%zu", n);
	for (size_t i = 0; i < n; i++)
		kv_add(reply, "spiffe_id", svid_set_spiffe_id(set, i));
	if (n) {
		kv_addf(reply, "not_after", "%lld", (long long)svid_set_not_after(set, 0));
		kv_add(reply, "serial", svid_set_serial(set, 0));
		kv_add(reply, "expired",
		       svid_set_expired(set, 0, (int64_t)time(NULL)) ? "true" : "false");
	} else {
		kv_add(reply, "not_after", "0");
		kv_add(reply, "expired", "false");
	}
	kv_add(reply, "agent", agent);
	kv_add(reply, "stream", stream);
	kv_addf(reply, "refs", "%u", sessions_refs(c->ctx.sessions, name));
	if (svid_set_last_error(set))
		kv_add(reply, "last_error", svid_set_last_error(set));
	return 0;
}

static int op_list(Control *c, KvMsg *reply)
{
	char **names = NULL;
	size_t n = 0;
	int r = sessions_list_all(c->ctx.sessions, &names, &n);

	if (r < 0)
		return reply_error(reply, r, NULL);
	kv_add(reply, "status", "0");
	for (size_t i = 0; i < n; i++) {
		_cleanup_(svid_set_unrefp) SvidSet *set = NULL;
		char agent[64], stream[512];
		size_t k = 0;
		if (svid_store_get(c->ctx.store, names[i], &set) >= 0)
			k = svid_set_n_svids(set);
		stream_of(c, names[i], agent, sizeof agent, stream, sizeof stream);
		kv_addf(reply, "workload", "%s %zu %s %lld %s %s", names[i], k,
			k ? svid_set_spiffe_id(set, 0) : "-",
			k ? (long long)svid_set_not_after(set, 0) : 0LL, agent, stream);
		free(names[i]);
	}
	free(names);
	return 0;
}

static int op_info(Control *c, KvMsg *reply)
{
	size_t pods, ids, ready;
	int64_t now = (int64_t)time(NULL);

	sessions_count(c->ctx.sessions, &pods, &ids, &ready);
	pthread_mutex_lock(&c->lock);
	int64_t mounted = c->mounted_at;
	unsigned takeovers = c->takeovers;
	pthread_mutex_unlock(&c->lock);
	kv_add(reply, "status", "0");
	kv_add(reply, "version", SVIDFS_VERSION);
	kv_add(reply, "mountpoint", c->ctx.cfg->mountpoint);
	kv_addf(reply, "workloads", "%zu", svid_store_count(c->ctx.store));
	kv_addf(reply, "pods", "%zu", pods);
	kv_addf(reply, "identities", "%zu", ids);
	kv_addf(reply, "started_at", "%lld", (long long)c->ctx.started_at);
	kv_addf(reply, "connection_age_s", "%lld", (long long)(mounted ? now - mounted : 0));
	kv_addf(reply, "takeovers", "%u", takeovers);
	if (c->ctx.view) {
		FsViewRecovery rec;
		fsview_recovery(c->ctx.view, &rec);
		kv_addf(reply, "recovered_dirs", "%llu", (unsigned long long)rec.dirs);
		kv_addf(reply, "recovered_files", "%llu", (unsigned long long)rec.served);
		kv_addf(reply, "recovered_stale", "%llu", (unsigned long long)rec.stale);
	}
	kv_addf(reply, "inodes", "%zu", inode_table_count(c->ctx.inodes));
	kv_addf(reply, "inode_bytes", "%zu", inode_table_bytes(c->ctx.inodes));
	kv_addf(reply, "secure_heap_used", "%zu", CRYPTO_secure_used());
	kv_addf(reply, "secure_heap_size", "%zu", c->ctx.cfg->secure_heap);
	return 0;
}

static int dispatch(Control *c, const KvMsg *req, KvMsg *reply)
{
	const char *op = kv_get(req, "op");

	if (!op)
		return reply_error(reply, -EINVAL, "op is required");
	if (streq(op, "ping")) {
		kv_add(reply, "status", "0");
		kv_add(reply, "version", SVIDFS_VERSION);
		kv_add(reply, "mountpoint", c->ctx.cfg->mountpoint);
		return 0;
	}
	if (streq(op, "register"))
		return op_register(c, req, reply);
	if (streq(op, "unregister"))
		return op_unregister(c, req, reply);
	if (streq(op, "wait"))
		return op_wait(c, req, reply);
	if (streq(op, "status"))
		return op_status(c, req, reply);
	if (streq(op, "list"))
		return op_list(c, reply);
	if (streq(op, "info"))
		return op_info(c, reply);
	if (streq(op, "shutdown")) {
		/* A real stop: unmount and let the keeper forget the connection. unmount=false
		 * (with a keeper) is a restart that leaves the connection to the next daemon. */
		const char *u = kv_get(req, "unmount");
		if (!c->ctx.shutdown)
			return reply_error(reply, -EOPNOTSUPP, "shutdown is not available");
		c->ctx.shutdown(c->ctx.shutdown_userdata, !u || !streq(u, "false"));
		kv_add(reply, "status", "0");
		return 0;
	}
	if (streq(op, "resubscribe")) {
		const char *name = kv_get(req, "workload");
		int r = name ? sessions_resubscribe(c->ctx.sessions, name) : -EINVAL;
		if (r < 0)
			return reply_error(reply, r, name ? NULL : "workload is required");
		kv_add(reply, "status", "0");
		return 0;
	}
	return reply_error(reply, -EOPNOTSUPP, "unknown op");
}

typedef struct Conn {
	Control *c;
	int fd;
} Conn;

static void *conn_thread(void *userdata)
{
	Conn *conn = userdata;
	Control *c = conn->c;
	int fd = conn->fd;

	free(conn);
	for (;;) {
		_cleanup_(kv_freep) KvMsg *req = NULL;
		_cleanup_(kv_freep) KvMsg *reply = NULL;
		int r = kv_read_fd(fd, MAX_REQUEST, IDLE_TIMEOUT_MS, &req);
		if (r < 0) {
			if (r != -ECONNRESET && r != -ETIMEDOUT)
				log_warning_errno(r, "control: bad request");
			break;
		}
		if (kv_new(&reply) < 0)
			break;
		const char *op = kv_get(req, "op");
		r = dispatch(c, req, reply);
		if (r < 0 && r != -ENOENT && r != -ETIMEDOUT)
			log_info_errno(r, "control: %s refused", op ? op : "(no op)");
		if (kv_write_fd(fd, reply) < 0)
			break;
	}
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_conn_fds; i++)
		if (c->conn_fds[i] == fd) {
			c->conn_fds[i] = c->conn_fds[--c->n_conn_fds];
			break;
		}
	close(fd);
	c->n_conns--;
	pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void accept_one(Control *c)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	pthread_attr_t attr;
	pthread_t t;
	int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warning_errno(negative_errno(), "control: accept failed");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
		log_warning("control: refused a connection from uid %d (root only)",
			    len == sizeof cred ? (int)cred.uid : -1);
		close(fd);
		return;
	}
	Conn *conn = malloc(sizeof *conn);
	pthread_mutex_lock(&c->lock);
	int *p = realloc(c->conn_fds, (c->n_conn_fds + 1) * sizeof *p);
	if (p)
		c->conn_fds = p;
	if (!conn || !p || c->stop) {
		pthread_mutex_unlock(&c->lock);
		free(conn);
		close(fd);
		return;
	}
	c->conn_fds[c->n_conn_fds++] = fd;
	c->n_conns++;
	pthread_mutex_unlock(&c->lock);
	*conn = (Conn){c, fd};
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int r = -pthread_create(&t, &attr, conn_thread, conn);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		log_error_errno(r, "control: cannot start a connection thread");
		pthread_mutex_lock(&c->lock);
		c->n_conn_fds--;
		c->n_conns--;
		pthread_mutex_unlock(&c->lock);
		free(conn);
		close(fd);
	}
}

static void *accept_thread(void *userdata)
{
	Control *c = userdata;
	struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
			      {.fd = c->stop_pipe[0], .events = POLLIN}};

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error_errno(negative_errno(), "control: poll failed");
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN)
			accept_one(c);
	}
	return NULL;
}

int control_start(Control *c)
{
	const char *path = c->ctx.cfg->control_socket;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r;

	if (strlen(path) >= sizeof sa.sun_path)
		return log_error_errno(-ENAMETOOLONG, "control socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	r = mkdir_parents(path, 0755, 0700);
	if (r < 0)
		return log_error_errno(r, "cannot create the directory of %s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return log_error_errno(negative_errno(), "cannot create the control socket");
	(void)unlink(path); /* a stale socket of a previous run */
	mode_t old = umask(0077);
	r = bind(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? negative_errno() : 0;
	umask(old);
	if (r < 0)
		return log_error_errno(r, "cannot bind the control socket %s", path);
	if (chmod(path, 0600) < 0 || listen(c->fd, 64) < 0)
		return log_error_errno(negative_errno(), "cannot listen on %s", path);
	if (pipe2(c->stop_pipe, O_CLOEXEC) < 0)
		return log_error_errno(negative_errno(), "cannot create a pipe");
	r = -pthread_create(&c->thread, NULL, accept_thread, c);
	if (r < 0)
		return log_error_errno(r, "cannot start the control thread");
	c->running = true;
	log_info("control socket %s ready", path);
	return 0;
}

Control *control_free(Control *c)
{
	if (!c)
		return NULL;
	if (c->running) {
		(void)!write(c->stop_pipe[1], "x", 1);
		pthread_join(c->thread, NULL);
	}
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	for (size_t i = 0; i < c->n_conn_fds; i++)
		shutdown(c->conn_fds[i], SHUT_RDWR);
	while (c->n_conns > 0)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
	if (c->fd >= 0) {
		close(c->fd);
		if (c->running)
			unlink(c->ctx.cfg->control_socket);
	}
	if (c->stop_pipe[0] >= 0)
		close(c->stop_pipe[0]);
	if (c->stop_pipe[1] >= 0)
		close(c->stop_pipe[1]);
	free(c->conn_fds);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->idle);
	free(c);
	return NULL;
}
