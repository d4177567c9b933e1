/* SPDX-License-Identifier: Apache-2.0 */
/* grpc_conn.h: the gRPC half of agent.h. An AgentConn owns one channel, one completion queue and
 * the thread that drains it; every AgentSub is one server stream run by a generic state machine
 * there (start, receive, status, backoff timer, cancel handshake). workload.c and delegated.c
 * give it a method, a packed request and a message handler. The one place where gRPC status
 * codes become errnos. Any thread may call these. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

/* Decodes one message and hands it to the user's callback. Returns 0 when accepted, or a negative
 * errno with a one-line reason (no key material) in why[] when the message is rejected. Runs on
 * the connection's thread, never concurrently for the same subscription. */
typedef int (*GrpcMessageFn)(void *ctx, const uint8_t *buf, size_t len, char *why,
			     size_t why_len);

/* Starts a server stream on method (a static string such as "/SpiffeWorkloadAPI/FetchX509SVID").
 * Takes ownership of request (malloc'ed) and ctx (released with free()), also on failure.
 * secret: the messages may carry keys, so fn gets them in secure memory (common/secret.h),
 * copied straight from gRPC's slices, which are wiped; the buffer is wiped after fn returns. */
int grpc_conn_subscribe(AgentConn *c, const char *method, uint8_t *request, size_t request_len,
			bool secret, GrpcMessageFn fn, void *ctx, AgentSub **ret);

/* One unary call, blocking up to timeout_ms. On success *ret is a copy of the response in
 * secure memory (it holds tokens: release it with grpc_conn_response_free). Errors: see
 * grpc_status_to_errno; the failure is logged once here. */
int grpc_conn_unary(AgentConn *c, const char *method, const uint8_t *request, size_t request_len,
		    int timeout_ms, uint8_t **ret, size_t *ret_len);
void grpc_conn_response_free(uint8_t *p, size_t len); /* wipes, then frees; NULL-safe */

AgentApi grpc_conn_api(const AgentConn *c);
const char *grpc_conn_name(const AgentConn *c);

/* PermissionDenied -EACCES, InvalidArgument -EINVAL, Unavailable -EAGAIN, DeadlineExceeded
 * -ETIMEDOUT, OK 0, any other code -EIO (the agent.h contract). */
int grpc_status_to_errno(int code);
const char *grpc_status_to_string(int code); /* "UNAVAILABLE", or "UNKNOWN(n)"-less "UNKNOWN" */
/* InvalidArgument and Unimplemented end a subscription; everything else is retried. */
bool grpc_status_is_fatal(int code);
