// SPDX-License-Identifier: Apache-2.0
/* svidfs-devagent: a development stand-in for the SPIRE agent (Workload API + Delegated Identity
 * API over gRPC on unix sockets, built-in CA, control socket for tests). docs/devagent.md. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <grpc/grpc.h>
#include <systemd/sd-daemon.h>

#include "ca.h"
#include "cleanup.h"
#include "config.h"
#include "ctl.h"
#include "log.h"
#include "macro.h"
#include "registry.h"
#include "secret.h"
#include "server.h"

/* A user error: one line without an errno suffix. */
#define usage_error(...) ({ log_error(__VA_ARGS__); -EINVAL; })

enum {
	OPT_SVID_TTL = 0x100,
	OPT_JWT_TTL,
	OPT_KEY_TYPE,
	OPT_UPSTREAM_CERT,
	OPT_UPSTREAM_KEY,
	OPT_AUTO_K8S,
	OPT_FIRST_DELAY,
	OPT_FED_BUNDLE,
	OPT_FEDERATE_WITH,
	OPT_AUTH_UID,
	OPT_READY_FD,
	OPT_LOG_LEVEL,
	OPT_OUT_CERT,
	OPT_OUT_KEY,
};

static const struct option options[] = {
	{"socket", required_argument, NULL, 's'},
	{"admin-socket", required_argument, NULL, 'a'},
	{"control", required_argument, NULL, 'C'},
	{"trust-domain", required_argument, NULL, 't'},
	{"svid-ttl", required_argument, NULL, OPT_SVID_TTL},
	{"jwt-ttl", required_argument, NULL, OPT_JWT_TTL},
	{"key-type", required_argument, NULL, OPT_KEY_TYPE},
	{"upstream-cert", required_argument, NULL, OPT_UPSTREAM_CERT},
	{"upstream-key", required_argument, NULL, OPT_UPSTREAM_KEY},
	{"entry", required_argument, NULL, 'e'},
	{"config", required_argument, NULL, 'c'},
	{"auto-k8s", no_argument, NULL, OPT_AUTO_K8S},
	{"first-svid-delay", required_argument, NULL, OPT_FIRST_DELAY},
	{"federated-bundle", required_argument, NULL, OPT_FED_BUNDLE},
	{"federate-with", required_argument, NULL, OPT_FEDERATE_WITH},
	{"authorized-uid", required_argument, NULL, OPT_AUTH_UID},
	{"ready-fd", required_argument, NULL, OPT_READY_FD},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{},
};

typedef struct Opts {
	char *socket, *admin_socket, *control, *trust_domain, *upstream_cert, *upstream_key;
	uint64_t svid_ttl_ms, jwt_ttl_ms, first_delay_ms;
	int key_type;
	bool auto_k8s;
	char **entries, **fed_bundles, **federate_with;
	size_t n_entries, n_fed_bundles, n_federate_with;
	uid_t *uids;
	size_t n_uids;
	int ready_fd;
	unsigned config_depth;
} Opts;

static void opts_done(Opts *o)
{
	free(o->socket);
	free(o->admin_socket);
	free(o->control);
	free(o->trust_domain);
	free(o->upstream_cert);
	free(o->upstream_key);
	for (size_t i = 0; i < o->n_entries; i++)
		free(o->entries[i]);
	for (size_t i = 0; i < o->n_fed_bundles; i++)
		free(o->fed_bundles[i]);
	for (size_t i = 0; i < o->n_federate_with; i++)
		free(o->federate_with[i]);
	free(o->entries);
	free(o->fed_bundles);
	free(o->federate_with);
	free(o->uids);
}

