/* SPDX-License-Identifier: Apache-2.0 */
/* workload.h: the SPIFFE Workload API (/SpiffeWorkloadAPI/...) on an AgentConn: builds requests
 * and turns received messages into callbacks. Owns each subscription's callback context. Any
 * thread; callbacks run on the connection's thread. Reached through agent.h. */
#pragma once

#include "agent.h"

int workload_subscribe_x509(AgentConn *c, AgentX509Fn fn, void *userdata, AgentSub **ret);
int workload_subscribe_x509_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata,
				    AgentSub **ret);
int workload_subscribe_jwt_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata,
				   AgentSub **ret);
int workload_fetch_jwt(AgentConn *c, const char *const *audiences, size_t n_aud, int timeout_ms,
		       AgentJwt **ret, size_t *ret_n);
