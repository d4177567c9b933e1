/* SPDX-License-Identifier: Apache-2.0 */
/* harness.h: what the agent-suite programs (integration test, latency benchmark) share: a
 * development agent child process in a private temporary directory, its control socket, TAP
 * output, and a Recorder that collects callbacks. Single test thread plus the client's CQ
 * threads (the Recorder is locked). */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "kv.h"

#define TD "example.org"

typedef struct DevAgent {
	const char *bin;
	char dir[32];
	char admin[96], workload[96], control[96];
	pid_t pid;
} DevAgent;

/* Makes /tmp/svidfs-test.XXXXXX and the socket paths. */
int da_init(DevAgent *d, const char *bin);
/* Starts the agent with the common options plus extra (NULL-terminated) and waits until its
 * control socket answers. */
int da_start(DevAgent *d, const char *const *extra);
void da_stop(DevAgent *d); /* SIGTERM, then SIGKILL after 5 s; waits */
void da_kill(DevAgent *d); /* SIGKILL; waits */
void da_done(DevAgent *d); /* stops and removes the directory */
/* One control request: op plus key/value pairs (NULL-terminated). Returns the reply's status
 * (>= 0 or -errno); *ret (optional) gets the reply. */
int da_ctl(DevAgent *d, KvMsg **ret, const char *op, ...);
char *da_uri(const char *path); /* "unix://" + path, static buffer per call site not needed */

/* TAP */
void tap_ok(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tap_done(void); /* prints the plan; exit status */

uint64_t now_ns(void);

/* Collects X.509 and bundle callbacks. */
typedef struct Recorder {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned updates;
	size_t n_svids;
	char spiffe_id[256];
	uint8_t *leaf; /* copy of the first SVID's chain */
	size_t leaf_len;
	size_t n_bundles;
	char bundle_td[256];
	uint64_t last_ns;
	AgentSub *cancel_me; /* cancelled from inside the callback, once */
	bool block;          /* when set, callbacks wait until cleared */
	unsigned blocked;    /* callbacks waiting on block right now */
} Recorder;

void rec_init(Recorder *r);
void rec_done(Recorder *r);
void rec_x509(void *userdata, const SvidX509Update *u);
void rec_bundles(void *userdata, const SvidBundleInput *b, size_t n);
/* Waits until r->updates >= n; false on timeout. */
bool rec_wait(Recorder *r, unsigned n, int timeout_ms);
unsigned rec_updates(Recorder *r);
