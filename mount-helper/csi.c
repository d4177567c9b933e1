// SPDX-License-Identifier: Apache-2.0
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "cleanup.h"
#include "csi.h"
#include "csi.pb-c.h"
#include "log.h"
#include "pbcheck.h"
#include "macro.h"
#include "secret.h"
#include "wrappers.pb-c.h"

#define N_REQUESTS 8	 /* request_call kept outstanding */
#define WORKER_IDLE_S 10 /* an idle worker thread exits after this */
#define WORKER_STACK (256 * 1024)

typedef enum {
	CALL_NEW,  /* waiting in grpc_server_request_call */
	CALL_RECV, /* RECV_MESSAGE in flight */
	CALL_WORK, /* with a worker thread */
	CALL_SEND, /* the reply batch in flight */
} CallState;

typedef enum {
	M_UNKNOWN,
	M_GET_PLUGIN_INFO,
	M_GET_PLUGIN_CAPABILITIES,
	M_PROBE,
	M_NODE_PUBLISH,
	M_NODE_UNPUBLISH,
	M_NODE_VOLUME_STATS,
	M_NODE_CAPABILITIES,
	M_NODE_INFO,
	M_X_MAX,
} Method;

static const char *const method_paths[M_X_MAX] = {
    [M_GET_PLUGIN_INFO] = "/csi.v1.Identity/GetPluginInfo",
    [M_GET_PLUGIN_CAPABILITIES] = "/csi.v1.Identity/GetPluginCapabilities",
    [M_PROBE] = "/csi.v1.Identity/Probe",
    [M_NODE_PUBLISH] = "/csi.v1.Node/NodePublishVolume",
    [M_NODE_UNPUBLISH] = "/csi.v1.Node/NodeUnpublishVolume",
    [M_NODE_VOLUME_STATS] = "/csi.v1.Node/NodeGetVolumeStats",
    [M_NODE_CAPABILITIES] = "/csi.v1.Node/NodeGetCapabilities",
    [M_NODE_INFO] = "/csi.v1.Node/NodeGetInfo",
};

typedef struct Call Call;
struct Call {
	CsiServer *srv;
	CallState state;
	Method method;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *recv, *send;
	int cancelled;
	Call *next; /* worker queue */
};

struct CsiServer {
	char *socket_path, *driver_name, *node_id;
	unsigned socket_mode, max_workers;
	Publisher *publisher;
	int lock_fd;
	grpc_server *server;
	grpc_completion_queue *cq;
	pthread_t cq_thread;
	bool started, stopped;

	/* Everything below is guarded by mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond; /* work queued, or a worker exited */
	Call *queue_head, *queue_tail;
	unsigned n_workers, n_idle;
	bool quit_workers;
	unsigned live_calls;	/* Calls not yet freed (CQ thread decrements) */
	bool shutdown_notified; /* grpc_server_shutdown_and_notify's tag came back */
	bool cq_shut;
};

static int shutdown_tag; /* its address is the server-shutdown tag */

/* ---- protobuf <-> byte buffer ---- */

static grpc_byte_buffer *pack(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	grpc_slice s = grpc_slice_malloc(len);

	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/* Decodes a request. NULL with why set when it cannot be decoded or a string field holds a NUL
 * (which protobuf-c would silently cut the string at). */
static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
				char *why, size_t whylen)
{
	grpc_byte_buffer_reader r;
	ProtobufCMessage *m = NULL;
	char field[128];

	snprintf(why, whylen, "cannot decode %s", d->short_name);
	if (!bb)
		return NULL;
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return NULL;
	grpc_slice flat = grpc_byte_buffer_reader_readall(&r);
	const uint8_t *p = GRPC_SLICE_START_PTR(flat);
	size_t len = GRPC_SLICE_LENGTH(flat);
	if (pbcheck_strings(d, p, len, field, sizeof field) == -EINVAL)
		snprintf(why, whylen, "%s: field %s holds a NUL byte", d->short_name, field);
	else
		m = protobuf_c_message_unpack(d, NULL, len, p);
	/* The request may carry CSI secrets: wipe our flat copy. */
	secret_wipe(GRPC_SLICE_START_PTR(flat), GRPC_SLICE_LENGTH(flat));
	grpc_slice_unref(flat);
	grpc_byte_buffer_reader_destroy(&r);
	return m;
}

