// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "inodes.h"
#include "macro.h"

typedef struct Inode {
	struct Inode *next;
	uint64_t ino;
	uint64_t nlookup;
	InodeAttr attr;
	SvidBlob *blob;
} Inode;

struct InodeTable {
	pthread_mutex_t lock;
	Inode **buckets;
	size_t n_buckets; /* power of two */
	size_t n;
	size_t bytes;
	InodeRecorder rec; /* optional: file inodes handed to the kernel, for a successor */
};

static size_t hash(uint64_t x)
{
	/* splitmix64 finaliser: inode numbers differ mostly in high and low bits. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return (size_t)x;
}

int inode_table_new(InodeTable **ret)
{
	InodeTable *t = calloc(1, sizeof *t);

	if (!t)
		return -ENOMEM;
	t->n_buckets = 1024;
	t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
	if (!t->buckets) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	*ret = t;
	return 0;
}

InodeTable *inode_table_free(InodeTable *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n_buckets; i++)
		for (Inode *e = t->buckets[i], *next; e; e = next) {
			next = e->next;
			svid_blob_unref(e->blob);
			free(e);
		}
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	free(t);
	return NULL;
}

static Inode **find(InodeTable *t, uint64_t ino)
{
	Inode **p = &t->buckets[hash(ino) & (t->n_buckets - 1)];
	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

static void grow(InodeTable *t)
{
	size_t nb = t->n_buckets * 2;
	Inode **b = calloc(nb, sizeof *b);

	if (!b)
		return; /* stay at the current size: slower, still correct */
	for (size_t i = 0; i < t->n_buckets; i++)
		for (Inode *e = t->buckets[i], *next; e; e = next) {
			next = e->next;
			size_t h = hash(e->ino) & (nb - 1);
			e->next = b[h];
			b[h] = e;
		}
	free(t->buckets);
	t->buckets = b;
	t->n_buckets = nb;
}

int inode_table_ref_existing(InodeTable *t, uint64_t ino, InodeAttr *ret_attr)
{
	int r = -ENOENT;

	pthread_mutex_lock(&t->lock);
	Inode *e = *find(t, ino);
	if (e) {
		e->nlookup++;
		*ret_attr = e->attr;
		r = 1;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

int inode_table_add(InodeTable *t, uint64_t ino, const InodeAttr *attr, SvidBlob *blob,
		    InodeAttr *ret_attr)
{
	Inode *fresh = calloc(1, sizeof *fresh);

	if (!fresh)
		return -ENOMEM;
	pthread_mutex_lock(&t->lock);
	Inode **p = find(t, ino);
	if (*p) {
		(*p)->nlookup++;
		*ret_attr = (*p)->attr;
		pthread_mutex_unlock(&t->lock);
		free(fresh);
		return 1;
	}
	fresh->ino = ino;
	fresh->nlookup = 1;
	fresh->attr = *attr;
	fresh->blob = svid_blob_ref(blob);
	fresh->attr.size = blob ? svid_blob_size(blob) : 0;
	*p = fresh;
	t->n++;
	t->bytes += fresh->attr.size;
	*ret_attr = fresh->attr;
	if (t->n > t->n_buckets)
		grow(t);
	InodeRecorder rec = t->rec;
	pthread_mutex_unlock(&t->lock);
	/* Recorded before the kernel hears of the inode (our reply comes after this returns). */
	if (rec.record && blob)
		rec.record(rec.userdata, ino, svid_blob_data(blob), svid_blob_size(blob));
	return 0;
}

int inode_table_get(InodeTable *t, uint64_t ino, InodeAttr *ret_attr, SvidBlob **ret_blob)
{
	int r = -ENOENT;

	pthread_mutex_lock(&t->lock);
	Inode *e = *find(t, ino);
	if (e) {
		if (ret_attr)
			*ret_attr = e->attr;
		if (ret_blob)
			*ret_blob = svid_blob_ref(e->blob);
		r = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void inode_table_forget(InodeTable *t, uint64_t ino, uint64_t nlookup)
{
	SvidBlob *drop = NULL;
	Inode *gone = NULL;

	pthread_mutex_lock(&t->lock);
	Inode **p = find(t, ino);
	bool unknown = !*p;
	if (*p) {
		Inode *e = *p;
		e->nlookup = e->nlookup > nlookup ? e->nlookup - nlookup : 0;
		if (e->nlookup == 0) {
			*p = e->next;
			t->n--;
			if (e->blob)
				t->bytes -= e->attr.size;
			drop = e->blob;
			gone = e;
		}
	}
	InodeRecorder rec = t->rec;
	pthread_mutex_unlock(&t->lock);
	/* Gone from the kernel (or never known here: an inode of a previous daemon). */
	if (rec.forget && (gone || unknown))
		rec.forget(rec.userdata, ino);
	/* Outside the lock: the last unref of a secret blob wipes it. */
	svid_blob_unref(drop);
	free(gone);
}

int inode_table_release_owner(InodeTable *t, uint32_t slot, uint64_t owner, uint64_t **ret_inos,
			      size_t *ret_n)
{
	SvidBlob **drop = NULL;
	uint64_t *inos = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->n_buckets && r == 0; i++)
		for (Inode *e = t->buckets[i]; e; e = e->next) {
			if (e->attr.slot != slot || e->attr.owner != owner)
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 16;
				uint64_t *pi = realloc(inos, nc * sizeof *pi);
				if (pi)
					inos = pi;
				SvidBlob **pb = pi ? realloc(drop, nc * sizeof *pb) : NULL;
				if (pb)
					drop = pb;
				if (!pi || !pb) {
					r = -ENOMEM;
					break;
				}
				cap = nc;
			}
			inos[n] = e->ino;
			drop[n] = e->blob;
			if (e->blob)
				t->bytes -= e->attr.size;
			e->blob = NULL;
			n++;
		}
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < n; i++)
		svid_blob_unref(drop[i]);
	free(drop);
	if (r < 0) {
		free(inos);
		return r;
	}
	*ret_inos = inos;
	*ret_n = n;
	return 0;
}

size_t inode_table_count(InodeTable *t)
{
	pthread_mutex_lock(&t->lock);
	size_t n = t->n;
	pthread_mutex_unlock(&t->lock);
	return n;
}

size_t inode_table_bytes(InodeTable *t)
{
	pthread_mutex_lock(&t->lock);
	size_t n = t->bytes;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void inode_table_set_recorder(InodeTable *t, const InodeRecorder *rec)
{
	pthread_mutex_lock(&t->lock);
	t->rec = rec ? *rec : (InodeRecorder){};
	pthread_mutex_unlock(&t->lock);
}
