// SPDX-License-Identifier: Apache-2.0
#include <assert.h>
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "macro.h"
#include "store.h"
#include "tree.h"
#include "workload.h"

/* As many audiences as the store caches tokens for; node ids have room for them. */
#define MAX_AUDIENCES SVID_JWT_AUDIENCES_MAX
static_assert(MAX_AUDIENCES <= TREE_ID_MAX - TREE_ID_FIRST_JWT, "JWT node ids");

typedef struct Audience {
	char *audience;
	uint64_t store_serial, serial;
	uint64_t used; /* aud_clock at the last lookup */
} Audience;

struct Workload {
	unsigned n_ref; /* atomic */
	Registration *reg;
	uint32_t slot;
	uint64_t dir_serial;

	pthread_mutex_t lock;
	bool removed;
	uint64_t generation;
	int64_t changed_at;
	char **names;
	size_t n_names, cap_names;
	struct fuse_pollhandle **polls;
	size_t n_polls, cap_polls;
	uint64_t status_serial;
	int64_t status_rendered_at;
	WorkloadStream stream;
	Audience *aud;
	size_t n_aud;
	uint64_t aud_clock;
};

static uint64_t serial_counter;

void workload_serial_init(uint64_t base)
{
	__atomic_store_n(&serial_counter, base, __ATOMIC_SEQ_CST);
}

uint64_t workload_serial_next(void)
{
	return __atomic_add_fetch(&serial_counter, 1, __ATOMIC_SEQ_CST);
}

int workload_new(Registration *reg, uint32_t slot, Workload **ret)
{
	return workload_new_with_serial(reg, slot, 0, ret);
}

int workload_new_with_serial(Registration *reg, uint32_t slot, uint64_t dir_serial,
			     Workload **ret)
{
	Workload *w = calloc(1, sizeof *w);

	if (!w)
		return -ENOMEM;
	w->n_ref = 1;
	w->reg = reg;
	w->slot = slot;
	w->dir_serial = dir_serial ? dir_serial : workload_serial_next();
	w->status_serial = workload_serial_next();
	pthread_mutex_init(&w->lock, NULL);
	*ret = w;
	return 0;
}

Workload *workload_ref(Workload *w)
{
	if (w)
		__atomic_add_fetch(&w->n_ref, 1, __ATOMIC_RELAXED);
	return w;
}

