/* SPDX-License-Identifier: Apache-2.0 */
/* fsview.h: the filesystem as the FUSE handlers see it: resolves (parent inode, name) to an
 * entry, renders a generation's bytes on first lookup into the inode table, answers getattr,
 * read, readdir and poll from inode numbers alone (no open handler), and applies the access
 * rule at pods/<uid>, identities/<name> and self. Owns only the denial log. Called from the
 * FUSE worker threads; thread-safe. Logs denials (once per target and caller). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "access.h"
#include "blob.h"
#include "inodes.h"
#include "notify.h"
#include "sessions.h"
#include "store.h"

struct fuse_pollhandle;

typedef struct FsView FsView;

#define FSVIEW_TIMEOUT 86400.0 /* entries and attributes of immutable inodes */

int fsview_new(Sessions *s, SvidStore *store, InodeTable *inodes, const AccessPolicy *policy,
	       Notify *notify, FsView **ret);
FsView *fsview_free(FsView *v);
/* Takeover: l (borrowed, may be NULL) records the previous daemon's file inodes; epoch is this
 * process's generation for file entries; n gets the invalidation of a name whose old inode
 * answered ESTALE. Set before serving. */
struct InoLedger;
void fsview_set_ledger(FsView *v, struct InoLedger *l, uint64_t epoch, Notify *n);
/* Requests for inodes only a previous daemon had handed out. */
typedef struct FsViewRecovery {
	uint64_t dirs;   /* workload directories rebuilt from slot and serial */
	uint64_t served; /* files whose current bytes matched the ledger: served */
	uint64_t stale;  /* answered ESTALE */
} FsViewRecovery;
void fsview_recovery(FsView *v, FsViewRecovery *ret);
/* After adopting a connection: queues an entry invalidation for every name in every workload
 * directory, so that the kernel's dentries from the previous daemon (cached for a day) are
 * looked up again and reach the current generation. Returns the count queued. */
int fsview_invalidate_previous(FsView *v, Notify *n);

typedef struct FsEntry {
	uint64_t ino;
	uint64_t generation; /* FUSE generation: 1 for directories, the process epoch for files */
	struct stat st;
	double entry_timeout, attr_timeout;
} FsEntry;

/* On success the kernel owns one lookup reference on ret->ino (FORGET gives it back). */
int fsview_lookup(FsView *v, uint64_t parent, const char *name, pid_t caller_tid, FsEntry *ret);
int fsview_getattr(FsView *v, uint64_t ino, struct stat *ret, double *ret_timeout);
/* The bytes of [off, off+size) as a blob reference plus the slice; 0-length at EOF. */
int fsview_read(FsView *v, uint64_t ino, size_t size, off_t off, SvidBlob **ret_blob,
		size_t *ret_off, size_t *ret_len);
void fsview_forget(FsView *v, uint64_t ino, uint64_t nlookup);

typedef struct FsDirent {
	char *name;
	uint64_t ino;
	mode_t type; /* S_IFDIR or S_IFREG */
} FsDirent;
/* Every entry of a directory, "." and ".." first; free with fsview_dirents_free. */
int fsview_readdir(FsView *v, uint64_t ino, FsDirent **ret, size_t *ret_n);
void fsview_dirents_free(FsDirent *d, size_t n);

/* POLLIN-style readiness: 1 when the file's generation is no longer current; otherwise keeps
 * ph for the next change (taking it) and returns 0. */
int fsview_poll(FsView *v, uint64_t ino, struct fuse_pollhandle *ph);
