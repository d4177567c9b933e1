// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-event.h>
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

#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC 1000000ULL
#define ACCEPT_RETRY_USEC (100 * USEC_PER_MSEC) /* after EMFILE/ENFILE */
#define READ_CHUNK 4096

DEFINE_CLEANUP_FUNC(KvMsg, kv_free)

static void *mfree(void *p)
{
	free(p);
	return NULL;
}

typedef enum ConnState {
	CONN_READ,  /* waiting for (the rest of) a request; the idle timer runs */
	CONN_WORK,  /* the worker thread runs its request */
	CONN_WAIT,  /* op=wait: answered by a change or by its timer */
	CONN_WRITE, /* the reply does not fit the socket buffer yet; the idle timer runs */
} ConnState;

typedef struct Conn Conn;
struct Conn {
	Control *c;
	Conn *prev, *next; /* c->conns; a closed conn whose request is with the worker is on none */
	int fd;
	ConnState state;
	bool closed; /* fd gone while the worker had its request: freed when the job returns */
	bool hangup; /* close once the reply is out (the request stream is out of step) */
	bool eof;    /* the client sent all it will (shut its side): answer what came, close */
	sd_event_source *io, *timer;
	char *in; /* request bytes received, not yet parsed; NULL when none */
	size_t in_len, in_cap;
	char *out; /* the reply being written */
	size_t out_len, out_off;
	char *wait_name; /* CONN_WAIT: the workload */
	const char *op;	 /* for the refusal log line (static string) */
};

/* A request the worker thread runs. */
typedef struct Job Job;
struct Job {
	Job *next;
	Conn *conn;
	KvMsg *req, *reply;
	int r;
};

struct Control {
	ControlContext ctx;
	int fd;
	sd_event *event;
	sd_event_source *listen, *accept_retry, *stop, *done, *change;
	int stop_fd, done_fd, change_fd; /* eventfds: stop the loop, jobs done, SVIDs changed */
	pthread_t loop_thread, worker;
	bool loop_running, worker_running, listening;
	Conn *conns;
	unsigned n_conns, n_waiting; /* n_waiting: atomic, read by the change listener */
	bool full;		     /* at CONTROL_MAX_CONNS: refusing (logged once) */
	unsigned long refused;
	bool emfile_logged;

	pthread_mutex_t lock; /* the job queues, the worker's stop flag, the setters' fields */
	pthread_cond_t cond;
	Job *jobs, **jobs_tail, *done_jobs;
	bool worker_stop;
	int64_t mounted_at;
	unsigned takeovers;
};

