// SPDX-License-Identifier: Apache-2.0
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "macro.h"
#include "tree.h"

static inline void closedirp_(DIR **d)
{
	if (*d)
		closedir(*d);
}

static int set_error(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int set_error(char **ret_error, int r, const char *fmt, ...)
{
	va_list ap;

	free(*ret_error);
	*ret_error = NULL;
	va_start(ap, fmt);
	if (vasprintf(ret_error, fmt, ap) < 0)
		*ret_error = NULL;
	va_end(ap);
	return r;
}

static int set_str(char **field, const char *v)
{
	char *s = strdup(v);
	if (!s)
		return -ENOMEM;
	free(*field);
	*field = s;
	return 0;
}

static void strip(char **s, char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
		(*e)--;
}

/* Calls fn(key, value) for each "key = value" line; '#' starts a comment line. */
typedef int (*LineFn)(void *ud, const char *key, const char *value, char **ret_error);
static int parse_lines(const char *text, const char *origin, LineFn fn, void *ud, char **ret_error)
{
	_cleanup_free_ char *copy = strdup(text);
	char *line, *save = NULL;
	unsigned lineno = 0;

	if (!copy)
		return -ENOMEM;
	/* strtok_r skips empty lines; count them with a manual split instead. */
	for (line = copy; line; line = save) {
		char *nl = strchr(line, '\n');
		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = 0;
		lineno++;
		char *s = line, *e = line + strlen(line);
		strip(&s, &e);
		if (s == e || *s == '#')
			continue;
		char *eq = memchr(s, '=', (size_t)(e - s));
		if (!eq)
			return set_error(ret_error, -EINVAL, "%s:%u: expected key=value", origin,
					 lineno);
		char *ke = eq, *vs = eq + 1;
		strip(&s, &ke);
		strip(&vs, &e);
		*ke = 0;
		*e = 0;
		int r = fn(ud, s, vs, ret_error);
		if (r < 0) {
			if (!*ret_error)
				set_error(ret_error, r, "%s:%u: bad value for %s", origin, lineno,
					  s);
			else {
				_cleanup_free_ char *inner = TAKE_PTR(*ret_error);
				set_error(ret_error, r, "%s:%u: %s", origin, lineno, inner);
			}
			return r;
		}
	}
	return 0;
}

static int add_agent(Config *c, const char *name, const char *address, char **ret_error)
{
	if (!tree_name_valid(name))
		return set_error(ret_error, -EINVAL, "agent name '%s' must be [A-Za-z0-9._-]",
				 name);
	if (strncmp(address, "unix:///", 8) != 0)
		return set_error(ret_error, -EINVAL,
				 "agent '%s': address must be unix:///absolute/path", name);
	for (size_t i = 0; i < c->n_agents; i++)
		if (streq(c->agents[i].name, name)) {
			/* A later definition (a flag over the file) replaces the earlier one. */
			return set_str(&c->agents[i].address, address);
		}
	ConfigAgent *a = realloc(c->agents, (c->n_agents + 1) * sizeof *a);
	if (!a)
		return -ENOMEM;
	c->agents = a;
	a[c->n_agents].name = strdup(name);
	a[c->n_agents].address = strdup(address);
	c->n_agents++;
	if (!a[c->n_agents - 1].name || !a[c->n_agents - 1].address)
		return -ENOMEM;
	return 0;
}

static int parse_uint(const char *v, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || !*v || *end || n > max)
		return -EINVAL;
	*ret = (unsigned)n;
	return 0;
}