static void help(void)
{
	printf("usage: svidfs-devagent [OPTION...]\n"
	       "       svidfs-devagent gen-root --trust-domain TD --out-cert FILE --out-key FILE\n"
	       "       svidfs-devagent ctl [--control PATH] [--wait MS] OP [ARG...]\n"
	       "\n"
	       "A development SPIRE agent: SPIFFE Workload API and SPIRE Delegated Identity API\n"
	       "over gRPC on unix sockets, with a built-in CA. For tests, benchmarks and demos.\n"
	       "\n"
	       "  -s, --socket PATH            serve the Workload API on PATH\n"
	       "  -a, --admin-socket PATH      serve the Delegated Identity API on PATH\n"
	       "  -C, --control PATH           control socket (see `ctl`)\n"
	       "  -t, --trust-domain TD        trust domain (default example.org)\n"
	       "      --svid-ttl DUR           X509-SVID lifetime (default 1h; rotated at half)\n"
	       "      --jwt-ttl DUR            JWT-SVID lifetime (default 5m)\n"
	       "      --key-type TYPE          ec-p256 (default) or rsa-2048\n"
	       "      --upstream-cert FILE     be an intermediate CA under this root ...\n"
	       "      --upstream-key FILE      ... signed with this key (PEM)\n"
	       "  -e, --entry SPEC             add an entry (repeatable):\n"
	       "                               'spiffe://TD/path selectors=t:v,t:v [hint=H]\n"
	       "                                [federates_with=TD,TD] [admin=true] [id=ID]'\n"
	       "  -c, --config FILE            read options from FILE, one per line:\n"
	       "                               '<long-option> [value]', '#' comments\n"
	       "      --auto-k8s               give every subscriber with k8s:pod-uid, k8s:ns and\n"
	       "                               k8s:sa selectors spiffe://TD/ns/NS/sa/SA\n"
	       "      --first-svid-delay DUR   delay before a new entry's first SVID (cold cache)\n"
	       "      --federated-bundle TD=PEM  serve this federated trust domain's bundle\n"
	       "      --federate-with TD       generate a CA and JWT key for federated domain TD\n"
	       "      --authorized-uid UID     Delegated API caller allowed (repeatable;\n"
	       "                               default: only our own uid)\n"
	       "      --ready-fd FD            write \"READY=1\\n\" to FD and close it when serving\n"
	       "      --log-level LEVEL        debug, info, notice, warning, err (default info)\n"
	       "  -h, --help                   this text\n"
	       "  -V, --version                print the version\n"
	       "\n"
	       "Durations: 250ms, 30s, 5m, 1h, 1h30m. See svidfs-devagent(1) and docs/devagent.md.\n");
}

