// SPDX-License-Identifier: Apache-2.0
/* Key bytes while they are in use (svidfs issue 12). The agent client receives SVIDs from the
 * development agent on both APIs (Delegated Identity for pods, Workload API for self/), and the
 * daemon's path is replayed in this process: inside the callback, with the received message
 * still decoded, this process's own memory is searched for the key (memscan.h needles) outside
 * the locked, non-dumpable mappings; then the update goes through the store's validation
 * (OpenSSL parses the key) and, once the callback returned and the message was released, the
 * memory is searched again. No timing is involved: the searches run exactly while the copies
 * would exist. A planted copy in malloc'ed memory checks that the search sees ordinary memory.
 * Usage: test-keymem /path/to/svidfs-devagent */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "harness.h"
#include "memscan.h"
#include "secret.h"
#include "store.h"

#define ROTATIONS 4

typedef struct Probe {
	const char *name; /* the workload's store name */
	SvidStore *store;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned messages, keys;
	MemScan *scan;            /* needles of the last message's keys (secure memory) */
	uint64_t in_callback[_MEMSCAN_KIND_MAX]; /* unsafe hits found inside callbacks */
	int store_r;              /* the last store update's result */
	int scan_r;
} Probe;

static DevAgent da;

static void probe_init(Probe *p, const char *name, SvidStore *store)
{
	*p = (Probe){.name = name, .store = store};
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
}

static void probe_done(Probe *p)
{
	memscan_free(p->scan);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}

/* The connection thread: search while the decoded message is alive, then hand the update to the
 * store, as fs/sessions.c does. */