static int config_set(void *ud, const char *key, const char *v, char **ret_error)
{
	Config *c = ud;

	if (streq(key, "mountpoint"))
		return set_str(&c->mountpoint, v);
	if (streq(key, "state_dir"))
		return set_str(&c->state_dir, v);
	if (streq(key, "control_socket"))
		return set_str(&c->control_socket, v);
	if (streq(key, "workload_socket")) {
		if (!*v) {
			free(c->workload_socket);
			c->workload_socket = NULL;
			return 0;
		}
		if (strncmp(v, "unix:///", 8) != 0)
			return set_error(ret_error, -EINVAL,
					 "workload_socket must be unix:///absolute/path");
		return set_str(&c->workload_socket, v);
	}
	if (streq(key, "cgroup_root")) {
		if (v[0] != '/')
			return set_error(ret_error, -EINVAL, "cgroup_root must start with '/'");
		return set_str(&c->cgroup_root, v);
	}
	if (streq(key, "pod_pattern")) {
		/* Removed: a free pattern cannot say where in a path a pod component may sit,
		 * which is what attribution depends on. Earlier releases' default is accepted
		 * (main warns that it is ignored); any other value would silently change who
		 * counts as a pod, so it is refused. */
		if (!streq(v, CONFIG_OBSOLETE_POD_PATTERN))
			return set_error(ret_error, -EINVAL,
					 "pod_pattern is no longer supported: pods are recognised "
					 "where kubelet puts them below cgroup_root (svidfs(8), "
					 "ACCESS); remove it");
		return set_str(&c->pod_pattern, v);
	}
	if (streq(key, "identities_dir"))
		return set_str(&c->identities_dir, v);
	if (streq(key, "log_level")) {
		int l = log_parse_level(v);
		if (l < 0)
			return set_error(ret_error, -EINVAL, "unknown log level '%s'", v);
		c->log_level = l;
		return 0;
	}
	if (streq(key, "threads"))
		return parse_uint(v, 1024, &c->threads);
	if (streq(key, "keeper")) {
		if (!streq(v, "systemd") && !streq(v, "none") &&
		    !(strncmp(v, "socket:/", 8) == 0 && strlen(v) < 8 + 100))
			return set_error(ret_error, -EINVAL,
					 "keeper must be systemd, none or socket:/absolute/path");
		return set_str(&c->keeper, v);
	}
	if (streq(key, "after_handover")) {
		if (!streq(v, "exit") && !streq(v, "wait"))
			return set_error(ret_error, -EINVAL, "after_handover must be exit or wait");
		c->after_handover_wait = streq(v, "wait");
		return 0;
	}
	if (streq(key, "adopt_wait")) {
		unsigned sec;
		int r = parse_uint(v, 600, &sec);
		if (r < 0)
			return set_error(ret_error, r, "adopt_wait must be seconds (0..600)");
		c->adopt_wait_ms = sec * 1000;
		return 0;
	}
	if (streq(key, "failover_ms"))
		return parse_uint(v, 600000, &c->failover_ms);
	if (streq(key, "secure_heap")) {
		/* "64M", "512k", bytes */
		char *end;
		errno = 0;
		unsigned long long n = strtoull(v, &end, 10);
		unsigned shift = 0;
		if (errno || end == v)
			return set_error(ret_error, -EINVAL, "bad secure_heap size '%s'", v);
		if (*end == 'k' || *end == 'K')
			shift = 10, end++;
		else if (*end == 'm' || *end == 'M')
			shift = 20, end++;
		else if (*end == 'g' || *end == 'G')
			shift = 30, end++;
		/* Compare before shifting: a shift could wrap a huge count into the range. */
		if (*end || n > (4ull << 30) >> shift || (n << shift) < (64u << 10))
			return set_error(ret_error, -EINVAL,
					 "secure_heap must be between 64k and 4G, got '%s'", v);
		c->secure_heap = (size_t)(n << shift);
		return 0;
	}
	if (streq(key, "agent")) {
		/* "agent = <name> <unix:///path>" */
		const char *sp = strchr(v, ' ');
		if (!sp)
			return set_error(ret_error, -EINVAL, "agent must be '<name> <address>'");
		_cleanup_free_ char *name = strndup(v, (size_t)(sp - v));
		while (*sp == ' ')
			sp++;
		if (!name)
			return -ENOMEM;
		return add_agent(c, name, sp, ret_error);
	}
	return set_error(ret_error, -EINVAL, "unknown key '%s'", key);
}

int config_parse_text(Config *c, const char *text, const char *origin, char **ret_error)
{
	return parse_lines(text, origin, config_set, c, ret_error);
}

static int kv_set(void *ud, const char *key, const char *v, char **ret_error)
{
	int r = kv_add(ud, key, v);
	if (r == -EINVAL)
		return set_error(ret_error, r, "bad key '%s'", key);
	return r;
}

int config_parse_kv_file_text(const char *text, KvMsg **ret, char **ret_error)
{
	KvMsg *m = NULL;
	int r = kv_new(&m);

	if (r < 0)
		return r;
	r = parse_lines(text, "identity", kv_set, m, ret_error);
	if (r < 0) {
		kv_free(m);
		return r;
	}
	*ret = m;
	return 0;
}

