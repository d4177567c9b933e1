// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "memtrim.h"

struct MemTrim {
	pthread_mutex_t lock;
	unsigned min_removals, quiet_ms, max_removals;
	unsigned pending;
	uint64_t last_removal_ms;
};

int memtrim_new(unsigned min_removals, unsigned quiet_ms, unsigned max_removals, MemTrim **ret)
{
	if (min_removals == 0 || max_removals < min_removals)
		return -EINVAL;
	MemTrim *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	t->min_removals = min_removals;
	t->quiet_ms = quiet_ms;
	t->max_removals = max_removals;
	*ret = t;
	return 0;
}

MemTrim *memtrim_free(MemTrim *t)
{
	if (!t)
		return NULL;
	pthread_mutex_destroy(&t->lock);
	free(t);
	return NULL;
}

void memtrim_note_removal(MemTrim *t, uint64_t now_ms)
{
	pthread_mutex_lock(&t->lock);
	if (t->pending < UINT32_MAX)
		t->pending++;
	t->last_removal_ms = now_ms;
	pthread_mutex_unlock(&t->lock);
}

bool memtrim_due(MemTrim *t, uint64_t now_ms)
{
	bool due;

	pthread_mutex_lock(&t->lock);
	due = t->pending >= t->max_removals ||
	      (t->pending >= t->min_removals && now_ms >= t->last_removal_ms + t->quiet_ms);
	if (due)
		t->pending = 0;
	pthread_mutex_unlock(&t->lock);
	return due;
}

unsigned memtrim_pending(MemTrim *t)
{
	pthread_mutex_lock(&t->lock);
	unsigned n = t->pending;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* Resident pages, from the second field of /proc/self/statm. */
static int64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	unsigned long long size, resident;
	int n = f ? fscanf(f, "%llu %llu", &size, &resident) : -1;
	if (f)
		fclose(f);
	if (n != 2)
		return -EIO;
	return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

int64_t memtrim_run(void)
{
	int64_t before = rss_bytes();
	malloc_trim(0);
	int64_t after = rss_bytes();
	if (before < 0 || after < 0)
		return -EIO;
	return before > after ? before - after : 0;
}
