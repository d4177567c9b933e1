/* SPDX-License-Identifier: Apache-2.0 */
/* convert.h: decodes the agent APIs' protobuf messages and checks their shape, producing the
 * borrowed views of svid_types.h (and AgentJwt arrays). Owns each decoded message until its
 * _free, which wipes every key byte and token first. Pure: no gRPC, no I/O, no logging; any
 * thread, one object per thread. A rejected message yields a negative errno and a one-line
 * reason (never containing key material) in why[]:
 *   -EBADMSG  the bytes are not a protobuf of the expected type
 *   -EINVAL   a required field is missing or malformed (empty Workload API svids list, a chain
 *             or bundle that is not concatenated DER certificates, a bad trust domain, ...) */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "cleanup.h"
#include "svid_types.h"

#define CONVERT_MAX_HINT 1024 /* a longer hint is rejected */

typedef struct ConvertX509 ConvertX509;
typedef struct ConvertBundles ConvertBundles;

/* X509SVIDResponse (Workload API): at least one SVID; bundles = each SVID's own trust domain's
 * bundle followed by the federated bundles; federates_with = the federated trust domains. A later
 * SVID whose non-empty hint repeats an earlier one is dropped (as go-spiffe does). */
int convert_workload_x509(const uint8_t *buf, size_t len, ConvertX509 **ret, char *why,
			  size_t why_len);
/* SubscribeToX509SVIDsResponse (Delegated API): an empty list is valid (nothing matches yet).
 * cert_chain elements are concatenated into one DER buffer; spiffe_id is "spiffe://" +
 * trust_domain + path; federates_with loses its "spiffe://" prefix. */
int convert_delegated_x509(const uint8_t *buf, size_t len, ConvertX509 **ret, char *why,
			   size_t why_len);
const SvidX509Update *convert_x509_update(const ConvertX509 *x);
ConvertX509 *convert_x509_free(ConvertX509 *x); /* NULL-safe; wipes keys; returns NULL */
DEFINE_CLEANUP_FUNC(ConvertX509, convert_x509_free)

/* Bundle maps ("spiffe://td" -> bytes, the key's scheme stripped). X.509 values must be
 * concatenated DER certificates, JWT values non-empty JWKS. The map must not be empty (the agent
 * always sends at least its own trust domain). */
int convert_workload_x509_bundles(const uint8_t *buf, size_t len, ConvertBundles **ret, char *why,
				  size_t why_len);
int convert_workload_jwt_bundles(const uint8_t *buf, size_t len, ConvertBundles **ret, char *why,
				 size_t why_len);
int convert_delegated_x509_bundles(const uint8_t *buf, size_t len, ConvertBundles **ret,
				   char *why, size_t why_len);
int convert_delegated_jwt_bundles(const uint8_t *buf, size_t len, ConvertBundles **ret, char *why,
				  size_t why_len);
const SvidBundleInput *convert_bundles_get(const ConvertBundles *b, size_t *ret_n);
ConvertBundles *convert_bundles_free(ConvertBundles *b); /* NULL-safe, returns NULL */
DEFINE_CLEANUP_FUNC(ConvertBundles, convert_bundles_free)

/* JWTSVIDResponse (Workload API; expiry and issue time read from the token's payload, 0 when
 * absent) and FetchJWTSVIDsResponse (Delegated API). *ret is freed with agent_jwt_free(). */
int convert_workload_jwt(const uint8_t *buf, size_t len, AgentJwt **ret, size_t *ret_n, char *why,
			 size_t why_len);
int convert_delegated_jwt(const uint8_t *buf, size_t len, AgentJwt **ret, size_t *ret_n, char *why,
			  size_t why_len);

/* Request checks shared by the Delegated API calls: exactly one of selectors (non-empty) or
 * pid (> 0); every selector has a type without ':' and a value, as SPIRE requires. */
int convert_check_selectors(const AgentSelector *sel, size_t n_sel, int32_t pid, char *why,
			    size_t why_len);
/* "example.org" is a valid trust domain name: [a-z0-9._-], 1..255 bytes, not "." or "..". */
bool convert_trust_domain_is_valid(const char *td);
/* Reads "exp" and "iat" (top-level numbers of the JWT payload); 0 for a missing claim.
 * -EINVAL if the token is not three base64url parts with a JSON object payload. */
int convert_jwt_times(const char *token, int64_t *ret_exp, int64_t *ret_iat);
