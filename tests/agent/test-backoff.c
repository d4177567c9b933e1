// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>

#include "backoff.h"

static Backoff *b;

static void teardown(void)
{
	b = backoff_free(b);
}

TestSuite(backoff, .fini = teardown);

Test(backoff, first_delay_is_jittered_initial)
{
	for (uint64_t seed = 1; seed < 200; seed++) {
		cr_assert_eq(backoff_new(200, 30000, seed, &b), 0);
		unsigned d = backoff_next(b);
		cr_assert(d >= 100 && d <= 200, "seed %llu: %u", (unsigned long long)seed, d);
		b = backoff_free(b);
	}
}

Test(backoff, doubles_up_to_the_cap)
{
	cr_assert_eq(backoff_new(100, 5000, 7, &b), 0);
	unsigned expect[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		unsigned d = backoff_next(b);
		cr_assert(d >= expect[i] / 2 && d <= expect[i], "attempt %zu: %u not in [%u, %u]",
			  i, d, expect[i] / 2, expect[i]);
	}
	cr_assert_eq(backoff_attempts(b), 9);
}

Test(backoff, never_exceeds_cap_nor_overflows)
{
	cr_assert_eq(backoff_new(250, 30000, 3, &b), 0);
	for (int i = 0; i < 100000; i++) {
		unsigned d = backoff_next(b);
		cr_assert(d >= 1 && d <= 30000, "attempt %d: %u", i, d);
	}
}

Test(backoff, reset_after_a_message)
{
	cr_assert_eq(backoff_new(100, 10000, 11, &b), 0);
	for (int i = 0; i < 10; i++)
		backoff_next(b);
	cr_assert_gt(backoff_next(b), 4999);
	backoff_reset(b);
	cr_assert_eq(backoff_attempts(b), 0);
	unsigned d = backoff_next(b);
	cr_assert(d >= 50 && d <= 100, "%u", d);
}

Test(backoff, jitter_spreads_and_is_reproducible)
{
	unsigned seen[1001] = {0}, distinct = 0;
	for (uint64_t seed = 1; seed <= 500; seed++) {
		cr_assert_eq(backoff_new(1000, 1000, seed, &b), 0);
		unsigned d = backoff_next(b);
		if (!seen[d]++)
			distinct++;
		b = backoff_free(b);
	}
	cr_assert_gt(distinct, 200, "only %u distinct delays", distinct);

	Backoff *a = NULL;
	cr_assert_eq(backoff_new(300, 9000, 99, &a), 0);
	cr_assert_eq(backoff_new(300, 9000, 99, &b), 0);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(backoff_next(a), backoff_next(b));
	backoff_free(a);
}

Test(backoff, degenerate_parameters)
{
	cr_assert_eq(backoff_new(0, 0, 0, &b), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(backoff_next(b), 1);
	b = backoff_free(b);
	cr_assert_eq(backoff_new(500, 100, 5, &b), 0); /* cap below initial: the cap is raised */
	for (int i = 0; i < 10; i++) {
		unsigned d = backoff_next(b);
		cr_assert(d >= 250 && d <= 500, "%u", d);
	}
	cr_assert_null(backoff_free(NULL));
}