static void on_x509(void *userdata, const SvidX509Update *u)
{
	Probe *p = userdata;
	MemScan *m = NULL;
	int r = memscan_new(stdout, true, &m);

	for (size_t i = 0; r >= 0 && i < u->n_svids; i++)
		r = memscan_add_key(m, u->svids[i].key, u->svids[i].key_len);
	if (r >= 0 && u->n_svids > 0)
		r = memscan_pid(m, 0);
	int sr = svid_store_update_x509(p->store, p->name, "a", u, (int64_t)time(NULL));

	pthread_mutex_lock(&p->lock);
	if (m && r >= 0)
		for (int k = 0; k < _MEMSCAN_KIND_MAX; k++)
			p->in_callback[k] += memscan_hits(m, k, true);
	if (m)
		memscan_reset(m);
	memscan_free(p->scan);
	p->scan = m;
	p->scan_r = r < 0 ? r : p->scan_r;
	p->store_r = sr;
	p->keys += (unsigned)u->n_svids;
	p->messages++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static bool probe_wait(Probe *p, unsigned n, int timeout_ms)
{
	struct timespec ts;
	bool ok;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	pthread_mutex_lock(&p->lock);
	while (p->messages < n &&
	       pthread_cond_timedwait(&p->cond, &p->lock, &ts) != ETIMEDOUT)
		;
	ok = p->messages >= n;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/* The connection thread counts a message once its handling is over (message wiped and released,
 * stack scrubbed): only then is the search after the callback meaningful. */
static bool delivered(AgentSub *s, unsigned n, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 5) {
		AgentSubState st;
		if (agent_sub_get_state(s, &st) >= 0 && st.messages >= n)
			return true;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return false;
}

/* After the callback returned and the message was released: what the store's validation and
 * the decoding left behind. Adds the unsafe hits per kind to after[]. */
static int probe_scan_after(Probe *p, uint64_t *after)
{
	pthread_mutex_lock(&p->lock);
	MemScan *m = p->scan;
	int r = m ? memscan_pid(m, 0) : -ENOENT;
	if (r >= 0)
		for (int k = 0; k < _MEMSCAN_KIND_MAX; k++)
			after[k] += memscan_hits(m, k, true);
	if (m)
		memscan_reset(m);
	pthread_mutex_unlock(&p->lock);
	return r;
}

static uint64_t sum(const uint64_t *v)
{
	uint64_t t = 0;
	for (int k = 0; k < _MEMSCAN_KIND_MAX; k++)
		t += v[k];
	return t;
}

static void diag_hits(const char *what, const uint64_t *v)
{
	tap_diag("%s: der=%llu pem=%llu b64=%llu scalar=%llu b64frag=%llu", what,
		 (unsigned long long)v[MEMSCAN_DER], (unsigned long long)v[MEMSCAN_PEM],
		 (unsigned long long)v[MEMSCAN_B64], (unsigned long long)v[MEMSCAN_SCALAR],
		 (unsigned long long)v[MEMSCAN_B64FRAG]);
}

static int conn_open(AgentApi api, const char *path, AgentConn **ret)
{
	char *uri = da_uri(path);
	AgentConnConfig cfg = {.address = uri, .api = api, .name = "keymem"};
	int r = agent_conn_new(&cfg, ret);
	free(uri);
	return r;
}

/* Subscribes, rotates ROTATIONS times, and checks both searches. */
static void run_api(AgentApi api, const char *what, SvidStore *store, const char *name,
		    const char *spiffe_id)
{
	static const AgentSelector sel[] = {{"k8s", "ns:keymem"}, {"k8s", "sa:web"}};
	AgentConn *c = NULL;
	AgentSub *s = NULL;
	Probe p;
	uint64_t after[_MEMSCAN_KIND_MAX] = {0};
	int r_after = 0;
	bool all = true;

	probe_init(&p, name, store);
	svid_store_add(store, name, NULL);
	int r = conn_open(api, api == AGENT_API_DELEGATED ? da.admin : da.workload, &c);
	if (r >= 0)
		r = api == AGENT_API_DELEGATED
			    ? agent_subscribe_x509(c, sel, ELEMENTSOF(sel), 0, on_x509, &p, &s)
			    : agent_subscribe_x509(c, NULL, 0, 0, on_x509, &p, &s);
	all = r >= 0 && probe_wait(&p, 1, 30000) && delivered(s, 1, 30000);
	if (all)
		r_after = probe_scan_after(&p, after);
	for (unsigned i = 1; all && i <= ROTATIONS; i++) {
		all = da_ctl(&da, NULL, "rotate", "spiffe_id", spiffe_id, NULL) >= 0 &&
		      probe_wait(&p, i + 1, 30000) && delivered(s, i + 1, 30000);
		if (all && r_after >= 0)
			r_after = probe_scan_after(&p, after);
	}
	tap_ok(all && p.keys >= ROTATIONS + 1 && p.store_r >= 0,
	       "%s: %u messages with %u keys received and accepted by the store", what,
	       p.messages, p.keys);
	diag_hits("unsafe hits while the callback runs", p.in_callback);
	tap_ok(all && p.scan_r >= 0 && sum(p.in_callback) == 0,
	       "%s: while the message is decoded, its key is only in locked, non-dumpable memory",
	       what);
	diag_hits("unsafe hits after the store's validation", after);
	tap_ok(all && r_after >= 0 && sum(after) == 0,
	       "%s: after the store's validation (OpenSSL parsed the key), no copy outside locked "
	       "memory",
	       what);

	/* The control: a copy planted in malloc'ed memory is found. */
	pthread_mutex_lock(&p.lock);
	bool found = false;
	if (p.scan && s) {
		AgentSubState st;
		agent_sub_get_state(s, &st);
		SvidSet *set = NULL;
		if (svid_store_get(store, name, &set) >= 0 && svid_set_n_svids(set) > 0) {
			const SvidBlob *k = svid_set_key_der(set, 0);
			size_t n = svid_blob_size(k);
			uint8_t *copy = malloc(n);
			if (copy) {
				memcpy(copy, svid_blob_data(k), n);
				found = memscan_pid(p.scan, 0) >= 0 &&
					memscan_hits(p.scan, MEMSCAN_DER, true) >= 1;
				secret_wipe(copy, n);
				free(copy);
			}
		}
		svid_set_unref(set);
		memscan_reset(p.scan);
	}
	pthread_mutex_unlock(&p.lock);
	tap_ok(found, "%s: control: a copy of the current key in malloc'ed memory is found", what);

	agent_sub_cancel(s);
	agent_conn_free(c);
	probe_done(&p);
}

/* ---- a peer that compresses ---- */

typedef struct GzipPeer {
	grpc_server *server;
	grpc_completion_queue *cq;
	pthread_t thread;
} GzipPeer;

/* Answers every call with one gzip-compressed message and leaves the stream open. */
static void *gzip_peer_thread(void *p)
{
	GzipPeer *g = p;
	for (;;) {
		grpc_call *call = NULL;
		grpc_call_details d;
		grpc_metadata_array md;
		grpc_call_details_init(&d);
		grpc_metadata_array_init(&md);
		grpc_server_request_call(g->server, &call, &d, &md, g->cq, g->cq, &g->server);
		grpc_event ev = grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		grpc_call_details_destroy(&d);
		grpc_metadata_array_destroy(&md);
		if (ev.type != GRPC_OP_COMPLETE || !ev.success)
			break; /* shutting down */
		char payload[2000];
		memset(payload, 'A', sizeof(payload));
		grpc_slice sl = grpc_slice_from_copied_buffer(payload, sizeof(payload));
		grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
		grpc_slice_unref(sl);
		grpc_op ops[2];
		memset(ops, 0, sizeof(ops));
		ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
		ops[1].op = GRPC_OP_SEND_MESSAGE;
		ops[1].data.send_message.send_message = bb;
		grpc_call_start_batch(call, ops, 2, &g->cq, NULL);
		grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		grpc_byte_buffer_destroy(bb);
		grpc_call_unref(call); /* the client's end follows; the server cancels the rest */
	}
	return NULL;
}

static int gzip_peer_start(GzipPeer *g, const char *address)
{
	grpc_arg arg = {.type = GRPC_ARG_INTEGER,
			.key = (char *)GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM,
			.value.integer = GRPC_COMPRESS_GZIP};
	grpc_channel_args args = {.num_args = 1, .args = &arg};
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	g->server = grpc_server_create(&args, NULL);
	g->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(g->server, g->cq, NULL);
	int ok = grpc_server_add_http2_port(g->server, address, creds);
	grpc_server_credentials_release(creds);
	if (!ok)
		return -EADDRNOTAVAIL;
	grpc_server_start(g->server);
	return -pthread_create(&g->thread, NULL, gzip_peer_thread, g);
}

static void gzip_peer_stop(GzipPeer *g)
{
	grpc_server_shutdown_and_notify(g->server, g->cq, NULL);
	grpc_server_cancel_all_calls(g->server);
	pthread_join(g->thread, NULL);
	grpc_completion_queue_shutdown(g->cq);
	while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_server_destroy(g->server);
	grpc_completion_queue_destroy(g->cq);
}

static bool stopped(AgentSub *s, AgentSubState *st, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		if (agent_sub_get_state(s, st) >= 0 && st->phase == AGENT_SUB_STOPPED)
			return true;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return false;
}

/* svidfs offers only the identity encoding: a peer that compresses anyway gets its call ended
 * by gRPC (after gRPC's own filter decompressed the first message, out of our reach). */
static void run_gzip_peer(void)
{
	char path[128], address[160];
	GzipPeer g = {0};
	AgentConn *c = NULL;
	AgentSub *s = NULL;
	AgentSubState st = {0};
	Probe p;

	snprintf(path, sizeof(path), "%s/gzip.sock", da.dir);
	snprintf(address, sizeof(address), "unix://%s", path);
	grpc_init();
	probe_init(&p, "gzip", NULL);
	int r = gzip_peer_start(&g, address);
	if (r >= 0)
		r = conn_open(AGENT_API_WORKLOAD, path, &c);
	if (r >= 0)
		r = agent_subscribe_x509(c, NULL, 0, 0, on_x509, &p, &s);
	bool ok = r >= 0 && stopped(s, &st, 30000);
	tap_ok(ok && st.last_grpc_status == GRPC_STATUS_UNIMPLEMENTED && p.messages == 0,
	       "a peer that compresses: gRPC ends the stream (%s)",
	       st.last_error);
	agent_sub_cancel(s);
	agent_conn_free(c);
	if (g.server)
		gzip_peer_stop(&g);
	probe_done(&p);
	grpc_shutdown();
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s /path/to/svidfs-devagent\n", argv[0]);
		return 2;
	}
	/* As the daemon's main() does, before anything makes OpenSSL allocate. */
	tap_ok(secret_openssl_init() == 0, "OpenSSL's allocations are routed through svidfs");
	tap_ok(secret_init(32u << 20) == 0 && secret_is_locked(), "secure heap set up");

	char uid_sel[64];
	snprintf(uid_sel, sizeof(uid_sel), "spiffe://" TD "/self selectors=unix:uid:%u",
		 (unsigned)getuid());
	const char *extra[] = {"--entry",
			       "spiffe://" TD "/ns/keymem/sa/web selectors=k8s:ns:keymem,k8s:sa:web",
			       "--entry", uid_sel, NULL};
	SvidStore *store = NULL;
	if (da_init(&da, argv[1]) < 0 || da_start(&da, extra) < 0 ||
	    svid_store_new((uint64_t)time(NULL) << 20, &store) < 0) {
		tap_ok(false, "development agent and store started");
		da_done(&da);
		return tap_done();
	}
	run_api(AGENT_API_DELEGATED, "delegated", store, "pods/keymem",
		"spiffe://" TD "/ns/keymem/sa/web");
	run_api(AGENT_API_WORKLOAD, "workload API", store, "self", "spiffe://" TD "/self");
	run_gzip_peer();
	svid_store_unref(store);
	da_done(&da);
	return tap_done();
}