/* ---- call lifecycle (CQ thread unless noted) ---- */

static void call_free(Call *c)
{
	CsiServer *s = c->srv;

	if (c->call)
		grpc_call_unref(c->call);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md);
	if (c->recv)
		grpc_byte_buffer_destroy(c->recv);
	if (c->send)
		grpc_byte_buffer_destroy(c->send);
	free(c);

	pthread_mutex_lock(&s->mu);
	s->live_calls--;
	bool done = s->shutdown_notified && s->live_calls == 0 && !s->cq_shut;
	if (done)
		s->cq_shut = true;
	pthread_mutex_unlock(&s->mu);
	if (done)
		grpc_completion_queue_shutdown(s->cq);
}

static void request_one(CsiServer *s)
{
	Call *c = calloc(1, sizeof *c);

	if (!c) {
		log_error("out of memory: cannot accept another CSI call");
		return;
	}
	c->srv = s;
	c->state = CALL_NEW;
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md);
	pthread_mutex_lock(&s->mu);
	s->live_calls++;
	pthread_mutex_unlock(&s->mu);
	grpc_call_error e =
	    grpc_server_request_call(s->server, &c->call, &c->details, &c->md, s->cq, s->cq, c);
	if (e != GRPC_CALL_OK) {
		log_error("grpc_server_request_call: %s", grpc_call_error_to_string(e));
		c->call = NULL;
		call_free(c);
	}
}

/* Sends the reply (msg may be NULL for an error) and closes the call. Any thread that owns the
 * call at this point (CQ thread or the worker handling it). */
static void call_reply(Call *c, const ProtobufCMessage *msg, grpc_status_code code,
		       const char *message)
{
	grpc_op ops[4];
	size_t n = 0;
	grpc_slice details = grpc_slice_from_copied_string(message ? message : "");

	memset(ops, 0, sizeof ops);
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n++].data.send_initial_metadata.count = 0;
	if (msg && code == GRPC_STATUS_OK) {
		c->send = pack(msg);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->send;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n].data.send_status_from_server.trailing_metadata_count = 0;
	ops[n++].data.send_status_from_server.status_details = &details;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
	c->state = CALL_SEND;
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
	grpc_slice_unref(details);
	if (e != GRPC_CALL_OK) {
		/* Cannot happen with a well-formed batch; the tag will never come back. */
		log_error("grpc_call_start_batch(reply): %s", grpc_call_error_to_string(e));
		abort();
	}
}

/* ---- the RPCs ---- */

static int remaining_ms(const Call *c)
{
	gpr_timespec dl = c->details.deadline;

	if (gpr_time_cmp(dl, gpr_inf_future(dl.clock_type)) == 0)
		return -1;
	dl = gpr_convert_clock_type(dl, GPR_CLOCK_MONOTONIC);
	int64_t ms = gpr_time_to_millis(gpr_time_sub(dl, gpr_now(GPR_CLOCK_MONOTONIC)));
	return (int)MAX(0, MIN(ms, (int64_t)INT32_MAX));
}

static void rpc_get_plugin_info(Call *c)
{
	Csi__V1__GetPluginInfoResponse resp = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;

	resp.name = c->srv->driver_name;
	resp.vendor_version = (char *)SVIDFS_VERSION;
	call_reply(c, &resp.base, GRPC_STATUS_OK, NULL);
}

static void rpc_get_plugin_capabilities(Call *c)
{
	/* A node-only plugin: no controller service, no topology. */
	Csi__V1__GetPluginCapabilitiesResponse resp =
	    CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;
	call_reply(c, &resp.base, GRPC_STATUS_OK, NULL);
}

static void rpc_node_get_info(Call *c)
{
	Csi__V1__NodeGetInfoResponse resp = CSI__V1__NODE_GET_INFO_RESPONSE__INIT;

	resp.node_id = c->srv->node_id;
	resp.max_volumes_per_node = 0;
	call_reply(c, &resp.base, GRPC_STATUS_OK, NULL);
}

