// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "inodes.h"
#include "kv.h"
#include "registration.h"
#include "store.h"
#include "tree.h"
#include "workload.h"

static SvidBlob *blob(const char *s)
{
	SvidBlob *b = NULL;
	cr_assert_eq(svid_blob_new(s, strlen(s), false, &b), 0);
	return b;
}

Test(inodes, lookup_counts_and_forget_frees)
{
	InodeTable *t = NULL;
	InodeAttr a = {.mode = S_IFREG | 0444, .slot = 3, .owner = 9}, got;
	cr_assert_eq(inode_table_new(&t), 0);
	SvidBlob *b = blob("hello");
	uint64_t ino = tree_ino(3, 16, 100);
	cr_assert_eq(inode_table_ref_existing(t, ino, &got), -ENOENT);
	cr_assert_eq(inode_table_add(t, ino, &a, b, &got), 0);
	cr_assert_eq(got.size, 5);
	cr_assert_eq(inode_table_add(t, ino, &a, b, &got), 1);
	cr_assert_eq(inode_table_ref_existing(t, ino, &got), 1);
	svid_blob_unref(b);
	cr_assert_eq(inode_table_count(t), 1);
	cr_assert_eq(inode_table_bytes(t), 5);
	inode_table_forget(t, ino, 2);
	SvidBlob *r = NULL;
	cr_assert_eq(inode_table_get(t, ino, &got, &r), 0);
	cr_assert_str_eq((const char *)svid_blob_data(r), "hello");
	svid_blob_unref(r);
	inode_table_forget(t, ino, 1);
	cr_assert_eq(inode_table_get(t, ino, &got, NULL), -ENOENT);
	cr_assert_eq(inode_table_count(t), 0);
	cr_assert_eq(inode_table_bytes(t), 0);
	inode_table_free(t);
}

Test(inodes, many_generations_grow_and_shrink)
{
	InodeTable *t = NULL;
	InodeAttr a = {.mode = S_IFREG | 0444}, got;
	cr_assert_eq(inode_table_new(&t), 0);
	SvidBlob *b = blob("x");
	for (uint64_t g = 0; g < 20000; g++)
		cr_assert_eq(inode_table_add(t, tree_ino(1, 16, g), &a, b, &got), 0);
	cr_assert_eq(inode_table_count(t), 20000);
	for (uint64_t g = 0; g < 20000; g++)
		inode_table_forget(t, tree_ino(1, 16, g), 1);
	cr_assert_eq(inode_table_count(t), 0);
	svid_blob_unref(b);
	inode_table_free(t);
}

Test(inodes, release_owner_drops_bytes_keeps_entries)
{
	InodeTable *t = NULL;
	InodeAttr a = {.mode = S_IFREG | 0400, .slot = 2, .owner = 7}, other = a, got;
	other.owner = 8;
	cr_assert_eq(inode_table_new(&t), 0);
	SvidBlob *b = blob("key");
	inode_table_add(t, tree_ino(2, 16, 1), &a, b, &got);
	inode_table_add(t, tree_ino(2, 17, 1), &a, b, &got);
	inode_table_add(t, tree_ino(2, 16, 2), &other, b, &got);
	uint64_t *inos = NULL;
	size_t n = 0;
	cr_assert_eq(inode_table_release_owner(t, 2, 7, &inos, &n), 0);
	cr_assert_eq(n, 2);
	free(inos);
	SvidBlob *r = (SvidBlob *)1;
	cr_assert_eq(inode_table_get(t, tree_ino(2, 16, 1), &got, &r), 0);
	cr_assert_null(r);
	cr_assert_eq(inode_table_get(t, tree_ino(2, 16, 2), &got, &r), 0);
	cr_assert_not_null(r);
	svid_blob_unref(r);
	cr_assert_eq(inode_table_count(t), 3);
	svid_blob_unref(b);
	inode_table_free(t);
}

static Workload *mk(void)
{
	KvMsg *m = NULL;
	Registration *r = NULL;
	const char *why;
	Workload *w = NULL;
	kv_new(&m);
	kv_add(m, "pod_uid", "0f6e2d1c0b9a88776655443322110abc");
	cr_assert_eq(registration_from_kv(m, &r, &why), 0);
	kv_free(m);
	cr_assert_eq(workload_new(r, 5, &w), 0);
	return w;
}

