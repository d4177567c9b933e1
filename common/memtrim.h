/* SPDX-License-Identifier: Apache-2.0 */
/* memtrim.h: gives the heap memory that removed workloads freed back to the kernel. glibc keeps
 * what its arenas free mapped unless the free space is at the top of a heap: each pod's gRPC
 * stream (~20 kB) is allocated and freed in a connection thread's arena, and the few blocks that
 * live on above it stop free() from shrinking that heap, so 5,000 pods left ~150 MB resident
 * after they were all gone (issue 12). malloc_trim() releases the free pages of every arena.
 * The policy: removals arm a trim that runs once the burst is over (quiet_ms without a removal,
 * and at least min_removals of them), or every max_removals removals during a long churn.
 * Thread-safe; never logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct MemTrim MemTrim;

int memtrim_new(unsigned min_removals, unsigned quiet_ms, unsigned max_removals, MemTrim **ret);
MemTrim *memtrim_free(MemTrim *t); /* NULL-safe, returns NULL */

void memtrim_note_removal(MemTrim *t, uint64_t now_ms);
/* True once when a trim is due at now_ms (the count starts again); the caller then calls
 * memtrim_run(). */
bool memtrim_due(MemTrim *t, uint64_t now_ms);
unsigned memtrim_pending(MemTrim *t); /* removals since the last due trim */

/* malloc_trim(0). Returns how much the resident set shrank, in bytes (0 if it did not), or a
 * negative errno when /proc/self/statm cannot be read. */
int64_t memtrim_run(void);