static void rpc_node_get_capabilities(Call *c)
{
	static const Csi__V1__NodeServiceCapability__RPC__Type types[] = {
	    CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__VOLUME_MOUNT_GROUP,
	    CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__VOLUME_CONDITION,
	    CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__GET_VOLUME_STATS,
	};
	Csi__V1__NodeServiceCapability__RPC rpc[ELEMENTSOF(types)];
	Csi__V1__NodeServiceCapability cap[ELEMENTSOF(types)];
	Csi__V1__NodeServiceCapability *caps[ELEMENTSOF(types)];
	Csi__V1__NodeGetCapabilitiesResponse resp = CSI__V1__NODE_GET_CAPABILITIES_RESPONSE__INIT;

	for (size_t i = 0; i < ELEMENTSOF(types); i++) {
		csi__v1__node_service_capability__rpc__init(&rpc[i]);
		rpc[i].type = types[i];
		csi__v1__node_service_capability__init(&cap[i]);
		cap[i].type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
		cap[i].rpc = &rpc[i];
		caps[i] = &cap[i];
	}
	resp.n_capabilities = ELEMENTSOF(types);
	resp.capabilities = caps;
	call_reply(c, &resp.base, GRPC_STATUS_OK, NULL);
}

static void rpc_probe(Call *c)
{
	Google__Protobuf__BoolValue ready = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
	Csi__V1__ProbeResponse resp = CSI__V1__PROBE_RESPONSE__INIT;

	ready.value = publisher_probe(c->srv->publisher);
	if (!ready.value)
		log_warning(
		    "probe: the svidfs daemon does not answer on its control socket: not ready");
	resp.ready = &ready;
	call_reply(c, &resp.base, GRPC_STATUS_OK, NULL);
}

/* A request that cannot be decoded, or holds a NUL inside a string: INVALID_ARGUMENT, logged
 * (nothing of it is echoed but the field's name). */
static void refuse_undecodable(Call *c, const char *what, const char *why)
{
	log_warning("%s: INVALID_ARGUMENT: %s", what, why);
	call_reply(c, NULL, GRPC_STATUS_INVALID_ARGUMENT, why);
}

static void wipe_secrets(Csi__V1__NodePublishVolumeRequest *req)
{
	for (size_t i = 0; i < req->n_secrets; i++)
		if (req->secrets[i]->value)
			secret_wipe(req->secrets[i]->value, strlen(req->secrets[i]->value));
	/* serviceAccount.tokens (CSIDriver tokenRequests) are bearer tokens too. */
	for (size_t i = 0; i < req->n_volume_context; i++)
		if (req->volume_context[i]->key && req->volume_context[i]->value &&
		    streq(req->volume_context[i]->key, "csi.storage.k8s.io/serviceAccount.tokens"))
			secret_wipe(req->volume_context[i]->value,
				    strlen(req->volume_context[i]->value));
}

static void rpc_node_publish(Call *c)
{
	char why[256];
	Csi__V1__NodePublishVolumeRequest *req = (Csi__V1__NodePublishVolumeRequest *)unpack(
	    &csi__v1__node_publish_volume_request__descriptor, c->recv, why, sizeof why);
	Csi__V1__NodePublishVolumeResponse resp = CSI__V1__NODE_PUBLISH_VOLUME_RESPONSE__INIT;
	CsiStatus st;

	if (!req)
		return refuse_undecodable(c, "publish", why);
	publisher_publish(c->srv->publisher, req, remaining_ms(c), &st);
	wipe_secrets(req);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	call_reply(c, &resp.base, st.code, st.message);
}

static void rpc_node_unpublish(Call *c)
{
	char why[256];
	Csi__V1__NodeUnpublishVolumeRequest *req = (Csi__V1__NodeUnpublishVolumeRequest *)unpack(
	    &csi__v1__node_unpublish_volume_request__descriptor, c->recv, why, sizeof why);
	Csi__V1__NodeUnpublishVolumeResponse resp = CSI__V1__NODE_UNPUBLISH_VOLUME_RESPONSE__INIT;
	CsiStatus st;

	if (!req)
		return refuse_undecodable(c, "unpublish", why);
	publisher_unpublish(c->srv->publisher, req, &st);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	call_reply(c, &resp.base, st.code, st.message);
}

