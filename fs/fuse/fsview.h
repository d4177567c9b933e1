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
#include "registry.h"
#include "store.h"

struct fuse_pollhandle;

typedef struct FsView FsView;

#define FSVIEW_TIMEOUT 86400.0 /* entries and attributes of immutable inodes */

int fsview_new(Registry *reg, SvidStore *store, InodeTable *inodes, const AccessPolicy *policy,
	       Notify *notify, FsView **ret);
FsView *fsview_free(FsView *v);
/* The connection's facts, set before serving. key (borrowed, may be NULL) wraps every inode
 * number and generation the kernel sees (inokey.h: handles cannot be forged); epoch is this
 * process's input to file generations, so an inode number a new process reuses is a new inode
 * to the kernel. Without a key (unit tests) numbers are plain, directories have generation 1
 * and files the epoch. */
struct InoKey;
void fsview_set_connection(FsView *v, const struct InoKey *key, uint64_t epoch);
/* A request for an inode this process never handed out (the kernel learned it from a previous
 * daemon: takeover) calls recover(userdata, ino) once, which adds it to the inode table (0) or
 * answers -ESTALE or -ENOENT. The takeover layer's recovery.h provides it. */
typedef int (*FsRecoverFn)(void *userdata, uint64_t ino);
void fsview_set_recovery(FsView *v, FsRecoverFn recover, void *userdata);

/* Every inode number in and out of these functions is the kernel's (wrapped) number. */
typedef struct FsEntry {
	uint64_t ino;
	uint64_t generation; /* FUSE generation (inokey.h) */
	struct stat st;
	double entry_timeout, attr_timeout;
} FsEntry;

/* Who asks: filled by the FUSE layer from the request. */
typedef struct FsCaller {
	pid_t tid; /* 0: not visible in the daemon's pid namespace */
	uid_t uid;
	gid_t gid;
	/* Supplementary groups, asked for only when a rule needs them: the count (at most max)
	 * or -errno. NULL: none. */
	int (*groups)(void *userdata, gid_t *ret, int max);
	void *userdata;
} FsCaller;

/* JWT-SVIDs are minted off the FUSE workers: mint(userdata, workload, audience, done, ud) must
 * not block; 0 promises done(ud, r) exactly once (r = 0: the token is in the store), -EAGAIN
 * when busy. See minter.h. Without one, a lookup that needs a new token answers -EAGAIN. */
typedef int (*FsMintFn)(void *userdata, const char *workload, const char *audience,
			void (*done)(void *done_userdata, int r), void *done_userdata);
void fsview_set_minter(FsView *v, FsMintFn mint, void *userdata);

/* Completion of a lookup answered later (-EINPROGRESS): called exactly once, from another
 * thread, with the entry when r >= 0. */
typedef void (*FsLookupDone)(void *req, int r, const FsEntry *e);

/* On success the kernel owns one lookup reference on ret->ino (FORGET gives it back).
 * -EINPROGRESS: a JWT-SVID is being minted; done(req, ...) answers instead. jwt/<audience> is
 * looked up (and a token minted) only for a caller that may read the workload's key. */
int fsview_lookup(FsView *v, uint64_t parent, const char *name, const FsCaller *c,
		  FsLookupDone done, void *req, FsEntry *ret);
int fsview_getattr(FsView *v, uint64_t ino, struct stat *ret, double *ret_timeout);
/* The bytes of [off, off+size) as a blob reference plus the slice; 0-length at EOF. */
int fsview_read(FsView *v, uint64_t ino, size_t size, off_t off, SvidBlob **ret_blob,
		size_t *ret_off, size_t *ret_len);
void fsview_forget(FsView *v, uint64_t ino, uint64_t nlookup);

typedef struct FsDirent {
	char *name;
	uint64_t ino;
	mode_t type; /* S_IFDIR or S_IFREG */
	off_t off;   /* the entry's stable position: a readdir resumes after it */
} FsDirent;
/* Every entry of a directory in ascending `off` order, "." and ".." first; free with
 * fsview_dirents_free. Positions are stable while entries come and go (a workload's slot, a
 * node's id), so a listing resumed at a position never repeats a name and never skips one that
 * stayed. */
int fsview_readdir(FsView *v, uint64_t ino, FsDirent **ret, size_t *ret_n);
void fsview_dirents_free(FsDirent *d, size_t n);

/* POLLIN-style readiness: 1 when the file's generation is no longer current; otherwise keeps
 * ph for the next change (taking it) and returns 0. */
int fsview_poll(FsView *v, uint64_t ino, struct fuse_pollhandle *ph);
