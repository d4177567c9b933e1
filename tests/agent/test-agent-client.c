// SPDX-License-Identifier: Apache-2.0
/* The agent client against the real development agent (svidfs-devagent): both APIs, rotation
 * pushes, selector matching, every injected fault, restarts, cancellation guarantees, 1,000
 * streams on one connection and subscribe/cancel churn. Prints TAP; one line per check.
 * Usage: test-agent-client /path/to/svidfs-devagent */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "delegatedidentity.pb-c.h"
#include "harness.h"
#include "stream.h"
#include "log.h"

#define WEB_ID "spiffe://" TD "/ns/default/sa/web"

static DevAgent da;
static AgentConn *adm;
static const AgentSelector web_sel[] = {
	{"k8s", "pod-uid:web-uid"}, {"k8s", "ns:default"}, {"k8s", "sa:web"}, {"k8s", "pod-name:web-0"}};

static void msleep(unsigned ms)
{
	usleep(ms * 1000u);
}

static AgentSubState state_of(AgentSub *s)
{
	AgentSubState st;
	agent_sub_get_state(s, &st);
	return st;
}

/* Polls until pred holds for the sub's state, up to timeout_ms. */
static bool wait_state(AgentSub *s, bool (*pred)(const AgentSubState *), int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		AgentSubState st = state_of(s);
		if (pred(&st))
			return true;
		msleep(10);
	}
	return false;
}

/* The counters are updated right after the callback returns: let them settle. */
static bool has_message(const AgentSubState *st)
{
	return st->messages >= 1;
}

static int conn_open(AgentApi api, const char *path, size_t max_recv, AgentConn **ret)
{
	char *uri = da_uri(path);
	AgentConnConfig cfg = {.address = uri,
			       .api = api,
			       .max_recv_bytes = max_recv,
			       .backoff_initial_ms = 100,
			       .backoff_max_ms = 1000,
			       .name = api == AGENT_API_DELEGATED ? "test-admin" : "test-workload"};
	int r = agent_conn_new(&cfg, ret);
	free(uri);
	return r;
}

static int sub_web(Recorder *r, AgentSub **ret)
{
	return agent_subscribe_x509(adm, web_sel, ELEMENTSOF(web_sel), 0, rec_x509, r, ret);
}

/* ---- first message, rotation, matching ---- */

static void t_first_message(void)
{
	Recorder r;
	AgentSub *s = NULL;
	rec_init(&r);
	int ret = sub_web(&r, &s);
	tap_ok(ret == 0, "delegated: subscribe by selectors");
	bool got = rec_wait(&r, 1, 10000);
	tap_ok(got && r.n_svids == 1 && strcmp(r.spiffe_id, WEB_ID) == 0,
	       "delegated: first message carries the matching SVID (%zu svids, \"%s\")", r.n_svids,
	       r.spiffe_id);
	wait_state(s, has_message, 2000);
	AgentSubState st = state_of(s);
	tap_ok(st.phase == AGENT_SUB_STREAMING && st.messages == 1 && st.rejected == 0 &&
		       st.last_message_at > 0,
	       "delegated: state streaming, 1 message, last_message_at set (phase %s)",
	       agent_sub_phase_to_string(st.phase));
	agent_sub_cancel(s);
	rec_done(&r);
}

static void t_rotation(void)
{
	Recorder r;
	AgentSub *s = NULL;
	rec_init(&r);
	sub_web(&r, &s);
	rec_wait(&r, 1, 10000);
	uint8_t *old = malloc(r.leaf_len + 1);
	size_t old_len = r.leaf_len;
	memcpy(old, r.leaf, old_len);

	uint64_t best = UINT64_MAX;
	bool all = true, changed = true;
	for (unsigned i = 0; i < 5; i++) {
		unsigned before = rec_updates(&r);
		uint64_t t0 = now_ns();
		int ret = da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL);
		if (ret < 0 || !rec_wait(&r, before + 1, 5000)) {
			all = false;
			break;
		}
		uint64_t dt = r.last_ns - t0;
		best = dt < best ? dt : best;
		pthread_mutex_lock(&r.lock);
		changed = changed && (r.leaf_len != old_len || memcmp(r.leaf, old, old_len) != 0);
		free(old);
		old = malloc(r.leaf_len + 1);
		old_len = r.leaf_len;
		memcpy(old, r.leaf, old_len);
		pthread_mutex_unlock(&r.lock);
	}
	tap_ok(all, "rotation: 5 control-triggered rotations each pushed to the callback");
	tap_ok(changed, "rotation: every push carries a new chain");
	/* "within milliseconds": generous for a loaded 2-core machine and sanitizers */
	tap_ok(all && best < 200000000ull, "rotation: push reaches the callback quickly (best %.2f ms)",
	       best / 1e6);
	free(old);
	agent_sub_cancel(s);
	rec_done(&r);
}

