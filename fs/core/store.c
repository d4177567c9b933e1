// SPDX-License-Identifier: Apache-2.0
/* The store keeps, per workload, a pointer to its current immutable SvidSet. A writer validates
 * and builds the next set without the lock, then takes the lock only to check that nobody swapped
 * in between (else it rebuilds) and to swap the pointer. Readers take a reference under the lock
 * and use the set without it. Sets share their SVID list and the bundle maps of their source. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "macro.h"
#include "secret.h"
#include "store.h"
#include "x509check.h"


#define JWT_CACHE_MAX SVID_JWT_AUDIENCES_MAX /* per workload; the least fresh is evicted */

typedef struct SvidItem {
	char *spiffe_id, *trust_domain, *hint, *serial;
	int64_t not_before, not_after;
	SvidBlob *chain; /* DER, concatenated, leaf first */
	size_t n_certs;
	SvidBlob *key; /* PKCS#8 DER, secret */
} SvidItem;

/* One accepted X.509 update: immutable, shared by every set built from it. */
typedef struct SvidList {
	unsigned n_ref;
	SvidItem *items;
	size_t n;
	char **fed; /* federates_with, sorted, unique */
	size_t n_fed;
} SvidList;

/* One source's bundles of one kind (X.509 DER or JWKS JSON): immutable, sorted by trust domain. */
typedef struct BundleMap {
	unsigned n_ref;
	size_t n;
	char **tds;
	SvidBlob **data;
} BundleMap;

struct SvidSet {
	unsigned n_ref;
	char *name;
	uint32_t slot;
	uint64_t generation, x509_generation;
	char *source;
	int64_t updated_at;
	char *last_error;
	int64_t last_error_at;
	SvidList *list; /* NULL before the first accepted update */
	BundleMap *x509, *jwt;
	/* Visible trust domains (borrowed from the maps) and their blobs. */
	const char **x509_tds, **jwt_tds;
	const SvidBlob **x509_vis, **jwt_vis;
	size_t n_x509, n_jwt;
};

typedef struct Source {
	char *name;
	BundleMap *x509, *jwt;
} Source;

typedef struct JwtEntry {
	char *audience;
	SvidBlob *token;
	int64_t fresh_until;
	uint64_t serial;
} JwtEntry;

typedef struct Workload {
	char *name;
	uint32_t slot;
	SvidSet *cur;
	JwtEntry *jwts;
	size_t n_jwts;
	SvidBudget *jwt_budget; /* every token of this workload, cached or held by an inode */
} Workload;

struct SvidStore {
	unsigned n_ref;
	pthread_mutex_t lock;
	uint64_t gen, jwt_serial, bundle_epoch;
	SvidBudget *jwt_total; /* parent of every workload's JWT budget */
	size_t jwt_per_workload;
	Workload **by_name; /* sorted by name */
	size_t n, cap;
	Workload **by_slot; /* index slot-1; NULL when free */
	size_t n_slots;
	Source *sources;
	size_t n_sources;
	SvidStoreChangeFn cb;
	void *cb_userdata;
};

/* ---- small immutable pieces ---- */