static int read_file(const char *path, char **ret)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, len = 0, n;

	if (!f)
		return negative_errno();
	for (;;) {
		if (len + 4096 + 1 > cap) {
			if (cap > (1u << 20)) {
				free(buf);
				return -EFBIG;
			}
			char *p = realloc(buf, cap = cap ? cap * 2 : 8192);
			if (!p) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
		if (n < 4096)
			break;
	}
	if (ferror(f)) {
		free(buf);
		return -EIO;
	}
	buf[len] = 0;
	*ret = buf;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int config_load_identities(Config *c, char **ret_error)
{
	_cleanup_(closedirp_) DIR *d = NULL;
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	int r = 0;

	if (!c->identities_dir)
		return 0;
	d = opendir(c->identities_dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return set_error(ret_error, negative_errno(), "cannot open %s: %m",
				 c->identities_dir);
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 6 || !streq(de->d_name + l - 5, ".conf"))
			continue;
		char **p = realloc(names, (n + 1) * sizeof *p);
		if (!p || !(p[n] = strdup(de->d_name))) {
			free(p ? p : names);
			return -ENOMEM;
		}
		names = p;
		n++;
	}
	if (n)
		qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		KvMsg *m = NULL;
		if (r < 0)
			goto next;
		if (asprintf(&path, "%s/%s", c->identities_dir, names[i]) < 0) {
			r = -ENOMEM;
			goto next;
		}
		r = read_file(path, &text);
		if (r < 0) {
			set_error(ret_error, r, "cannot read %s: %s", path, strerror(-r));
			goto next;
		}
		r = config_parse_kv_file_text(text, &m, ret_error);
		if (r < 0) {
			_cleanup_free_ char *inner = TAKE_PTR(*ret_error);
			set_error(ret_error, r, "%s: %s", path, inner ? inner : "parse error");
			goto next;
		}
		if (!kv_get(m, "kind"))
			r = kv_add(m, "kind", "identity");
		KvMsg **pm = realloc(c->identities, (c->n_identities + 1) * sizeof *pm);
		char **pf =
		    pm ? realloc(c->identity_files, (c->n_identities + 1) * sizeof *pf) : NULL;
		if (pm)
			c->identities = pm;
		if (pf)
			c->identity_files = pf;
		if (r < 0 || !pm || !pf) {
			kv_free(m);
			r = r < 0 ? r : -ENOMEM;
			goto next;
		}
		c->identities[c->n_identities] = m;
		c->identity_files[c->n_identities] = TAKE_PTR(path);
		c->n_identities++;
	next:
		free(names[i]);
	}
	free(names);
	return r;
}

const ConfigAgent *config_find_agent(const Config *c, const char *name)
{
	for (size_t i = 0; i < c->n_agents; i++)
		if (streq(c->agents[i].name, name))
			return &c->agents[i];
	return NULL;
}

void config_done(Config *c)
{
	free(c->config_file);
	free(c->mountpoint);
	free(c->state_dir);
	free(c->control_socket);
	free(c->workload_socket);
	free(c->cgroup_root);
	free(c->pod_pattern);
	free(c->identities_dir);
	free(c->keeper);
	for (size_t i = 0; i < c->n_agents; i++) {
		free(c->agents[i].name);
		free(c->agents[i].address);
	}
	free(c->agents);
	for (size_t i = 0; i < c->n_identities; i++) {
		kv_free(c->identities[i]);
		free(c->identity_files[i]);
	}
	free(c->identities);
	free(c->identity_files);
	*c = (Config){};
}

