/* SPDX-License-Identifier: Apache-2.0 */
/* notify.h: the notify thread. Owns a queue of kernel notifications (entry and inode
 * invalidations, poll wake-ups) and the thread that sends them, so that no request handler ever
 * notifies (that deadlocks: docs/design.md). Any thread may queue; the thread only talks to the
 * kernel. Before notify_start (no session yet) queued events are dropped: the kernel holds
 * nothing to invalidate. */
#pragma once

#include <stdint.h>

struct fuse_session;
struct fuse_pollhandle;

typedef struct Notify Notify;

int notify_new(Notify **ret);
/* Events carry the daemon's plain inode numbers; with a key (borrowed, set before
 * notify_start) the kernel gets the wrapped ones (inokey.h). */
struct InoKey;
void notify_set_ino_key(Notify *n, const struct InoKey *key);
int notify_start(Notify *n, struct fuse_session *se);
void notify_stop(Notify *n);	/* sends what is queued, then joins the thread */
Notify *notify_free(Notify *n); /* NULL-safe; stops first */

void notify_inval_entry(Notify *n, uint64_t parent, const char *name);
void notify_inval_inode(Notify *n, uint64_t ino);
void notify_poll_wakeup(Notify *n, struct fuse_pollhandle *ph); /* takes ownership of ph */
/* Blocks until every event queued before the call was sent. */
void notify_sync(Notify *n);
uint64_t notify_sent(Notify *n);