static bool is_streaming(const AgentSubState *st)
{
	return st->phase == AGENT_SUB_STREAMING;
}

static void t_no_match(void)
{
	Recorder r;
	AgentSub *s = NULL;
	AgentSelector sel[] = {{"k8s", "pod-uid:nobody"}, {"k8s", "ns:elsewhere"},
			       {"k8s", "sa:ghost"}};
	rec_init(&r);
	agent_subscribe_x509(adm, sel, ELEMENTSOF(sel), 0, rec_x509, &r, &s);
	bool got = rec_wait(&r, 1, 10000);
	tap_ok(got && r.n_svids == 0, "no match: an update with no SVIDs is delivered (n_svids=%zu)",
	       r.n_svids);
	msleep(600); /* an observation window: the stream must stay open through it */
	AgentSubState st = state_of(s);
	tap_ok(st.phase == AGENT_SUB_STREAMING && st.restarts == 0 && rec_updates(&r) == 1,
	       "no match: the stream stays open (phase %s, restarts %llu)",
	       agent_sub_phase_to_string(st.phase), (unsigned long long)st.restarts);
	/* A partial match (only one of the entry's selectors) matches nothing either. */
	Recorder r2;
	AgentSub *s2 = NULL;
	AgentSelector partial[] = {{"k8s", "pod-uid:web-uid"}};
	rec_init(&r2);
	agent_subscribe_x509(adm, partial, 1, 0, rec_x509, &r2, &s2);
	got = rec_wait(&r2, 1, 10000);
	tap_ok(got && r2.n_svids == 0,
	       "matching: a subset of the entry's selectors does not match (n_svids=%zu)",
	       r2.n_svids);
	/* The entry appears later: pushed on the open stream. */
	int ret = da_ctl(&da, NULL, "add-entry",
			 "entry", "spiffe://" TD "/late selectors=k8s:pod-uid:nobody,k8s:sa:ghost",
			 NULL);
	got = ret >= 0 && rec_wait(&r, 2, 10000);
	tap_ok(got && r.n_svids == 1 && strcmp(r.spiffe_id, "spiffe://" TD "/late") == 0,
	       "matching: an entry added later is pushed on the open stream (\"%s\")", r.spiffe_id);
	tap_ok(wait_state(s, is_streaming, 100) && state_of(s).restarts == 0,
	       "matching: still the same call");
	agent_sub_cancel(s);
	agent_sub_cancel(s2);
	rec_done(&r);
	rec_done(&r2);
}