void config_print_help(const char *argv0)
{
	printf("Usage: %s [OPTIONS]\n\n"
	       "Serve SPIFFE identities of registered workloads as files on a FUSE mount.\n\n"
	       "  -c, --config=FILE          config file (default " CONFIG_DEFAULT_FILE ")\n"
	       "  -m, --mountpoint=DIR       where to mount (default " SVIDFS_DEFAULT_MOUNTPOINT
	       ")\n"
	       "      --state-dir=DIR        persisted registrations (default "
	       SVIDFS_DEFAULT_STATEDIR ")\n"
	       "      --control-socket=PATH  control socket (default "
	       SVIDFS_DEFAULT_CONTROL_SOCKET ")\n"
	       "  -a, --agent=NAME=URI       SPIRE agent admin socket (repeatable; default\n"
	       "                             default=" CONFIG_DEFAULT_AGENT ")\n"
	       "      --workload-socket=URI  Workload API socket for self/ (default: none)\n"
	       "      --cgroup-root=PATH     kubelet's --cgroup-root, or the cgroup holding its\n"
	       "                             kubepods cgroup (default /)\n"
	       "      --identities-dir=DIR   bare-node identities (default " SVIDFS_SYSCONFDIR
	       "/identities.d)\n"
	       "      --threads=N            idle FUSE worker threads (default 4)\n"
	       "      --keeper=KEEPER        who holds the FUSE connection between daemons:\n"
	       "                             systemd, socket:PATH (svidfs-keeper) or none\n"
	       "                             (default: systemd when NOTIFY_SOCKET is set)\n"
	       "      --takeover             adopt the running daemon's connection (upgrade)\n"
	       "      --adopt-wait=SEC       after adopting, wait for first SVIDs (default 10)\n"
	       "      --after-handover=WHAT  exit (default) or wait for SIGTERM after handing the\n"
	       "                             connection to a successor (Kubernetes: wait, so\n"
	       "                             kubelet does not restart the old pod's daemon)\n"
	       "      --failover-ms=MS       agent outage before workloads move (default 1000)\n"
	       "      --secure-heap=SIZE     locked memory for keys and tokens (default 64M)\n"
	       "  -l, --log-level=LEVEL      emerg..debug (default info)\n"
	       "  -d, --fuse-debug           log every FUSE request (libfuse debug)\n"
	       "  -h, --help                 show this help\n"
	       "      --version              show the version\n\n"
	       "See svidfs(8).\n",
	       argv0);
}

enum {
	ARG_STATE_DIR = 0x100,
	ARG_CONTROL_SOCKET,
	ARG_WORKLOAD_SOCKET,
	ARG_CGROUP_ROOT,
	ARG_POD_PATTERN,
	ARG_IDENTITIES_DIR,
	ARG_THREADS,
	ARG_FAILOVER_MS,
	ARG_SECURE_HEAP,
	ARG_KEEPER,
	ARG_ADOPT_WAIT,
	ARG_AFTER_HANDOVER,
	ARG_TAKEOVER,
	ARG_VERSION,
};

static const struct option options[] = {
	{"config", required_argument, NULL, 'c'},
	{"mountpoint", required_argument, NULL, 'm'},
	{"state-dir", required_argument, NULL, ARG_STATE_DIR},
	{"control-socket", required_argument, NULL, ARG_CONTROL_SOCKET},
	{"agent", required_argument, NULL, 'a'},
	{"workload-socket", required_argument, NULL, ARG_WORKLOAD_SOCKET},
	{"cgroup-root", required_argument, NULL, ARG_CGROUP_ROOT},
	{"pod-pattern", required_argument, NULL, ARG_POD_PATTERN},
	{"identities-dir", required_argument, NULL, ARG_IDENTITIES_DIR},
	{"threads", required_argument, NULL, ARG_THREADS},
	{"failover-ms", required_argument, NULL, ARG_FAILOVER_MS},
	{"secure-heap", required_argument, NULL, ARG_SECURE_HEAP},
	{"keeper", required_argument, NULL, ARG_KEEPER},
	{"adopt-wait", required_argument, NULL, ARG_ADOPT_WAIT},
	{"after-handover", required_argument, NULL, ARG_AFTER_HANDOVER},
	{"takeover", no_argument, NULL, ARG_TAKEOVER},
	{"log-level", required_argument, NULL, 'l'},
	{"fuse-debug", no_argument, NULL, 'd'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, ARG_VERSION},
	{},
};

static const char *const flag_keys[] = {
	[ARG_STATE_DIR - 0x100] = "state_dir",
	[ARG_CONTROL_SOCKET - 0x100] = "control_socket",
	[ARG_WORKLOAD_SOCKET - 0x100] = "workload_socket",
	[ARG_CGROUP_ROOT - 0x100] = "cgroup_root",
	[ARG_POD_PATTERN - 0x100] = "pod_pattern",
	[ARG_IDENTITIES_DIR - 0x100] = "identities_dir",
	[ARG_THREADS - 0x100] = "threads",
	[ARG_FAILOVER_MS - 0x100] = "failover_ms",
	[ARG_SECURE_HEAP - 0x100] = "secure_heap",
	[ARG_KEEPER - 0x100] = "keeper",
	[ARG_ADOPT_WAIT - 0x100] = "adopt_wait",
	[ARG_AFTER_HANDOVER - 0x100] = "after_handover",
};