int control_new(const ControlContext *ctx, Control **ret)
{
	Control *c = calloc(1, sizeof *c);

	if (!c)
		return -ENOMEM;
	c->ctx = *ctx;
	c->fd = c->stop_fd = c->done_fd = c->change_fd = -1;
	c->jobs_tail = &c->jobs;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
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
	SessionsRef ref = {kv_get(req, "ref"), kv_get(req, "target"), SESSIONS_REF_CONTROL};
	r = sessions_register(c->ctx.sessions, reg, &ref, &name, &refs, &why);
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

static void stream_of(Control *c, const char *name, char *agent, size_t al, char *stream, size_t sl)
{
	_cleanup_(workload_unrefp) Workload *w = registry_get(c->ctx.registry, name);
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
	int r = registry_list_all(c->ctx.registry, &names, &n);

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
	if (c->ctx.recovery) {
		RecoveryCounts rec;
		recovery_counts(c->ctx.recovery, &rec);
		kv_addf(reply, "recovered_dirs", "%llu", (unsigned long long)rec.dirs);
		kv_addf(reply, "recovered_files", "%llu", (unsigned long long)rec.served);
		kv_addf(reply, "recovered_stale", "%llu", (unsigned long long)rec.stale);
	}
	kv_addf(reply, "inodes", "%zu", inode_table_count(c->ctx.inodes));
	kv_addf(reply, "inode_bytes", "%zu", inode_table_bytes(c->ctx.inodes));
	kv_addf(reply, "secure_heap_used", "%zu", CRYPTO_secure_used());
	kv_addf(reply, "secure_heap_size", "%zu", c->ctx.cfg->secure_heap);
	kv_addf(reply, "jwt_bytes", "%zu", svid_store_jwt_bytes(c->ctx.store, NULL));
	return 0;
}


static int op_shutdown(Control *c, const KvMsg *req, KvMsg *reply)
{
	/* A real stop: unmount and let the keeper forget the connection. unmount=false (with a
	 * keeper) is a restart that leaves the connection to the next daemon. */
	const char *u = kv_get(req, "unmount");

	if (!c->ctx.shutdown)
		return reply_error(reply, -EOPNOTSUPP, "shutdown is not available");
	c->ctx.shutdown(c->ctx.shutdown_userdata, !u || !streq(u, "false"));
	kv_add(reply, "status", "0");
	return 0;
}

static int op_resubscribe(Control *c, const KvMsg *req, KvMsg *reply)
{
	const char *name = kv_get(req, "workload");
	int r = name ? sessions_resubscribe(c->ctx.sessions, name) : -EINVAL;

	if (r < 0)
		return reply_error(reply, r, name ? NULL : "workload is required");
	kv_add(reply, "status", "0");
	return 0;
}

/* The requests that may block (the state file's fsync, agent subscriptions): worker thread. */
static bool op_blocks(const char *op)
{
	return op && (streq(op, "register") || streq(op, "unregister") || streq(op, "resubscribe"));
}

static int dispatch_blocking(Control *c, const KvMsg *req, KvMsg *reply)
{
	const char *op = kv_get(req, "op");

	if (streq(op, "register"))
		return op_register(c, req, reply);
	if (streq(op, "unregister"))
		return op_unregister(c, req, reply);
	return op_resubscribe(c, req, reply);
}

/* Everything else answers at once, on the loop thread (op=wait is started elsewhere). */
static int dispatch_quick(Control *c, const KvMsg *req, KvMsg *reply)
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
	if (streq(op, "status"))
		return op_status(c, req, reply);
	if (streq(op, "list"))
		return op_list(c, reply);
	if (streq(op, "info"))
		return op_info(c, reply);
	if (streq(op, "shutdown"))
		return op_shutdown(c, req, reply);
	return reply_error(reply, -EOPNOTSUPP, "unknown op");
}

/* A static copy of the op's name for the log line (the request is gone by then). */
static const char *op_name(const KvMsg *req)
{
	static const char *const known[] = {"ping", "register", "unregister", "wait", "status",
					    "list", "info", "shutdown", "resubscribe"};
	const char *op = kv_get(req, "op");

	if (!op)
		return "(no op)";
	for (size_t i = 0; i < ELEMENTSOF(known); i++)
		if (streq(op, known[i]))
			return known[i];
	return "(unknown op)";
}

/* ---- connections (loop thread) ---- */

static void conn_process(Conn *conn);

static void conn_free(Conn *conn)
{
	sd_event_source_disable_unref(conn->io);
	sd_event_source_disable_unref(conn->timer);
	if (conn->fd >= 0)
		close(conn->fd);
	free(conn->in);
	free(conn->out);
	free(conn->wait_name);
	free(conn);
}

static void conn_close(Conn *conn)
{
	Control *c = conn->c;

	if (conn->closed)
		return;
	conn->closed = true;
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		c->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	conn->prev = conn->next = NULL;
	c->n_conns--;
	if (conn->state == CONN_WAIT)
		__atomic_sub_fetch(&c->n_waiting, 1, __ATOMIC_RELAXED);
	if (c->full && c->n_conns < CONTROL_MAX_CONNS / 10 * 9) {
		log_info("control: accepting connections again (%lu refused at the limit of %d)",
			 c->refused, CONTROL_MAX_CONNS);
		c->full = false;
		c->refused = 0;
	}
	if (conn->state == CONN_WORK) {
		/* The worker holds the request: drop the fd now, the struct when it returns. */
		conn->io = sd_event_source_disable_unref(conn->io);
		conn->timer = sd_event_source_disable_unref(conn->timer);
		close(conn->fd);
		conn->fd = -1;
		return;
	}
	conn_free(conn);
}

