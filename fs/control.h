/* SPDX-License-Identifier: Apache-2.0 */
/* control.h: the control socket server (docs/control-protocol.md). Owns the listening socket and
 * every connection, served by one sd-event loop on its own thread: an idle connection costs a file
 * descriptor and a small struct, never a thread. Only uid 0 (SO_PEERCRED) is served; at most
 * CONTROL_MAX_CONNS connections at a time; a connection idle (or stalled mid-request or
 * mid-reply) for CONTROL_IDLE_TIMEOUT_S is closed. A wait is a timer on the loop, answered when
 * the SVID arrives (sessions' change listener wakes the loop). Requests that may block on the disk
 * or on an agent (register, unregister, resubscribe) run one at a time on a worker thread, so
 * they never stall other connections. Requests go to sessions; replies are built from sessions
 * and the store. Created, started and freed from the main thread; the setters may be called from
 * any thread. */
#pragma once

#include <stdint.h>

#include <stdbool.h>

#include "config.h"
#include "inodes.h"
#include "recovery.h"
#include "registry.h"
#include "sessions.h"
#include "store.h"

typedef struct Control Control;

#define CONTROL_MAX_CONNS 1024	    /* more than the CSI plugin's default 256 workers, waiting */
#define CONTROL_IDLE_TIMEOUT_S 15   /* per connection, between requests and while stalled */
#define CONTROL_MAX_REQUEST (64 * 1024)
#define CONTROL_MAX_WAIT_MS (10 * 60 * 1000)

typedef struct ControlContext {
	const Config *cfg;
	Sessions *sessions;
	Registry *registry;
	SvidStore *store;
	InodeTable *inodes;
	int64_t started_at;
	Recovery *recovery; /* optional: takeover recovery counters in info */
	/* op=shutdown: stop serving; unmount (true) or leave the connection to a keeper. */
	void (*shutdown)(void *userdata, bool unmount);
	void *shutdown_userdata;
} ControlContext;

int control_new(const ControlContext *ctx, Control **ret);
int control_start(Control *c); /* binds, listens, starts the loop and worker threads */
void control_set_mounted_at(Control *c, int64_t t);
void control_set_takeovers(Control *c, unsigned n); /* takeovers the connection survived */
/* Stops the loop (open connections and waits are closed unanswered), lets the worker finish the
 * request it runs, and frees everything. NULL-safe. */
Control *control_free(Control *c);