static void t_bundles_and_jwt(void)
{
	Recorder rx, rj;
	AgentSub *sx = NULL, *sj = NULL;
	rec_init(&rx);
	rec_init(&rj);
	agent_subscribe_x509_bundles(adm, rec_bundles, &rx, &sx);
	agent_subscribe_jwt_bundles(adm, rec_bundles, &rj, &sj);
	bool got = rec_wait(&rx, 1, 10000);
	tap_ok(got && rx.n_bundles >= 1 && strcmp(rx.bundle_td, TD) == 0,
	       "delegated: X.509 bundles stream (%zu, first \"%s\")", rx.n_bundles, rx.bundle_td);
	got = rec_wait(&rj, 1, 10000);
	tap_ok(got && rj.n_bundles >= 1 && strcmp(rj.bundle_td, TD) == 0,
	       "delegated: JWT bundles stream (%zu, first \"%s\")", rj.n_bundles, rj.bundle_td);
	agent_sub_cancel(sx);
	agent_sub_cancel(sj);
	rec_done(&rx);
	rec_done(&rj);

	const char *aud[] = {"spiffe://" TD "/db", "other"};
	AgentJwt *j = NULL;
	size_t n = 0;
	int ret = agent_fetch_jwt(adm, web_sel, ELEMENTSOF(web_sel), 0, aud, 2, 5000, &j, &n);
	bool ok = ret == 0 && n == 1 && strcmp(j[0].spiffe_id, WEB_ID) == 0 &&
		  strchr(j[0].token, '.') && j[0].expires_at > (int64_t)time(NULL);
	tap_ok(ok, "delegated: FetchJWTSVIDs returns a token for the workload (r=%d n=%zu)", ret, n);
	agent_jwt_free(j, n);
	AgentSelector none[] = {{"k8s", "pod-uid:nobody-at-all"}};
	ret = agent_fetch_jwt(adm, none, 1, 0, aud, 1, 5000, &j, &n);
	tap_ok(ret == -EACCES, "delegated: FetchJWTSVIDs with no match is PermissionDenied (%d)",
	       ret);
}

/* ---- Workload API ---- */

static void t_workload(void)
{
	AgentConn *wl = NULL;
	Recorder r, rb, rj;
	AgentSub *s = NULL, *sb = NULL, *sj = NULL;
	rec_init(&r);
	rec_init(&rb);
	rec_init(&rj);
	tap_ok(conn_open(AGENT_API_WORKLOAD, da.workload, 0, &wl) == 0, "workload: connection");
	agent_subscribe_x509(wl, NULL, 0, 0, rec_x509, &r, &s);
	bool got = rec_wait(&r, 1, 10000);
	tap_ok(got && r.n_svids >= 1 && strncmp(r.spiffe_id, "spiffe://" TD "/", 21) == 0 &&
		       r.n_bundles >= 1,
	       "workload: FetchX509SVID delivers our own SVID with its bundle (\"%s\", %zu bundles)",
	       r.spiffe_id, r.n_bundles);
	agent_subscribe_x509_bundles(wl, rec_bundles, &rb, &sb);
	agent_subscribe_jwt_bundles(wl, rec_bundles, &rj, &sj);
	tap_ok(rec_wait(&rb, 1, 10000) && strcmp(rb.bundle_td, TD) == 0,
	       "workload: FetchX509Bundles");
	tap_ok(rec_wait(&rj, 1, 10000) && strcmp(rj.bundle_td, TD) == 0,
	       "workload: FetchJWTBundles");
	const char *aud[] = {"test-audience"};
	AgentJwt *j = NULL;
	size_t n = 0;
	int ret = agent_fetch_jwt(wl, NULL, 0, 0, aud, 1, 5000, &j, &n);
	tap_ok(ret == 0 && n >= 1 && j[0].expires_at > (int64_t)time(NULL) &&
		       j[0].issued_at > 0 && j[0].issued_at <= j[0].expires_at,
	       "workload: FetchJWTSVID returns a token with exp/iat from its payload (r=%d)", ret);
	agent_jwt_free(j, n);
	/* rotation on the Workload API */
	unsigned before = rec_updates(&r);
	da_ctl(&da, NULL, "rotate", NULL);
	tap_ok(rec_wait(&r, before + 1, 5000), "workload: rotation pushed");
	agent_sub_cancel(s);
	agent_sub_cancel(sb);
	agent_sub_cancel(sj);
	agent_conn_free(wl);
	rec_done(&r);
	rec_done(&rb);
	rec_done(&rj);
}