static int conn_set(Conn *conn, ConnState state, uint32_t events, uint64_t timer_usec)
{
	int r;

	if (conn->state == CONN_WAIT && state != CONN_WAIT)
		__atomic_sub_fetch(&conn->c->n_waiting, 1, __ATOMIC_RELAXED);
	else if (conn->state != CONN_WAIT && state == CONN_WAIT)
		__atomic_add_fetch(&conn->c->n_waiting, 1, __ATOMIC_RELAXED);
	conn->state = state;
	/* Events 0 still reports a hang-up (EPOLLHUP), which closes a busy connection. */
	r = sd_event_source_set_io_events(conn->io, events);
	if (r >= 0 && timer_usec) {
		r = sd_event_source_set_time_relative(conn->timer, timer_usec);
		if (r >= 0)
			r = sd_event_source_set_enabled(conn->timer, SD_EVENT_ONESHOT);
	} else if (r >= 0)
		r = sd_event_source_set_enabled(conn->timer, SD_EVENT_OFF);
	return r;
}

/* Writes what the socket takes. 1 when the whole reply is out, 0 when more is to come. */
static int conn_flush(Conn *conn)
{
	while (conn->out_off < conn->out_len) {
		ssize_t n = send(conn->fd, conn->out + conn->out_off, conn->out_len - conn->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return negative_errno();
		conn->out_off += (size_t)n;
	}
	conn->out = mfree(conn->out);
	conn->out_len = conn->out_off = 0;
	return 1;
}

/* The reply is out: read (or handle the buffered) next request. The conn may be freed. */
static void conn_next(Conn *conn)
{
	if (conn->hangup || conn_set(conn, CONN_READ, conn->eof ? 0 : EPOLLIN,
				     CONTROL_IDLE_TIMEOUT_S * USEC_PER_SEC) < 0)
		return conn_close(conn);
	conn_process(conn);
}

/* Sends the reply (takes it) and goes on with the next request. The conn may be freed. */
static void conn_reply(Conn *conn, KvMsg *reply)
{
	size_t len;
	int r = kv_format(reply, &conn->out, &len);

	kv_free(reply);
	if (r < 0) {
		log_error_errno(r, "control: cannot format a reply");
		return conn_close(conn);
	}
	conn->out_len = len;
	conn->out_off = 0;
	r = conn_flush(conn);
	if (r < 0)
		return conn_close(conn); /* the client went away */
	if (r == 0) {
		if (conn_set(conn, CONN_WRITE, EPOLLOUT, CONTROL_IDLE_TIMEOUT_S * USEC_PER_SEC) < 0)
			conn_close(conn);
		return;
	}
	conn_next(conn);
}

static void conn_reply_error(Conn *conn, int r, const char *msg)
{
	KvMsg *reply = NULL;

	if (kv_new(&reply) < 0)
		return conn_close(conn);
	reply_error(reply, r, msg);
	conn_reply(conn, reply);
}

/* 1 when the wait is over (answered), 0 while the workload has no SVID. */
static int wait_check(Conn *conn)
{
	size_t n = 0;
	int r = sessions_svids(conn->c->ctx.sessions, conn->wait_name, &n);
	KvMsg *reply = NULL;

	if (r == -EAGAIN)
		return 0;
	conn->wait_name = mfree(conn->wait_name);
	if (kv_new(&reply) < 0) {
		conn_close(conn);
		return 1;
	}
	if (r < 0)
		reply_error(reply, r, r == -ENOENT ? "no such workload" : NULL);
	else {
		kv_add(reply, "status", "0");
		kv_addf(reply, "svids", "%zu", n);
	}
	conn_reply(conn, reply);
	return 1;
}

static int parse_timeout_ms(const char *s, long *ret)
{
	char *end;
	long v;

	if (!s) {
		*ret = 10000;
		return 0;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || !*s || *end || v < 0)
		return -EINVAL;
	*ret = MIN(v, (long)CONTROL_MAX_WAIT_MS);
	return 0;
}

/* op=wait: answered at once when the SVID is there, else when it arrives or the timer fires. */
static void op_wait_start(Conn *conn, const KvMsg *req)
{
	const char *name = kv_get(req, "workload");
	long timeout;

	if (!name)
		return conn_reply_error(conn, -EINVAL, "workload is required");
	if (parse_timeout_ms(kv_get(req, "timeout_ms"), &timeout) < 0)
		return conn_reply_error(conn, -EINVAL, "timeout_ms must be a number of milliseconds");
	conn->wait_name = strdup(name);
	if (!conn->wait_name)
		return conn_close(conn);
	/* Counted as waiting before the check: a change that lands after the check (under
	 * sessions' lock, which the check takes too) then sees the count and wakes the loop. */
	if (conn_set(conn, CONN_WAIT, 0, MAX((uint64_t)timeout * USEC_PER_MSEC, 1ULL)) < 0)
		return conn_close(conn);
	wait_check(conn);
}

static void conn_dispatch(Conn *conn, KvMsg *req)
{
	Control *c = conn->c;
	const char *op = kv_get(req, "op");

	conn->op = op_name(req);
	if (op && streq(op, "wait")) {
		op_wait_start(conn, req);
		kv_free(req);
		return;
	}
	if (op_blocks(op)) {
		Job *j = calloc(1, sizeof *j);
		if (!j || kv_new(&j->reply) < 0) {
			free(j);
			kv_free(req);
			return conn_close(conn);
		}
		j->conn = conn;
		j->req = req;
		if (conn_set(conn, CONN_WORK, 0, 0) < 0) {
			kv_free(j->reply);
			free(j);
			kv_free(req);
			return conn_close(conn);
		}
		pthread_mutex_lock(&c->lock);
		*c->jobs_tail = j;
		c->jobs_tail = &j->next;
		pthread_cond_signal(&c->cond);
		pthread_mutex_unlock(&c->lock);
		return;
	}
	KvMsg *reply = NULL;
	if (kv_new(&reply) < 0) {
		kv_free(req);
		return conn_close(conn);
	}
	int r = dispatch_quick(c, req, reply);
	kv_free(req);
	if (r < 0 && r != -ENOENT)
		log_info_errno(r, "control: %s refused", conn->op);
	conn_reply(conn, reply);
}

/* Handles the whole requests buffered in conn->in, one at a time. The conn may be freed. */
static void conn_process(Conn *conn)
{
	if (conn->state != CONN_READ)
		return;
	size_t len = kv_message_length(conn->in, conn->in_len);
	if (len == 0) {
		if (conn->in_len >= CONTROL_MAX_REQUEST) {
			log_warning("control: a request exceeds %d bytes; closing the connection",
				    CONTROL_MAX_REQUEST);
			conn->in_len = 0;
			conn->hangup = true;
			return conn_reply_error(conn, -EMSGSIZE, "request too large");
		}
		if (conn->eof) /* nothing more will come */
			return conn_close(conn);
		if (conn->in_len == 0) { /* idle: keep no buffer */
			conn->in = mfree(conn->in);
			conn->in_cap = 0;
		}
		return;
	}
	KvMsg *req = NULL;
	int r = kv_parse(conn->in, len, &req);
	memmove(conn->in, conn->in + len, conn->in_len - len);
	conn->in_len -= len;
	if (r < 0) {
		log_warning_errno(r, "control: malformed request");
		return conn_reply_error(conn, r, "malformed request (key=value lines, then an "
						 "empty line)");
	}
	conn_dispatch(conn, req);
}

static int conn_read(Conn *conn)
{
	for (;;) {
		if (conn->in_len >= CONTROL_MAX_REQUEST)
			return 0;
		if (conn->in_cap - conn->in_len < READ_CHUNK) {
			size_t cap = MIN(conn->in_cap + READ_CHUNK * 4, (size_t)CONTROL_MAX_REQUEST);
			char *p = realloc(conn->in, cap);
			if (!p)
				return -ENOMEM;
			conn->in = p;
			conn->in_cap = cap;
		}
		ssize_t n = recv(conn->fd, conn->in + conn->in_len, conn->in_cap - conn->in_len,
				 MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return negative_errno();
		if (n == 0) { /* requests already here are still answered */
			conn->eof = true;
			return 0;
		}
		conn->in_len += (size_t)n;
	}
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Conn *conn = userdata;
	int r;

	switch (conn->state) {
	case CONN_READ:
		r = conn_read(conn);
		if (r < 0) {
			if (r != -ECONNRESET)
				log_warning_errno(r, "control: cannot read a request");
			conn_close(conn);
			return 0;
		}
		if (conn->eof && sd_event_source_set_io_events(conn->io, 0) < 0) {
			conn_close(conn);
			return 0;
		}
		conn_process(conn);
		return 0;
	case CONN_WRITE:
		r = conn_flush(conn);
		if (r < 0)
			conn_close(conn);
		else if (r == 0) { /* progress: the stall timer starts again */
			if (conn_set(conn, CONN_WRITE, EPOLLOUT,
				     CONTROL_IDLE_TIMEOUT_S * USEC_PER_SEC) < 0)
				conn_close(conn);
		} else
			conn_next(conn);
		return 0;
	case CONN_WORK:
	case CONN_WAIT:
		/* Only EPOLLHUP/EPOLLERR reach a busy connection: the client is gone. */
		if (revents & (EPOLLHUP | EPOLLERR))
			conn_close(conn);
		return 0;
	}
	return 0;
}

static int on_conn_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Conn *conn = userdata;

	if (conn->state == CONN_WAIT) {
		conn->wait_name = mfree(conn->wait_name);
		conn_reply_error(conn, -ETIMEDOUT, "no SVID arrived in time");
		return 0;
	}
	/* Idle between requests, or a request or reply stalled that long. */
	log_debug("control: closing a connection idle for %d s", CONTROL_IDLE_TIMEOUT_S);
	conn_close(conn);
	return 0;
}

/* ---- the listening socket (loop thread) ---- */

static int conn_new(Control *c, int fd)
{
	Conn *conn = calloc(1, sizeof *conn);
	int r;

	if (!conn) {
		close(fd);
		return -ENOMEM;
	}
	conn->c = c;
	conn->fd = fd;
	r = sd_event_add_io(c->event, &conn->io, fd, EPOLLIN, on_conn_io, conn);
	if (r >= 0)
		r = sd_event_add_time_relative(c->event, &conn->timer, CLOCK_MONOTONIC,
					       CONTROL_IDLE_TIMEOUT_S * USEC_PER_SEC, USEC_PER_SEC,
					       on_conn_timer, conn);
	if (r < 0) {
		conn_free(conn);
		return r;
	}
	conn->next = c->conns;
	if (c->conns)
		c->conns->prev = conn;
	c->conns = conn;
	c->n_conns++;
	return 0;
}

/* At the limit: a best-effort reply (the client reads it if it is still reading), then close. */
static void refuse_full(Control *c, int fd)
{
	static const char busy[] = "status=-16\nerror=too many control connections\n\n";

	if (!c->full)
		log_warning("control: %u connections open, the limit: refusing new ones until some "
			    "close",
			    c->n_conns);
	c->full = true;
	c->refused++;
	(void)!send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static int on_accept_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	Control *c = userdata;

	sd_event_source_set_enabled(c->listen, SD_EVENT_ON);
	return 0;
}

static int on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Control *c = userdata;

	for (int i = 0; i < 64; i++) { /* a batch, then let the connections run */
		struct ucred cred;
		socklen_t len = sizeof cred;
		int cfd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* Out of descriptors: accept would fail in a loop. Pause. */
				if (!c->emfile_logged)
					log_error_errno(negative_errno(), "control: cannot accept "
									  "(out of file "
									  "descriptors); pausing");
				c->emfile_logged = true;
				sd_event_source_set_enabled(c->listen, SD_EVENT_OFF);
				sd_event_source_set_time_relative(c->accept_retry,
								  ACCEPT_RETRY_USEC);
				sd_event_source_set_enabled(c->accept_retry, SD_EVENT_ONESHOT);
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warning_errno(negative_errno(), "control: accept failed");
			return 0;
		}
		c->emfile_logged = false;
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
			log_warning("control: refused a connection from uid %d (root only)",
				    len == sizeof cred ? (int)cred.uid : -1);
			close(cfd);
			continue;
		}
		if (c->n_conns >= CONTROL_MAX_CONNS) {
			refuse_full(c, cfd);
			continue;
		}
		int r = conn_new(c, cfd);
		if (r < 0)
			log_error_errno(r, "control: cannot serve a connection");
	}
	return 0;
}

