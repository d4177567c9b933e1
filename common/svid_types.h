/* SPDX-License-Identifier: Apache-2.0 */
/* svid_types.h: plain, borrowed views of identity updates as the agent streams deliver them.
 * Owns nothing: agent-client fills these from decoded protobufs and hands them to a callback; the
 * store copies what it keeps (keys into secret memory). Same shape for both agent APIs. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct SvidX509Input {
	const char *spiffe_id;   /* as sent by the agent; the store checks it against the leaf */
	const uint8_t *chain;    /* DER certificates concatenated, leaf first */
	size_t chain_len;
	const uint8_t *key;      /* unencrypted PKCS#8 DER (secret) */
	size_t key_len;
	const char *hint;        /* may be NULL or "" */
	int64_t expires_at;      /* Unix seconds as sent (Delegated API), 0 if unknown */
} SvidX509Input;

/* A trust domain's bundle: X.509 DER certs concatenated, or JWKS JSON. */
typedef struct SvidBundleInput {
	const char *trust_domain; /* "example.org" (no scheme); converters strip "spiffe://" */
	const uint8_t *data;
	size_t len;
} SvidBundleInput;

/* One full-snapshot X.509-SVID update for one workload. */
typedef struct SvidX509Update {
	const SvidX509Input *svids;
	size_t n_svids;
	const char *const *federates_with; /* trust domain names, no scheme */
	size_t n_federates_with;
	/* Workload API only: bundles that came with the SVIDs (own + federated); NULL otherwise. */
	const SvidBundleInput *bundles;
	size_t n_bundles;
} SvidX509Update;

typedef struct SvidJwtInput {
	const char *spiffe_id;
	const char *token; /* secret-ish: never logged */
	const char *hint;
	int64_t expires_at;
	int64_t issued_at;
} SvidJwtInput;
