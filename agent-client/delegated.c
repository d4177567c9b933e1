// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "delegated.h"
#include "delegatedidentity.pb-c.h"
#include "log.h"
#include "stream.h"

#define SVC "/spire.api.agent.delegatedidentity.v1.DelegatedIdentity/"

/* Protobuf views of the caller's selectors; the strings stay the caller's. */
typedef struct Selectors {
	Spire__Api__Types__Selector *items;
	Spire__Api__Types__Selector **ptrs;
} Selectors;

static void selectors_done(Selectors *s)
{
	free(s->items);
	free(s->ptrs);
}

static int selectors_build(const AgentSelector *sel, size_t n, Selectors *ret)
{
	ret->items = calloc(n ? n : 1, sizeof(*ret->items));
	ret->ptrs = calloc(n ? n : 1, sizeof(*ret->ptrs));
	if (!ret->items || !ret->ptrs) {
		selectors_done(ret);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		spire__api__types__selector__init(&ret->items[i]);
		ret->items[i].type = (char *)sel[i].type;
		ret->items[i].value = (char *)sel[i].value;
		ret->ptrs[i] = &ret->items[i];
	}
	return 0;
}

int delegated_subscribe_x509(AgentConn *c, const AgentSelector *sel, size_t n_sel, int32_t pid,
			     AgentX509Fn fn, void *userdata, AgentSub **ret)
{
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509SVIDsRequest req =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_SVIDS_REQUEST__INIT;
	_cleanup_(selectors_done) Selectors s = {0};
	uint8_t *buf;
	size_t len;
	char why[128];
	int r;

	r = convert_check_selectors(sel, n_sel, pid, why, sizeof(why));
	if (r < 0)
		return log_error_errno(r, "agent %s: SubscribeToX509SVIDs: %s", grpc_conn_name(c),
				       why);
	if (selectors_build(sel, n_sel, &s) < 0)
		return log_error_errno(-ENOMEM, "agent %s: out of memory", grpc_conn_name(c));
	req.n_selectors = n_sel;
	req.selectors = s.ptrs;
	req.pid = pid;
	if (stream_pack(&req.base, &buf, &len) < 0)
		return log_error_errno(-ENOMEM, "agent %s: out of memory", grpc_conn_name(c));
	return stream_subscribe_x509(c, SVC "SubscribeToX509SVIDs", buf, len,
				     convert_delegated_x509, fn, userdata, ret);
}

int delegated_subscribe_x509_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata,
				     AgentSub **ret)
{
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509BundlesRequest req =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_BUNDLES_REQUEST__INIT;
	return stream_subscribe_bundles(c, SVC "SubscribeToX509Bundles", &req.base,
					convert_delegated_x509_bundles, fn, userdata, ret);
}

int delegated_subscribe_jwt_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata,
				    AgentSub **ret)
{
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToJWTBundlesRequest req =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_JWTBUNDLES_REQUEST__INIT;
	return stream_subscribe_bundles(c, SVC "SubscribeToJWTBundles", &req.base,
					convert_delegated_jwt_bundles, fn, userdata, ret);
}

int delegated_fetch_jwt(AgentConn *c, const AgentSelector *sel, size_t n_sel, int32_t pid,
			const char *const *audiences, size_t n_aud, int timeout_ms, AgentJwt **ret,
			size_t *ret_n)
{
	Spire__Api__Agent__Delegatedidentity__V1__FetchJWTSVIDsRequest req =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__FETCH_JWTSVIDS_REQUEST__INIT;
	_cleanup_(selectors_done) Selectors s = {0};
	_cleanup_free_ uint8_t *buf = NULL;
	uint8_t *resp = NULL;
	size_t len, resp_len = 0;
	char why[256] = "";
	int r;

	r = convert_check_selectors(sel, n_sel, pid, why, sizeof(why));
	if (r < 0)
		return log_error_errno(r, "agent %s: FetchJWTSVIDs: %s", grpc_conn_name(c), why);
	if (selectors_build(sel, n_sel, &s) < 0)
		return log_error_errno(-ENOMEM, "agent %s: out of memory", grpc_conn_name(c));
	req.n_audience = n_aud;
	req.audience = (char **)audiences;
	req.n_selectors = n_sel;
	req.selectors = s.ptrs;
	req.pid = pid;
	if (stream_pack(&req.base, &buf, &len) < 0)
		return log_error_errno(-ENOMEM, "agent %s: out of memory", grpc_conn_name(c));
	r = grpc_conn_unary(c, SVC "FetchJWTSVIDs", buf, len, timeout_ms, &resp, &resp_len);
	if (r < 0)
		return r;
	r = convert_delegated_jwt(resp, resp_len, ret, ret_n, why, sizeof(why));
	grpc_conn_response_free(resp, resp_len);
	if (r < 0)
		return log_error_errno(r, "agent %s: " SVC "FetchJWTSVIDs: bad response: %s",
				       grpc_conn_name(c), why);
	return 0;
}