/* ---- the worker thread and the loop's wake-ups ---- */

static void *worker_thread(void *userdata)
{
	Control *c = userdata;
	uint64_t one = 1;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->jobs && !c->worker_stop)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->worker_stop)
			break;
		Job *j = c->jobs;
		c->jobs = j->next;
		if (!c->jobs)
			c->jobs_tail = &c->jobs;
		pthread_mutex_unlock(&c->lock);
		j->r = dispatch_blocking(c, j->req, j->reply);
		pthread_mutex_lock(&c->lock);
		j->next = c->done_jobs;
		c->done_jobs = j;
		(void)!write(c->done_fd, &one, sizeof one);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void job_free(Job *j)
{
	kv_free(j->req);
	kv_free(j->reply);
	free(j);
}

static void drain(int fd)
{
	uint64_t v;
	(void)!read(fd, &v, sizeof v);
}

static int on_jobs_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Control *c = userdata;
	Job *done, *rev = NULL;

	drain(fd);
	pthread_mutex_lock(&c->lock);
	done = TAKE_PTR(c->done_jobs);
	pthread_mutex_unlock(&c->lock);
	while (done) { /* oldest first */
		Job *n = done->next;
		done->next = rev;
		rev = done;
		done = n;
	}
	while (rev) {
		Job *j = rev;
		Conn *conn = j->conn;
		rev = j->next;
		if (j->r < 0 && j->r != -ENOENT)
			log_info_errno(j->r, "control: %s refused", conn->op);
		if (conn->closed)
			conn_free(conn);
		else
			conn_reply(conn, TAKE_PTR(j->reply));
		job_free(j);
	}
	return 0;
}

