/* SPDX-License-Identifier: Apache-2.0 */
/* control.h: the control socket server (docs/control-protocol.md). Owns the listening socket,
 * its accept thread and one thread per connection; only uid 0 (SO_PEERCRED) is served.
 * Requests go to sessions; replies are built from sessions and the store. Started and stopped
 * from the main thread. */
#pragma once

#include <stdint.h>

#include "config.h"
#include "inodes.h"
#include "sessions.h"
#include "store.h"

typedef struct Control Control;

typedef struct ControlContext {
	const Config *cfg;
	Sessions *sessions;
	SvidStore *store;
	InodeTable *inodes;
	int64_t started_at;
} ControlContext;

int control_new(const ControlContext *ctx, Control **ret);
int control_start(Control *c); /* binds, listens, starts the accept thread */
void control_set_mounted_at(Control *c, int64_t t);
Control *control_free(Control *c); /* stops accepting, waits for open connections; NULL-safe */