static void item_done(SvidItem *it)
{
	free(it->spiffe_id);
	free(it->trust_domain);
	free(it->hint);
	free(it->serial);
	svid_blob_unref(it->chain);
	svid_blob_unref(it->key);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static SvidList *list_unref(SvidList *l)
{
	if (!l || __atomic_sub_fetch(&l->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		item_done(&l->items[i]);
	free(l->items);
	strv_free(l->fed, l->n_fed);
	free(l);
	return NULL;
}
DEFINE_CLEANUP_FUNC(SvidList, list_unref)

static SvidList *list_ref(SvidList *l)
{
	if (l)
		__atomic_add_fetch(&l->n_ref, 1, __ATOMIC_RELAXED);
	return l;
}

static BundleMap *map_unref(BundleMap *m)
{
	if (!m || __atomic_sub_fetch(&m->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
		return NULL;
	for (size_t i = 0; i < m->n; i++) {
		free(m->tds[i]);
		svid_blob_unref(m->data[i]);
	}
	free(m->tds);
	free(m->data);
	free(m);
	return NULL;
}
DEFINE_CLEANUP_FUNC(BundleMap, map_unref)

static BundleMap *map_ref(BundleMap *m)
{
	if (m)
		__atomic_add_fetch(&m->n_ref, 1, __ATOMIC_RELAXED);
	return m;
}

static const SvidBlob *map_get(const BundleMap *m, const char *td)
{
	if (!m || !td)
		return NULL;
	for (size_t lo = 0, hi = m->n; lo < hi;) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(td, m->tds[mid]);
		if (c == 0)
			return m->data[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static bool map_equal(const BundleMap *a, const BundleMap *b)
{
	size_t na = a ? a->n : 0, nb = b ? b->n : 0;

	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!streq(a->tds[i], b->tds[i]) || !svid_blob_equal(a->data[i], b->data[i]))
			return false;
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct TdBlob {
	char *td;
	SvidBlob *data;
} TdBlob;

static int cmp_tdblob(const void *a, const void *b)
{
	return strcmp(((const TdBlob *)a)->td, ((const TdBlob *)b)->td);
}

/* Validates and copies bundle inputs. n == 0 gives an empty map (the agent redacted them all). */
static int map_new(const SvidBundleInput *b, size_t n, bool x509, BundleMap **ret,
		   char **ret_reason)
{
	_cleanup_(map_unrefp) BundleMap *m = NULL;
	_cleanup_free_ TdBlob *tmp = NULL;
	int r = 0;

	*ret_reason = NULL;
	if (n > 0 && !b)
		return -EINVAL;
	m = calloc(1, sizeof *m);
	tmp = calloc(n ? n : 1, sizeof *tmp);
	if (!m || !tmp)
		return -ENOMEM;
	m->n_ref = 1;
	m->tds = calloc(n ? n : 1, sizeof *m->tds);
	m->data = calloc(n ? n : 1, sizeof *m->data);
	if (!m->tds || !m->data)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t n_certs;
		if (!spiffe_td_valid(b[i].trust_domain)) {
			if (asprintf(ret_reason, "bundle %zu: invalid trust domain name", i) < 0)
				*ret_reason = NULL;
			r = -EINVAL;
			goto fail;
		}
		if (b[i].len == 0 || !b[i].data) {
			if (asprintf(ret_reason, "bundle %s: empty", b[i].trust_domain) < 0)
				*ret_reason = NULL;
			r = -EINVAL;
			goto fail;
		}
		if (x509) {
			_cleanup_free_ char *why = NULL;
			r = x509check_bundle(b[i].data, b[i].len, &n_certs, &why);
			if (r < 0) {
				if (asprintf(ret_reason, "bundle %s: %s", b[i].trust_domain,
					     why ? why : "invalid") < 0)
					*ret_reason = NULL;
				goto fail;
			}
		}
		tmp[i].td = strdup(b[i].trust_domain);
		r = tmp[i].td ? svid_blob_new(b[i].data, b[i].len, false, &tmp[i].data) : -ENOMEM;
		if (r < 0)
			goto fail;
	}
	qsort(tmp, n, sizeof *tmp, cmp_tdblob);
	for (size_t i = 0; i + 1 < n; i++)
		if (streq(tmp[i].td, tmp[i + 1].td)) {
			if (asprintf(ret_reason, "bundle %s: trust domain given twice", tmp[i].td) <
			    0)
				*ret_reason = NULL;
			r = -EINVAL;
			goto fail;
		}
	for (size_t i = 0; i < n; i++) {
		m->tds[i] = tmp[i].td;
		m->data[i] = tmp[i].data;
	}
	m->n = n;
	*ret = TAKE_PTR(m);
	return 0;
fail:
	for (size_t i = 0; i < n; i++) {
		free(tmp[i].td);
		svid_blob_unref(tmp[i].data);
	}
	return r;
}

/* ---- sets ---- */

SvidSet *svid_set_ref(SvidSet *set)
{
	if (set)
		__atomic_add_fetch(&set->n_ref, 1, __ATOMIC_RELAXED);
	return set;
}

SvidSet *svid_set_unref(SvidSet *set)
{
	if (!set || __atomic_sub_fetch(&set->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
		return NULL;
	free(set->name);
	free(set->source);
	free(set->last_error);
	list_unref(set->list);
	map_unref(set->x509);
	map_unref(set->jwt);
	free(set->x509_tds);
	free(set->jwt_tds);
	free(set->x509_vis);
	free(set->jwt_vis);
	free(set);
	return NULL;
}

static bool tds_contains(const char **v, size_t n, const char *td)
{
	for (size_t i = 0; i < n; i++)
		if (streq(v[i], td))
			return true;
	return false;
}

/* Own trust domains first (in SVID order), then federates_with (sorted); only those with a
 * bundle in m. */
static int visible(const SvidList *l, const BundleMap *m, const char ***ret_tds,
		   const SvidBlob ***ret_vis, size_t *ret_n)
{
	size_t max = l ? l->n + l->n_fed : 0, n = 0;
	_cleanup_free_ const char **tds = calloc(max ? max : 1, sizeof *tds);
	_cleanup_free_ const SvidBlob **vis = calloc(max ? max : 1, sizeof *vis);

	if (!tds || !vis)
		return -ENOMEM;
	for (size_t pass = 0; l && pass < 2; pass++) {
		size_t cnt = pass == 0 ? l->n : l->n_fed;
		for (size_t i = 0; i < cnt; i++) {
			const char *td = pass == 0 ? l->items[i].trust_domain : l->fed[i];
			const SvidBlob *b = map_get(m, td);
			if (!b || tds_contains(tds, n, td))
				continue;
			/* Borrow the map's copy of the name: it lives as long as the map. */
			for (size_t j = 0; j < m->n; j++)
				if (m->data[j] == b)
					tds[n] = m->tds[j];
			vis[n++] = b;
		}
	}
	*ret_tds = TAKE_PTR(tds);
	*ret_vis = TAKE_PTR(vis);
	*ret_n = n;
	return 0;
}

static bool visible_equal(const SvidSet *a, const SvidSet *b)
{
	if (a->n_x509 != b->n_x509 || a->n_jwt != b->n_jwt)
		return false;
	for (size_t i = 0; i < a->n_x509; i++)
		if (!streq(a->x509_tds[i], b->x509_tds[i]) ||
		    !svid_blob_equal(a->x509_vis[i], b->x509_vis[i]))
			return false;
	for (size_t i = 0; i < a->n_jwt; i++)
		if (!streq(a->jwt_tds[i], b->jwt_tds[i]) ||
		    !svid_blob_equal(a->jwt_vis[i], b->jwt_vis[i]))
			return false;
	return true;
}

static bool items_equal(const SvidList *a, const SvidList *b)
{
	size_t na = a ? a->n : 0, nb = b ? b->n : 0;

	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		const SvidItem *x = &a->items[i], *y = &b->items[i];
		if (!streq(x->spiffe_id, y->spiffe_id) || !streq(x->hint, y->hint) ||
		    !svid_blob_equal(x->chain, y->chain) || !svid_blob_equal(x->key, y->key))
			return false;
	}
	return true;
}

static bool ids_equal(const SvidList *a, const SvidList *b)
{
	size_t na = a ? a->n : 0, nb = b ? b->n : 0;

	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!streq(a->items[i].spiffe_id, b->items[i].spiffe_id))
			return false;
	return true;
}

static int strdup_or_null(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* What a change does to a workload's set; unset fields keep the old values. */
typedef struct Change {
	SvidList *list; /* accepted update: the new SVIDs */
	const char *source;
	int64_t updated_at;
	const char *error; /* rejection */
	int64_t error_at;
	bool bundles_only; /* bundle maps changed: no new generation unless visible bundles did */
} Change;

static int set_build(const char *name, uint32_t slot, const SvidSet *old, const Change *c,
		     BundleMap *x509, BundleMap *jwt, SvidSet **ret)
{
	_cleanup_(svid_set_unrefp) SvidSet *n = calloc(1, sizeof *n);
	int r;

	if (!n)
		return -ENOMEM;
	n->n_ref = 1;
	n->slot = slot;
	n->name = strdup(name);
	if (!n->name)
		return -ENOMEM;
	if (c->list) {
		n->list = list_ref(c->list);
		r = strdup_or_null(c->source, &n->source);
		n->updated_at = c->updated_at;
	} else {
		n->list = old ? list_ref(old->list) : NULL;
		r = strdup_or_null(old ? old->source : NULL, &n->source);
		n->updated_at = old ? old->updated_at : 0;
	}
	if (r < 0)
		return r;
	if (c->error) {
		r = strdup_or_null(c->error, &n->last_error);
		n->last_error_at = c->error_at;
	} else {
		r = strdup_or_null(old ? old->last_error : NULL, &n->last_error);
		n->last_error_at = old ? old->last_error_at : 0;
	}
	if (r < 0)
		return r;
	n->x509 = map_ref(x509);
	n->jwt = map_ref(jwt);
	r = visible(n->list, n->x509, &n->x509_tds, &n->x509_vis, &n->n_x509);
	if (r < 0)
		return r;
	r = visible(n->list, n->jwt, &n->jwt_tds, &n->jwt_vis, &n->n_jwt);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(n);
	return 0;
}

/* ---- the store ---- */

int svid_store_new(uint64_t gen_base, SvidStore **ret)
{
	SvidStore *s = calloc(1, sizeof *s);

	if (!s)
		return -ENOMEM;
	s->n_ref = 1;
	s->gen = gen_base;
	s->jwt_serial = gen_base;
	s->jwt_per_workload = SIZE_MAX;
	if (svid_budget_new(SIZE_MAX, NULL, &s->jwt_total) < 0) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	*ret = s;
	return 0;
}

int svid_store_set_jwt_budget(SvidStore *s, size_t per_workload, size_t total)
{
	SvidBudget *b;
	int r;

	pthread_mutex_lock(&s->lock);
	r = s->n ? -EBUSY : svid_budget_new(total, NULL, &b);
	if (r >= 0) {
		svid_budget_unref(s->jwt_total);
		s->jwt_total = b;
		s->jwt_per_workload = per_workload;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void jwt_entry_done(JwtEntry *e)
{
	free(e->audience);
	svid_blob_unref(e->token);
}

static void jwts_clear(Workload *w)
{
	for (size_t i = 0; i < w->n_jwts; i++)
		jwt_entry_done(&w->jwts[i]);
	free(w->jwts);
	w->jwts = NULL;
	w->n_jwts = 0;
}

static void workload_free(Workload *w)
{
	if (!w)
		return;
	jwts_clear(w);
	svid_budget_unref(w->jwt_budget);
	svid_set_unref(w->cur);
	free(w->name);
	free(w);
}

SvidStore *svid_store_unref(SvidStore *s)
{
	if (!s || __atomic_sub_fetch(&s->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		workload_free(s->by_name[i]);
	svid_budget_unref(s->jwt_total);
	free(s->by_name);
	free(s->by_slot);
	for (size_t i = 0; i < s->n_sources; i++) {
		free(s->sources[i].name);
		map_unref(s->sources[i].x509);
		map_unref(s->sources[i].jwt);
	}
	free(s->sources);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return NULL;
}

void svid_store_set_change_callback(SvidStore *s, SvidStoreChangeFn fn, void *userdata)
{
	pthread_mutex_lock(&s->lock);
	s->cb = fn;
	s->cb_userdata = userdata;
	pthread_mutex_unlock(&s->lock);
}

/* Index of name in by_name, or where it would go (with *found false). Lock held. */
static size_t find_pos(SvidStore *s, const char *name, bool *found)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(name, s->by_name[mid]->name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	*found = false;
	return lo;
}

static Workload *find(SvidStore *s, const char *name)
{
	bool found;
	size_t i = find_pos(s, name, &found);
	return found ? s->by_name[i] : NULL;
}

static Source *source_find(SvidStore *s, const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < s->n_sources; i++)
		if (streq(s->sources[i].name, name))
			return &s->sources[i];
	return NULL;
}

static int store_add(SvidStore *s, const char *name, uint32_t want, uint32_t *ret_slot);

int svid_store_add(SvidStore *s, const char *name, uint32_t *ret_slot)
{
	return store_add(s, name, 0, ret_slot);
}

int svid_store_add_slot(SvidStore *s, const char *name, uint32_t slot)
{
	if (slot == 0)
		return -EINVAL;
	return store_add(s, name, slot, NULL);
}

/* want: 0 picks the first free slot. */
static int store_add(SvidStore *s, const char *name, uint32_t want, uint32_t *ret_slot)
{
	_cleanup_free_ Workload *w = NULL;
	_cleanup_(svid_set_unrefp) SvidSet *set = NULL;
	const Change none = {0};
	uint32_t slot = 0;
	bool found;
	size_t pos;
	int r;

	if (!s || !name || !*name)
		return -EINVAL;
	w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	pos = find_pos(s, name, &found);
	if (found) {
		r = want && s->by_name[pos]->slot != want ? -EBUSY : 0;
		if (ret_slot)
			*ret_slot = s->by_name[pos]->slot;
		pthread_mutex_unlock(&s->lock);
		return r;
	}
	if (want) {
		r = -EBUSY;
		if (want <= s->n_slots && s->by_slot[want - 1])
			goto unlock;
		r = -ENOMEM;
		while (s->n_slots < want) {
			Workload **v = realloc(s->by_slot, (s->n_slots + 1) * sizeof *v);
			if (!v)
				goto unlock;
			s->by_slot = v;
			s->by_slot[s->n_slots++] = NULL;
		}
		slot = want;
	}
	for (size_t i = 0; i < s->n_slots && slot == 0; i++)
		if (!s->by_slot[i]) {
			slot = (uint32_t)i + 1;
			break;
		}
	r = -ENOMEM;
	if (slot == 0) {
		Workload **v = realloc(s->by_slot, (s->n_slots + 1) * sizeof *v);
		if (!v)
			goto unlock;
		s->by_slot = v;
		s->by_slot[s->n_slots++] = NULL;
		slot = (uint32_t)s->n_slots;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		Workload **v = realloc(s->by_name, cap * sizeof *v);
		if (!v)
			goto unlock;
		s->by_name = v;
		s->cap = cap;
	}
	/* The empty first set is tiny; building it here keeps add atomic. */
	r = set_build(name, slot, NULL, &none, NULL, NULL, &set);
	if (r < 0)
		goto unlock;
	w->name = strdup(name);
	if (!w->name) {
		r = -ENOMEM;
		goto unlock;
	}
	set->generation = set->x509_generation = ++s->gen;
	w->slot = slot;
	w->cur = TAKE_PTR(set);
	memmove(s->by_name + pos + 1, s->by_name + pos, (s->n - pos) * sizeof *s->by_name);
	s->by_name[pos] = w;
	s->n++;
	s->by_slot[slot - 1] = TAKE_PTR(w);
	if (ret_slot)
		*ret_slot = slot;
	r = 0;
unlock:
	pthread_mutex_unlock(&s->lock);
	if (w)
		free(w->name);
	return r;
}

int svid_store_remove(SvidStore *s, const char *name)
{
	SvidStoreChangeFn cb;
	void *ud;
	Workload *w;
	uint64_t gen;
	bool found;
	size_t pos;

	if (!s || !name)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	pos = find_pos(s, name, &found);
	if (!found) {
		pthread_mutex_unlock(&s->lock);
		return -ENOENT;
	}
	w = s->by_name[pos];
	memmove(s->by_name + pos, s->by_name + pos + 1, (s->n - pos - 1) * sizeof *s->by_name);
	s->n--;
	s->by_slot[w->slot - 1] = NULL;
	gen = ++s->gen;
	cb = s->cb;
	ud = s->cb_userdata;
	pthread_mutex_unlock(&s->lock);
	if (cb)
		cb(ud, w->name, w->slot, gen, true);
	workload_free(w); /* keys are wiped when the last reader drops the set */
	return 0;
}

/* Builds the next set outside the lock and swaps it in; rebuilds if another writer won. */
static int workload_change(SvidStore *s, const char *name, const Change *c)
{
	for (;;) {
		_cleanup_(svid_set_unrefp) SvidSet *old = NULL, *n = NULL;
		_cleanup_(map_unrefp) BundleMap *x509 = NULL, *jwt = NULL;
		SvidStoreChangeFn cb;
		uint64_t epoch, gen;
		uint32_t slot;
		Workload *w;
		Source *src;
		bool bump;
		int r;

		pthread_mutex_lock(&s->lock);
		w = find(s, name);
		if (!w) {
			pthread_mutex_unlock(&s->lock);
			return -ENOENT;
		}
		old = svid_set_ref(w->cur);
		slot = w->slot;
		src = source_find(s, c->list ? c->source : old->source);
		if (src) {
			x509 = map_ref(src->x509);
			jwt = map_ref(src->jwt);
		}
		epoch = s->bundle_epoch;
		pthread_mutex_unlock(&s->lock);

		r = set_build(name, slot, old, c, x509, jwt, &n);
		if (r < 0)
			return r;
		bump = !c->bundles_only || !visible_equal(old, n);

		pthread_mutex_lock(&s->lock);
		if (find(s, name) != w || w->cur != old || s->bundle_epoch != epoch) {
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		if (bump) {
			n->generation = gen = ++s->gen;
			n->x509_generation = c->list && !items_equal(old->list, c->list)
						 ? gen
						 : old->x509_generation;
		} else {
			n->generation = gen = old->generation;
			n->x509_generation = old->x509_generation;
		}
		/* Cached JWT-SVIDs speak for the old identities. */
		if (c->list && !ids_equal(old->list, c->list))
			jwts_clear(w);
		svid_set_unref(w->cur); /* old keeps our own reference */
		w->cur = TAKE_PTR(n);
		cb = s->cb;
		void *ud = s->cb_userdata;
		pthread_mutex_unlock(&s->lock);
		if (bump && cb)
			cb(ud, name, slot, gen, false);
		return 0;
	}
}

static void sanitize(char *out, size_t size, const char *in)
{
	size_t i = 0;

	for (; in && in[i] && i + 1 < size; i++)
		out[i] = (in[i] < 0x20 || in[i] > 0x7e) ? '?' : in[i];
	out[i] = 0;
}

static int reject(SvidStore *s, const char *name, int r, const char *why, int64_t now)
{
	const Change c = {.error = why ? why : "update rejected (no memory for the reason)",
			  .error_at = now};
	int k = workload_change(s, name, &c);
	return k == -ENOENT ? k : r;
}

static int item_from_input(const SvidX509Input *in, SvidCheck *chk, SvidItem *it)
{
	int r;

	*it = (SvidItem){
	    .spiffe_id = TAKE_PTR(chk->spiffe_id),
	    .trust_domain = TAKE_PTR(chk->trust_domain),
	    .serial = TAKE_PTR(chk->serial),
	    .not_before = chk->not_before,
	    .not_after = chk->not_after,
	    .n_certs = chk->n_certs,
	    .hint = strdup(in->hint ? in->hint : ""),
	};
	if (!it->hint)
		return -ENOMEM;
	r = svid_blob_new(in->chain, in->chain_len, false, &it->chain);
	if (r < 0)
		return r;
	return svid_blob_new(in->key, in->key_len, true, &it->key);
}

/* Validates every SVID into a new list. On a rule failure sets *ret_reason (malloc'ed). */
static int list_new(const SvidX509Update *u, SvidList **ret, char **ret_reason)
{
	_cleanup_(list_unrefp) SvidList *l = calloc(1, sizeof *l);
	size_t n_fed = 0;

	*ret_reason = NULL;
	if (!l)
		return -ENOMEM;
	l->n_ref = 1;
	l->items = calloc(u->n_svids ? u->n_svids : 1, sizeof *l->items);
	l->fed = calloc(u->n_federates_with ? u->n_federates_with : 1, sizeof *l->fed);
	if (!l->items || !l->fed)
		return -ENOMEM;
	for (size_t i = 0; i < u->n_svids; i++) {
		const SvidX509Input *in = &u->svids[i];
		_cleanup_free_ char *why = NULL;
		SvidCheck chk = {0};
		bool dup = false;
		int r;

		/* A later SVID repeating a non-empty hint is dropped, as go-spiffe does. */
		for (size_t j = 0; in->hint && *in->hint && j < l->n; j++)
			dup = dup || streq(l->items[j].hint, in->hint);
		if (dup)
			continue;
		r = x509check_svid(in, &chk, &why);
		if (r < 0) {
			char id[257];
			sanitize(id, sizeof id,
				 in->spiffe_id && *in->spiffe_id ? in->spiffe_id : "?");
			if (why && asprintf(ret_reason, "svid %zu (%s): %s", i, id, why) < 0)
				*ret_reason = NULL;
			return r;
		}
		r = item_from_input(in, &chk, &l->items[l->n]);
		l->n++; /* item_done() copes with a half-filled item */
		x509check_done(&chk);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < u->n_federates_with; i++) {
		const char *td = u->federates_with[i];
		if (!spiffe_td_valid(td)) {
			char t[257];
			sanitize(t, sizeof t, td ? td : "(null)");
			if (asprintf(ret_reason, "federates_with: invalid trust domain %s", t) < 0)
				*ret_reason = NULL;
			return -EINVAL;
		}
		l->fed[n_fed] = strdup(td);
		if (!l->fed[n_fed])
			return -ENOMEM;
		l->n_fed = ++n_fed;
	}
	qsort(l->fed, l->n_fed, sizeof *l->fed, cmp_str);
	n_fed = 0;
	for (size_t i = 0; i < l->n_fed; i++) {
		if (n_fed > 0 && streq(l->fed[n_fed - 1], l->fed[i]))
			free(l->fed[i]);
		else
			l->fed[n_fed++] = l->fed[i];
	}
	l->n_fed = n_fed;
	*ret = TAKE_PTR(l);
	return 0;
}

static bool exists(SvidStore *s, const char *name)
{
	bool r;

	pthread_mutex_lock(&s->lock);
	r = find(s, name) != NULL;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Replaces one source's map of one kind and rebuilds the sets of the workloads it serves. */
static int set_bundles(SvidStore *s, const char *source, bool x509, BundleMap *m, const char *skip)
{
	_cleanup_free_ char **names = NULL;
	BundleMap *old = NULL;
	size_t n_names = 0;
	Source *src;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	src = source_find(s, source);
	if (!src) {
		Source *v = realloc(s->sources, (s->n_sources + 1) * sizeof *v);
		char *dup = strdup(source);
		if (!v || !dup) {
			if (v)
				s->sources = v;
			free(dup);
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
		s->sources = v;
		src = &s->sources[s->n_sources++];
		*src = (Source){.name = dup};
	}
	if (map_equal(x509 ? src->x509 : src->jwt, m)) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	names = calloc(s->n ? s->n : 1, sizeof *names);
	if (!names) {
		pthread_mutex_unlock(&s->lock);
		return -ENOMEM;
	}
	if (x509) {
		old = src->x509;
		src->x509 = map_ref(m);
	} else {
		old = src->jwt;
		src->jwt = map_ref(m);
	}
	s->bundle_epoch++;
	for (size_t i = 0; i < s->n; i++) {
		const SvidSet *cur = s->by_name[i]->cur;
		if (cur->source && streq(cur->source, source) &&
		    !(skip && streq(skip, s->by_name[i]->name))) {
			names[n_names] = strdup(s->by_name[i]->name);
			if (names[n_names])
				n_names++;
			else
				r = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&s->lock);
	map_unref(old);

	for (size_t i = 0; i < n_names; i++) {
		const Change c = {.bundles_only = true};
		int k = workload_change(s, names[i], &c);
		if (k < 0 && k != -ENOENT && r == 0)
			r = k;
		free(names[i]);
	}
	return r;
}

int svid_store_update_x509(SvidStore *s, const char *name, const char *source,
			   const SvidX509Update *u, int64_t now)
{
	_cleanup_(list_unrefp) SvidList *l = NULL;
	_cleanup_(map_unrefp) BundleMap *m = NULL;
	_cleanup_free_ char *why = NULL;
	const Change *cp;
	int r;

	if (!s || !name || !source || !*source || !u || (u->n_svids > 0 && !u->svids) ||
	    (u->n_federates_with > 0 && !u->federates_with))
		return -EINVAL;
	if (!exists(s, name))
		return -ENOENT;
	r = list_new(u, &l, &why);
	if (r == -EINVAL || r == -EIO)
		return reject(s, name, r, why, now);
	if (r < 0)
		return r;
	if (u->bundles) {
		r = map_new(u->bundles, u->n_bundles, true, &m, &why);
		if (r == -EINVAL || r == -EIO)
			return reject(s, name, r, why, now);
		if (r < 0)
			return r;
		/* The Workload API sends bundles with the SVIDs: they are this source's bundles. */
		r = set_bundles(s, source, true, m, name);
		if (r < 0)
			return r;
	}
	const Change c = {.list = l, .source = source, .updated_at = now};
	cp = &c;
	return workload_change(s, name, cp);
}

static int set_bundles_checked(SvidStore *s, const char *source, bool x509,
			       const SvidBundleInput *b, size_t n)
{
	_cleanup_(map_unrefp) BundleMap *m = NULL;
	_cleanup_free_ char *why = NULL;
	int r;

	if (!s || !source || !*source)
		return -EINVAL;
	r = map_new(b, n, x509, &m, &why);
	if (r < 0)
		return r;
	return set_bundles(s, source, x509, m, NULL);
}

int svid_store_set_x509_bundles(SvidStore *s, const char *source, const SvidBundleInput *b,
				size_t n, int64_t now)
{
	return set_bundles_checked(s, source, true, b, n);
}

int svid_store_set_jwt_bundles(SvidStore *s, const char *source, const SvidBundleInput *b, size_t n,
			       int64_t now)
{
	return set_bundles_checked(s, source, false, b, n);
}

/* ---- JWT cache ---- */

int svid_store_put_jwt(SvidStore *s, const char *name, const char *audience,
		       const SvidJwtInput *jwt)
{
	_cleanup_(svid_blob_unrefp) SvidBlob *tok = NULL;
	_cleanup_free_ char *aud = NULL;
	JwtEntry *e = NULL;
	Workload *w;
	int64_t fresh;
	int r;

	if (!s || !name || !audience || !*audience || !jwt || !jwt->token || !*jwt->token ||
	    jwt->expires_at <= 0 || (jwt->issued_at && jwt->issued_at > jwt->expires_at))
		return -EINVAL;
	/* Fresh until half its lifetime, as SPIRE and go-spiffe renew. */
	fresh = jwt->issued_at ? jwt->issued_at + (jwt->expires_at - jwt->issued_at) / 2
			       : jwt->expires_at;
	aud = strdup(audience);
	if (!aud)
		return -ENOMEM;

	pthread_mutex_lock(&s->lock);
	w = find(s, name);
	r = w ? 0 : -ENOENT;
	if (r >= 0 && !w->jwt_budget)
		r = svid_budget_new(s->jwt_per_workload, s->jwt_total, &w->jwt_budget);
	if (r >= 0)
		r = svid_blob_new_charged(jwt->token, strlen(jwt->token), w->jwt_budget, &tok);
	if (r < 0) {
		pthread_mutex_unlock(&s->lock);
		return r;
	}
	for (size_t i = 0; i < w->n_jwts; i++)
		if (streq(w->jwts[i].audience, audience))
			e = &w->jwts[i];
	if (!e && w->n_jwts >= JWT_CACHE_MAX) {
		e = &w->jwts[0];
		for (size_t i = 1; i < w->n_jwts; i++)
			if (w->jwts[i].fresh_until < e->fresh_until)
				e = &w->jwts[i];
	}
	if (!e) {
		JwtEntry *v = realloc(w->jwts, (w->n_jwts + 1) * sizeof *v);
		if (!v) {
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
		w->jwts = v;
		e = &w->jwts[w->n_jwts++];
		*e = (JwtEntry){0};
	}
	jwt_entry_done(e);
	*e = (JwtEntry){
	    .audience = TAKE_PTR(aud),
	    .token = TAKE_PTR(tok),
	    .fresh_until = fresh,
	    .serial = ++s->jwt_serial,
	};
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int svid_store_drop_jwt(SvidStore *s, const char *name, const char *audience)
{
	int r = -ENOENT;

	pthread_mutex_lock(&s->lock);
	Workload *w = find(s, name);
	for (size_t i = 0; w && i < w->n_jwts; i++) {
		if (!streq(w->jwts[i].audience, audience))
			continue;
		jwt_entry_done(&w->jwts[i]);
		w->jwts[i] = w->jwts[--w->n_jwts];
		r = 0;
		break;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

size_t svid_store_jwt_bytes(SvidStore *s, const char *name)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	Workload *w = name ? find(s, name) : NULL;
	n = name ? (w ? svid_budget_used(w->jwt_budget) : 0) : svid_budget_used(s->jwt_total);
	pthread_mutex_unlock(&s->lock);
	return n;
}

int svid_store_get_jwt(SvidStore *s, const char *name, const char *audience, int64_t now,
		       SvidBlob **ret_token, int64_t *ret_fresh_until, uint64_t *ret_serial)
{
	Workload *w;
	int r = -ENOENT;

	if (!s || !name || !audience)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	w = find(s, name);
	for (size_t i = 0; w && i < w->n_jwts; i++) {
		const JwtEntry *e = &w->jwts[i];
		if (!streq(e->audience, audience) || e->fresh_until <= now)
			continue;
		if (ret_token)
			*ret_token = svid_blob_ref(e->token);
		if (ret_fresh_until)
			*ret_fresh_until = e->fresh_until;
		if (ret_serial)
			*ret_serial = e->serial;
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- readers ---- */

int svid_store_get(SvidStore *s, const char *name, SvidSet **ret)
{
	Workload *w;

	if (!s || !name)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	w = find(s, name);
	if (w)
		*ret = svid_set_ref(w->cur);
	pthread_mutex_unlock(&s->lock);
	return w ? 0 : -ENOENT;
}

int svid_store_get_by_slot(SvidStore *s, uint32_t slot, SvidSet **ret)
{
	Workload *w = NULL;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (slot >= 1 && slot <= s->n_slots)
		w = s->by_slot[slot - 1];
	if (w)
		*ret = svid_set_ref(w->cur);
	pthread_mutex_unlock(&s->lock);
	return w ? 0 : -ENOENT;
}

int svid_store_list(SvidStore *s, SvidSet ***ret, size_t *ret_n)
{
	SvidSet **v;
	size_t n;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	n = s->n;
	v = calloc(n ? n : 1, sizeof *v);
	if (v)
		for (size_t i = 0; i < n; i++)
			v[i] = svid_set_ref(s->by_name[i]->cur);
	pthread_mutex_unlock(&s->lock);
	if (!v)
		return -ENOMEM;
	*ret = v;
	*ret_n = n;
	return 0;
}

size_t svid_store_count(SvidStore *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->n;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- set accessors ---- */

const char *svid_set_name(const SvidSet *set)
{
	return set->name;
}

uint32_t svid_set_slot(const SvidSet *set)
{
	return set->slot;
}

uint64_t svid_set_generation(const SvidSet *set)
{
	return set->generation;
}

uint64_t svid_set_x509_generation(const SvidSet *set)
{
	return set->x509_generation;
}

const char *svid_set_source(const SvidSet *set)
{
	return set->source;
}

int64_t svid_set_updated_at(const SvidSet *set)
{
	return set->updated_at;
}

const char *svid_set_last_error(const SvidSet *set)
{
	return set->last_error;
}

int64_t svid_set_last_error_at(const SvidSet *set)
{
	return set->last_error_at;
}

size_t svid_set_n_svids(const SvidSet *set)
{
	return set->list ? set->list->n : 0;
}

static const SvidItem *item(const SvidSet *set, size_t i)
{
	return set->list && i < set->list->n ? &set->list->items[i] : NULL;
}

const char *svid_set_spiffe_id(const SvidSet *set, size_t i)
{
	const SvidItem *it = item(set, i);
	return it ? it->spiffe_id : NULL;
}

const char *svid_set_trust_domain(const SvidSet *set, size_t i)
{
	const SvidItem *it = item(set, i);
	return it ? it->trust_domain : NULL;
}

const char *svid_set_hint(const SvidSet *set, size_t i)
{
	const SvidItem *it = item(set, i);
	return it ? it->hint : NULL;
}

const char *svid_set_serial(const SvidSet *set, size_t i)
{
	const SvidItem *it = item(set, i);
	return it ? it->serial : NULL;
}

int64_t svid_set_not_before(const SvidSet *set, size_t i)
{
	const SvidItem *it = item(set, i);
	return it ? it->not_before : 0;
}

int64_t svid_set_not_after(const SvidSet *set, size_t i)
{
	const SvidItem *it = item(set, i);
	return it ? it->not_after : 0;
}

bool svid_set_expired(const SvidSet *set, size_t i, int64_t now)
{
	const SvidItem *it = item(set, i);
	return it && now >= it->not_after;
}

size_t svid_set_n_bundles(const SvidSet *set)
{
	return set->n_x509;
}

const char *svid_set_bundle_td(const SvidSet *set, size_t i)
{
	return i < set->n_x509 ? set->x509_tds[i] : NULL;
}

size_t svid_set_n_jwt_bundles(const SvidSet *set)
{
	return set->n_jwt;
}

const char *svid_set_jwt_bundle_td(const SvidSet *set, size_t i)
{
	return i < set->n_jwt ? set->jwt_tds[i] : NULL;
}

size_t svid_set_n_federates_with(const SvidSet *set)
{
	return set->list ? set->list->n_fed : 0;
}

const char *svid_set_federates_with(const SvidSet *set, size_t i)
{
	return set->list && i < set->list->n_fed ? set->list->fed[i] : NULL;
}

const SvidBlob *svid_set_chain_der(const SvidSet *set, size_t i, size_t *ret_n_certs)
{
	const SvidItem *it = item(set, i);
	if (ret_n_certs)
		*ret_n_certs = it ? it->n_certs : 0;
	return it ? it->chain : NULL;
}

const SvidBlob *svid_set_key_der(const SvidSet *set, size_t i)
{
	const SvidItem *it = item(set, i);
	return it ? it->key : NULL;
}

const SvidBlob *svid_set_x509_bundle(const SvidSet *set, const char *td)
{
	for (size_t i = 0; td && i < set->n_x509; i++)
		if (streq(set->x509_tds[i], td))
			return set->x509_vis[i];
	return NULL;
}

const SvidBlob *svid_set_jwt_bundle(const SvidSet *set, const char *td)
{
	for (size_t i = 0; td && i < set->n_jwt; i++)
		if (streq(set->jwt_tds[i], td))
			return set->jwt_vis[i];
	return NULL;
}