/* Agent threads, under sessions' lock: only wake the loop, and only when someone waits. */
static void on_sessions_change(void *userdata)
{
	Control *c = userdata;
	uint64_t one = 1;

	if (__atomic_load_n(&c->n_waiting, __ATOMIC_RELAXED) > 0)
		(void)!write(c->change_fd, &one, sizeof one);
}

static int on_change(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Control *c = userdata;

	drain(fd);
	for (Conn *conn = c->conns, *next; conn; conn = next) {
		next = conn->next; /* wait_check may close conn, never another */
		if (conn->state == CONN_WAIT)
			wait_check(conn);
	}
	return 0;
}

static int on_stop(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void *loop_thread(void *userdata)
{
	Control *c = userdata;
	int r = sd_event_loop(c->event);

	if (r < 0)
		log_error_errno(r, "control: the event loop failed");
	return NULL;
}

static int loop_setup(Control *c)
{
	int r;

	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->change_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_fd < 0 || c->done_fd < 0 || c->change_fd < 0)
		return negative_errno();
	r = sd_event_new(&c->event);
	if (r >= 0)
		r = sd_event_add_io(c->event, &c->listen, c->fd, EPOLLIN, on_listen, c);
	if (r >= 0)
		r = sd_event_add_time_relative(c->event, &c->accept_retry, CLOCK_MONOTONIC,
					       ACCEPT_RETRY_USEC, 0, on_accept_retry, c);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->accept_retry, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_io(c->event, &c->stop, c->stop_fd, EPOLLIN, on_stop, c);
	if (r >= 0)
		r = sd_event_add_io(c->event, &c->done, c->done_fd, EPOLLIN, on_jobs_done, c);
	if (r >= 0)
		r = sd_event_add_io(c->event, &c->change, c->change_fd, EPOLLIN, on_change, c);
	return r;
}

