// SPDX-License-Identifier: Apache-2.0
/* memtrim: when the daemon gives freed memory back after workloads go away (issue 12). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>

#include "memtrim.h"

static MemTrim *t;

static void setup(void)
{
	cr_assert_eq(memtrim_new(4, 1000, 10, &t), 0);
}

static void teardown(void)
{
	t = memtrim_free(t);
}

TestSuite(memtrim, .init = setup, .fini = teardown);

Test(memtrim, rejects_nonsense)
{
	MemTrim *x = NULL;
	cr_assert_eq(memtrim_new(0, 1000, 10, &x), -EINVAL);
	cr_assert_eq(memtrim_new(5, 1000, 4, &x), -EINVAL);
	cr_assert_null(memtrim_free(NULL));
}

Test(memtrim, nothing_removed_nothing_due)
{
	cr_assert_not(memtrim_due(t, 0));
	cr_assert_not(memtrim_due(t, 1000000));
}

Test(memtrim, too_few_removals_never_trim)
{
	for (unsigned i = 0; i < 3; i++)
		memtrim_note_removal(t, 100 + i);
	cr_assert_not(memtrim_due(t, 100000), "3 removals: not worth a trim");
	cr_assert_eq(memtrim_pending(t), 3);
}

Test(memtrim, burst_trims_once_when_quiet)
{
	for (unsigned i = 0; i < 6; i++)
		memtrim_note_removal(t, 1000 + i * 10);
	cr_assert_not(memtrim_due(t, 1050), "the burst is still going on");
	cr_assert_not(memtrim_due(t, 2049), "not yet quiet for 1 s");
	cr_assert(memtrim_due(t, 2050));
	cr_assert_eq(memtrim_pending(t), 0);
	cr_assert_not(memtrim_due(t, 5000), "once per burst");
}

Test(memtrim, long_churn_trims_every_max_removals)
{
	unsigned trims = 0;
	/* A removal every 100 ms for 35 removals: never quiet for 1 s. */
	for (unsigned i = 0; i < 35; i++) {
		memtrim_note_removal(t, i * 100);
		trims += memtrim_due(t, i * 100);
	}
	cr_assert_eq(trims, 3, "every 10 removals (%u)", trims);
	cr_assert_eq(memtrim_pending(t), 5);
}

Test(memtrim, run_reports_what_it_gave_back)
{
	/* Free a few MB in many small blocks so that malloc keeps them; the trim returns pages. */
	enum { N = 4096, SZ = 1000 };
	void **v = calloc(N, sizeof(*v));
	cr_assert_not_null(v);
	for (size_t i = 0; i < N; i++) {
		v[i] = malloc(SZ);
		memset(v[i], 1, SZ);
	}
	void *pin = malloc(SZ); /* above the freed blocks: free() alone cannot shrink the heap */
	for (size_t i = 0; i < N; i++)
		free(v[i]);
	int64_t freed = memtrim_run();
	cr_assert_geq(freed, 0);
	free(pin);
	free(v);
}
