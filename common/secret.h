/* SPDX-License-Identifier: Apache-2.0 */
/* secret.h: memory for key material. Owns the process's secure heap (OpenSSL's mlock'ed,
 * MADV_DONTDUMP arena) and the fallback policy when it cannot be set up. Thread-safe after
 * secret_init(). Every secret buffer is wiped with OPENSSL_cleanse before it is released. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Sets up the secure heap (heap_bytes is rounded up to a power of two; 0 picks 4 MiB) and marks
 * the process non-dumpable. When the heap cannot be locked (RLIMIT_MEMLOCK), falls back to
 * mlockall(MCL_CURRENT|MCL_FUTURE); returns -errno only if neither protection could be had,
 * and secret buffers still work (unlocked). Idempotent. */
int secret_init(size_t heap_bytes);
bool secret_is_locked(void);

void *secret_alloc(size_t n);               /* zeroed; NULL on ENOMEM */
void *secret_dup(const void *p, size_t n);  /* secret copy of p */
void secret_free(void *p, size_t n);        /* NULL-safe; wipes n bytes, then releases */

/* Test hook: called by secret_free() after the wipe and before the release, with the buffer
 * still mapped, so a test can check that no key byte survived. NULL disables it. */
typedef void (*SecretFreeHook)(const void *p, size_t n, void *userdata);
void secret_set_free_hook(SecretFreeHook hook, void *userdata);

/* Wipes any buffer (stack copies, decoded protobufs) that held key bytes. */
void secret_wipe(void *p, size_t n);

/* Wipes 32 KiB of stack below the caller's frame: what the functions it called (a decoder,
 * OpenSSL) left there, including vector registers that were saved on the stack. Call it after
 * handing key bytes down a call chain. */
void secret_scrub_stack(void);

/* A ProtobufCAllocator-shaped pair for decoding messages that carry keys: blocks come from the
 * secure heap and are wiped when freed (the size is kept in a header). */
void *secret_pb_alloc(void *allocator_data, size_t n);
void secret_pb_free(void *allocator_data, void *p);

/* OpenSSL copies what it parses into memory of its own (a private key's DER into decoder
 * buffers that it frees unwiped). secret_openssl_init() routes OpenSSL's allocations through
 * svidfs so that, between secret_scope_enter() and secret_scope_leave() on a thread, every
 * allocation OpenSSL makes on that thread comes from the secure heap and is wiped when freed.
 * It must run before OpenSSL allocates anything (first thing in main): -EBUSY otherwise, and
 * scopes then change nothing. Without a secure heap, scopes change nothing either (mlockall
 * covers everything then). Outside a scope OpenSSL allocates from malloc as before. */
int secret_openssl_init(void);
unsigned secret_scope_enter(void);         /* returns the new nesting depth */
void secret_scope_leave(unsigned *depth);  /* for _cleanup_(secret_scope_leave) */
/* Whether OpenSSL allocations on this thread currently go to the secure heap. */
bool secret_scope_active(void);
