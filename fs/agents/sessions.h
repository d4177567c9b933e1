/* SPDX-License-Identifier: Apache-2.0 */
/* sessions.h: which agent serves which workload. Owns the agent connections (one per configured
 * agent, plus the Workload API one for self/), their bundle subscriptions, one SVID subscription
 * per workload (to the first healthy agent of its failover list), the registrations with their
 * references (each registered workload is a directory in the FUSE layer's registry), and the
 * registrations persisted in the state directory. A ticker thread
 * moves workloads between agents, refreshes stream state for status.json and pings the systemd
 * watchdog. Any thread may call the public functions; agent callbacks run on the connections'
 * threads. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "registration.h"
#include "registry.h"
#include "store.h"
#include "workload.h"

typedef struct Sessions Sessions;

/* What sessions needs of the daemon's configuration; borrowed for the sessions' lifetime. */
typedef struct SessionsAgent {
	const char *name;    /* "child-01" */
	const char *address; /* "unix:///run/spire/agent-sockets/child-01-admin.sock" */
} SessionsAgent;

typedef struct SessionsOptions {
	const SessionsAgent *agents; /* the failover order of a workload without an agent list */
	size_t n_agents;
	const char *workload_socket; /* Workload API for self/; NULL: no self/ */
	const char *state_dir;	     /* registrations/ below it */
	unsigned failover_ms;	     /* how long an agent must be down before workloads move */
	size_t secure_heap;	     /* bytes; a warning when nearly used up */
	KvMsg *const *identities;    /* register messages of identities.d files */
	char *const *identity_files; /* their paths (references "config:<path>") */
	size_t n_identities;
} SessionsOptions;

/* Workloads become directories in reg (borrowed, like store). */
int sessions_new(const SessionsOptions *o, SvidStore *store, Registry *reg, Sessions **ret);
/* Connects the agents, re-registers persisted workloads, config identities and self/, and
 * starts the ticker. */
int sessions_start(Sessions *s);
void sessions_stop(Sessions *s); /* cancels every stream; the registry stays */
Sessions *sessions_free(Sessions *s);

/* A workload lives while it has references: one per CSI volume of a pod (the volume id), or one
 * per svidfsctl user or config file. A CSI reference also records the target path its volume is
 * published at, so that another volume id cannot be published onto the same target. */
#define SESSIONS_MAX_REFS 64	  /* per workload: a pod has one per svidfs volume */
#define SESSIONS_REF_MAX 255	  /* bytes of a reference's name (a CSI volume id is at most 128) */
#define SESSIONS_TARGET_MAX 4095  /* bytes of a target path (PATH_MAX - 1) */
/* The largest registration file restore reads. A file the daemon writes is far below it: one
 * register request (at most 64 KiB) plus SESSIONS_MAX_REFS references with their targets. */
#define SESSIONS_STATE_FILE_MAX (16u * 1024 * 1024)

typedef enum SessionsRefOrigin {
	SESSIONS_REF_CONTROL,  /* a register request: persisted; the limits above apply */
	SESSIONS_REF_RESTORED, /* read back from the state directory: already on disk */
	SESSIONS_REF_CONFIG,   /* config identities and self/: never persisted */
	_SESSIONS_REF_ORIGIN_MAX,
} SessionsRefOrigin;

typedef struct SessionsRef {
	const char *name;   /* NULL or "": "default" */
	const char *target; /* optional: the target path the reference's volume is published at */
	SessionsRefOrigin origin;
} SessionsRef;

/* Idempotent per reference name. Takes reg. -EEXIST when the live workload has other settings
 * or when another reference holds the same target; -ENOSPC beyond SESSIONS_MAX_REFS; -EINVAL for
 * an unknown agent or a malformed reference; *ret_error says why (a static string). A control
 * reference is on disk when this returns 0 (-EIO and nothing registered when it cannot be). */
int sessions_register(Sessions *s, Registration *reg, const SessionsRef *ref, char **ret_name,
		      unsigned *ret_refs, const char **ret_error);
/* ref NULL drops every reference. */
int sessions_unregister(Sessions *s, const char *name, const char *ref, unsigned *ret_refs,
			bool *ret_removed);
/* Waits until the workload has at least one SVID: 0 with the count, or -ETIMEDOUT. */
int sessions_wait(Sessions *s, const char *name, int timeout_ms, size_t *ret_svids);
/* Without waiting: 0 with the count (>= 1), -EAGAIN while it has none, -ENOENT if unknown. */
int sessions_svids(Sessions *s, const char *name, size_t *ret_svids);
/* fn runs whenever a workload's SVIDs change or a workload goes away, under an internal lock:
 * it must only wake someone (an eventfd write), never call back in. Once this returns with fn
 * NULL, no call of the previous fn is running or will start. */
void sessions_set_change_listener(Sessions *s, void (*fn)(void *userdata), void *userdata);
int sessions_resubscribe(Sessions *s, const char *name);

unsigned sessions_refs(Sessions *s, const char *name);
void sessions_count(Sessions *s, size_t *ret_pods, size_t *ret_identities, size_t *ret_ready);

/* Mints a JWT-SVID for audience from the serving agent and caches it in the store. */
int sessions_fetch_jwt(Sessions *s, const char *name, const char *audience);
/* Where a workload's slot and directory serial are remembered across a takeover (the takeover
 * layer's ledger): find gives those a previous daemon recorded for a name (-ENOENT: none), set
 * records a workload's for the next daemon (name NULL: the slot is free). Set before
 * sessions_start; NULL: nothing is remembered. */
typedef struct SessionsSlots {
	int (*find)(void *userdata, const char *name, uint32_t *ret_slot, uint64_t *ret_dir_serial);
	void (*set)(void *userdata, uint32_t slot, uint64_t dir_serial, const char *name);
	void *userdata;
} SessionsSlots;
void sessions_set_slots(Sessions *s, const SessionsSlots *slots);
