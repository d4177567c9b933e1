// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "macro.h"
#include "registry.h"
#include "tree.h"

typedef struct Entry {
	struct Entry *next;
	Workload *w;
} Entry;

struct Registry {
	InodeTable *inodes;
	Notify *notify;
	pthread_mutex_t lock;
	Entry **hash; /* by name */
	size_t n_hash, n;
	Workload **by_slot; /* index slot - 1 */
	size_t n_slots;
};

static size_t str_hash(const char *s)
{
	size_t h = 5381;

	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

static Entry **find(Registry *r, const char *name)
{
	Entry **p = &r->hash[str_hash(name) % r->n_hash];

	while (*p && !streq(workload_name((*p)->w), name))
		p = &(*p)->next;
	return p;
}

static void grow(Registry *r)
{
	size_t n = r->n_hash * 2;
	Entry **h = calloc(n, sizeof *h);

	if (!h)
		return; /* chains just get longer */
	for (size_t i = 0; i < r->n_hash; i++)
		for (Entry *e = r->hash[i], *next; e; e = next) {
			next = e->next;
			size_t b = str_hash(workload_name(e->w)) % n;
			e->next = h[b];
			h[b] = e;
		}
	free(r->hash);
	r->hash = h;
	r->n_hash = n;
}

int registry_new(InodeTable *inodes, Notify *notify, Registry **ret)
{
	Registry *r = calloc(1, sizeof *r);

	if (!r)
		return -ENOMEM;
	r->n_hash = 64;
	r->hash = calloc(r->n_hash, sizeof *r->hash);
	if (!r->hash) {
		free(r);
		return -ENOMEM;
	}
	r->inodes = inodes;
	r->notify = notify;
	pthread_mutex_init(&r->lock, NULL);
	*ret = r;
	return 0;
}

Registry *registry_free(Registry *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n_hash; i++)
		for (Entry *e = r->hash[i], *next; e; e = next) {
			next = e->next;
			workload_unref(e->w);
			free(e);
		}
	free(r->hash);
	free(r->by_slot);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return NULL;
}

static uint64_t parent_dir_ino(const Workload *w)
{
	switch (workload_registration(w)->kind) {
	case REGISTRATION_POD:
		return TREE_INO_PODS;
	case REGISTRATION_IDENTITY:
		return TREE_INO_IDENTITIES;
	default:
		return TREE_INO_ROOT;
	}
}

int registry_add(Registry *r, Workload *w)
{
	uint32_t slot = workload_slot(w);
	int ret = 0;

	if (slot == 0)
		return -EINVAL;
	Entry *e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	pthread_mutex_lock(&r->lock);
	if (*find(r, workload_name(w)) || (slot <= r->n_slots && r->by_slot[slot - 1]))
		ret = -EEXIST;
	if (ret >= 0 && slot > r->n_slots) {
		size_t n = MAX((size_t)slot, r->n_slots * 2);
		Workload **v = realloc(r->by_slot, n * sizeof *v);
		if (!v)
			ret = -ENOMEM;
		else {
			memset(v + r->n_slots, 0, (n - r->n_slots) * sizeof *v);
			r->by_slot = v;
			r->n_slots = n;
		}
	}
	if (ret >= 0) {
		e->w = workload_ref(w);
		Entry **p = find(r, workload_name(w));
		*p = e;
		r->by_slot[slot - 1] = e->w;
		if (++r->n > r->n_hash)
			grow(r);
	}
	pthread_mutex_unlock(&r->lock);
	if (ret < 0) {
		free(e);
		return ret;
	}
	notify_inval_inode(r->notify, parent_dir_ino(w)); /* its cached listing */
	return 0;
}

