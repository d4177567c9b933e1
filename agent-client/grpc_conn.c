// SPDX-License-Identifier: Apache-2.0
/* Threading model (see docs/agent-client.md):
 * - One completion queue per connection, drained by one thread (the "CQ thread"). All tags of all
 *   streams complete there, and user callbacks run there.
 * - Every field of every AgentSub is guarded by the connection's mutex, which is never held
 *   while a user callback runs.
 * - Calls are started by whichever thread needs them (the subscriber, or the CQ thread when a
 *   backoff timer fires) under that mutex; grpc_call_start_batch is thread-safe, so no wakeup of
 *   the CQ thread is ever needed. Backoff timers are armed only on the CQ thread, which computes
 *   the deadline of grpc_completion_queue_next from the earliest one. C core 1.51 has no public
 *   alarm, and nobody else can shorten that deadline, so this is enough.
 * - A subscription is freed only when it is cancelled and none of its tags is in flight. The
 *   cancel handshake (in_callback + condition variable) guarantees that no callback runs after
 *   agent_sub_cancel() returns. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "backoff.h"
#include "cleanup.h"
#include "grpc_conn.h"
#include "log.h"
#include "secret.h"

#define DEFAULT_MAX_RECV (16u << 20)
#define DEFAULT_BACKOFF_INITIAL_MS 250u
#define DEFAULT_BACKOFF_MAX_MS 30000u

typedef enum TagKind {
	TAG_START,
	TAG_RECV,
	TAG_STATUS,
	TAG_WATCH,
} TagKind;

typedef struct Tag {
	TagKind kind;
	AgentSub *sub; /* NULL for TAG_WATCH */
} Tag;

struct AgentSub {
	AgentConn *conn;
	AgentSub *prev, *next;
	const char *method;
	uint8_t *request;
	size_t request_len;
	GrpcMessageFn on_message;
	void *ctx;
	bool secret; /* messages may carry keys: received into the secure heap */
	Backoff *backoff;

	/* The current call; non-NULL exactly while pending > 0. */
	grpc_call *call;
	unsigned pending;
	Tag tag_start, tag_recv, tag_status;
	grpc_byte_buffer *send_buf, *recv_buf;
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
	const char *error_string;
	bool got_message; /* on the current call */

	bool timer_armed;
	uint64_t due_ms; /* CLOCK_MONOTONIC */
	bool cancelled, in_callback;
	unsigned waiters; /* threads in agent_sub_cancel() waiting for the callback to return */
	bool failing; /* the last call ended without a message: keep logs at debug */
	AgentSubState state;
};

struct AgentConn {
	char *name;
	AgentApi api;
	unsigned backoff_initial_ms, backoff_max_ms;
	grpc_channel *channel;
	grpc_completion_queue *cq;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* a callback finished, or a subscription was freed */
	AgentSub *subs;
	size_t n_subs, n_timers;
	bool shutting_down;
	Tag tag_watch;
	bool watch_pending, reported_failure;
	grpc_connectivity_state conn_state;
	uint64_t seed;
};

static inline void gpr_freep(void *p)
{
	gpr_free(*(void **)p);
}
#define _cleanup_gpr_free_ _cleanup_(gpr_freep)

static grpc_metadata security_header[1];
static pthread_once_t security_header_once = PTHREAD_ONCE_INIT;

static void security_header_init(void)
{
	memset(security_header, 0, sizeof(security_header));
	security_header[0].key = grpc_slice_from_static_string("workload.spiffe.io");
	security_header[0].value = grpc_slice_from_static_string("true");
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static gpr_timespec deadline_in_ms(uint64_t ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			    gpr_time_from_millis((int64_t)ms, GPR_TIMESPAN));
}

