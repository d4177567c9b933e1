// SPDX-License-Identifier: Apache-2.0
/* svidfsctl: talks to the svidfs control socket (docs/control-protocol.md). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "kv.h"
#include "log.h"
#include "macro.h"
#include "util.h"

DEFINE_CLEANUP_FUNC(KvMsg, kv_free)

static void help(const char *argv0)
{
	printf("Usage: %s [-s SOCKET] COMMAND [ARGS]\n\n"
	       "Commands:\n"
	       "  list                          workloads with SPIFFE ID, expiry, agent, stream\n"
	       "  status WORKLOAD               one workload (pods/<uid>, identities/<name>, self;\n"
	       "                                a bare <uid> means pods/<uid>)\n"
	       "  register KEY=VALUE...         register (keys as in the control protocol, e.g.\n"
	       "                                pod_uid=... namespace=... ref=...)\n"
	       "  unregister WORKLOAD [REF]     drop one reference (all without REF)\n"
	       "  wait WORKLOAD [TIMEOUT_MS]    wait for the first SVID (default 10000)\n"
	       "  resubscribe WORKLOAD          re-open the workload's SVID stream\n"
	       "  info                          daemon facts\n"
	       "  ping                          check the daemon answers\n"
	       "  shutdown [keep]               stop the daemon: unmount, or (keep) leave the\n"
	       "                                connection to its keeper for the next daemon\n\n"
	       "  -s, --socket=PATH   control socket (default " SVIDFS_DEFAULT_CONTROL_SOCKET ")\n"
	       "  -h, --help          this help\n\n"
	       "See svidfsctl(8).\n",
	       argv0);
}


static char *workload_arg(const char *s)
{
	char *r = NULL;
	if (strchr(s, '/') || streq(s, "self"))
		return strdup(s);
	return asprintf(&r, "pods/%s", s) < 0 ? NULL : r;
}

static void print_time(const char *label, const char *v)
{
	long long t = v ? strtoll(v, NULL, 10) : 0;
	char buf[64] = "-";
	if (t > 0) {
		time_t tt = (time_t)t;
		struct tm tm;
		strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tt, &tm));
	}
	printf("%-12s %s\n", label, buf);
}

static void print_list(const KvMsg *m)
{
	printf("%-44s %5s %-48s %-20s %-12s %s\n", "WORKLOAD", "SVIDS", "SPIFFE-ID", "EXPIRES",
	       "AGENT", "STREAM");
	for (size_t i = 0; i < kv_count(m); i++) {
		if (!streq(kv_key(m, i), "workload"))
			continue;
		char name[256], id[2048], agent[128];
		unsigned n = 0;
		long long na = 0;
		int off = 0;
		if (sscanf(kv_value(m, i), "%255s %u %2047s %lld %127s %n", name, &n, id, &na,
			   agent, &off) < 5)
			continue;
		char exp[32] = "-";
		if (na > 0) {
			time_t t = (time_t)na;
			struct tm tm;
			strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		}
		printf("%-44s %5u %-48s %-20s %-12s %s\n", name, n, id, exp, agent,
		       kv_value(m, i) + off);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'}, {}};
	const char *sock = SVIDFS_DEFAULT_CONTROL_SOCKET;
	_cleanup_(kv_freep) KvMsg *req = NULL;
	_cleanup_(kv_freep) KvMsg *reply = NULL;
	_cleanup_close_ int fd = -1;
	int c, r;

	log_set_ident("svidfsctl");
	while ((c = getopt_long(argc, argv, "+s:h", opts, NULL)) >= 0) {
		if (c == 's')
			sock = optarg;
		else if (c == 'h') {
			help(argv[0]);
			return EXIT_SUCCESS;
		} else
			return EXIT_FAILURE;
	}
	if (optind >= argc) {
		help(argv[0]);
		return EXIT_FAILURE;
	}
	const char *cmd = argv[optind++];
	int nargs = argc - optind;
	char **args = argv + optind;
	if (kv_new(&req) < 0)
		return EXIT_FAILURE;

	bool needs_workload = streq(cmd, "status") || streq(cmd, "unregister") ||
			      streq(cmd, "wait") || streq(cmd, "resubscribe");
	if (needs_workload) {
		if (nargs < 1) {
			log_error("%s needs a workload", cmd);
			return EXIT_FAILURE;
		}
		_cleanup_free_ char *w = workload_arg(args[0]);
		if (!w || kv_add(req, "op", cmd) < 0 || kv_add(req, "workload", w) < 0)
			return EXIT_FAILURE;
		if (streq(cmd, "unregister") && nargs > 1)
			kv_add(req, "ref", args[1]);
		if (streq(cmd, "wait"))
			kv_add(req, "timeout_ms", nargs > 1 ? args[1] : "10000");
	} else if (streq(cmd, "register")) {
		kv_add(req, "op", "register");
		for (int i = 0; i < nargs; i++) {
			char *eq = strchr(args[i], '=');
			if (!eq) {
				log_error("register arguments are KEY=VALUE, not '%s'", args[i]);
				return EXIT_FAILURE;
			}
			*eq = 0;
			if (kv_add(req, args[i], eq + 1) < 0) {
				log_error("bad key '%s'", args[i]);
				return EXIT_FAILURE;
			}
		}
	} else if (streq(cmd, "list") || streq(cmd, "info") || streq(cmd, "ping")) {
		kv_add(req, "op", cmd);
	} else if (streq(cmd, "shutdown")) {
		/* "shutdown": unmount for good; "shutdown keep": leave the connection to the
		 * keeper for the next daemon. */
		kv_add(req, "op", cmd);
		kv_add(req, "unmount", nargs > 0 && streq(args[0], "keep") ? "false" : "true");
	} else {
		log_error("unknown command '%s' (see --help)", cmd);
		return EXIT_FAILURE;
	}

	fd = unix_connect(sock, SOCK_STREAM);
	if (fd < 0) {
		log_error_errno(fd, "cannot connect to %s", sock);
		return EXIT_FAILURE;
	}
	r = kv_write_fd(fd, req);
	if (r >= 0)
		r = kv_read_fd(fd, 16 << 20, 15 * 60 * 1000, &reply);
	if (r < 0) {
		log_error_errno(r, "no answer from %s", sock);
		return EXIT_FAILURE;
	}
	const char *status = kv_get(reply, "status");
	if (!status || !streq(status, "0")) {
		const char *e = kv_get(reply, "error");
		fprintf(stderr, "svidfsctl: %s failed: %s (status %s)\n", cmd, e ? e : "?",
			status ? status : "?");
		return EXIT_FAILURE;
	}
	if (streq(cmd, "list"))
		print_list(reply);
	else
		for (size_t i = 0; i < kv_count(reply); i++) {
			const char *k = kv_key(reply, i);
			if (streq(k, "status"))
				continue;
			if (streq(k, "not_after") || streq(k, "started_at"))
				print_time(k, kv_value(reply, i));
			else
				printf("%-12s %s\n", k, kv_value(reply, i));
		}
	return EXIT_SUCCESS;
}
