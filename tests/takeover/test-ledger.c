// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ledger.h"

Test(ledger, record_then_check_matches_only_same_bytes)
{
	InoLedger *l = NULL;
	cr_assert_eq(ino_ledger_new(0, &l), 0);
	cr_assert_eq(ino_ledger_record(l, 42, "abc", 3), 0);
	cr_assert_eq(ino_ledger_check(l, 42, "abc", 3), 0);
	cr_assert_eq(ino_ledger_check(l, 42, "abd", 3), -ESTALE);
	cr_assert_eq(ino_ledger_check(l, 42, "abcd", 4), -ESTALE);
	cr_assert_eq(ino_ledger_check(l, 43, "abc", 3), -ENOENT);
	cr_assert_eq(ino_ledger_count(l), 1);
	ino_ledger_free(l);
}

Test(ledger, forget_removes_and_slots_are_reused)
{
	InoLedger *l = NULL;
	cr_assert_eq(ino_ledger_new(1024, &l), 0);
	/* Far more record/forget cycles than slots: tombstones must be reclaimed. */
	for (uint64_t i = 1; i <= 100000; i++) {
		cr_assert_eq(ino_ledger_record(l, i, &i, sizeof i), 0, "record %lu", (unsigned long)i);
		if (i > 10)
			cr_assert_eq(ino_ledger_forget(l, i - 10), 0);
	}
	cr_assert_eq(ino_ledger_count(l), 10);
	uint64_t k = 99999;
	cr_assert_eq(ino_ledger_check(l, 99999, &k, sizeof k), 0);
	cr_assert_eq(ino_ledger_check(l, 5, &k, sizeof k), -ENOENT);
	cr_assert_eq(ino_ledger_forget(l, 5), -ENOENT);
	ino_ledger_free(l);
}

Test(ledger, full_ledger_says_enospc)
{
	InoLedger *l = NULL;
	int r = 0;
	uint64_t i;
	cr_assert_eq(ino_ledger_new(1024, &l), 0);
	for (i = 1; i <= 2048 && r == 0; i++)
		r = ino_ledger_record(l, i, "x", 1);
	cr_assert_eq(r, -ENOSPC);
	cr_assert(i > 800, "filled only %lu entries", (unsigned long)i);
	ino_ledger_free(l);
}

Test(ledger, survives_handover_through_its_fd)
{
	InoLedger *a = NULL, *b = NULL;
	cr_assert_eq(ino_ledger_new(0, &a), 0);
	cr_assert_eq(ino_ledger_record(a, 7, "seven", 5), 0);
	int fd = dup(ino_ledger_fd(a));
	ino_ledger_free(a); /* the old daemon dies; the keeper's fd keeps the memfd */
	cr_assert_eq(ino_ledger_adopt(fd, &b), 0);
	cr_assert_eq(ino_ledger_check(b, 7, "seven", 5), 0);
	cr_assert_eq(ino_ledger_check(b, 7, "eight", 5), -ESTALE);
	ino_ledger_free(b);
}

Test(ledger, adopt_rejects_foreign_memory)
{
	InoLedger *b = NULL;
	int fd = memfd_create("x", MFD_CLOEXEC);
	cr_assert_eq(ftruncate(fd, 4096), 0);
	cr_assert_eq(ino_ledger_adopt(fd, &b), -EINVAL);
	close(fd);
}

Test(ledger, workload_slots_survive_handover_and_clear)
{
	InoLedger *a = NULL, *b = NULL;
	uint32_t slot = 0;
	uint64_t serial = 0;
	cr_assert_eq(ino_ledger_new(0, &a), 0);
	cr_assert_eq(ino_ledger_find_workload(a, "pods/p1", &slot, &serial), -ENOENT);
	cr_assert_eq(ino_ledger_set_workload(a, 3, 1234, "pods/p1"), 0);
	cr_assert_eq(ino_ledger_set_workload(a, 4, 99, "identities/db"), 0);
	cr_assert_eq(ino_ledger_set_workload(a, LEDGER_SLOTS, 1, "pods/x"), -ENOSPC);
	int fd = dup(ino_ledger_fd(a));
	ino_ledger_free(a);
	cr_assert_eq(ino_ledger_adopt(fd, &b), 0);
	cr_assert_eq(ino_ledger_find_workload(b, "pods/p1", &slot, &serial), 0);
	cr_assert_eq(slot, 3);
	cr_assert_eq(serial, 1234);
	cr_assert_eq(ino_ledger_set_workload(b, 3, 0, NULL), 0);
	cr_assert_eq(ino_ledger_find_workload(b, "pods/p1", &slot, &serial), -ENOENT);
	cr_assert_eq(ino_ledger_find_workload(b, "identities/db", &slot, &serial), 0);
	cr_assert_eq(slot, 4);
	ino_ledger_free(b);
}