/* A raw call with or without the security header, straight through the C core. */
static grpc_status_code raw_fetch(const char *path, bool header)
{
	char *uri = da_uri(path);
	grpc_arg arg = {.type = GRPC_ARG_STRING,
			.key = (char *)GRPC_ARG_DEFAULT_AUTHORITY,
			.value.string = (char *)"localhost"};
	grpc_channel_args args = {.num_args = 1, .args = &arg};
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *ch = grpc_channel_create(uri, creds, &args);
	grpc_channel_credentials_release(creds);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_call *call = grpc_channel_create_call(
		ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
		grpc_slice_from_static_string("/SpiffeWorkloadAPI/FetchX509SVID"), NULL,
		gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(5000, GPR_TIMESPAN)),
		NULL);
	grpc_metadata md;
	memset(&md, 0, sizeof(md));
	md.key = grpc_slice_from_static_string("workload.spiffe.io");
	md.value = grpc_slice_from_static_string("true");
	grpc_slice empty = grpc_empty_slice();
	grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&empty, 1);
	grpc_metadata_array init_md, trail_md;
	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details;
	grpc_op ops[5];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = header ? 1 : 0;
	ops[0].data.send_initial_metadata.metadata = header ? &md : NULL;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = req;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[4].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[4].data.recv_status_on_client.trailing_metadata = &trail_md;
	ops[4].data.recv_status_on_client.status = &status;
	ops[4].data.recv_status_on_client.status_details = &details;
	int tag;
	if (grpc_call_start_batch(call, ops, 5, &tag, NULL) == GRPC_CALL_OK) {
		/* With the header, a stream stays open: cancel it after a moment. */
		grpc_event ev = grpc_completion_queue_pluck(
			cq, &tag,
			gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
				     gpr_time_from_millis(1000, GPR_TIMESPAN)),
			NULL);
		if (ev.type == GRPC_QUEUE_TIMEOUT) {
			grpc_call_cancel(call, NULL);
			grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME),
						    NULL);
		}
		grpc_slice_unref(details);
	}
	grpc_byte_buffer_destroy(req);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
		       .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	grpc_channel_destroy(ch);
	free(uri);
	return status;
}

static void t_security_header(void)
{
	grpc_status_code st = raw_fetch(da.workload, false);
	tap_ok(st == GRPC_STATUS_INVALID_ARGUMENT,
	       "workload: a call without the security header is InvalidArgument (%d)", st);
	st = raw_fetch(da.workload, true);
	tap_ok(st == GRPC_STATUS_CANCELLED,
	       "workload: the same call with the header streams until cancelled (%d)", st);
}

/* ---- stop vs retry ---- */

static bool is_stopped(const AgentSubState *st)
{
	return st->phase == AGENT_SUB_STOPPED;
}

static void t_stop_codes(void)
{
	/* Delegated methods on the Workload API socket: Unimplemented stops the subscription. */
	AgentConn *wrong = NULL;
	Recorder r;
	AgentSub *s = NULL;
	rec_init(&r);
	conn_open(AGENT_API_DELEGATED, da.workload, 0, &wrong);
	agent_subscribe_x509(wrong, web_sel, ELEMENTSOF(web_sel), 0, rec_x509, &r, &s);
	bool stopped = wait_state(s, is_stopped, 5000);
	AgentSubState st = state_of(s);
	tap_ok(stopped && st.last_grpc_status == GRPC_STATUS_UNIMPLEMENTED &&
		       strstr(st.last_error, "UNIMPLEMENTED"),
	       "Unimplemented stops the subscription and is reported (%d \"%s\")",
	       st.last_grpc_status, st.last_error);
	msleep(500); /* an observation window: no retry may start in it */
	st = state_of(s);
	tap_ok(st.phase == AGENT_SUB_STOPPED && st.restarts == 0, "a stopped subscription is not retried");
	agent_sub_cancel(s);
	agent_conn_free(wrong);

	/* The client never sends a request the agent calls invalid, so drive the stream machine
	 * with one through the internal API: both selectors and a pid. */
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509SVIDsRequest req =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_SVIDS_REQUEST__INIT;
	Spire__Api__Types__Selector one = SPIRE__API__TYPES__SELECTOR__INIT, *onep = &one;
	one.type = (char *)"k8s";
	one.value = (char *)"pod-uid:web-uid";
	req.n_selectors = 1;
	req.selectors = &onep;
	req.pid = 1;
	uint8_t *buf = NULL;
	size_t len = 0;
	stream_pack(&req.base, &buf, &len);
	AgentSub *s2 = NULL;
	stream_subscribe_x509(adm,
			      "/spire.api.agent.delegatedidentity.v1.DelegatedIdentity/"
			      "SubscribeToX509SVIDs",
			      buf, len, convert_delegated_x509, rec_x509, &r, &s2);
	stopped = wait_state(s2, is_stopped, 5000);
	st = state_of(s2);
	tap_ok(stopped && st.last_grpc_status == GRPC_STATUS_INVALID_ARGUMENT &&
		       strstr(st.last_error, "INVALID_ARGUMENT") && st.restarts == 0,
	       "InvalidArgument stops the subscription and is reported (%d \"%s\")",
	       st.last_grpc_status, st.last_error);
	agent_sub_cancel(s2);
	rec_done(&r);
}

