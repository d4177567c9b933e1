/* SPDX-License-Identifier: Apache-2.0 */
/* render.h: pure functions from one SvidSet to the bytes of one file. Owns nothing; output is a
 * new blob produced in one piece (secret blobs for anything holding a key). Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "blob.h"
#include "store.h"

typedef enum SvidFileKind {
	SVID_FILE_CREDENTIAL_BUNDLE, /* PKCS#8 "PRIVATE KEY" PEM, then leaf, then intermediates */
	SVID_FILE_CERT_CHAIN,        /* leaf + intermediates PEM */
	SVID_FILE_KEY,               /* PKCS#8 "PRIVATE KEY" PEM */
	SVID_FILE_TRUST_BUNDLE,      /* arg = trust domain: its CA certificates, PEM */
	SVID_FILE_BUNDLE,            /* the SVID's own trust domain's CA certificates, PEM */
	SVID_FILE_BUNDLE_FEDERATED,  /* own trust domain then every federated one, PEM */
	SVID_FILE_JWT_BUNDLE,        /* arg = trust domain: JWKS JSON as the agent sent it */
	_SVID_FILE_KIND_MAX,
} SvidFileKind;

/* svid_index selects the SVID (0 = default). -ENOENT when the index or trust domain is absent. */
int svid_render(const SvidSet *set, size_t svid_index, SvidFileKind kind, const char *arg,
		SvidBlob **ret);

/* Daemon facts that status.json reports next to the store's; any field may be NULL/0. */
typedef struct SvidStatusExtra {
	const char *agent;        /* agent currently serving the workload */
	const char *stream_state; /* "connected", "connecting", "failed: <why>" ... */
	int64_t last_message_at;  /* last message on the SVID stream */
	int64_t now;
} SvidStatusExtra;

/* status.json: SPIFFE IDs, hints, serials, validity, generation, updates and rejections, stream
 * state and staleness. Never any key material. */
int svid_render_status(const SvidSet *set, const SvidStatusExtra *extra, SvidBlob **ret);
