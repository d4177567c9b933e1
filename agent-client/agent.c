// SPDX-License-Identifier: Apache-2.0
/* agent.h's entry points: argument checks and dispatch to the API of the connection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "agent.h"
#include "delegated.h"
#include "grpc_conn.h"
#include "log.h"
#include "workload.h"

int agent_address_parse(const char *uri, char **ret_path)
{
	static const char scheme[] = "unix://";
	struct sockaddr_un sa;

	if (!uri || strncmp(uri, scheme, strlen(scheme)) != 0)
		return -EINVAL; /* tcp:// and every other scheme: out of scope */
	const char *path = uri + strlen(scheme);
	/* No authority (unix://host/x), an absolute path, no query or fragment, fits sun_path. */
	if (path[0] != '/' || path[1] == '\0' || strpbrk(path, "?#") ||
	    strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	*ret_path = p;
	return 0;
}

const char *agent_sub_phase_to_string(AgentSubPhase p)
{
	static const char *const names[_AGENT_SUB_PHASE_MAX] = {
		[AGENT_SUB_CONNECTING] = "connecting",
		[AGENT_SUB_STREAMING] = "streaming",
		[AGENT_SUB_BACKOFF] = "backoff",
		[AGENT_SUB_STOPPED] = "stopped",
	};
	return p >= 0 && p < _AGENT_SUB_PHASE_MAX ? names[p] : NULL;
}

int agent_subscribe_x509(AgentConn *c, const AgentSelector *sel, size_t n_sel, int32_t pid,
			 AgentX509Fn fn, void *userdata, AgentSub **ret)
{
	if (!c || !fn || !ret || (n_sel > 0 && !sel))
		return -EINVAL;
	if (grpc_conn_api(c) == AGENT_API_DELEGATED)
		return delegated_subscribe_x509(c, sel, n_sel, pid, fn, userdata, ret);
	if (n_sel > 0 || pid != 0)
		return log_error_errno(-EINVAL, "agent %s: the Workload API takes no selectors "
						"or pid (it serves the caller's own identity)",
				       grpc_conn_name(c));
	return workload_subscribe_x509(c, fn, userdata, ret);
}

int agent_subscribe_x509_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata, AgentSub **ret)
{
	if (!c || !fn || !ret)
		return -EINVAL;
	if (grpc_conn_api(c) == AGENT_API_DELEGATED)
		return delegated_subscribe_x509_bundles(c, fn, userdata, ret);
	return workload_subscribe_x509_bundles(c, fn, userdata, ret);
}

int agent_subscribe_jwt_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata, AgentSub **ret)
{
	if (!c || !fn || !ret)
		return -EINVAL;
	if (grpc_conn_api(c) == AGENT_API_DELEGATED)
		return delegated_subscribe_jwt_bundles(c, fn, userdata, ret);
	return workload_subscribe_jwt_bundles(c, fn, userdata, ret);
}

int agent_fetch_jwt(AgentConn *c, const AgentSelector *sel, size_t n_sel, int32_t pid,
		    const char *const *audiences, size_t n_aud, int timeout_ms, AgentJwt **ret,
		    size_t *ret_n)
{
	if (!c || !ret || !ret_n || (n_sel > 0 && !sel))
		return -EINVAL;
	if (n_aud == 0 || !audiences)
		return log_error_errno(-EINVAL, "agent %s: a JWT-SVID needs at least one audience",
				       grpc_conn_name(c));
	for (size_t i = 0; i < n_aud; i++)
		if (!audiences[i] || !*audiences[i])
			return log_error_errno(-EINVAL, "agent %s: empty JWT audience",
					       grpc_conn_name(c));
	if (grpc_conn_api(c) == AGENT_API_DELEGATED)
		return delegated_fetch_jwt(c, sel, n_sel, pid, audiences, n_aud, timeout_ms, ret,
					   ret_n);
	if (n_sel > 0 || pid != 0)
		return log_error_errno(-EINVAL, "agent %s: the Workload API takes no selectors "
						"or pid",
				       grpc_conn_name(c));
	return workload_fetch_jwt(c, audiences, n_aud, timeout_ms, ret, ret_n);
}