static int strv_push(char ***v, size_t *n, const char *s)
{
	char **p = realloc(*v, (*n + 1) * sizeof *p);
	if (!p)
		return -ENOMEM;
	*v = p;
	if (!(p[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int apply_config_line(const char *key, const char *value, void *userdata);

static int duration_opt(const char *name, const char *v, uint64_t *ret)
{
	int r = config_parse_duration(v, ret);
	if (r < 0)
		return log_error_errno(r, "svidfs-devagent: --%s: invalid duration '%s'", name, v);
	return 0;
}

static int apply_option(Opts *o, int id, const char *name, const char *v)
{
	uint64_t u;
	int r = 0;

	switch (id) {
	case 's':
		return set_str(&o->socket, v);
	case 'a':
		return set_str(&o->admin_socket, v);
	case 'C':
		return set_str(&o->control, v);
	case 't':
		if (!trust_domain_valid(v))
			return usage_error("svidfs-devagent: invalid trust domain '%s'", v);
		return set_str(&o->trust_domain, v);
	case OPT_SVID_TTL:
		if ((r = duration_opt(name, v, &o->svid_ttl_ms)) < 0)
			return r;
		if (o->svid_ttl_ms < 1000)
			return usage_error("svidfs-devagent: --svid-ttl must be at least 1s");
		return 0;
	case OPT_JWT_TTL:
		if ((r = duration_opt(name, v, &o->jwt_ttl_ms)) < 0)
			return r;
		if (o->jwt_ttl_ms < 1000)
			return usage_error("svidfs-devagent: --jwt-ttl must be at least 1s");
		return 0;
	case OPT_FIRST_DELAY:
		return duration_opt(name, v, &o->first_delay_ms);
	case OPT_KEY_TYPE:
		if ((o->key_type = key_type_from_string(v)) < 0)
			return usage_error("svidfs-devagent: --key-type must be ec-p256 or rsa-2048, not '%s'", v);
		return 0;
	case OPT_UPSTREAM_CERT:
		return set_str(&o->upstream_cert, v);
	case OPT_UPSTREAM_KEY:
		return set_str(&o->upstream_key, v);
	case 'e':
		return strv_push(&o->entries, &o->n_entries, v);
	case 'c': {
		unsigned line;
		if (o->config_depth >= 4)
			return log_error_errno(-ELOOP, "svidfs-devagent: config files nest too deep at %s", v);
		o->config_depth++;
		r = config_parse_file(v, apply_config_line, o, &line);
		o->config_depth--;
		if (r < 0 && line == 0)
			return log_error_errno(r, "svidfs-devagent: cannot read config file %s", v);
		if (r < 0)
			return log_error_errno(r, "svidfs-devagent: %s:%u: invalid line", v, line);
		return 0;
	}
	case OPT_AUTO_K8S:
		o->auto_k8s = true;
		return 0;
	case OPT_FED_BUNDLE:
		if (!strchr(v, '='))
			return usage_error("svidfs-devagent: --federated-bundle wants TD=FILE, got '%s'", v);
		return strv_push(&o->fed_bundles, &o->n_fed_bundles, v);
	case OPT_FEDERATE_WITH:
		if (!trust_domain_valid(strncmp(v, "spiffe://", 9) == 0 ? v + 9 : v))
			return usage_error("svidfs-devagent: --federate-with: invalid trust domain '%s'", v);
		return strv_push(&o->federate_with, &o->n_federate_with,
				 strncmp(v, "spiffe://", 9) == 0 ? v + 9 : v);
	case OPT_AUTH_UID: {
		if (config_parse_uint(v, UINT32_MAX - 1, &u) < 0)
			return usage_error("svidfs-devagent: --authorized-uid: invalid uid '%s'", v);
		uid_t *p = realloc(o->uids, (o->n_uids + 1) * sizeof *p);
		if (!p)
			return -ENOMEM;
		o->uids = p;
		o->uids[o->n_uids++] = (uid_t)u;
		return 0;
	}
	case OPT_READY_FD:
		if (config_parse_uint(v, INT32_MAX, &u) < 0)
			return usage_error("svidfs-devagent: --ready-fd: invalid fd '%s'", v);
		o->ready_fd = (int)u;
		return 0;
	case OPT_LOG_LEVEL:
		if ((r = log_parse_level(v)) < 0)
			return log_error_errno(r, "svidfs-devagent: --log-level: unknown level '%s'", v);
		log_set_max_level(r);
		return 0;
	default:
		return -EINVAL;
	}
}

static int apply_config_line(const char *key, const char *value, void *userdata)
{
	Opts *o = userdata;
	for (const struct option *p = options; p->name; p++) {
		if (!streq(p->name, key) || p->val == 'h' || p->val == 'V')
			continue;
		if (p->has_arg == required_argument && !*value)
			return usage_error("svidfs-devagent: config option '%s' needs a value", key);
		if (p->has_arg == no_argument && *value && !streq(value, "true"))
			return usage_error("svidfs-devagent: config option '%s' takes no value", key);
		return apply_option(o, p->val, p->name, value);
	}
	return usage_error("svidfs-devagent: unknown config option '%s'", key);
}

static int gen_root_main(int argc, char **argv)
{
	static const struct option gopts[] = {
		{"trust-domain", required_argument, NULL, 't'},
		{"out-cert", required_argument, NULL, OPT_OUT_CERT},
		{"out-key", required_argument, NULL, OPT_OUT_KEY},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	const char *td = NULL, *cert = NULL, *key = NULL;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "t:h", gopts, NULL)) >= 0) {
		switch (opt) {
		case 't': td = optarg; break;
		case OPT_OUT_CERT: cert = optarg; break;
		case OPT_OUT_KEY: key = optarg; break;
		case 'h':
			printf("usage: svidfs-devagent gen-root --trust-domain TD --out-cert FILE --out-key FILE\n");
			return 0;
		default:
			return 2;
		}
	}
	if (!td || !cert || !key || optind < argc) {
		fprintf(stderr, "usage: svidfs-devagent gen-root --trust-domain TD --out-cert FILE --out-key FILE\n");
		return 2;
	}
	if (!trust_domain_valid(td)) {
		fprintf(stderr, "svidfs-devagent gen-root: invalid trust domain '%s'\n", td);
		return 2;
	}
	int r = ca_gen_root_files(td, cert, key);
	if (r < 0) {
		log_error_errno(r, "svidfs-devagent gen-root: cannot write %s / %s", cert, key);
		return 1;
	}
	return 0;
}

static int build_registry(const Opts *o, Registry **ret)
{
	Registry *reg = NULL;
	int r = registry_new(NULL, &reg); /* the server sets the data free function */
	if (r < 0)
		return log_error_errno(r, "svidfs-devagent: out of memory");
	for (size_t i = 0; i < o->n_entries; i++) {
		RegEntry *e;
		r = registry_add_spec(reg, o->entries[i], &e);
		if (r < 0) {
			registry_free(reg);
			if (r == -EEXIST)
				return usage_error("svidfs-devagent: entry '%s': duplicate id", o->entries[i]);
			if (r == -EINVAL)
				return usage_error("svidfs-devagent: invalid entry '%s' (want 'spiffe://TD/path selectors=type:value,...')",
						   o->entries[i]);
			return log_error_errno(r, "svidfs-devagent: cannot add entry '%s'", o->entries[i]);
		}
		if (!streq(reg_entry_trust_domain(e), o->trust_domain)) {
			/* Log before freeing: e belongs to reg. */
			r = usage_error("svidfs-devagent: entry %s is not in trust domain %s",
					reg_entry_spiffe_id(e), o->trust_domain);
			registry_free(reg);
			return r;
		}
	}
	*ret = reg;
	return 0;
}

static int add_federations(Server *s, const Opts *o)
{
	int r;
	for (size_t i = 0; i < o->n_fed_bundles; i++) {
		_cleanup_free_ char *td = strdup(o->fed_bundles[i]);
		_cleanup_free_ uint8_t *der = NULL;
		size_t len, count;
		if (!td)
			return -ENOMEM;
		char *eq = strchr(td, '=');
		*eq = '\0';
		const char *name = strncmp(td, "spiffe://", 9) == 0 ? td + 9 : td;
		if (!trust_domain_valid(name))
			return usage_error("svidfs-devagent: --federated-bundle: invalid trust domain '%s'", td);
		if ((r = bundle_load_pem_file(eq + 1, &der, &len, &count)) < 0)
			return log_error_errno(r, "svidfs-devagent: cannot load federated bundle %s", eq + 1);
		if ((r = server_add_federation(s, name, der, len, false)) < 0)
			return r;
	}
	for (size_t i = 0; i < o->n_federate_with; i++) {
		Ca *fca = NULL;
		size_t len;
		if ((r = ca_new_self_signed(o->federate_with[i], &fca)) < 0)
			return log_error_errno(r, "svidfs-devagent: cannot make a CA for %s", o->federate_with[i]);
		const uint8_t *der = ca_bundle(fca, &len);
		r = server_add_federation(s, o->federate_with[i], der, len, true);
		ca_free(fca);
		if (r < 0)
			return r;
	}
	return 0;
}

static int run(Opts *o)
{
	Server *srv = NULL;
	Ctl *ctl = NULL;
	Ca *ca = NULL;
	Registry *reg = NULL;
	sigset_t mask;
	int r, sig;

	if (!o->trust_domain && (r = set_str(&o->trust_domain, "example.org")) < 0)
		return r;
	if (!o->socket && !o->admin_socket)
		return usage_error("svidfs-devagent: give --socket and/or --admin-socket");
	if (!!o->upstream_cert != !!o->upstream_key)
		return usage_error("svidfs-devagent: --upstream-cert and --upstream-key go together");

	/* Signals are taken with sigwait() by this thread only. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((r = build_registry(o, &reg)) < 0)
		return r;
	if (o->upstream_cert)
		r = ca_new_intermediate(o->trust_domain, o->upstream_cert, o->upstream_key, &ca);
	else
		r = ca_new_self_signed(o->trust_domain, &ca);
	if (r < 0) {
		registry_free(reg);
		if (o->upstream_cert)
			return log_error_errno(r, "svidfs-devagent: cannot make an intermediate CA from %s and %s (key must match the certificate; the file must hold a root)",
					       o->upstream_cert, o->upstream_key);
		return log_error_errno(r, "svidfs-devagent: cannot create the CA");
	}
	ServerConfig cfg = {
		.trust_domain = o->trust_domain,
		.workload_socket = o->socket,
		.admin_socket = o->admin_socket,
		.key_type = (KeyType)o->key_type,
		.svid_ttl_ms = o->svid_ttl_ms,
		.jwt_ttl_ms = o->jwt_ttl_ms,
		.first_svid_delay_ms = o->first_delay_ms,
		.authorized_uids = o->uids,
		.n_authorized_uids = o->n_uids,
		.auto_k8s = o->auto_k8s,
	};
	grpc_init();
	if ((r = server_new(&cfg, ca, reg, &srv)) < 0)
		goto out;
	if ((r = add_federations(srv, o)) < 0 || (r = server_start(srv)) < 0)
		goto out;
	if (o->control && (r = ctl_new(o->control, srv, &ctl)) < 0)
		goto out;

	log_info("svidfs-devagent %s: trust domain %s, workload %s, admin %s, control %s, %zu entries",
		 SVIDFS_VERSION, o->trust_domain, o->socket ?: "-", o->admin_socket ?: "-",
		 o->control ?: "-", o->n_entries);
	if (o->ready_fd >= 0) {
		static const char msg[] = "READY=1\n";
		if (write(o->ready_fd, msg, sizeof msg - 1) < 0)
			log_warning_errno(negative_errno(), "svidfs-devagent: cannot write to --ready-fd %d",
					  o->ready_fd);
		close(o->ready_fd);
	}
	(void)sd_notify(0, "READY=1");

	do
		r = sigwait(&mask, &sig);
	while (r == EINTR);
	log_info("svidfs-devagent: %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	r = 0;
out:
	ctl_free(ctl);
	server_free(srv);
	grpc_shutdown();
	return r;
}

int main(int argc, char **argv)
{
	_cleanup_(opts_done) Opts o = {
		.svid_ttl_ms = 3600 * 1000,
		.jwt_ttl_ms = 300 * 1000,
		.key_type = KEY_TYPE_EC_P256,
		.ready_fd = -1,
	};
	int opt, r;

	log_set_ident("svidfs-devagent");
	if (argc > 1 && streq(argv[1], "ctl"))
		return ctl_client_main(argc - 1, argv + 1);
	if (argc > 1 && streq(argv[1], "gen-root"))
		return gen_root_main(argc - 1, argv + 1);

	while ((opt = getopt_long(argc, argv, "s:a:C:t:e:c:hV", options, NULL)) >= 0) {
		if (opt == 'h') {
			help();
			return 0;
		}
		if (opt == 'V') {
			printf("svidfs-devagent %s\n", SVIDFS_VERSION);
			return 0;
		}
		if (opt == '?') {
			fprintf(stderr, "Try 'svidfs-devagent --help'.\n");
			return 2;
		}
		const char *name = "?";
		for (const struct option *p = options; p->name; p++)
			if (p->val == opt)
				name = p->name;
		if ((r = apply_option(&o, opt, name, optarg)) < 0) {
			if (r == -ENOMEM)
				log_error_errno(r, "svidfs-devagent: out of memory");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "svidfs-devagent: unexpected argument '%s'. Try --help.\n", argv[optind]);
		return 2;
	}
	(void)secret_init(0);
	return run(&o) < 0 ? 1 : 0;
}
