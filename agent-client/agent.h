/* SPDX-License-Identifier: Apache-2.0 */
/* agent.h: clients for the SPIRE agent's two APIs (SPIFFE Workload API, SPIRE Delegated Identity
 * API) on the gRPC C core. An AgentConn owns one channel and one completion-queue thread that
 * multiplexes all its streams; an AgentSub is one server stream, re-opened with backoff until
 * cancelled. Owns no identity state: decoded, shape-checked full snapshots go to callbacks, which
 * run on the connection's thread and must not block. Any thread may call these functions. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svid_types.h"

typedef struct AgentConn AgentConn;
typedef struct AgentSub AgentSub;

typedef enum AgentApi {
	AGENT_API_DELEGATED, /* admin socket: /spire.api.agent.delegatedidentity.v1.DelegatedIdentity */
	AGENT_API_WORKLOAD,  /* workload socket: /SpiffeWorkloadAPI, the caller's own identity */
	_AGENT_API_MAX,
} AgentApi;

typedef struct AgentConnConfig {
	const char *address;   /* "unix:///abs/path"; NULL: $SPIFFE_ENDPOINT_SOCKET */
	AgentApi api;
	size_t max_recv_bytes; /* 0: 16 MiB */
	unsigned backoff_initial_ms, backoff_max_ms; /* 0: 250 ms, 30 s */
	const char *name;      /* for log lines ("child-01"); NULL: the address */
} AgentConnConfig;

/* Validates the address (unix:///absolute only; a clear -EINVAL otherwise) and starts the
 * connection's thread. Does not wait for the agent: streams connect when it is there. */
int agent_conn_new(const AgentConnConfig *cfg, AgentConn **ret);
/* Cancels every stream, waits until no callback runs, frees everything. NULL-safe. */
AgentConn *agent_conn_free(AgentConn *c);
int agent_address_parse(const char *uri, char **ret_path); /* "unix:///x" -> "/x"; -EINVAL */

typedef struct AgentSelector {
	const char *type;  /* "k8s" */
	const char *value; /* "pod-uid:1234" */
} AgentSelector;

typedef void (*AgentX509Fn)(void *userdata, const SvidX509Update *u);
typedef void (*AgentBundlesFn)(void *userdata, const SvidBundleInput *b, size_t n);

/* SVID stream. Delegated: by selectors (n_selectors > 0) or by pid (> 0), exactly one. Workload
 * API: selectors and pid must be empty/0. Every accepted message reaches fn as a full snapshot
 * (possibly with no SVIDs, which the Delegated API sends when nothing matches yet). */
int agent_subscribe_x509(AgentConn *c, const AgentSelector *sel, size_t n_sel, int32_t pid,
			 AgentX509Fn fn, void *userdata, AgentSub **ret);
int agent_subscribe_x509_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata, AgentSub **ret);
int agent_subscribe_jwt_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata, AgentSub **ret);

/* Stops the stream and frees it. When it returns, fn is not running and will not run again
 * (unless called from fn itself, in which case the stream is freed after fn returns). NULL-safe. */
void agent_sub_cancel(AgentSub *s);

typedef enum AgentSubPhase {
	AGENT_SUB_CONNECTING, /* call started, no message yet */
	AGENT_SUB_STREAMING,  /* at least one message on this call */
	AGENT_SUB_BACKOFF,    /* call ended, waiting to retry */
	AGENT_SUB_STOPPED,    /* InvalidArgument/Unimplemented: no retry */
	_AGENT_SUB_PHASE_MAX,
} AgentSubPhase;

typedef struct AgentSubState {
	AgentSubPhase phase;
	int64_t last_message_at; /* Unix seconds, 0 if never */
	uint64_t messages;       /* accepted messages */
	uint64_t rejected;       /* messages that failed to decode or check */
	uint64_t restarts;       /* calls re-opened */
	int last_grpc_status;    /* of the last ended call, 0 if none */
	char last_error[256];    /* "" if none */
} AgentSubState;

int agent_sub_get_state(AgentSub *s, AgentSubState *ret);
const char *agent_sub_phase_to_string(AgentSubPhase p);

/* Unary JWT-SVID fetch (Delegated FetchJWTSVIDs by selectors or pid; Workload FetchJWTSVID).
 * Blocks up to timeout_ms. On success *ret holds n tokens; free with agent_jwt_free(). gRPC
 * errors map to errno: PermissionDenied -EACCES, InvalidArgument -EINVAL, Unavailable
 * -EAGAIN, DeadlineExceeded -ETIMEDOUT, others -EIO. */
typedef struct AgentJwt {
	char *spiffe_id, *hint;
	char *token; /* in the secure heap (common/secret.h) */
	int64_t expires_at, issued_at;
} AgentJwt;
int agent_fetch_jwt(AgentConn *c, const AgentSelector *sel, size_t n_sel, int32_t pid,
		    const char *const *audiences, size_t n_aud, int timeout_ms, AgentJwt **ret,
		    size_t *ret_n);
void agent_jwt_free(AgentJwt *j, size_t n); /* wipes the tokens */
