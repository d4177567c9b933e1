/* SPDX-License-Identifier: Apache-2.0 */
/* delegated.h: the SPIRE Delegated Identity API
 * (/spire.api.agent.delegatedidentity.v1.DelegatedIdentity/...) on an AgentConn: builds requests
 * and turns received messages into callbacks. Owns each subscription's callback context. Any
 * thread; callbacks run on the connection's thread. Reached through agent.h. */
#pragma once

#include "agent.h"

int delegated_subscribe_x509(AgentConn *c, const AgentSelector *sel, size_t n_sel, int32_t pid,
			     AgentX509Fn fn, void *userdata, AgentSub **ret);
int delegated_subscribe_x509_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata,
				     AgentSub **ret);
int delegated_subscribe_jwt_bundles(AgentConn *c, AgentBundlesFn fn, void *userdata,
				    AgentSub **ret);
int delegated_fetch_jwt(AgentConn *c, const AgentSelector *sel, size_t n_sel, int32_t pid,
			const char *const *audiences, size_t n_aud, int timeout_ms, AgentJwt **ret,
			size_t *ret_n);
