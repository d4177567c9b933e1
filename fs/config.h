/* SPDX-License-Identifier: Apache-2.0 */
/* config.h: the daemon's configuration: the config file (key=value lines, '#' comments), then
 * command-line flags on top, then the bare-node identity files of identities_dir. A plain value
 * struct (every field is read by main), owned by main; built once on the main thread, then
 * read-only. Parsing never logs: errors come back as -errno plus a message. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "kv.h"

typedef struct ConfigAgent {
	char *name;    /* "child-01" */
	char *address; /* "unix:///run/spire/agent-sockets/child-01-admin.sock" */
} ConfigAgent;

typedef struct Config {
	char *config_file; /* the file read, or NULL */
	char *mountpoint;
	char *state_dir;
	char *control_socket;
	char *workload_socket; /* Workload API for self/; NULL: no self/ */
	char *cgroup_root;     /* where kubelet's kubepods cgroup is (access_policy_new) */
	char *pod_pattern;     /* obsolete; only CONFIG_OBSOLETE_POD_PATTERN is accepted */
	char *identities_dir;
	int log_level;
	unsigned threads;     /* FUSE worker threads kept idle (max_idle_threads) */
	unsigned failover_ms; /* how long an agent must be down before workloads move */
	size_t secure_heap;   /* bytes of locked memory for keys and tokens (OpenSSL secure heap) */
	bool fuse_debug;
	char *keeper;          /* "systemd", "socket:PATH", "none"; NULL: systemd under systemd */
	bool takeover;         /* adopt the connection of the running daemon (planned upgrade) */
	bool after_handover_wait; /* after handing over: wait for SIGTERM instead of exiting */
	unsigned adopt_wait_ms; /* after adopting: wait for workloads' first SVIDs (bounded) */
	ConfigAgent *agents;
	size_t n_agents;
	KvMsg **identities; /* one register message (kind=identity) per identities.d file */
	char **identity_files;
	size_t n_identities;
} Config;

#define CONFIG_DEFAULT_FILE SVIDFS_SYSCONFDIR "/svidfs.conf"
#define CONFIG_DEFAULT_AGENT "unix:///run/spire/admin-sockets/admin.sock"
#define CONFIG_DEFAULT_SECURE_HEAP (64u << 20)
/* The pod_pattern default of earlier releases, the only value still accepted (and ignored). */
#define CONFIG_OBSOLETE_POD_PATTERN "^[a-z_-]*pod([0-9a-fA-F_-]{36})(\\.slice)?$"

/* Fills defaults, reads the config file (--config, else CONFIG_DEFAULT_FILE if it exists),
 * applies flags, loads identities. Returns 0, 1 when --help/--version was printed (exit 0), or
 * -errno with *ret_error set (free it). */
int config_load(int argc, char **argv, Config *ret, char **ret_error);
/* Parses one config file's text into c (used by config_load; exposed for tests). */
int config_parse_text(Config *c, const char *text, const char *origin, char **ret_error);
/* key=value text with comments and blank lines, as identities.d files use, to a message. */
int config_parse_kv_file_text(const char *text, KvMsg **ret, char **ret_error);
int config_load_identities(Config *c, char **ret_error);
const ConfigAgent *config_find_agent(const Config *c, const char *name);
void config_done(Config *c);
void config_print_help(const char *argv0);