static bool retried_twice(const AgentSubState *st)
{
	return st->restarts >= 2;
}

static void t_permission_denied(void)
{
	DevAgent other;
	AgentConn *c = NULL;
	Recorder r;
	AgentSub *s = NULL;
	const char *extra[] = {"--authorized-uid", "4242", "--entry",
			       WEB_ID " selectors=k8s:pod-uid:web-uid,k8s:ns:default", NULL};
	rec_init(&r);
	da_init(&other, da.bin);
	int ret = da_start(&other, extra);
	tap_ok(ret == 0, "second agent that authorizes only uid 4242 (r=%d)", ret);
	char *uri = da_uri(other.admin);
	AgentConnConfig cfg = {.address = uri,
			       .api = AGENT_API_DELEGATED,
			       .backoff_initial_ms = 50,
			       .backoff_max_ms = 200,
			       .name = "test-denied"};
	agent_conn_new(&cfg, &c);
	agent_subscribe_x509(c, web_sel, ELEMENTSOF(web_sel), 0, rec_x509, &r, &s);
	bool retried = wait_state(s, retried_twice, 5000);
	AgentSubState st = state_of(s);
	tap_ok(retried && st.phase != AGENT_SUB_STOPPED &&
		       st.last_grpc_status == GRPC_STATUS_PERMISSION_DENIED && rec_updates(&r) == 0,
	       "PermissionDenied for an unauthorized uid is retried (restarts %llu, status %d)",
	       (unsigned long long)st.restarts, st.last_grpc_status);
	agent_sub_cancel(s);
	agent_conn_free(c);
	free(uri);
	da_done(&other);
	rec_done(&r);
}

/* ---- faults ---- */

static void t_fault_close(void)
{
	Recorder r;
	AgentSub *s = NULL;
	rec_init(&r);
	sub_web(&r, &s);
	rec_wait(&r, 1, 10000);
	int ret = da_ctl(&da, NULL, "close-streams", NULL);
	bool got = ret >= 0 && rec_wait(&r, 2, 5000);
	AgentSubState st = state_of(s);
	tap_ok(got && st.restarts >= 1 && st.phase == AGENT_SUB_STREAMING && r.n_svids == 1,
	       "fault close-streams: re-opened and streaming again (restarts %llu)",
	       (unsigned long long)st.restarts);
	agent_sub_cancel(s);
	rec_done(&r);
}

static void t_fault_stall(void)
{
	Recorder r;
	AgentSub *s = NULL;
	rec_init(&r);
	sub_web(&r, &s);
	rec_wait(&r, 1, 10000);
	int ret = da_ctl(&da, NULL, "stall", "ms", "1500", NULL);
	uint64_t t0 = now_ns();
	da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL);
	msleep(500); /* an observation window: the client must not fail in it (stalled or not) */
	AgentSubState st = state_of(s);
	tap_ok(ret >= 0 && st.phase != AGENT_SUB_STOPPED,
	       "fault stall: the client waits without failing (phase %s)",
	       agent_sub_phase_to_string(st.phase));
	bool got = rec_wait(&r, 2, 10000);
	tap_ok(got && r.n_svids == 1, "fault stall: the update arrives once the stall ends (%.0f ms)",
	       (r.last_ns - t0) / 1e6);
	agent_sub_cancel(s);
	rec_done(&r);
}