int registry_remove(Registry *r, const char *name)
{
	_cleanup_free_ uint64_t *inos = NULL;
	_cleanup_free_ char **names = NULL;
	_cleanup_free_ struct fuse_pollhandle **polls = NULL;
	size_t n_inos = 0, nn = 0, np = 0;
	Workload *w = NULL;

	pthread_mutex_lock(&r->lock);
	Entry **p = find(r, name), *e = *p;
	if (e) {
		*p = e->next;
		w = e->w;
		r->by_slot[workload_slot(w) - 1] = NULL;
		r->n--;
	}
	pthread_mutex_unlock(&r->lock);
	if (!e)
		return -ENOENT;
	free(e);
	workload_mark_removed(w);
	/* Drop the bytes the kernel's inodes pinned (keys are wiped with their last reference)
	 * and the page cache that held them, then the directory entry itself. */
	if (inode_table_release_owner(r->inodes, workload_slot(w), workload_dir_serial(w), &inos,
				      &n_inos) >= 0)
		for (size_t i = 0; i < n_inos; i++)
			notify_inval_inode(r->notify, inos[i]);
	notify_inval_entry(r->notify, parent_dir_ino(w), workload_basename(w));
	notify_inval_inode(r->notify, parent_dir_ino(w)); /* the cached listing */
	/* Wake pollers: their workload is gone. */
	workload_set_generation(w, UINT64_MAX, (int64_t)time(NULL), &names, &nn, &polls, &np);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	for (size_t i = 0; i < np; i++)
		notify_poll_wakeup(r->notify, polls[i]);
	workload_unref(w);
	return 0;
}

Workload *registry_get(Registry *r, const char *name)
{
	pthread_mutex_lock(&r->lock);
	Entry *e = *find(r, name);
	Workload *w = e ? workload_ref(e->w) : NULL;
	pthread_mutex_unlock(&r->lock);
	return w;
}

Workload *registry_get_by_slot(Registry *r, uint32_t slot)
{
	Workload *w = NULL;

	pthread_mutex_lock(&r->lock);
	if (slot > 0 && slot <= r->n_slots)
		w = workload_ref(r->by_slot[slot - 1]);
	pthread_mutex_unlock(&r->lock);
	return w;
}

size_t registry_count(Registry *r)
{
	pthread_mutex_lock(&r->lock);
	size_t n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* kind < 0: every workload by its full name; else the basenames of that kind. */
static int list(Registry *r, int kind, char ***ret, size_t *ret_n)
{
	size_t n = 0;
	int ret_r = 0;

	pthread_mutex_lock(&r->lock);
	char **v = calloc(r->n + 1, sizeof *v);
	for (size_t i = 0; v && i < r->n_hash; i++)
		for (Entry *e = r->hash[i]; e && ret_r >= 0; e = e->next) {
			if (kind >= 0 && (int)workload_registration(e->w)->kind != kind)
				continue;
			v[n] = strdup(kind >= 0 ? workload_basename(e->w) : workload_name(e->w));
			if (!v[n++])
				ret_r = -ENOMEM;
		}
	pthread_mutex_unlock(&r->lock);
	if (!v || ret_r < 0) {
		for (size_t i = 0; v && i < n; i++)
			free(v[i]);
		free(v);
		return -ENOMEM;
	}
	qsort(v, n, sizeof *v, cmp_str);
	*ret = v;
	*ret_n = n;
	return 0;
}

int registry_list(Registry *r, RegistrationKind kind, char ***ret, size_t *ret_n)
{
	return list(r, (int)kind, ret, ret_n);
}

int registry_list_all(Registry *r, char ***ret, size_t *ret_n)
{
	return list(r, -1, ret, ret_n);
}

void registry_generation_changed(Registry *r, const char *name, uint64_t generation)
{
	_cleanup_free_ char **names = NULL;
	_cleanup_free_ struct fuse_pollhandle **polls = NULL;
	size_t n_names = 0, n_polls = 0;
	_cleanup_(workload_unrefp) Workload *w = registry_get(r, name);

	if (!w || workload_set_generation(w, generation, (int64_t)time(NULL), &names, &n_names,
					  &polls, &n_polls) < 0)
		return;
	/* The bytes are already swapped in; now the kernel may drop the old names. */
	uint64_t dir = workload_dir_ino(w);
	for (size_t i = 0; i < n_names; i++) {
		notify_inval_entry(r->notify, dir, names[i]);
		free(names[i]);
	}
	/* The listing may have changed too (bundle files, svids/): without opendir the kernel
	 * caches it with the directory's pages; dropping them drops it. */
	notify_inval_inode(r->notify, dir);
	for (size_t i = 0; i < n_polls; i++)
		notify_poll_wakeup(r->notify, polls[i]);
}

void registry_status_changed(Registry *r, Workload *w)
{
	workload_bump_status(w);
	notify_inval_entry(r->notify, workload_dir_ino(w), "status.json");
}
