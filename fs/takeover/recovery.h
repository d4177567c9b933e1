/* SPDX-License-Identifier: Apache-2.0 */
/* recovery.h: after a takeover, the previous daemon's inodes. The kernel keeps asking for inode
 * numbers the previous daemon handed out (open files, cached dentries, every pod's bind-mount
 * root). The view calls recovery_recover once for each number it does not know: a workload
 * directory is rebuilt when its slot and directory serial name a live workload (restored from
 * the ledger's slot table); a file is served again only when the bytes of its (workload, node)
 * now are exactly those the previous daemon served under that number (the ledger's digest);
 * anything else answers -ESTALE and drops the name, so the reader's next open looks it up anew.
 * Owns the counters. Thread-safe (FUSE workers); never logs. */
#pragma once

#include <stdint.h>

#include "inodes.h"
#include "ledger.h"
#include "notify.h"
#include "registry.h"
#include "store.h"

typedef struct Recovery Recovery;

/* Everything borrowed; ledger NULL: no previous daemon's files can be vouched for. */
int recovery_new(Registry *reg, SvidStore *store, InodeTable *inodes, Notify *notify,
		 InoLedger *ledger, Recovery **ret);
Recovery *recovery_free(Recovery *rc); /* NULL-safe */
/* The ledger of the connection this daemon serves, once known (before serving). */
void recovery_set_ledger(Recovery *rc, InoLedger *ledger);

/* fsview's FsRecoverFn: 0 when ino is in the inode table now, -ESTALE or -ENOENT. */
int recovery_recover(void *recovery, uint64_t ino);

typedef struct RecoveryCounts {
	uint64_t dirs;	 /* workload directories rebuilt from slot and serial */
	uint64_t served; /* files whose current bytes matched the ledger: served */
	uint64_t stale;	 /* answered ESTALE */
} RecoveryCounts;
void recovery_counts(Recovery *rc, RecoveryCounts *ret);

/* After adopting a connection: queues an entry invalidation for every name in every workload
 * directory, so that the kernel's dentries from the previous daemon (cached for a day) are
 * looked up again and reach the current generation. Returns the count queued. */
int recovery_invalidate_previous(Recovery *rc);
