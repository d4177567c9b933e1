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
