// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <openssl/crypto.h>
#include <criterion/criterion.h>

#include "secret.h"

Test(secret, alloc_is_zeroed)
{
	uint8_t *p = secret_alloc(100);
	cr_assert_not_null(p);
	for (size_t i = 0; i < 100; i++)
		cr_assert_eq(p[i], 0);
	secret_free(p, 100);
}

Test(secret, dup_copies)
{
	uint8_t *p = secret_dup("abc", 3);
	cr_assert_not_null(p);
	cr_assert_eq(memcmp(p, "abc", 3), 0);
	secret_free(p, 3);
	secret_free(NULL, 3); /* NULL-safe */
}

static bool zero;
static size_t seen;
static void *seen_ud;
static void hook(const void *p, size_t n, void *ud)
{
	const uint8_t *b = p;
	zero = true;
	for (size_t i = 0; i < n; i++)
		zero = zero && b[i] == 0;
	seen = n;
	seen_ud = ud;
}

Test(secret, free_wipes_before_release)
{
	int token;
	uint8_t *p = secret_dup("secret material!", 16);
	secret_set_free_hook(hook, &token);
	secret_free(p, 16);
	cr_assert_eq(seen, 16);
	cr_assert_eq(seen_ud, &token);
	cr_assert(zero);
	secret_set_free_hook(NULL, NULL);
}

Test(secret, wipe_clears_stack_copies)
{
	char buf[32];
	memcpy(buf, "0123456789abcdef0123456789abcdef", 32);
	secret_wipe(buf, sizeof buf);
	for (size_t i = 0; i < sizeof buf; i++)
		cr_assert_eq(buf[i], 0);
	secret_wipe(NULL, 10);
}

Test(secret, init_locks_heap_and_disables_dumps)
{
	cr_assert_eq(secret_init(0), 0);
	cr_assert_eq(secret_init(0), 0, "idempotent");
	cr_assert(secret_is_locked());
	cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
	void *p = secret_alloc(64);
	cr_assert_eq(CRYPTO_secure_allocated(p), 1);
	secret_free(p, 64);
}

/* ---- protobuf-c blocks and stack scrubbing (issue 12: keys only in locked memory). OpenSSL's
 * routed allocations are tested in test-secret-route.c: Criterion's runner makes OpenSSL
 * allocate before a test can route it. ---- */

Test(secret, pb_blocks_are_secure_and_wiped)
{
	int token;
	cr_assert_eq(secret_init(1u << 20), 0);
	uint8_t *p = secret_pb_alloc(NULL, 48);
	cr_assert_not_null(p);
	cr_assert_eq(CRYPTO_secure_allocated(p), 1);
	memset(p, 'k', 48);
	secret_set_free_hook(hook, &token);
	seen = 0;
	secret_pb_free(NULL, p);
	secret_set_free_hook(NULL, NULL);
	cr_assert_eq(seen, 48);
	cr_assert(zero);
	secret_pb_free(NULL, NULL); /* NULL-safe */
}

/* Without a secure heap (secret_init not called) the blocks still work, from malloc. */
Test(secret, pb_blocks_without_secure_heap)
{
	uint8_t *p = secret_pb_alloc(NULL, 48);
	cr_assert_not_null(p);
	memset(p, 'k', 48);
	secret_pb_free(NULL, p);
}

static uintptr_t dead_frame; /* an address, on purpose: the frame is dead when it is read */

__attribute__((noinline)) static void leave_key_on_stack(void)
{
	volatile uint8_t buf[1024];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = 'k';
	dead_frame = (uintptr_t)buf;
}

/* Reads the dead frame: below the stack pointer, which only this check may do. */
__attribute__((noinline, no_sanitize_address)) static size_t count_k(void)
{
	size_t n = 0;
	for (size_t i = 0; i < 1024; i++)
		n += ((const volatile uint8_t *)dead_frame)[i] == 'k';
	return n;
}

Test(secret, scrub_stack_wipes_what_callees_left)
{
	leave_key_on_stack();
	secret_scrub_stack();
	cr_assert_eq(count_k(), 0);
}