static void t_fault_refuse(void)
{
	Recorder r;
	AgentSub *s = NULL;
	AgentConn *c = NULL;
	rec_init(&r);
	/* Refused until told otherwise: the 500 ms below always fall inside the refusal. */
	int ret = da_ctl(&da, NULL, "refuse", "ms", "60000", NULL);
	conn_open(AGENT_API_DELEGATED, da.admin, 0, &c);
	uint64_t t0 = now_ns();
	agent_subscribe_x509(c, web_sel, ELEMENTSOF(web_sel), 0, rec_x509, &r, &s);
	msleep(500); /* an observation window: nothing may arrive in it */
	AgentSubState st = state_of(s);
	tap_ok(ret >= 0 && rec_updates(&r) == 0 && st.phase != AGENT_SUB_STOPPED,
	       "fault refuse: a new connection waits (phase %s)",
	       agent_sub_phase_to_string(st.phase));
	da_ctl(&da, NULL, "refuse", "ms", "0", NULL);
	bool got = rec_wait(&r, 1, 15000);
	tap_ok(got && r.n_svids == 1, "fault refuse: connected once accepted again (%.0f ms)",
	       (r.last_ns - t0) / 1e6);
	agent_sub_cancel(s);
	agent_conn_free(c);
	rec_done(&r);
}

static bool rejected_one(const AgentSubState *st)
{
	return st->rejected >= 1;
}

static void t_fault_malformed(void)
{
	Recorder r;
	AgentSub *s = NULL;
	rec_init(&r);
	sub_web(&r, &s);
	rec_wait(&r, 1, 10000);
	size_t len = r.leaf_len;
	int ret = da_ctl(&da, NULL, "malformed", NULL);
	bool rej = ret >= 0 && wait_state(s, rejected_one, 5000);
	msleep(200); /* an observation window: no callback may follow the rejection */
	AgentSubState st = state_of(s);
	tap_ok(rej && rec_updates(&r) == 1 && r.leaf_len == len && st.phase == AGENT_SUB_STREAMING,
	       "fault malformed: rejected and counted, no callback, stream kept (rejected %llu)",
	       (unsigned long long)st.rejected);
	unsigned before = rec_updates(&r);
	da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL);
	tap_ok(rec_wait(&r, before + 1, 5000), "fault malformed: the next good message is delivered");
	agent_sub_cancel(s);
	rec_done(&r);
}

static bool ended_exhausted(const AgentSubState *st)
{
	return st->last_grpc_status == GRPC_STATUS_RESOURCE_EXHAUSTED;
}

static void t_fault_oversize(void)
{
	Recorder r;
	AgentSub *s = NULL;
	AgentConn *c = NULL;
	rec_init(&r);
	conn_open(AGENT_API_DELEGATED, da.admin, 1 << 20, &c); /* 1 MiB limit */
	agent_subscribe_x509(c, web_sel, ELEMENTSOF(web_sel), 0, rec_x509, &r, &s);
	rec_wait(&r, 1, 10000);
	int ret = da_ctl(&da, NULL, "oversize", "bytes", "2097152", NULL);
	bool ended = ret >= 0 && wait_state(s, ended_exhausted, 5000);
	tap_ok(ended, "fault oversize: the call ends with RESOURCE_EXHAUSTED (\"%s\")",
	       state_of(s).last_error);
	bool got = rec_wait(&r, 2, 5000);
	AgentSubState st = state_of(s);
	tap_ok(got && st.restarts >= 1 && st.phase == AGENT_SUB_STREAMING,
	       "fault oversize: retried and streaming again");
	agent_sub_cancel(s);
	agent_conn_free(c);
	rec_done(&r);
}

static bool not_streaming(const AgentSubState *st)
{
	return st->phase != AGENT_SUB_STREAMING;
}

