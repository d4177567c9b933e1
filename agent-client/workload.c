// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "log.h"
#include "stream.h"
#include "workload.h"
#include "workload.pb-c.h"

#define SVC "/SpiffeWorkloadAPI/"

int workload_subscribe_x509(AgentConn *c, AgentX509Fn fn, void *userdata, AgentSub **ret)
{
	X509SVIDRequest req = X509_SVIDREQUEST__INIT;
	uint8_t *buf;
	size_t len;

	if (stream_pack(&req.base, &buf, &len) < 0)
		return log_error_errno(-ENOMEM, "agent %s: out of memory", grpc_conn_name(c));
	return stream_subscribe_x509(c, SVC "FetchX509SVID", buf, len, convert_workload_x509, fn,
				     userdata, ret);
}

int workload_subscribe_x509_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata,
				    AgentSub **ret)
{
	X509BundlesRequest req = X509_BUNDLES_REQUEST__INIT;
	return stream_subscribe_bundles(c, SVC "FetchX509Bundles", &req.base,
					convert_workload_x509_bundles, fn, userdata, ret);
}

int workload_subscribe_jwt_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata,
				   AgentSub **ret)
{
	JWTBundlesRequest req = JWTBUNDLES_REQUEST__INIT;
	return stream_subscribe_bundles(c, SVC "FetchJWTBundles", &req.base,
					convert_workload_jwt_bundles, fn, userdata, ret);
}

int workload_fetch_jwt(AgentConn *c, const char *const *audiences, size_t n_aud, int timeout_ms,
		       AgentJwt **ret, size_t *ret_n)
{
	JWTSVIDRequest req = JWTSVIDREQUEST__INIT;
	_cleanup_free_ uint8_t *buf = NULL;
	uint8_t *resp = NULL;
	size_t len, resp_len = 0;
	char why[256] = "";
	int r;

	req.n_audience = n_aud;
	req.audience = (char **)audiences;
	r = stream_pack(&req.base, &buf, &len);
	if (r < 0)
		return log_error_errno(r, "agent %s: out of memory", grpc_conn_name(c));
	r = grpc_conn_unary(c, SVC "FetchJWTSVID", buf, len, timeout_ms, &resp, &resp_len);
	if (r < 0)
		return r;
	r = convert_workload_jwt(resp, resp_len, ret, ret_n, why, sizeof(why));
	grpc_conn_response_free(resp, resp_len);
	if (r < 0)
		return log_error_errno(r, "agent %s: " SVC "FetchJWTSVID: bad response: %s",
				       grpc_conn_name(c), why);
	return 0;
}