Test(workload, names_invalidated_once_per_generation)
{
	workload_serial_init(1000);
	Workload *w = mk();
	cr_assert_str_eq(workload_basename(w), "0f6e2d1c0b9a88776655443322110abc");
	cr_assert_eq(workload_note_name(w, 10, "a.pem"), 0);
	cr_assert_eq(workload_note_name(w, 10, "a.pem"), 0);
	cr_assert_eq(workload_note_name(w, 10, "status.json"), 0);
	char **names;
	size_t nn, np;
	struct fuse_pollhandle **polls;
	uint64_t s0 = workload_status_serial(w);
	cr_assert_eq(workload_set_generation(w, 11, 5, &names, &nn, &polls, &np), 0);
	cr_assert_eq(nn, 2);
	cr_assert_neq(workload_status_serial(w), s0);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	free(polls);
	/* A lookup that read generation 10 after 11 was announced must retry. */
	cr_assert_eq(workload_note_name(w, 10, "a.pem"), -ESTALE);
	cr_assert_eq(workload_note_name(w, 11, "a.pem"), 0);
	/* Older announcements are ignored. */
	cr_assert_eq(workload_set_generation(w, 9, 6, &names, &nn, &polls, &np), 0);
	cr_assert_eq(nn, 0);
	cr_assert_eq(workload_generation(w), 11);
	cr_assert_eq(workload_poll(w, 10, NULL), 1);
	cr_assert_eq(workload_poll(w, 11, NULL), 0);
	workload_unref(w);
}

Test(workload, audiences_and_jwt_serials)
{
	workload_serial_init(5000);
	Workload *w = mk();
	char *evicted = NULL;
	int idx = -1;
	cr_assert_eq(workload_audience_index(w, "a", &idx, &evicted), 1);
	cr_assert_eq(idx, 0);
	cr_assert_eq(workload_audience_index(w, "b", &idx, &evicted), 1);
	cr_assert_eq(idx, 1);
	cr_assert_eq(workload_audience_index(w, "a", &idx, &evicted), 0);
	cr_assert_eq(idx, 0);
	cr_assert_null(evicted);
	uint64_t s1 = workload_jwt_serial(w, 0, 7);
	cr_assert_eq(workload_jwt_serial(w, 0, 7), s1);
	uint64_t s2 = workload_jwt_serial(w, 0, 8);
	cr_assert_gt(s2, s1);
	char **aud;
	size_t n;
	cr_assert_eq(workload_audiences(w, &aud, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(aud[1], "b");
	free(aud[0]);
	free(aud[1]);
	free(aud);
	workload_unref(w);
}

/* Issue 12: audiences are bounded per workload; the least recently looked-up one is evicted
 * and its index reused (a flood of audiences cannot grow the list or lock the workload out). */
Test(workload, audiences_are_bounded_with_lru_eviction)
{
	char name[32], *evicted = NULL;
	int idx = -1;

	workload_serial_init(5000);
	Workload *w = mk();
	for (int i = 0; i < SVID_JWT_AUDIENCES_MAX; i++) {
		snprintf(name, sizeof name, "aud-%d", i);
		cr_assert_eq(workload_audience_index(w, name, &idx, &evicted), 1);
		cr_assert_eq(idx, i);
	}
	/* aud-0 is used again: aud-1 is now the least recently used. */
	cr_assert_eq(workload_audience_index(w, "aud-0", &idx, &evicted), 0);
	cr_assert_null(evicted);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "flood-%d", i);
		cr_assert_eq(workload_audience_index(w, name, &idx, &evicted), 1);
		cr_assert_not_null(evicted);
		if (i == 0) {
			cr_assert_str_eq(evicted, "aud-1");
			cr_assert_eq(idx, 1);
		}
		cr_assert_str_neq(evicted, "aud-0");
		free(evicted);
		evicted = NULL;
		/* The workload's own audience keeps being used, so it is never the victim. */
		cr_assert_eq(workload_audience_index(w, "aud-0", &idx, &evicted), 0);
		cr_assert_eq(idx, 0);
	}
	char **aud;
	size_t n;
	cr_assert_eq(workload_audiences(w, &aud, &n), 0);
	cr_assert_eq(n, SVID_JWT_AUDIENCES_MAX);
	for (size_t i = 0; i < n; i++)
		free(aud[i]);
	free(aud);
	workload_unref(w);
}