static void t_fault_restart(void)
{
	Recorder r;
	AgentSub *s = NULL;
	rec_init(&r);
	sub_web(&r, &s);
	rec_wait(&r, 1, 10000);
	int ret = da_ctl(&da, NULL, "restart", "ms", "700", NULL);
	/* Seen down by the client (not a fixed wait): still only the first update. */
	bool down = ret >= 0 && wait_state(s, not_streaming, 5000);
	unsigned during = rec_updates(&r);
	bool got = ret >= 0 && rec_wait(&r, 2, 10000);
	tap_ok(down && during == 1 && got && r.n_svids == 1,
	       "fault restart: no update while down, streaming again after");
	agent_sub_cancel(s);
	rec_done(&r);
}


static void t_agent_restart(const char *const *extra)
{
	Recorder r;
	AgentSub *s = NULL;
	rec_init(&r);
	sub_web(&r, &s);
	rec_wait(&r, 1, 10000);
	da_kill(&da);
	bool down = wait_state(s, not_streaming, 5000);
	msleep(700); /* an observation window: the agent is dead, the last state must stay */
	AgentSubState st = state_of(s);
	tap_ok(down && rec_updates(&r) == 1 && st.messages == 1 && st.last_message_at > 0,
	       "agent killed: the client keeps its last state and says so (phase %s, \"%s\")",
	       agent_sub_phase_to_string(st.phase), st.last_error);
	int ret = da_start(&da, extra);
	bool got = ret == 0 && rec_wait(&r, 2, 15000);
	st = state_of(s);
	tap_ok(got && r.n_svids == 1 && st.phase == AGENT_SUB_STREAMING,
	       "agent restarted: the same subscription streams again (restarts %llu)",
	       (unsigned long long)st.restarts);
	agent_sub_cancel(s);
	rec_done(&r);
}

/* ---- cancellation ---- */

typedef struct CancelArg {
	AgentSub *s;
	volatile bool returned;
} CancelArg;

static void *cancel_thread(void *p)
{
	CancelArg *a = p;
	agent_sub_cancel(a->s);
	a->returned = true;
	return NULL;
}

static void t_cancel(void)
{
	Recorder r;
	AgentSub *s = NULL;
	rec_init(&r);
	sub_web(&r, &s);
	rec_wait(&r, 1, 10000);
	/* Block the next callback, cancel from another thread: cancel must wait for it. */
	pthread_mutex_lock(&r.lock);
	r.block = true;
	pthread_mutex_unlock(&r.lock);
	da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL);
	/* Wait (bounded) until the rotation's callback is running and blocked. */
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&r.lock);
		unsigned blocked = r.blocked;
		pthread_mutex_unlock(&r.lock);
		if (blocked)
			break;
		msleep(10);
	}
	CancelArg a = {.s = s};
	pthread_t t;
	pthread_create(&t, NULL, cancel_thread, &a);
	msleep(300); /* an observation window: cancel must not return while the callback runs */
	bool waited = !a.returned;
	pthread_mutex_lock(&r.lock);
	r.block = false;
	pthread_cond_broadcast(&r.cond);
	pthread_mutex_unlock(&r.lock);
	pthread_join(t, NULL);
	unsigned after = rec_updates(&r);
	da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL);
	msleep(300); /* an observation window: no callback after cancel returned */
	tap_ok(waited && a.returned && rec_updates(&r) == after,
	       "cancel waits for a running callback, and no callback runs after it returns");

	/* Cancel from inside the callback. */
	Recorder r2;
	AgentSub *s2 = NULL;
	rec_init(&r2);
	sub_web(&r2, &s2);
	rec_wait(&r2, 1, 10000);
	pthread_mutex_lock(&r2.lock);
	r2.cancel_me = s2;
	pthread_mutex_unlock(&r2.lock);
	da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL);
	bool got = rec_wait(&r2, 2, 5000);
	da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL);
	msleep(300); /* an observation window: no callback after the cancel */
	tap_ok(got && rec_updates(&r2) == 2, "cancel from inside the callback: no further callbacks");
	rec_done(&r);
	rec_done(&r2);
}

/* ---- scale ---- */

#define N_SUBS 1000

static unsigned counts[N_SUBS];