Workload *workload_unref(Workload *w)
{
	if (!w || __atomic_sub_fetch(&w->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
		return NULL;
	registration_free(w->reg);
	for (size_t i = 0; i < w->n_names; i++)
		free(w->names[i]);
	free(w->names);
	for (size_t i = 0; i < w->n_polls; i++)
		fuse_pollhandle_destroy(w->polls[i]);
	free(w->polls);
	for (size_t i = 0; i < w->n_aud; i++)
		free(w->aud[i].audience);
	free(w->aud);
	pthread_mutex_destroy(&w->lock);
	free(w);
	return NULL;
}

const char *workload_name(const Workload *w)
{
	return w->reg->name;
}

const char *workload_basename(const Workload *w)
{
	const char *s = strchr(w->reg->name, '/');
	return s ? s + 1 : w->reg->name;
}

const Registration *workload_registration(const Workload *w)
{
	return w->reg;
}

uint32_t workload_slot(const Workload *w)
{
	return w->slot;
}

uint64_t workload_dir_serial(const Workload *w)
{
	return w->dir_serial;
}

uint64_t workload_dir_ino(const Workload *w)
{
	return tree_ino(w->slot, TREE_ID_WORKLOAD, w->dir_serial);
}

void workload_mark_removed(Workload *w)
{
	pthread_mutex_lock(&w->lock);
	w->removed = true;
	pthread_mutex_unlock(&w->lock);
}

bool workload_removed(Workload *w)
{
	pthread_mutex_lock(&w->lock);
	bool r = w->removed;
	pthread_mutex_unlock(&w->lock);
	return r;
}

int workload_note_name(Workload *w, uint64_t generation, const char *name)
{
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (generation < w->generation) {
		r = -ESTALE;
		goto out;
	}
	for (size_t i = 0; i < w->n_names; i++)
		if (streq(w->names[i], name))
			goto out;
	if (w->n_names == w->cap_names) {
		size_t cap = w->cap_names ? w->cap_names * 2 : 8;
		char **p = realloc(w->names, cap * sizeof *p);
		if (!p) {
			r = -ENOMEM;
			goto out;
		}
		w->names = p;
		w->cap_names = cap;
	}
	w->names[w->n_names] = strdup(name);
	if (!w->names[w->n_names])
		r = -ENOMEM;
	else
		w->n_names++;
out:
	pthread_mutex_unlock(&w->lock);
	return r;
}

int workload_set_generation(Workload *w, uint64_t generation, int64_t now, char ***ret_names,
			    size_t *ret_n_names, struct fuse_pollhandle ***ret_polls,
			    size_t *ret_n_polls)
{
	pthread_mutex_lock(&w->lock);
	*ret_names = NULL;
	*ret_n_names = 0;
	*ret_polls = NULL;
	*ret_n_polls = 0;
	if (generation <= w->generation) {
		pthread_mutex_unlock(&w->lock);
		return 0;
	}
	w->generation = generation;
	w->changed_at = now;
	w->status_serial = workload_serial_next();
	*ret_names = TAKE_PTR(w->names);
	*ret_n_names = w->n_names;
	w->n_names = w->cap_names = 0;
	*ret_polls = TAKE_PTR(w->polls);
	*ret_n_polls = w->n_polls;
	w->n_polls = w->cap_polls = 0;
	pthread_mutex_unlock(&w->lock);
	return 0;
}

uint64_t workload_generation(Workload *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t g = w->generation;
	pthread_mutex_unlock(&w->lock);
	return g;
}

int64_t workload_changed_at(Workload *w)
{
	pthread_mutex_lock(&w->lock);
	int64_t t = w->changed_at;
	pthread_mutex_unlock(&w->lock);
	return t;
}

int workload_poll(Workload *w, uint64_t generation, struct fuse_pollhandle *ph)
{
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (generation < w->generation || w->removed) {
		r = 1;
	} else if (ph) {
		if (w->n_polls == w->cap_polls) {
			size_t cap = w->cap_polls ? w->cap_polls * 2 : 4;
			struct fuse_pollhandle **p = realloc(w->polls, cap * sizeof *p);
			if (!p) {
				r = -ENOMEM;
				goto out;
			}
			w->polls = p;
			w->cap_polls = cap;
		}
		w->polls[w->n_polls++] = ph;
		ph = NULL;
	}
out:
	pthread_mutex_unlock(&w->lock);
	if (ph)
		fuse_pollhandle_destroy(ph);
	return r;
}

bool workload_set_stream(Workload *w, const WorkloadStream *s)
{
	pthread_mutex_lock(&w->lock);
	bool changed = !streq(w->stream.agent, s->agent) || !streq(w->stream.state, s->state);
	w->stream = *s;
	pthread_mutex_unlock(&w->lock);
	return changed;
}

void workload_get_stream(Workload *w, WorkloadStream *ret)
{
	pthread_mutex_lock(&w->lock);
	*ret = w->stream;
	pthread_mutex_unlock(&w->lock);
}

uint64_t workload_status_serial(Workload *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t s = w->status_serial;
	pthread_mutex_unlock(&w->lock);
	return s;
}

int64_t workload_status_rendered_at(Workload *w)
{
	pthread_mutex_lock(&w->lock);
	int64_t t = w->status_rendered_at;
	pthread_mutex_unlock(&w->lock);
	return t;
}

void workload_status_touch(Workload *w, int64_t now)
{
	pthread_mutex_lock(&w->lock);
	w->status_rendered_at = now;
	pthread_mutex_unlock(&w->lock);
}

uint64_t workload_bump_status(Workload *w)
{
	uint64_t s = workload_serial_next();
	pthread_mutex_lock(&w->lock);
	w->status_serial = s;
	pthread_mutex_unlock(&w->lock);
	return s;
}

int workload_audience_index(Workload *w, const char *audience, int *ret_index, char **ret_evicted)
{
	size_t i;
	int r = 0;

	pthread_mutex_lock(&w->lock);
	for (i = 0; i < w->n_aud; i++)
		if (streq(w->aud[i].audience, audience))
			goto found;
	char *copy = strdup(audience);
	if (!copy) {
		r = -ENOMEM;
		goto out;
	}
	if (w->n_aud >= MAX_AUDIENCES) {
		/* Full: the least recently looked-up audience gives its index to this one. */
		i = 0;
		for (size_t k = 1; k < w->n_aud; k++)
			if (w->aud[k].used < w->aud[i].used)
				i = k;
		*ret_evicted = w->aud[i].audience;
	} else {
		Audience *a = realloc(w->aud, (w->n_aud + 1) * sizeof *a);
		if (!a) {
			free(copy);
			r = -ENOMEM;
			goto out;
		}
		w->aud = a;
		i = w->n_aud++;
	}
	w->aud[i] = (Audience){.audience = copy};
	r = 1;
found:
	w->aud[i].used = ++w->aud_clock;
	*ret_index = (int)i;
out:
	pthread_mutex_unlock(&w->lock);
	return r;
}

int workload_audiences(Workload *w, char ***ret, size_t *ret_n)
{
	int r = 0;

	pthread_mutex_lock(&w->lock);
	char **v = calloc(w->n_aud + 1, sizeof *v);
	if (!v)
		r = -ENOMEM;
	for (size_t i = 0; v && i < w->n_aud; i++)
		if (!(v[i] = strdup(w->aud[i].audience)))
			r = -ENOMEM;
	size_t n = w->n_aud;
	pthread_mutex_unlock(&w->lock);
	if (r < 0) {
		for (size_t i = 0; v && i < n; i++)
			free(v[i]);
		free(v);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

uint64_t workload_jwt_serial(Workload *w, unsigned index, uint64_t store_serial)
{
	uint64_t s = 0;

	pthread_mutex_lock(&w->lock);
	if (index < w->n_aud) {
		Audience *a = &w->aud[index];
		if (a->serial == 0 || a->store_serial != store_serial) {
			a->store_serial = store_serial;
			a->serial = workload_serial_next();
		}
		s = a->serial;
	}
	pthread_mutex_unlock(&w->lock);
	return s;
}

/* ---- the tree of one generation ---- */

/* Facts of one generation for the tree (arrays borrowed from the set). */
typedef struct Facts {
	TreeFacts f;
	const char **hints, **tds, **jtds;
} Facts;

static void facts_done(Facts *x)
{
	free(x->hints);
	free(x->tds);
	free(x->jtds);
}

static int facts_of(const SvidSet *set, Facts *x)
{
	size_t n = svid_set_n_svids(set), nb = svid_set_n_bundles(set),
	       nj = svid_set_n_jwt_bundles(set);

	*x = (Facts){};
	x->hints = calloc(n + 1, sizeof *x->hints);
	x->tds = calloc(nb + 1, sizeof *x->tds);
	x->jtds = calloc(nj + 1, sizeof *x->jtds);
	if (!x->hints || !x->tds || !x->jtds) {
		facts_done(x);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		x->hints[i] = svid_set_hint(set, i);
	for (size_t i = 0; i < nb; i++)
		x->tds[i] = svid_set_bundle_td(set, i);
	for (size_t i = 0; i < nj; i++)
		x->jtds[i] = svid_set_jwt_bundle_td(set, i);
	x->f = (TreeFacts){.n_svids = n,
			   .hints = x->hints,
			   .own_trust_domain = n ? svid_set_trust_domain(set, 0) : NULL,
			   .bundle_tds = x->tds,
			   .n_bundle_tds = nb,
			   .jwt_bundle_tds = x->jtds,
			   .n_jwt_bundle_tds = nj};
	return 0;
}

int workload_listing(const Workload *w, const SvidSet *set, TreeListing **ret)
{
	TreeJwtName buf[64];
	TreeNames names;
	Facts x;
	int r = facts_of(set, &x);

	if (r < 0)
		return r;
	registration_tree_names(workload_registration(w), buf, &names);
	r = tree_listing_new(&names, &x.f, ret);
	facts_done(&x);
	return r;
}