static void rpc_node_volume_stats(Call *c)
{
	char why[256];
	Csi__V1__NodeGetVolumeStatsRequest *req = (Csi__V1__NodeGetVolumeStatsRequest *)unpack(
	    &csi__v1__node_get_volume_stats_request__descriptor, c->recv, why, sizeof why);
	Csi__V1__NodeGetVolumeStatsResponse resp = CSI__V1__NODE_GET_VOLUME_STATS_RESPONSE__INIT;
	Csi__V1__VolumeCondition cond = CSI__V1__VOLUME_CONDITION__INIT;
	Csi__V1__VolumeUsage u[2], *up[2];
	VolumeStats vs;
	CsiStatus st;

	if (!req)
		return refuse_undecodable(c, "volume stats", why);
	publisher_volume_stats(c->srv->publisher, req, &vs, &st);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	if (st.code != GRPC_STATUS_OK)
		return call_reply(c, NULL, st.code, st.message);
	for (size_t i = 0; i < 2; i++) {
		csi__v1__volume_usage__init(&u[i]);
		up[i] = &u[i];
	}
	/* kubelet rejects a response without usage: always report both units. */
	u[0].unit = CSI__V1__VOLUME_USAGE__UNIT__BYTES;
	u[0].total = vs.bytes_total;
	u[0].used = vs.bytes_used;
	u[0].available = vs.bytes_available;
	u[1].unit = CSI__V1__VOLUME_USAGE__UNIT__INODES;
	u[1].total = vs.inodes_total;
	u[1].used = vs.inodes_used;
	u[1].available = vs.inodes_available;
	resp.n_usage = 2;
	resp.usage = up;
	cond.abnormal = vs.abnormal;
	cond.message = vs.message;
	resp.volume_condition = &cond;
	call_reply(c, &resp.base, GRPC_STATUS_OK, NULL);
}

static void dispatch(Call *c)
{
	switch (c->method) {
	case M_GET_PLUGIN_INFO:
		return rpc_get_plugin_info(c);
	case M_GET_PLUGIN_CAPABILITIES:
		return rpc_get_plugin_capabilities(c);
	case M_NODE_INFO:
		return rpc_node_get_info(c);
	case M_NODE_CAPABILITIES:
		return rpc_node_get_capabilities(c);
	case M_PROBE:
		return rpc_probe(c);
	case M_NODE_PUBLISH:
		return rpc_node_publish(c);
	case M_NODE_UNPUBLISH:
		return rpc_node_unpublish(c);
	case M_NODE_VOLUME_STATS:
		return rpc_node_volume_stats(c);
	default: {
		_cleanup_free_ char *m = NULL;
		char *gm = grpc_slice_to_c_string(c->details.method);
		m = strdup(gm ? gm : "?");
		gpr_free(gm);
		log_debug("unimplemented RPC %s", m ?: "?");
		char msg[256];
		snprintf(msg, sizeof msg,
			 "%s is not implemented by svidfs-csi (a node-only plugin)",
			 m ?: "this method");
		return call_reply(c, NULL, GRPC_STATUS_UNIMPLEMENTED, msg);
	}
	}
}

static bool blocking_method(Method m)
{
	return m == M_PROBE || m == M_NODE_PUBLISH || m == M_NODE_UNPUBLISH ||
	       m == M_NODE_VOLUME_STATS;
}

/* ---- worker pool ---- */

static void *worker_main(void *arg)
{
	CsiServer *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->queue_head && !s->quit_workers) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += WORKER_IDLE_S;
			s->n_idle++;
			int r = pthread_cond_timedwait(&s->cond, &s->mu, &ts);
			s->n_idle--;
			if (r == ETIMEDOUT && !s->queue_head)
				goto exit;
		}
		if (!s->queue_head) /* quit_workers and nothing left */
			break;
		Call *c = s->queue_head;
		s->queue_head = c->next;
		if (!s->queue_head)
			s->queue_tail = NULL;
		pthread_mutex_unlock(&s->mu);
		dispatch(c);
		pthread_mutex_lock(&s->mu);
	}