static void count_x509(void *userdata, const SvidX509Update *u)
{
	unsigned *c = userdata;
	if (u->n_svids == 1)
		__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

static bool all_at_least(unsigned n, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		size_t i = 0;
		while (i < N_SUBS && __atomic_load_n(&counts[i], __ATOMIC_RELAXED) >= n)
			i++;
		if (i == N_SUBS)
			return true;
		msleep(20);
	}
	return false;
}

static void t_thousand(void)
{
	static AgentSub *subs[N_SUBS];
	AgentConn *c = NULL;
	int fails = 0;
	conn_open(AGENT_API_DELEGATED, da.admin, 0, &c);
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < N_SUBS; i++)
		if (agent_subscribe_x509(c, web_sel, ELEMENTSOF(web_sel), 0, count_x509, &counts[i],
					 &subs[i]) < 0)
			fails++;
	bool first = fails == 0 && all_at_least(1, 60000);
	tap_ok(first, "1000 subscriptions on one connection all get their first message (%.0f ms)",
	       (now_ns() - t0) / 1e6);
	t0 = now_ns();
	da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL);
	bool rot = all_at_least(2, 30000);
	tap_ok(rot, "1000 subscriptions: one rotation reaches all of them (%.0f ms)",
	       (now_ns() - t0) / 1e6);
	for (size_t i = 0; i < N_SUBS; i++)
		agent_sub_cancel(subs[i]);
	agent_conn_free(c);
}

static void noop_x509(void *userdata, const SvidX509Update *u)
{
	(void)userdata;
	(void)u;
}

static void t_churn(void)
{
	AgentConn *c = NULL;
	conn_open(AGENT_API_DELEGATED, da.admin, 0, &c);
	uint64_t t0 = now_ns();
	int fails = 0;
	for (int i = 0; i < 10000; i++) {
		AgentSub *s = NULL;
		if (agent_subscribe_x509(c, web_sel, ELEMENTSOF(web_sel), 0, noop_x509, NULL, &s) <
		    0) {
			fails++;
			continue;
		}
		if (i % 100 == 0)
			msleep(2); /* sometimes let the stream get going */
		agent_sub_cancel(s);
	}
	tap_ok(fails == 0, "10,000 subscribe/cancel cycles (%.0f ms)", (now_ns() - t0) / 1e6);
	Recorder r;
	AgentSub *s = NULL;
	rec_init(&r);
	agent_subscribe_x509(c, web_sel, ELEMENTSOF(web_sel), 0, rec_x509, &r, &s);
	tap_ok(rec_wait(&r, 1, 10000), "after the churn the connection still works");
	agent_sub_cancel(s);
	agent_conn_free(c);
	rec_done(&r);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SVIDFS-DEVAGENT\n", argv[0]);
		return 2;
	}
	log_set_max_level(getenv("AGENT_TEST_DEBUG") ? LOG_DEBUG : LOG_WARNING);
	char uid_sel[64];
	snprintf(uid_sel, sizeof(uid_sel), "spiffe://" TD "/self selector=unix:uid:%u", getuid());
	const char *extra[] = {
		"--entry", WEB_ID " selectors=k8s:pod-uid:web-uid,k8s:ns:default,k8s:sa:web hint=web",
		"--entry", uid_sel,
		NULL,
	};
	int r = da_init(&da, argv[1]);
	if (r >= 0)
		r = da_start(&da, extra);
	tap_ok(r == 0, "development agent started (%s)", r < 0 ? strerror(-r) : "ok");
	if (r < 0) {
		da_done(&da);
		return tap_done();
	}
	r = conn_open(AGENT_API_DELEGATED, da.admin, 0, &adm);
	tap_ok(r == 0, "delegated connection");
	if (r < 0) {
		da_done(&da);
		return tap_done();
	}

	t_first_message();
	t_rotation();
	t_no_match();
	t_bundles_and_jwt();
	t_workload();
	t_security_header();
	t_stop_codes();
	t_permission_denied();
	t_fault_close();
	t_fault_stall();
	t_fault_refuse();
	t_fault_malformed();
	t_fault_oversize();
	t_fault_restart();
	t_agent_restart(extra);
	t_cancel();
	t_thousand();
	t_churn();

	agent_conn_free(adm);
	da_done(&da);
	return tap_done();
}