int grpc_status_to_errno(int code)
{
	switch (code) {
	case GRPC_STATUS_OK:
		return 0;
	case GRPC_STATUS_PERMISSION_DENIED:
		return -EACCES;
	case GRPC_STATUS_INVALID_ARGUMENT:
		return -EINVAL;
	case GRPC_STATUS_UNAVAILABLE:
		return -EAGAIN;
	case GRPC_STATUS_DEADLINE_EXCEEDED:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

const char *grpc_status_to_string(int code)
{
	static const char *const names[] = {
		[GRPC_STATUS_OK] = "OK",
		[GRPC_STATUS_CANCELLED] = "CANCELLED",
		[GRPC_STATUS_UNKNOWN] = "UNKNOWN",
		[GRPC_STATUS_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
		[GRPC_STATUS_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
		[GRPC_STATUS_NOT_FOUND] = "NOT_FOUND",
		[GRPC_STATUS_ALREADY_EXISTS] = "ALREADY_EXISTS",
		[GRPC_STATUS_PERMISSION_DENIED] = "PERMISSION_DENIED",
		[GRPC_STATUS_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
		[GRPC_STATUS_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
		[GRPC_STATUS_ABORTED] = "ABORTED",
		[GRPC_STATUS_OUT_OF_RANGE] = "OUT_OF_RANGE",
		[GRPC_STATUS_UNIMPLEMENTED] = "UNIMPLEMENTED",
		[GRPC_STATUS_INTERNAL] = "INTERNAL",
		[GRPC_STATUS_UNAVAILABLE] = "UNAVAILABLE",
		[GRPC_STATUS_DATA_LOSS] = "DATA_LOSS",
		[GRPC_STATUS_UNAUTHENTICATED] = "UNAUTHENTICATED",
	};
	if (code >= 0 && (size_t)code < ELEMENTSOF(names) && names[code])
		return names[code];
	return "UNKNOWN";
}

bool grpc_status_is_fatal(int code)
{
	return code == GRPC_STATUS_INVALID_ARGUMENT || code == GRPC_STATUS_UNIMPLEMENTED;
}

static const char *conn_state_to_string(grpc_connectivity_state s)
{
	switch (s) {
	case GRPC_CHANNEL_IDLE:
		return "idle";
	case GRPC_CHANNEL_CONNECTING:
		return "connecting";
	case GRPC_CHANNEL_READY:
		return "ready";
	case GRPC_CHANNEL_TRANSIENT_FAILURE:
		return "transient failure";
	case GRPC_CHANNEL_SHUTDOWN:
		return "shut down";
	}
	return "unknown";
}

AgentApi grpc_conn_api(const AgentConn *c)
{
	return c->api;
}

const char *grpc_conn_name(const AgentConn *c)
{
	return c->name;
}

/* ---- subscriptions (all with c->lock held) ---- */

static void sub_free_locked(AgentSub *s)
{
	AgentConn *c = s->conn;

	assert(s->pending == 0 && !s->call && !s->in_callback);
	if (s->timer_armed) {
		s->timer_armed = false;
		c->n_timers--;
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		c->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	c->n_subs--;
	backoff_free(s->backoff);
	free(s->request);
	free(s->ctx);
	free(s);
	pthread_cond_broadcast(&c->cond);
}

static void sub_set_error(AgentSub *s, int status, const char *fmt, ...) _printf_(3, 4);
static void sub_set_error(AgentSub *s, int status, const char *fmt, ...)
{
	va_list ap;
	s->state.last_grpc_status = status;
	va_start(ap, fmt);
	vsnprintf(s->state.last_error, sizeof(s->state.last_error), fmt, ap);
	va_end(ap);
}

static void sub_arm_timer(AgentSub *s)
{
	unsigned delay = backoff_next(s->backoff);
	s->due_ms = now_ms() + delay;
	if (!s->timer_armed) {
		s->timer_armed = true;
		s->conn->n_timers++;
	}
	s->state.phase = AGENT_SUB_BACKOFF;
}

static void sub_call_done(AgentSub *s);

/* Starts a new call for s. On a start_batch failure (a programming error) the stream goes to
 * backoff like any failed call. */
static void sub_start_call(AgentSub *s)
{
	AgentConn *c = s->conn;
	grpc_op ops[4];
	grpc_call_error e;

	assert(!s->call && s->pending == 0 && !c->shutting_down);
	s->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
					   grpc_slice_from_static_string(s->method), NULL,
					   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_metadata_array_init(&s->init_md);
	grpc_metadata_array_init(&s->trail_md);
	s->details = grpc_empty_slice();
	s->error_string = NULL;
	s->status = GRPC_STATUS_OK;
	s->got_message = false;
	grpc_slice sl = grpc_slice_from_copied_buffer((const char *)s->request, s->request_len);
	s->send_buf = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);
	s->state.phase = AGENT_SUB_CONNECTING;

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (c->api == AGENT_API_WORKLOAD) {
		ops[0].data.send_initial_metadata.count = 1;
		ops[0].data.send_initial_metadata.metadata = security_header;
	}
	/* Wait for the agent rather than fail fast: a stream opened while the agent is down (or
	 * restarting) simply starts when the channel connects. */
	ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = s->send_buf;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
	e = grpc_call_start_batch(s->call, ops, 4, &s->tag_start, NULL);
	if (e == GRPC_CALL_OK)
		s->pending++;

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &s->trail_md;
	ops[0].data.recv_status_on_client.status = &s->status;
	ops[0].data.recv_status_on_client.status_details = &s->details;
	ops[0].data.recv_status_on_client.error_string = &s->error_string;
	grpc_call_error e2 = grpc_call_start_batch(s->call, ops, 1, &s->tag_status, NULL);
	if (e2 == GRPC_CALL_OK)
		s->pending++;

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_MESSAGE;
	ops[0].data.recv_message.recv_message = &s->recv_buf;
	grpc_call_error e3 = grpc_call_start_batch(s->call, ops, 1, &s->tag_recv, NULL);
	if (e3 == GRPC_CALL_OK)
		s->pending++;

	if (e != GRPC_CALL_OK || e2 != GRPC_CALL_OK || e3 != GRPC_CALL_OK) {
		log_error("agent %s: %s: cannot start call: %s", c->name, s->method,
			  grpc_call_error_to_string(e != GRPC_CALL_OK    ? e
						    : e2 != GRPC_CALL_OK ? e2
									 : e3));
		grpc_call_cancel(s->call, NULL);
		if (e2 != GRPC_CALL_OK)
			s->status = GRPC_STATUS_INTERNAL;
		if (s->pending == 0)
			sub_call_done(s);
	}
}

/* The last tag of the call came back: decide between free, stop and retry. */
static void sub_call_done(AgentSub *s)
{
	AgentConn *c = s->conn;
	_cleanup_gpr_free_ char *details = grpc_slice_to_c_string(s->details);
	int status = s->status;

	grpc_call_unref(s->call);
	s->call = NULL;
	grpc_byte_buffer_destroy(s->send_buf);
	s->send_buf = NULL;
	grpc_metadata_array_destroy(&s->init_md);
	grpc_metadata_array_destroy(&s->trail_md);
	grpc_slice_unref(s->details);
	s->details = grpc_empty_slice();
	const char *msg = details && *details ? details : s->error_string ? s->error_string : "";

	if (s->cancelled || c->shutting_down) {
		gpr_free((void *)s->error_string);
		s->error_string = NULL;
		/* A canceller still waiting for the callback frees it when it wakes up. */
		if (s->waiters == 0)
			sub_free_locked(s);
		return;
	}

	sub_set_error(s, status, "%s%s%s", grpc_status_to_string(status), *msg ? ": " : "", msg);
	if (grpc_status_is_fatal(status)) {
		s->state.phase = AGENT_SUB_STOPPED;
		log_error("agent %s: %s stopped: %s (not retried)", c->name, s->method,
			  s->state.last_error);
	} else {
		sub_arm_timer(s);
		/* One line per state change: the first failure after a healthy stream is a warning,
		 * the retries that fail the same way are debug. */
		if (!s->failing)
			log_warning("agent %s: %s ended: %s; retrying in %llu ms", c->name, s->method,
				    s->state.last_error,
				    (unsigned long long)(s->due_ms - now_ms()));
		else
			log_debug("agent %s: %s failed again: %s; retrying in %llu ms", c->name,
				  s->method, s->state.last_error,
				  (unsigned long long)(s->due_ms - now_ms()));
		s->failing = true;
	}
	gpr_free((void *)s->error_string);
	s->error_string = NULL;
}

static void sub_tag_done(AgentSub *s)
{
	assert(s->pending > 0);
	if (--s->pending == 0)
		sub_call_done(s);
}

/* ---- received messages ---- */

/* Wipes every byte of a byte buffer's slices in place: they point into the transport's read
 * buffers (or hold small pieces inline in the slice itself), so this wipes gRPC's own copy. */
static void message_wipe(grpc_byte_buffer *bb)
{
	grpc_slice_buffer *sb = &bb->data.raw.slice_buffer;
	for (size_t i = 0; i < sb->count; i++)
		secret_wipe(GRPC_SLICE_START_PTR(sb->slices[i]), GRPC_SLICE_LENGTH(sb->slices[i]));
}

static void message_discard(grpc_byte_buffer *bb)
{
	if (!bb)
		return;
	message_wipe(bb);
	grpc_byte_buffer_destroy(bb);
}

/* Copies a received message straight from its slices into one buffer, from the secure heap when
 * it may carry a key (never through grpc_byte_buffer_reader_readall, whose flat copy of a
 * multi-slice message would be ordinary memory), then wipes the slices it copied from.
 * -ENOMEM, or -EPROTONOSUPPORT for a compressed message. The caller still owns (and destroys)
 * bb. Copies that gRPC makes before the message reaches us are out of reach: see
 * docs/agent-client.md. */
static int message_take(grpc_byte_buffer *bb, bool secret, uint8_t **ret, size_t *ret_len)
{
	/* gRPC 1.51's own filter decompresses before a message reaches us; should a compressed
	 * one get through all the same (the peer decides), it is refused, not decompressed. */
	if (bb->data.raw.compression != GRPC_COMPRESS_NONE) {
		message_wipe(bb);
		return -EPROTONOSUPPORT;
	}
	grpc_slice_buffer *sb = &bb->data.raw.slice_buffer;
	size_t len = sb->length;
	uint8_t *buf = secret ? secret_alloc(len) : malloc(len ? len : 1);
	for (size_t i = 0, off = 0; buf && i < sb->count; i++) {
		size_t n = GRPC_SLICE_LENGTH(sb->slices[i]);
		memcpy(buf + off, GRPC_SLICE_START_PTR(sb->slices[i]), n);
		off += n;
	}
	message_wipe(bb);
	if (!buf)
		return -ENOMEM;
	*ret = buf;
	*ret_len = len;
	return 0;
}

static void message_free(uint8_t *buf, size_t len, bool secret)
{
	if (secret)
		secret_free(buf, len);
	else
		free(buf);
}

/* Hands one received message to the stream's handler, outside the lock. */
static int deliver(AgentSub *s, grpc_byte_buffer *bb, bool skip, char *why, size_t why_len)
{
	uint8_t *buf;
	size_t len;
	int r = message_take(bb, s->secret, &buf, &len);

	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(why, why_len, "no %smemory for a message of %zu bytes",
				 s->secret ? "secure " : "", grpc_byte_buffer_length(bb));
		else
			snprintf(why, why_len, "compressed message refused");
		return r;
	}
	if (!skip)
		r = s->on_message(s->ctx, buf, len, why, why_len);
	message_free(buf, len, s->secret);
	/* The decoder, the store's checks and OpenSSL ran below this frame with the key. */
	if (s->secret)
		secret_scrub_stack();
	return r;
}

/* ---- the CQ thread ---- */

static void handle_recv(AgentConn *c, AgentSub *s, bool success)
{
	grpc_byte_buffer *bb = s->recv_buf;
	char why[256] = "";
	int r = 0;

	s->recv_buf = NULL;
	if (!success || !bb) {
		/* End of stream: the status tag tells why. */
		message_discard(bb);
		sub_tag_done(s);
		return;
	}

	bool skip = s->cancelled || c->shutting_down;
	if (!skip) {
		/* A message arrived: the stream works, whatever the message is worth. */
		if (s->failing)
			log_info("agent %s: %s streaming again (after %u attempts)", c->name,
				 s->method, backoff_attempts(s->backoff));
		s->failing = false;
		s->got_message = true;
		s->state.phase = AGENT_SUB_STREAMING;
		backoff_reset(s->backoff);
	}
	s->in_callback = !skip;
	pthread_mutex_unlock(&c->lock);
	r = deliver(s, bb, skip, why, sizeof(why));
	pthread_mutex_lock(&c->lock);
	grpc_byte_buffer_destroy(bb);
	if (!skip) {
		s->in_callback = false;
		pthread_cond_broadcast(&c->cond);
		if (r >= 0) {
			s->state.messages++;
			s->state.last_message_at = (int64_t)time(NULL);
		} else {
			s->state.rejected++;
			log_warning("agent %s: %s: message rejected, keeping the last good state: %s",
				    c->name, s->method, why);
		}
	}

	if (s->cancelled || c->shutting_down) {
		sub_tag_done(s);
		return;
	}
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &s->recv_buf;
	grpc_call_error e = grpc_call_start_batch(s->call, &op, 1, &s->tag_recv, NULL);
	if (e != GRPC_CALL_OK) {
		log_error("agent %s: %s: cannot receive: %s", c->name, s->method,
			  grpc_call_error_to_string(e));
		grpc_call_cancel(s->call, NULL);
		sub_tag_done(s);
	}
}

static void watch_arm(AgentConn *c)
{
	grpc_channel_watch_connectivity_state(c->channel, c->conn_state,
					      gpr_inf_future(GPR_CLOCK_REALTIME), c->cq,
					      &c->tag_watch);
	c->watch_pending = true;
}

static void handle_watch(AgentConn *c, bool success)
{
	c->watch_pending = false;
	if (c->shutting_down)
		return;
	grpc_connectivity_state st = grpc_channel_check_connectivity_state(c->channel, 0);
	if (success && st != c->conn_state) {
		if (st == GRPC_CHANNEL_TRANSIENT_FAILURE && !c->reported_failure) {
			log_warning("agent %s: cannot connect (will keep trying)", c->name);
			c->reported_failure = true;
		} else if (st == GRPC_CHANNEL_READY) {
			log_info("agent %s: connected", c->name);
			c->reported_failure = false;
		} else
			log_debug("agent %s: connection %s", c->name, conn_state_to_string(st));
		c->conn_state = st;
	}
	watch_arm(c);
}

static void fire_timers(AgentConn *c)
{
	uint64_t now = now_ms();

	for (AgentSub *s = c->subs; s && c->n_timers > 0 && !c->shutting_down; s = s->next) {
		if (!s->timer_armed || s->due_ms > now)
			continue;
		s->timer_armed = false;
		c->n_timers--;
		s->state.restarts++;
		log_debug("agent %s: %s: re-opening", c->name, s->method);
		sub_start_call(s);
	}
}

static gpr_timespec next_deadline(AgentConn *c)
{
	uint64_t due = UINT64_MAX;

	if (c->n_timers == 0 || c->shutting_down)
		return gpr_inf_future(GPR_CLOCK_MONOTONIC);
	for (AgentSub *s = c->subs; s; s = s->next)
		if (s->timer_armed && s->due_ms < due)
			due = s->due_ms;
	uint64_t now = now_ms();
	return deadline_in_ms(due > now ? due - now : 0);
}

static void *cq_thread(void *p)
{
	AgentConn *c = p;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		gpr_timespec deadline = next_deadline(c);
		pthread_mutex_unlock(&c->lock);
		grpc_event ev = grpc_completion_queue_next(c->cq, deadline, NULL);
		pthread_mutex_lock(&c->lock);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE) {
			Tag *t = ev.tag;
			switch (t->kind) {
			case TAG_WATCH:
				handle_watch(c, ev.success);
				break;
			case TAG_START:
			case TAG_STATUS:
				sub_tag_done(t->sub);
				break;
			case TAG_RECV:
				handle_recv(c, t->sub, ev.success);
				break;
			}
		}
		fire_timers(c);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- public: connections ---- */

int agent_conn_new(const AgentConnConfig *cfg, AgentConn **ret)
{
	const char *address = cfg->address ? cfg->address : getenv("SPIFFE_ENDPOINT_SOCKET");
	_cleanup_free_ char *path = NULL, *target = NULL;
	int r;

	if (!address || !*address)
		return log_error_errno(-EINVAL, "agent %s: no address given and "
						"SPIFFE_ENDPOINT_SOCKET is not set",
				       cfg->name ? cfg->name : "(unnamed)");
	r = agent_address_parse(address, &path);
	if (r < 0)
		return log_error_errno(r, "agent %s: invalid address \"%s\": expected "
					  "unix:///absolute/path (tcp is not supported)",
				       cfg->name ? cfg->name : address, address);
	if (cfg->api < 0 || cfg->api >= _AGENT_API_MAX)
		return log_error_errno(-EINVAL, "agent %s: unknown API %d", address, cfg->api);
	if (asprintf(&target, "unix://%s", path) < 0)
		return log_error_errno(-ENOMEM, "agent %s: out of memory", address);

	AgentConn *c = calloc(1, sizeof(*c));
	if (!c)
		return log_error_errno(-ENOMEM, "agent %s: out of memory", address);
	c->name = strdup(cfg->name ? cfg->name : address);
	if (!c->name) {
		free(c);
		return log_error_errno(-ENOMEM, "agent %s: out of memory", address);
	}
	c->api = cfg->api;
	c->backoff_initial_ms = cfg->backoff_initial_ms ? cfg->backoff_initial_ms
							: DEFAULT_BACKOFF_INITIAL_MS;
	c->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
	if (c->backoff_max_ms < c->backoff_initial_ms)
		c->backoff_max_ms = c->backoff_initial_ms;
	c->seed = (uint64_t)now_ms() ^ ((uint64_t)(uintptr_t)c << 16) ^ (uint64_t)getpid();
	c->tag_watch.kind = TAG_WATCH;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_once(&security_header_once, security_header_init);

	grpc_init();
	size_t max_recv = cfg->max_recv_bytes ? cfg->max_recv_bytes : DEFAULT_MAX_RECV;
	grpc_arg args[7];
	memset(args, 0, sizeof(args));
	/* C core >= 1.57 would send the percent-encoded socket path; strict servers reject it. */
	args[0].type = GRPC_ARG_STRING;
	args[0].key = (char *)GRPC_ARG_DEFAULT_AUTHORITY;
	args[0].value.string = (char *)"localhost";
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[1].value.integer = max_recv > INT32_MAX ? INT32_MAX : (int)max_recv;
	/* The channel's own reconnect schedule (for streams waiting for the agent) follows ours. */
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
	args[2].value.integer = (int)c->backoff_initial_ms;
	args[3].type = GRPC_ARG_INTEGER;
	args[3].key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
	args[3].value.integer = (int)c->backoff_initial_ms;
	args[4].type = GRPC_ARG_INTEGER;
	args[4].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
	args[4].value.integer = (int)c->backoff_max_ms;
	/* Each AgentConn owns its connection: C core would otherwise share one subchannel among
	 * all channels with the same target and arguments. */
	args[5].type = GRPC_ARG_INTEGER;
	args[5].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
	args[5].value.integer = 1;
	/* Accept only uncompressed messages: a decompressed SVID would pass through zlib's buffers
	 * in ordinary memory, out of our reach. A peer that compresses anyway gets its call ended
	 * by gRPC (UNIMPLEMENTED, "Compression algorithm 'gzip' is disabled"), after gRPC's filter
	 * decompressed the first message (tests/hostile/test-keymem.c). */
	args[6].type = GRPC_ARG_INTEGER;
	args[6].key = (char *)GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET;
	args[6].value.integer = 1 << GRPC_COMPRESS_NONE;
	grpc_channel_args chargs = {.num_args = ELEMENTSOF(args), .args = args};
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	c->channel = grpc_channel_create(target, creds, &chargs);
	grpc_channel_credentials_release(creds);
	c->cq = grpc_completion_queue_create_for_next(NULL);
	c->conn_state = grpc_channel_check_connectivity_state(c->channel, 0);

	pthread_mutex_lock(&c->lock);
	watch_arm(c);
	pthread_mutex_unlock(&c->lock);
	r = -pthread_create(&c->thread, NULL, cq_thread, c);
	if (r < 0) {
		log_error_errno(r, "agent %s: cannot start the connection thread", c->name);
		agent_conn_free(c);
		return r;
	}
	c->thread_started = true;
	*ret = c;
	return 0;
}

AgentConn *agent_conn_free(AgentConn *c)
{
	if (!c)
		return NULL;
	assert(!c->thread_started || !pthread_equal(pthread_self(), c->thread));

	pthread_mutex_lock(&c->lock);
	c->shutting_down = true;
	for (AgentSub *s = c->subs, *next; s; s = next) {
		next = s->next;
		s->cancelled = true;
		if (s->call)
			grpc_call_cancel(s->call, NULL);
		else if (!s->in_callback)
			sub_free_locked(s);
	}
	if (c->thread_started)
		while (c->n_subs > 0)
			pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);

	/* Destroying the channel ends the connectivity watch; then the queue can drain. */
	grpc_channel_destroy(c->channel);
	grpc_completion_queue_shutdown(c->cq);
	if (c->thread_started)
		pthread_join(c->thread, NULL);
	else
		while (grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
			       .type != GRPC_QUEUE_SHUTDOWN)
			;
	grpc_completion_queue_destroy(c->cq);
	grpc_shutdown();
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c->name);
	free(c);
	return NULL;
}

/* ---- public: subscriptions ---- */

int grpc_conn_subscribe(AgentConn *c, const char *method, uint8_t *request, size_t request_len,
			bool secret, GrpcMessageFn fn, void *ctx, AgentSub **ret)
{
	AgentSub *s = calloc(1, sizeof(*s));
	int r;

	if (!s) {
		free(request);
		free(ctx);
		return log_error_errno(-ENOMEM, "agent %s: %s: out of memory", c->name, method);
	}
	s->conn = c;
	s->method = method;
	s->request = request;
	s->request_len = request_len;
	s->on_message = fn;
	s->ctx = ctx;
	s->secret = secret;
	s->tag_start = (Tag){TAG_START, s};
	s->tag_recv = (Tag){TAG_RECV, s};
	s->tag_status = (Tag){TAG_STATUS, s};
	s->details = grpc_empty_slice();

	pthread_mutex_lock(&c->lock);
	r = backoff_new(c->backoff_initial_ms, c->backoff_max_ms, c->seed++ * 0x9e3779b97f4a7c15ull,
			&s->backoff);
	if (r < 0 || c->shutting_down) {
		pthread_mutex_unlock(&c->lock);
		free(request);
		free(ctx);
		free(s);
		return log_error_errno(r < 0 ? r : -ESHUTDOWN, "agent %s: %s: cannot subscribe",
				       c->name, method);
	}
	s->next = c->subs;
	if (c->subs)
		c->subs->prev = s;
	c->subs = s;
	c->n_subs++;
	sub_start_call(s);
	pthread_mutex_unlock(&c->lock);
	*ret = s;
	return 0;
}

void agent_sub_cancel(AgentSub *s)
{
	if (!s)
		return;
	AgentConn *c = s->conn;

	pthread_mutex_lock(&c->lock);
	assert(!s->cancelled);
	s->cancelled = true;
	if (s->timer_armed) {
		s->timer_armed = false;
		c->n_timers--;
	}
	if (s->call)
		grpc_call_cancel(s->call, NULL);
	if (s->in_callback && pthread_equal(pthread_self(), c->thread)) {
		/* Cancelled from its own callback: freed once the callback returns and the call's
		 * tags are back. */
		pthread_mutex_unlock(&c->lock);
		return;
	}
	s->waiters++;
	while (s->in_callback)
		pthread_cond_wait(&c->cond, &c->lock);
	s->waiters--;
	if (s->pending == 0)
		sub_free_locked(s);
	/* else: the CQ thread frees it when the cancelled call's last tag returns; no callback
	 * can start any more (cancelled is checked under the lock). */
	pthread_mutex_unlock(&c->lock);
}

int agent_sub_get_state(AgentSub *s, AgentSubState *ret)
{
	if (!s || !ret)
		return -EINVAL;
	pthread_mutex_lock(&s->conn->lock);
	*ret = s->state;
	pthread_mutex_unlock(&s->conn->lock);
	return 0;
}

/* ---- unary calls ---- */

void grpc_conn_response_free(uint8_t *p, size_t len)
{
	secret_free(p, len);
}

int grpc_conn_unary(AgentConn *c, const char *method, const uint8_t *request, size_t request_len,
		    int timeout_ms, uint8_t **ret, size_t *ret_len)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_metadata_array init_md, trail_md;
	grpc_byte_buffer *recv = NULL;
	grpc_status_code status = GRPC_STATUS_OK;
	grpc_slice details = grpc_empty_slice();
	const char *error_string = NULL;
	grpc_op ops[6];
	int tag, r;

	grpc_call *call = grpc_channel_create_call(
		c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
		grpc_slice_from_static_string(method), NULL,
		timeout_ms < 0 ? gpr_inf_future(GPR_CLOCK_REALTIME)
			       : deadline_in_ms((uint64_t)timeout_ms),
		NULL);
	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	grpc_slice sl = grpc_slice_from_copied_buffer((const char *)request, request_len);
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (c->api == AGENT_API_WORKLOAD) {
		ops[0].data.send_initial_metadata.count = 1;
		ops[0].data.send_initial_metadata.metadata = security_header;
	}
	/* No WAIT_FOR_READY: a JWT lookup must not hang while the agent is away. */
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	ops[5].data.recv_status_on_client.error_string = &error_string;
	grpc_call_error e = grpc_call_start_batch(call, ops, ELEMENTSOF(ops), &tag, NULL);
	if (e == GRPC_CALL_OK)
		grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	else
		status = GRPC_STATUS_INTERNAL;

	_cleanup_gpr_free_ char *msg = grpc_slice_to_c_string(details);
	const char *why = msg && *msg ? msg : error_string ? error_string : "";
	r = grpc_status_to_errno(status);
	if (r < 0)
		log_error_errno(r, "agent %s: %s failed: %s%s%s", c->name, method,
				grpc_status_to_string(status), *why ? ": " : "", why);
	else if (!recv)
		r = log_error_errno(-EIO, "agent %s: %s: OK without a response message", c->name,
				    method);
	else {
		r = message_take(recv, true, ret, ret_len);
		if (r < 0)
			log_error_errno(r, "agent %s: %s: %s", c->name, method,
					r == -ENOMEM ? "no secure memory for the response"
						     : "compressed response refused");
	}

	message_discard(recv);
	secret_scrub_stack();
	grpc_byte_buffer_destroy(send);
	grpc_slice_unref(details);
	gpr_free((void *)error_string);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	return r;
}
