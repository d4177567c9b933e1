// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "stream.h"

typedef struct X509Ctx {
	StreamX509Convert convert;
	AgentX509Fn fn;
	void *userdata;
} X509Ctx;

typedef struct BundlesCtx {
	StreamBundlesConvert convert;
	AgentBundlesFn fn;
	void *userdata;
} BundlesCtx;

int stream_pack(const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(m, buf);
	*ret = buf;
	*ret_len = n;
	return 0;
}

static int x509_on_message(void *ctx, const uint8_t *buf, size_t len, char *why, size_t why_len)
{
	X509Ctx *x = ctx;
	_cleanup_(convert_x509_freep) ConvertX509 *cv = NULL;
	int r = x->convert(buf, len, &cv, why, why_len);
	if (r < 0)
		return r;
	x->fn(x->userdata, convert_x509_update(cv));
	return 0;
}

static int bundles_on_message(void *ctx, const uint8_t *buf, size_t len, char *why,
			      size_t why_len)
{
	BundlesCtx *b = ctx;
	_cleanup_(convert_bundles_freep) ConvertBundles *cv = NULL;
	size_t n;
	int r = b->convert(buf, len, &cv, why, why_len);
	if (r < 0)
		return r;
	const SvidBundleInput *in = convert_bundles_get(cv, &n);
	b->fn(b->userdata, in, n);
	return 0;
}

int stream_subscribe_x509(AgentConn *c, const char *method, uint8_t *request, size_t request_len,
			  StreamX509Convert convert, AgentX509Fn fn, void *userdata, AgentSub **ret)
{
	X509Ctx *x = malloc(sizeof(*x));
	if (!x) {
		free(request);
		return log_error_errno(-ENOMEM, "agent %s: %s: out of memory", grpc_conn_name(c),
				       method);
	}
	*x = (X509Ctx){convert, fn, userdata};
	return grpc_conn_subscribe(c, method, request, request_len, true, x509_on_message, x, ret);
}

int stream_subscribe_bundles(AgentConn *c, const char *method, const ProtobufCMessage *request,
			     StreamBundlesConvert convert, AgentBundlesFn fn, void *userdata,
			     AgentSub **ret)
{
	BundlesCtx *b = malloc(sizeof(*b));
	uint8_t *req = NULL;
	size_t len;

	if (!b || stream_pack(request, &req, &len) < 0) {
		free(b);
		return log_error_errno(-ENOMEM, "agent %s: %s: out of memory", grpc_conn_name(c),
				       method);
	}
	*b = (BundlesCtx){convert, fn, userdata};
	return grpc_conn_subscribe(c, method, req, len, false, bundles_on_message, b, ret);
}