/* The socket's directory: created 0700 (the daemon's lock and handover socket live there too).
 * An existing one is left as it is (it may be shared): say so when others may enter it. */
static int control_socket_dir(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	struct stat st;
	char *slash;
	int r;

	if (!dir)
		return log_error_errno(-ENOMEM, "out of memory");
	r = mkdir_parents(path, 0755, 0700);
	if (r < 0)
		return log_error_errno(r, "cannot create the directory of %s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	if (slash && stat(dir, &st) == 0 && (st.st_mode & 0077))
		log_warning("the control socket's directory %s has mode %04o, not 0700",
			    dir, (unsigned)(st.st_mode & 07777));
	return 0;
}

int control_start(Control *c)
{
	const char *path = c->ctx.cfg->control_socket;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r;

	if (strlen(path) >= sizeof sa.sun_path)
		return log_error_errno(-ENAMETOOLONG, "control socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	r = control_socket_dir(path);
	if (r < 0)
		return r;

	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return log_error_errno(negative_errno(), "cannot create the control socket");
	(void)unlink(path); /* a stale socket of a previous run */
	mode_t old = umask(0077);
	r = bind(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? negative_errno() : 0;
	umask(old);
	if (r < 0)
		return log_error_errno(r, "cannot bind the control socket %s", path);
	c->listening = true;
	if (chmod(path, 0600) < 0 || listen(c->fd, 128) < 0)
		return log_error_errno(negative_errno(), "cannot listen on %s", path);
	r = loop_setup(c);
	if (r < 0)
		return log_error_errno(r, "cannot set up the control socket's event loop");
	sessions_set_change_listener(c->ctx.sessions, on_sessions_change, c);
	r = -pthread_create(&c->worker, NULL, worker_thread, c);
	if (r < 0)
		return log_error_errno(r, "cannot start the control worker thread");
	c->worker_running = true;
	r = -pthread_create(&c->loop_thread, NULL, loop_thread, c);
	if (r < 0)
		return log_error_errno(r, "cannot start the control thread");
	c->loop_running = true;
	log_info("control socket %s ready", path);
	return 0;
}

Control *control_free(Control *c)
{
	uint64_t one = 1;

	if (!c)
		return NULL;
	sessions_set_change_listener(c->ctx.sessions, NULL, NULL);
	if (c->loop_running) {
		(void)!write(c->stop_fd, &one, sizeof one);
		pthread_join(c->loop_thread, NULL);
	}
	if (c->worker_running) {
		pthread_mutex_lock(&c->lock);
		c->worker_stop = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->worker, NULL); /* after the request it runs, if any */
	}
	/* Jobs never started or never answered; a closed conn lives only in its job. */
	Job *lists[] = {c->jobs, c->done_jobs};
	for (size_t i = 0; i < ELEMENTSOF(lists); i++)
		for (Job *j = lists[i], *n; j; j = n) {
			n = j->next;
			if (j->conn->closed)
				conn_free(j->conn);
			job_free(j);
		}
	while (c->conns) {
		Conn *conn = c->conns;
		c->conns = conn->next;
		conn_free(conn);
	}
	sd_event_source_disable_unref(c->listen);
	sd_event_source_disable_unref(c->accept_retry);
	sd_event_source_disable_unref(c->stop);
	sd_event_source_disable_unref(c->done);
	sd_event_source_disable_unref(c->change);
	sd_event_unref(c->event);
	if (c->fd >= 0) {
		close(c->fd);
		if (c->listening)
			unlink(c->ctx.cfg->control_socket);
	}
	int fds[] = {c->stop_fd, c->done_fd, c->change_fd};
	for (size_t i = 0; i < ELEMENTSOF(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
	return NULL;
}
