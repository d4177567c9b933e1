/* SPDX-License-Identifier: Apache-2.0 */
/* stream.h: the glue shared by workload.c and delegated.c between a received message and the
 * user's callback (decode with convert, call, release), plus request packing. Owns the callback
 * contexts it allocates (grpc_conn frees them with the subscription). No gRPC here. Handlers run
 * on the connection's thread. */
#pragma once

#include <protobuf-c/protobuf-c.h>

#include "agent.h"
#include "convert.h"
#include "grpc_conn.h"

typedef int (*StreamX509Convert)(const uint8_t *buf, size_t len, ConvertX509 **ret, char *why,
				 size_t why_len);
typedef int (*StreamBundlesConvert)(const uint8_t *buf, size_t len, ConvertBundles **ret,
				    char *why, size_t why_len);

/* Packs m into a malloc'ed buffer (at least one byte allocated, even for an empty message). */
int stream_pack(const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len);

/* Subscribes with a handler that converts each message and calls fn. Takes request. */
int stream_subscribe_x509(AgentConn *c, const char *method, uint8_t *request, size_t request_len,
			  StreamX509Convert convert, AgentX509Fn fn, void *userdata,
			  AgentSub **ret);
int stream_subscribe_bundles(AgentConn *c, const char *method, const ProtobufCMessage *request,
			     StreamBundlesConvert convert, AgentBundlesFn fn, void *userdata,
			     AgentSub **ret);
