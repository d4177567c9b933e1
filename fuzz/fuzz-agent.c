// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: the agent message path. Byte 0 picks the message type, the rest is the protobuf
 * as it arrives on the gRPC stream; it goes through agent-client/convert.c (protobuf-c decode and
 * shape checks) into the store (fs/store.c, which validates each X.509-SVID with fs/x509check.c
 * and keeps the last good state), and the workload's status.json and key file are rendered, as
 * the daemon's agent callbacks and FUSE reads do. The store lives across inputs, like the
 * daemon's: bundles from one message meet SVIDs of a later one. docs/fuzzing.md. */
#include <stdint.h>
#include <stdlib.h>

#include "convert.h"
#include "render.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	MSG_WORKLOAD_X509,       /* X509SVIDResponse */
	MSG_DELEGATED_X509,      /* SubscribeToX509SVIDsResponse */
	MSG_WORKLOAD_X509_BUNDLES, /* X509BundlesResponse */
	MSG_WORKLOAD_JWT_BUNDLES,  /* JWTBundlesResponse */
	MSG_DELEGATED_X509_BUNDLES, /* SubscribeToX509BundlesResponse */
	MSG_DELEGATED_JWT_BUNDLES,  /* SubscribeToJWTBundlesResponse */
	MSG_WORKLOAD_JWT,        /* JWTSVIDResponse */
	MSG_DELEGATED_JWT,       /* FetchJWTSVIDsResponse */
	_MSG_MAX,
};

/* A fixed clock keeps a replay deterministic (Tue Nov 14 2023). */
#define NOW 1700000000

/* The daemon's names: a pod served by a Delegated API agent, self/ by the Workload API. */
#define POD "pods/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define POD_AGENT "child-01"
#define SELF "self"
#define SELF_AGENT "workload-api"

static SvidStore *store_get(void)
{
	static SvidStore *store;

	if (!store) {
		uint32_t slot;
		if (svid_store_new(1, &store) < 0 || svid_store_add(store, POD, &slot) < 0 ||
		    svid_store_add(store, SELF, &slot) < 0)
			abort();
	}
	return store;
}

/* What a reader of the workload's directory gets first: status.json (agent-controlled text:
 * hints, rejection reasons) and the key file. The other files are the same PEM encoder over
 * bytes the store already validated; rendering them all cost a fifth of the target's speed. */
static void render(SvidStore *store, const char *name)
{
	SvidSet *set = NULL;
	SvidBlob *b = NULL;

	if (svid_store_get(store, name, &set) < 0)
		abort(); /* the workloads are never removed */
	if (svid_render_status(set, &(SvidStatusExtra){.agent = "a", .now = NOW}, &b) == 0)
		b = svid_blob_unref(b);
	if (svid_render(set, 0, SVID_FILE_CREDENTIAL_BUNDLE, NULL, &b) == 0)
		b = svid_blob_unref(b);
	svid_set_unref(set);
}

static void on_x509(SvidStore *store, bool delegated, const uint8_t *data, size_t size)
{
	const char *name = delegated ? POD : SELF;
	ConvertX509 *cv = NULL;
	char why[256];
	int r;

	r = (delegated ? convert_delegated_x509 : convert_workload_x509)(data, size, &cv, why,
									 sizeof why);
	if (r < 0)
		return;
	(void)svid_store_update_x509(store, name, delegated ? POD_AGENT : SELF_AGENT,
				     convert_x509_update(cv), NOW);
	convert_x509_free(cv);
	render(store, name);
}

static void on_bundles(SvidStore *store, int type, const uint8_t *data, size_t size)
{
	static int (*const convert[])(const uint8_t *, size_t, ConvertBundles **, char *,
				      size_t) = {
		[MSG_WORKLOAD_X509_BUNDLES] = convert_workload_x509_bundles,
		[MSG_WORKLOAD_JWT_BUNDLES] = convert_workload_jwt_bundles,
		[MSG_DELEGATED_X509_BUNDLES] = convert_delegated_x509_bundles,
		[MSG_DELEGATED_JWT_BUNDLES] = convert_delegated_jwt_bundles,
	};
	bool x509 = type == MSG_WORKLOAD_X509_BUNDLES || type == MSG_DELEGATED_X509_BUNDLES;
	const char *source = type < MSG_DELEGATED_X509_BUNDLES ? SELF_AGENT : POD_AGENT;
	ConvertBundles *cv = NULL;
	const SvidBundleInput *b;
	char why[256];
	size_t n;

	if (convert[type](data, size, &cv, why, sizeof why) < 0)
		return;
	b = convert_bundles_get(cv, &n);
	if (x509)
		(void)svid_store_set_x509_bundles(store, source, b, n, NOW);
	else
		(void)svid_store_set_jwt_bundles(store, source, b, n, NOW);
	convert_bundles_free(cv);
	render(store, type < MSG_DELEGATED_X509_BUNDLES ? SELF : POD);
}

static void on_jwt(SvidStore *store, bool delegated, const uint8_t *data, size_t size)
{
	const char *name = delegated ? POD : SELF;
	AgentJwt *j = NULL;
	SvidBlob *tok = NULL;
	char why[256];
	size_t n;

	if ((delegated ? convert_delegated_jwt : convert_workload_jwt)(data, size, &j, &n, why,
									sizeof why) < 0)
		return;
	/* The daemon caches the first token for the audience it asked for. */
	if (n > 0) {
		SvidJwtInput in = {.spiffe_id = j[0].spiffe_id,
				   .token = j[0].token,
				   .hint = j[0].hint,
				   .expires_at = j[0].expires_at,
				   .issued_at = j[0].issued_at};
		if (svid_store_put_jwt(store, name, "spiffe://example.org/db", &in) == 0 &&
		    svid_store_get_jwt(store, name, "spiffe://example.org/db", NOW, &tok, NULL,
				       NULL) == 0)
			svid_blob_unref(tok);
	}
	agent_jwt_free(j, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	SvidStore *store = store_get();

	if (size < 1)
		return 0;
	int type = data[0] % _MSG_MAX;
	data++, size--;
	switch (type) {
	case MSG_WORKLOAD_X509:
	case MSG_DELEGATED_X509:
		on_x509(store, type == MSG_DELEGATED_X509, data, size);
		break;
	case MSG_WORKLOAD_JWT:
	case MSG_DELEGATED_JWT:
		on_jwt(store, type == MSG_DELEGATED_JWT, data, size);
		break;
	default:
		on_bundles(store, type, data, size);
	}
	return 0;
}