exit:
	s->n_workers--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void enqueue_work(CsiServer *s, Call *c)
{
	pthread_mutex_lock(&s->mu);
	if (s->n_idle == 0 && s->n_workers < s->max_workers) {
		pthread_attr_t a;
		pthread_t t;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, WORKER_STACK);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		int r = pthread_create(&t, &a, worker_main, s);
		pthread_attr_destroy(&a);
		if (r == 0)
			s->n_workers++;
		else if (s->n_workers == 0) {
			/* No thread at all to serve it: answer now rather than hang. */
			pthread_mutex_unlock(&s->mu);
			log_error_errno(-r, "cannot start a CSI worker thread");
			return call_reply(c, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED,
					  "svidfs-csi cannot start a worker thread");
		}
		/* else: the running workers will get to it. */
	}
	c->state = CALL_WORK;
	c->next = NULL;
	if (s->queue_tail)
		s->queue_tail->next = c;
	else
		s->queue_head = c;
	s->queue_tail = c;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

/* ---- the CQ thread ---- */

static Method method_of(const grpc_slice *m)
{
	for (int i = 1; i < M_X_MAX; i++)
		if (grpc_slice_str_cmp(*m, method_paths[i]) == 0)
			return (Method)i;
	return M_UNKNOWN;
}

static void on_event(CsiServer *s, Call *c, bool ok)
{
	switch (c->state) {
	case CALL_NEW: {
		bool shutting;
		if (!ok) { /* server shutting down */
			c->call = NULL;
			return call_free(c);
		}
		pthread_mutex_lock(&s->mu);
		shutting = s->shutdown_notified || s->quit_workers;
		pthread_mutex_unlock(&s->mu);
		if (!shutting)
			request_one(s);
		c->method = method_of(&c->details.method);
		grpc_op op;
		memset(&op, 0, sizeof op);
		op.op = GRPC_OP_RECV_MESSAGE;
		op.data.recv_message.recv_message = &c->recv;
		c->state = CALL_RECV;
		grpc_call_error e = grpc_call_start_batch(c->call, &op, 1, c, NULL);
		if (e != GRPC_CALL_OK) {
			log_error("grpc_call_start_batch(recv): %s", grpc_call_error_to_string(e));
			return call_free(c);
		}
		return;
	}
	case CALL_RECV:
		if (!ok || !c->recv) {
			/* Client went away or sent no message. */
			if (!ok)
				return call_free(c);
			return call_reply(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
					  "request message missing");
		}
		if (blocking_method(c->method))
			return enqueue_work(s, c);
		return dispatch(c);
	case CALL_SEND:
		return call_free(c);
	case CALL_WORK:
		assert(0 && "event for a call owned by a worker");
	}
}

static void *cq_main(void *arg)
{
	CsiServer *s = arg;

	for (;;) {
		grpc_event ev =
		    grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (ev.tag == &shutdown_tag) {
			pthread_mutex_lock(&s->mu);
			s->shutdown_notified = true;
			bool done = s->live_calls == 0 && !s->cq_shut;
			if (done)
				s->cq_shut = true;
			pthread_mutex_unlock(&s->mu);
			if (done)
				grpc_completion_queue_shutdown(s->cq);
			continue;
		}
		on_event(s, ev.tag, ev.success);
	}
	return NULL;
}

/* ---- setup and teardown ---- */

static int take_lock(CsiServer *s)
{
	_cleanup_free_ char *lock = NULL;

	if (asprintf(&lock, "%s.lock", s->socket_path) < 0)
		return log_error_errno(-ENOMEM, "out of memory");
	s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->lock_fd < 0)
		return log_error_errno(negative_errno(), "cannot open lockfile %s", lock);
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return log_error_errno(
			    -EADDRINUSE, "another svidfs-csi already serves %s (lock %s held)",
			    s->socket_path, lock);
		return log_error_errno(negative_errno(), "cannot lock %s", lock);
	}
	return 0;
}

