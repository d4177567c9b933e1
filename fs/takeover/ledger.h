/* SPDX-License-Identifier: Apache-2.0 */
/* ledger.h: owns the record of file inodes the kernel has been handed (inode number, size, and
 * SHA-256 of the bytes), kept in a memfd that the keeper holds with the FUSE connection. After a
 * takeover, the new daemon serves a request for an inode it never created only if the bytes it
 * would serve now hash to what the old daemon served under that number; otherwise -ESTALE. So
 * an inode number never names two contents, across restarts too. No key bytes are stored; the
 * memfd is never written to disk. Thread-safe. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct InoLedger InoLedger;

/* capacity: entries (rounded up to a power of two; 0 picks 65536). */
int ino_ledger_new(size_t capacity, InoLedger **ret);
/* Maps a ledger memfd handed over by a keeper; takes ownership of fd. A ledger that a crash left
 * half-rebuilt is detected and discarded (every old inode then answers -ESTALE). */
int ino_ledger_adopt(int fd, InoLedger **ret);
InoLedger *ino_ledger_free(InoLedger *l); /* NULL-safe */
int ino_ledger_fd(const InoLedger *l);

/* Records that ino carries these bytes (idempotent). -ENOSPC when full (the inode then simply is
 * not recoverable after a takeover). */
int ino_ledger_record(InoLedger *l, uint64_t ino, const void *data, size_t len);
int ino_ledger_forget(InoLedger *l, uint64_t ino); /* -ENOENT if not recorded */
/* 0 when ino was recorded with exactly these bytes, -ESTALE when with others, -ENOENT unknown. */
int ino_ledger_check(InoLedger *l, uint64_t ino, const void *data, size_t len);
size_t ino_ledger_count(InoLedger *l);

/* The workload slot table (same memfd): which workload held a slot, with its directory serial,
 * so that a new daemon gives every reloaded workload the directory inode the kernel (and every
 * pod's bind mount) already holds. Slots 0..LEDGER_SLOTS-1; -ENOSPC above. name NULL clears. */
#define LEDGER_SLOTS 8192
#define LEDGER_NAME_MAX 271 /* "identities/" + 255 bytes fits */
int ino_ledger_set_workload(InoLedger *l, uint32_t slot, uint64_t dir_serial, const char *name);
/* -ENOENT when no slot holds name. */
int ino_ledger_find_workload(InoLedger *l, const char *name, uint32_t *ret_slot,
			     uint64_t *ret_dir_serial);
