/* SPDX-License-Identifier: Apache-2.0 */
/* inodes.h: the inode table, ino -> (attributes, blob reference, kernel lookup count). Owns one
 * blob reference per inode the kernel knows; FORGET drops it, so a generation's bytes live
 * exactly as long as the kernel holds its inode. Thread-safe (one mutex, never held across a
 * call out of this module). Never logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "blob.h"

typedef struct InodeTable InodeTable;

typedef struct InodeAttr {
	mode_t mode; /* with S_IFDIR or S_IFREG */
	uid_t uid;
	gid_t gid;
	int64_t mtime;
	uint32_t slot;
	uint64_t owner;	     /* the workload's directory serial (slots are reused) */
	uint64_t generation; /* store generation the content belongs to (poll) */
	size_t size;	     /* filled from the blob */
} InodeAttr;

int inode_table_new(InodeTable **ret);
InodeTable *inode_table_free(InodeTable *t); /* NULL-safe; drops every blob */

/* One more kernel reference on ino. Fast path: if ino is known, returns 1 and fills
 * *ret_attr. Otherwise -ENOENT (the caller renders, then calls inode_table_add). */
int inode_table_ref_existing(InodeTable *t, uint64_t ino, InodeAttr *ret_attr);
/* Adds ino with one reference (taking a new reference on blob, which may be NULL for
 * directories), or, if another thread added it meanwhile, just counts the reference. Fills
 * *ret_attr with the table's attributes either way. */
int inode_table_add(InodeTable *t, uint64_t ino, const InodeAttr *attr, SvidBlob *blob,
		    InodeAttr *ret_attr);
/* Attributes and a new blob reference (NULL for directories or released content). */
int inode_table_get(InodeTable *t, uint64_t ino, InodeAttr *ret_attr, SvidBlob **ret_blob);
void inode_table_forget(InodeTable *t, uint64_t ino, uint64_t nlookup);
/* A workload went away: drop the bytes of all its inodes now (keys are wiped when the last
 * reference goes), keeping the entries for the kernel's FORGETs. Returns the inode numbers so
 * the caller can invalidate their page cache. */
int inode_table_release_owner(InodeTable *t, uint32_t slot, uint64_t owner, uint64_t **ret_inos,
			      size_t *ret_n);
size_t inode_table_count(InodeTable *t);
/* Who hears of every new file inode with its bytes (before the kernel does), and of every
 * FORGET (also of inodes this table never knew: a previous daemon's). The takeover layer's
 * ledger listens, for a successor. Set before serving; NULL: nobody. */
typedef struct InodeRecorder {
	void (*record)(void *userdata, uint64_t ino, const void *data, size_t len);
	void (*forget)(void *userdata, uint64_t ino);
	void *userdata;
} InodeRecorder;
void inode_table_set_recorder(InodeTable *t, const InodeRecorder *rec);
size_t inode_table_bytes(InodeTable *t); /* content bytes referenced (a blob shared by two inodes counts twice) */