static int remove_stale_socket(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0
				       : log_error_errno(negative_errno(), "cannot stat %s", path);
	if (!S_ISSOCK(st.st_mode))
		return log_error_errno(
		    -EEXIST, "%s exists and is not a socket: refusing to replace it", path);
	/* We hold the lock, so no live plugin owns it. */
	if (unlink(path) < 0)
		return log_error_errno(negative_errno(), "cannot remove stale socket %s", path);
	log_info("removed stale socket %s", path);
	return 0;
}

int csi_server_new(const CsiServerConfig *cfg, CsiServer **ret)
{
	CsiServer *s = calloc(1, sizeof *s);
	_cleanup_free_ char *addr = NULL;
	int r;

	if (!s)
		return log_error_errno(-ENOMEM, "out of memory");
	s->lock_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->socket_path = strdup(cfg->socket_path);
	s->driver_name = strdup(cfg->driver_name);
	s->node_id = strdup(cfg->node_id);
	s->socket_mode = cfg->socket_mode;
	s->max_workers = cfg->max_workers ? cfg->max_workers : 1;
	s->publisher = cfg->publisher;
	if (!s->socket_path || !s->driver_name || !s->node_id) {
		csi_server_free(s);
		return log_error_errno(-ENOMEM, "out of memory");
	}
	if ((r = take_lock(s)) < 0 || (r = remove_stale_socket(s->socket_path)) < 0) {
		csi_server_free(s);
		return r;
	}
	s->cq = grpc_completion_queue_create_for_next(NULL);
	s->server = grpc_server_create(NULL, NULL);
	grpc_server_register_completion_queue(s->server, s->cq, NULL);
	if (asprintf(&addr, "unix:%s", s->socket_path) < 0) {
		csi_server_free(s);
		return log_error_errno(-ENOMEM, "out of memory");
	}
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	int port = grpc_server_add_http2_port(s->server, addr, creds);
	grpc_server_credentials_release(creds);
	if (port == 0) {
		csi_server_free(s);
		return log_error_errno(-EADDRNOTAVAIL,
				       "cannot listen on %s (path too long or directory missing?)",
				       addr);
	}
	/* The socket exists once the port is added; restrict it before serving. */
	if (chmod(s->socket_path, s->socket_mode) < 0) {
		r = log_error_errno(negative_errno(), "cannot chmod %s", s->socket_path);
		csi_server_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

int csi_server_start(CsiServer *s)
{
	int r;

	grpc_server_start(s->server);
	for (int i = 0; i < N_REQUESTS; i++)
		request_one(s);
	r = -pthread_create(&s->cq_thread, NULL, cq_main, s);
	if (r < 0)
		return log_error_errno(r, "cannot start the CQ thread");
	s->started = true;
	return 0;
}

void csi_server_stop(CsiServer *s)
{
	if (!s->started || s->stopped)
		return;
	s->stopped = true;
	publisher_stop(s->publisher);
	pthread_mutex_lock(&s->mu);
	s->quit_workers = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	grpc_server_shutdown_and_notify(s->server, s->cq, &shutdown_tag);
	grpc_server_cancel_all_calls(s->server);
	/* The CQ thread shuts the queue down once the server is down and every call is freed
	 * (calls in workers finish their reply first). */
	pthread_join(s->cq_thread, NULL);
	pthread_mutex_lock(&s->mu);
	while (s->n_workers > 0)
		pthread_cond_wait(&s->cond, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

CsiServer *csi_server_free(CsiServer *s)
{
	if (!s)
		return NULL;
	if (s->started)
		csi_server_stop(s);
	if (s->server)
		grpc_server_destroy(s->server);
	if (s->cq) {
		if (!s->started) {
			grpc_completion_queue_shutdown(s->cq);
			while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							  NULL)
				   .type != GRPC_QUEUE_SHUTDOWN)
				;
		}
		grpc_completion_queue_destroy(s->cq);
	}
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	free(s->socket_path);
	free(s->driver_name);
	free(s->node_id);
	free(s);
	return NULL;
}