int config_load(int argc, char **argv, Config *c, char **ret_error)
{
	const char *config_path = NULL;
	bool agents_from_flags = false;
	int opt, r;

	*ret_error = NULL;
	*c = (Config){.log_level = LOG_INFO, .threads = 4, .failover_ms = 1000,
		      .secure_heap = CONFIG_DEFAULT_SECURE_HEAP, .adopt_wait_ms = 10000};
	if (set_str(&c->mountpoint, SVIDFS_DEFAULT_MOUNTPOINT) < 0 ||
	    set_str(&c->state_dir, SVIDFS_DEFAULT_STATEDIR) < 0 ||
	    set_str(&c->control_socket, SVIDFS_DEFAULT_CONTROL_SOCKET) < 0 ||
	    set_str(&c->cgroup_root, "/") < 0 ||
	    set_str(&c->identities_dir, SVIDFS_SYSCONFDIR "/identities.d") < 0)
		return -ENOMEM;

	/* Pass 1: --help, --version, --config. */
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "c:m:a:l:dh", options, NULL)) >= 0) {
		if (opt == 'h') {
			config_print_help(argv[0]);
			return 1;
		}
		if (opt == ARG_VERSION) {
			printf("svidfs %s\n", SVIDFS_VERSION);
			return 1;
		}
		if (opt == 'c')
			config_path = optarg;
		if (opt == '?')
			return set_error(ret_error, -EINVAL, "unknown or incomplete option '%s'",
					 argv[optind - 1]);
	}
	if (optind < argc)
		return set_error(ret_error, -EINVAL, "unexpected argument '%s'", argv[optind]);

	const char *path = config_path ? config_path : CONFIG_DEFAULT_FILE;
	_cleanup_free_ char *text = NULL;
	r = read_file(path, &text);
	if (r == -ENOENT && !config_path)
		r = 0;
	else if (r < 0)
		return set_error(ret_error, r, "cannot read config %s: %s", path, strerror(-r));
	else {
		r = config_parse_text(c, text, path, ret_error);
		if (r < 0)
			return r;
		if (set_str(&c->config_file, path) < 0)
			return -ENOMEM;
	}

	/* Pass 2: flags over the file. */
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:m:a:l:dh", options, NULL)) >= 0) {
		switch (opt) {
		case 'c':
			break;
		case 'm':
			r = config_set(c, "mountpoint", optarg, ret_error);
			break;
		case 'l':
			r = config_set(c, "log_level", optarg, ret_error);
			break;
		case 'd':
			c->fuse_debug = true;
			break;
		case ARG_TAKEOVER:
			c->takeover = true;
			break;
		case 'a': {
			const char *eq = strchr(optarg, '=');
			if (!eq)
				return set_error(ret_error, -EINVAL, "--agent needs NAME=URI");
			_cleanup_free_ char *name = strndup(optarg, (size_t)(eq - optarg));
			if (!name)
				return -ENOMEM;
			if (!agents_from_flags) {
				/* Flags name the whole agent list; the file's list is replaced. */
				for (size_t i = 0; i < c->n_agents; i++) {
					free(c->agents[i].name);
					free(c->agents[i].address);
				}
				c->n_agents = 0;
				agents_from_flags = true;
			}
			r = add_agent(c, name, eq + 1, ret_error);
			break;
		}
		default:
			if (opt >= ARG_STATE_DIR && opt <= ARG_AFTER_HANDOVER)
				r = config_set(c, flag_keys[opt - 0x100], optarg, ret_error);
			break;
		}
		if (r < 0) {
			if (!*ret_error)
				set_error(ret_error, r, "bad value '%s' for an option", optarg);
			return r;
		}
	}
	if (c->n_agents == 0) {
		r = add_agent(c, "default", CONFIG_DEFAULT_AGENT, ret_error);
		if (r < 0)
			return r;
	}
	if (c->mountpoint[0] != '/' || c->state_dir[0] != '/' || c->control_socket[0] != '/')
		return set_error(ret_error, -EINVAL,
				 "mountpoint, state_dir and control_socket must be absolute");
	return config_load_identities(c, ret_error);
}
