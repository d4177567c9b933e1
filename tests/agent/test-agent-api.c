// SPDX-License-Identifier: Apache-2.0
/* The parts of agent.h that need no agent: address parsing, argument checks, status mapping. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "grpc_conn.h"
#include "log.h"

Test(agent_api, address_parse_accepts_unix_absolute)
{
	char *p = NULL;
	cr_assert_eq(agent_address_parse("unix:///run/spire/sockets/agent.sock", &p), 0);
	cr_assert_str_eq(p, "/run/spire/sockets/agent.sock");
	free(p);
}

Test(agent_api, address_parse_rejects_everything_else)
{
	const char *bad[] = {
		"",
		"tcp://127.0.0.1:8081",
		"unix:relative.sock",
		"unix:/one/slash",
		"unix://host/path",
		"unix://",
		"unix:///",
		"unix:///a?b=c",
		"unix:///a#frag",
		"UNIX:///a",
		"/run/agent.sock",
		"http:///x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *p = NULL;
		cr_assert_eq(agent_address_parse(bad[i], &p), -EINVAL, "\"%s\" accepted", bad[i]);
		cr_assert_null(p);
	}
	char *p = NULL;
	cr_assert_eq(agent_address_parse(NULL, &p), -EINVAL);
	char longpath[200] = "unix:///";
	memset(longpath + 8, 'a', 150);
	longpath[158] = '\0';
	cr_assert_eq(agent_address_parse(longpath, &p), -EINVAL);
}

Test(agent_api, conn_new_validates_address)
{
	AgentConn *c = NULL;
	log_set_max_level(LOG_CRIT);
	AgentConnConfig cfg = {.address = "tcp://127.0.0.1:1", .api = AGENT_API_WORKLOAD};
	cr_assert_eq(agent_conn_new(&cfg, &c), -EINVAL);
	cr_assert_null(c);
	cfg.address = NULL;
	unsetenv("SPIFFE_ENDPOINT_SOCKET");
	cr_assert_eq(agent_conn_new(&cfg, &c), -EINVAL);
	setenv("SPIFFE_ENDPOINT_SOCKET", "unix:relative", 1);
	cr_assert_eq(agent_conn_new(&cfg, &c), -EINVAL);
	cr_assert_null(c);
}

Test(agent_api, conn_from_env_and_argument_checks)
{
	AgentConn *c = NULL;
	AgentSub *s = NULL;
	log_set_max_level(LOG_CRIT);
	setenv("SPIFFE_ENDPOINT_SOCKET", "unix:///nonexistent/agent.sock", 1);
	AgentConnConfig cfg = {.api = AGENT_API_WORKLOAD};
	cr_assert_eq(agent_conn_new(&cfg, &c), 0);
	AgentSelector sel = {"k8s", "pod-uid:1"};
	/* the Workload API takes no selectors or pid */
	cr_assert_eq(agent_subscribe_x509(c, &sel, 1, 0, (AgentX509Fn)abort, NULL, &s), -EINVAL);
	cr_assert_eq(agent_subscribe_x509(c, NULL, 0, 42, (AgentX509Fn)abort, NULL, &s), -EINVAL);
	cr_assert_eq(agent_subscribe_x509(c, NULL, 0, 0, NULL, NULL, &s), -EINVAL);
	const char *aud = "x";
	AgentJwt *j;
	size_t n;
	cr_assert_eq(agent_fetch_jwt(c, NULL, 0, 0, &aud, 0, 100, &j, &n), -EINVAL);
	cr_assert_null(s);
	agent_conn_free(c);

	cfg.api = AGENT_API_DELEGATED;
	cr_assert_eq(agent_conn_new(&cfg, &c), 0);
	cr_assert_eq(agent_subscribe_x509(c, NULL, 0, 0, (AgentX509Fn)abort, NULL, &s), -EINVAL);
	cr_assert_eq(agent_subscribe_x509(c, &sel, 1, 7, (AgentX509Fn)abort, NULL, &s), -EINVAL);
	AgentSelector colon = {"k8s:pod-uid", "1"};
	cr_assert_eq(agent_subscribe_x509(c, &colon, 1, 0, (AgentX509Fn)abort, NULL, &s), -EINVAL);
	cr_assert_null(s);
	agent_conn_free(c);
	cr_assert_null(agent_conn_free(NULL));
	agent_sub_cancel(NULL);
}

Test(agent_api, status_mapping)
{
	cr_assert_eq(grpc_status_to_errno(0), 0);
	cr_assert_eq(grpc_status_to_errno(7), -EACCES);  /* PERMISSION_DENIED */
	cr_assert_eq(grpc_status_to_errno(3), -EINVAL);  /* INVALID_ARGUMENT */
	cr_assert_eq(grpc_status_to_errno(14), -EAGAIN); /* UNAVAILABLE */
	cr_assert_eq(grpc_status_to_errno(4), -ETIMEDOUT);
	cr_assert_eq(grpc_status_to_errno(12), -EIO);
	cr_assert_eq(grpc_status_to_errno(13), -EIO);
	cr_assert_eq(grpc_status_to_errno(999), -EIO);
	cr_assert(grpc_status_is_fatal(3));
	cr_assert(grpc_status_is_fatal(12));
	for (int code = 0; code <= 16; code++)
		if (code != 3 && code != 12)
			cr_assert_not(grpc_status_is_fatal(code), "%d", code);
	cr_assert_str_eq(grpc_status_to_string(14), "UNAVAILABLE");
	cr_assert_str_eq(grpc_status_to_string(-1), "UNKNOWN");
}

Test(agent_api, phase_names)
{
	cr_assert_str_eq(agent_sub_phase_to_string(AGENT_SUB_CONNECTING), "connecting");
	cr_assert_str_eq(agent_sub_phase_to_string(AGENT_SUB_STREAMING), "streaming");
	cr_assert_str_eq(agent_sub_phase_to_string(AGENT_SUB_BACKOFF), "backoff");
	cr_assert_str_eq(agent_sub_phase_to_string(AGENT_SUB_STOPPED), "stopped");
	cr_assert_null(agent_sub_phase_to_string(_AGENT_SUB_PHASE_MAX));
}
