// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "macro.h"
#include "registry.h"

struct RegEntry {
	char *id, *spiffe_id, *td, *path, *hint;
	char **selectors; /* sorted */
	size_t n_selectors;
	char **fw; /* sorted "spiffe://td" */
	size_t n_fw;
	bool admin;
	void *data;
	Registry *owner;
};

struct Registry {
	RegEntry **entries;
	size_t n, cap;
	unsigned long next_seq;
	RegistryFreeFn free_data;
};

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void entry_free(RegEntry *e)
{
	if (!e)
		return;
	if (e->data && e->owner && e->owner->free_data)
		e->owner->free_data(e->data);
	free(e->id);
	free(e->spiffe_id);
	free(e->td);
	free(e->path);
	free(e->hint);
	strv_free(e->selectors, e->n_selectors);
	strv_free(e->fw, e->n_fw);
	free(e);
}

int registry_new(RegistryFreeFn free_data, Registry **ret)
{
	Registry *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->free_data = free_data;
	r->next_seq = 1;
	*ret = r;
	return 0;
}

void registry_set_free_data(Registry *r, RegistryFreeFn free_data)
{
	r->free_data = free_data;
}

Registry *registry_free(Registry *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n; i++)
		entry_free(r->entries[i]);
	free(r->entries);
	free(r);
	return NULL;
}

bool trust_domain_valid(const char *td)
{
	size_t n = td ? strlen(td) : 0;
	if (n == 0 || n > 255)
		return false;
	for (const char *p = td; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '-' || *p == '_'))
			return false;
	return true;
}

static bool path_valid(const char *path)
{
	/* Non-root path of segments [a-zA-Z0-9._-], none empty, "." or "..", no trailing '/'. */
	if (path[0] != '/' || path[1] == '\0')
		return false;
	const char *seg = path + 1;
	for (;;) {
		const char *end = strchrnul(seg, '/');
		size_t len = (size_t)(end - seg);
		if (len == 0 || (len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
		for (const char *p = seg; p < end; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
				return false;
		if (*end == '\0')
			return true;
		seg = end + 1;
	}
}

int spiffe_id_parse(const char *id, char **ret_td, char **ret_path)
{
	static const char scheme[] = "spiffe://";
	if (!id || strlen(id) > 2048 || strncmp(id, scheme, sizeof scheme - 1) != 0)
		return -EINVAL;
	const char *t = id + sizeof scheme - 1;
	const char *slash = strchr(t, '/');
	if (!slash)
		return -EINVAL;
	_cleanup_free_ char *td = strndup(t, (size_t)(slash - t));
	if (!td)
		return -ENOMEM;
	if (!trust_domain_valid(td) || !path_valid(slash))
		return -EINVAL;
	char *path = strdup(slash);
	if (!path)
		return -ENOMEM;
	*ret_td = TAKE_PTR(td);
	*ret_path = path;
	return 0;
}

bool selector_valid(const char *s)
{
	const char *c = s ? strchr(s, ':') : NULL;
	return c && c != s && c[1] != '\0' && !strchr(s, '\n');
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Copies, sorts and de-duplicates a string list. */
static int strv_sorted_copy(const char *const *in, size_t n, char ***ret, size_t *ret_n)
{
	char **v = calloc(n ? n : 1, sizeof *v);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(v[i] = strdup(in[i]))) {
			strv_free(v, i);
			return -ENOMEM;
		}
	qsort(v, n, sizeof *v, cmp_str);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && streq(v[k - 1], v[i])) {
			free(v[i]);
			continue;
		}
		v[k++] = v[i];
	}
	*ret = v;
	*ret_n = k;
	return 0;
}

static int registry_append(Registry *r, RegEntry *e)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		RegEntry **p = realloc(r->entries, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		r->entries = p;
		r->cap = cap;
	}
	r->entries[r->n++] = e;
	return 0;
}

int registry_add(Registry *r, const char *entry_id, const char *spiffe_id,
		 const char *const *selectors, size_t n_selectors, const char *hint,
		 const char *const *federates_with, size_t n_fw, bool admin, RegEntry **ret)
{
	if (n_selectors == 0)
		return -EINVAL;
	for (size_t i = 0; i < n_selectors; i++)
		if (!selector_valid(selectors[i]))
			return -EINVAL;
	if (entry_id && (!*entry_id || strpbrk(entry_id, " \t\n")))
		return -EINVAL;
	if (hint && strchr(hint, '\n'))
		return -EINVAL;

	RegEntry *e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	int r_ = spiffe_id_parse(spiffe_id, &e->td, &e->path);
	if (r_ < 0)
		goto fail;
	r_ = -ENOMEM;
	if (!(e->spiffe_id = strdup(spiffe_id)) || !(e->hint = strdup(hint ? hint : "")))
		goto fail;
	if (entry_id)
		e->id = strdup(entry_id);
	else if (asprintf(&e->id, "entry-%lu", r->next_seq) < 0)
		e->id = NULL;
	if (!e->id)
		goto fail;
	if (registry_find(r, e->id)) {
		r_ = -EEXIST;
		goto fail;
	}
	if ((r_ = strv_sorted_copy(selectors, n_selectors, &e->selectors, &e->n_selectors)) < 0)
		goto fail;
	/* federates_with: "td" or "spiffe://td", stored as "spiffe://td". */
	e->fw = calloc(n_fw ? n_fw : 1, sizeof *e->fw);
	if (!e->fw) {
		r_ = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n_fw; i++) {
		const char *td = federates_with[i];
		if (strncmp(td, "spiffe://", 9) == 0)
			td += 9;
		if (!trust_domain_valid(td)) {
			r_ = -EINVAL;
			goto fail;
		}
		if (asprintf(&e->fw[e->n_fw], "spiffe://%s", td) < 0) {
			e->fw[e->n_fw] = NULL;
			r_ = -ENOMEM;
			goto fail;
		}
		e->n_fw++;
	}
	{
		char **sorted;
		size_t n_sorted;
		if ((r_ = strv_sorted_copy((const char *const *)e->fw, e->n_fw, &sorted,
					   &n_sorted)) < 0)
			goto fail;
		strv_free(e->fw, e->n_fw);
		e->fw = sorted;
		e->n_fw = n_sorted;
	}
	e->admin = admin;
	if ((r_ = registry_append(r, e)) < 0)
		goto fail;
	e->owner = r;
	r->next_seq++;
	if (ret)
		*ret = e;
	return 0;
fail:
	entry_free(e);
	return r_;
}

/* Splits "a,b,c" into the vector (appending). */
static int split_commas(const char *s, char ***v, size_t *n)
{
	_cleanup_free_ char *copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char **p = realloc(*v, (*n + 1) * sizeof *p);
		if (!p)
			return -ENOMEM;
		*v = p;
		if (!(p[*n] = strdup(tok)))
			return -ENOMEM;
		(*n)++;
	}
	return 0;
}

int registry_add_spec(Registry *r, const char *spec, RegEntry **ret)
{
	_cleanup_free_ char *copy = strdup(spec ? spec : "");
	char **sel = NULL, **fw = NULL;
	size_t n_sel = 0, n_fw = 0;
	const char *id = NULL, *hint = NULL, *spiffe_id = NULL;
	bool admin = false;
	int k = 0;

	if (!copy)
		return -ENOMEM;
	char *save = NULL;
	for (char *tok = strtok_r(copy, " \t", &save); tok && k >= 0;
	     tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');
		if (!spiffe_id && !eq) {
			spiffe_id = tok;
			continue;
		}
		if (!eq) {
			k = -EINVAL;
			break;
		}
		*eq = '\0';
		const char *v = eq + 1;
		if (streq(tok, "selectors") || streq(tok, "selector"))
			k = split_commas(v, &sel, &n_sel);
		else if (streq(tok, "federates_with") || streq(tok, "federates-with"))
			k = split_commas(v, &fw, &n_fw);
		else if (streq(tok, "hint"))
			hint = v;
		else if (streq(tok, "id"))
			id = v;
		else if (streq(tok, "spiffe_id") && !spiffe_id)
			spiffe_id = v;
		else if (streq(tok, "admin")) {
			if (streq(v, "true"))
				admin = true;
			else if (streq(v, "false"))
				admin = false;
			else
				k = -EINVAL;
		} else
			k = -EINVAL;
	}
	if (k >= 0)
		k = spiffe_id ? registry_add(r, id, spiffe_id, (const char *const *)sel, n_sel, hint,
					     (const char *const *)fw, n_fw, admin, ret)
			      : -EINVAL;
	strv_free(sel, n_sel);
	strv_free(fw, n_fw);
	return k;
}

int registry_remove(Registry *r, const char *key)
{
	int removed = 0;
	size_t k = 0;
	bool by_id = registry_find(r, key) != NULL;

	for (size_t i = 0; i < r->n; i++) {
		RegEntry *e = r->entries[i];
		if (by_id ? streq(e->id, key) : streq(e->spiffe_id, key)) {
			entry_free(e);
			removed++;
			continue;
		}
		r->entries[k++] = e;
	}
	r->n = k;
	return removed > 0 ? removed : -ENOENT;
}

size_t registry_count(const Registry *r)
{
	return r->n;
}

RegEntry *registry_at(const Registry *r, size_t i)
{
	return i < r->n ? r->entries[i] : NULL;
}

RegEntry *registry_find(const Registry *r, const char *entry_id)
{
	for (size_t i = 0; i < r->n; i++)
		if (streq(r->entries[i]->id, entry_id))
			return r->entries[i];
	return NULL;
}

bool reg_entry_matches(const RegEntry *e, const char *const *selectors, size_t n_selectors)
{
	for (size_t i = 0; i < e->n_selectors; i++) {
		bool found = false;
		for (size_t j = 0; j < n_selectors && !found; j++)
			found = streq(e->selectors[i], selectors[j]);
		if (!found)
			return false;
	}
	return e->n_selectors > 0;
}

int registry_match(const Registry *r, const char *const *selectors, size_t n_selectors,
		   unsigned flags, RegEntry ***ret, size_t *ret_n)
{
	RegEntry **v = NULL;
	size_t n = 0;

	for (size_t i = 0; i < r->n; i++) {
		RegEntry *e = r->entries[i];
		if ((flags & REGISTRY_MATCH_DELEGATED) && e->admin)
			continue;
		if (!reg_entry_matches(e, selectors, n_selectors))
			continue;
		RegEntry **p = realloc(v, (n + 1) * sizeof *p);
		if (!p) {
			free(v);
			return -ENOMEM;
		}
		v = p;
		v[n++] = e;
	}
	/* SPIRE's agent orders a workload's identities by entry id (cache.sortIdentities), so the
	 * default SVID (the first) is the entry with the smallest id, in string order. Insertion
	 * sort: a workload matches few entries. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1]->id, v[j]->id) > 0; j--) {
			RegEntry *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*ret = v;
	*ret_n = n;
	return 0;
}

static const char *find_prefixed(const char *const *sel, size_t n, const char *prefix)
{
	size_t len = strlen(prefix);
	for (size_t i = 0; i < n; i++)
		if (strncmp(sel[i], prefix, len) == 0 && sel[i][len])
			return sel[i] + len;
	return NULL;
}

int registry_auto_k8s(Registry *r, const char *trust_domain, const char *const *selectors,
		      size_t n_selectors, RegEntry **ret)
{
	const char *uid = find_prefixed(selectors, n_selectors, "k8s:pod-uid:");
	const char *ns = find_prefixed(selectors, n_selectors, "k8s:ns:");
	const char *sa = find_prefixed(selectors, n_selectors, "k8s:sa:");
	_cleanup_free_ char *id = NULL, *spiffe_id = NULL, *s_uid = NULL, *s_ns = NULL,
			    *s_sa = NULL;

	if (!uid || !ns || !sa)
		return 0;
	/* Kubernetes names never hold '/'; one would change the ID's shape. */
	if (strchr(ns, '/') || strchr(sa, '/') || strpbrk(uid, " \t\n"))
		return -EINVAL;
	if (asprintf(&id, "auto-%s", uid) < 0)
		return -ENOMEM;
	if (registry_find(r, id))
		return 0;
	if (asprintf(&spiffe_id, "spiffe://%s/ns/%s/sa/%s", trust_domain, ns, sa) < 0 ||
	    asprintf(&s_uid, "k8s:pod-uid:%s", uid) < 0 || asprintf(&s_ns, "k8s:ns:%s", ns) < 0 ||
	    asprintf(&s_sa, "k8s:sa:%s", sa) < 0)
		return -ENOMEM;
	const char *sel[] = {s_uid, s_ns, s_sa};
	int k = registry_add(r, id, spiffe_id, sel, ELEMENTSOF(sel), NULL, NULL, 0, false, ret);
	return k < 0 ? k : 1;
}

const char *reg_entry_id(const RegEntry *e)
{
	return e->id;
}
const char *reg_entry_spiffe_id(const RegEntry *e)
{
	return e->spiffe_id;
}
const char *reg_entry_trust_domain(const RegEntry *e)
{
	return e->td;
}
const char *reg_entry_path(const RegEntry *e)
{
	return e->path;
}
const char *reg_entry_hint(const RegEntry *e)
{
	return e->hint;
}
bool reg_entry_admin(const RegEntry *e)
{
	return e->admin;
}
size_t reg_entry_n_selectors(const RegEntry *e)
{
	return e->n_selectors;
}
const char *reg_entry_selector(const RegEntry *e, size_t i)
{
	return i < e->n_selectors ? e->selectors[i] : NULL;
}
size_t reg_entry_n_federates_with(const RegEntry *e)
{
	return e->n_fw;
}
const char *reg_entry_federates_with(const RegEntry *e, size_t i)
{
	return i < e->n_fw ? e->fw[i] : NULL;
}
void *reg_entry_data(const RegEntry *e)
{
	return e->data;
}
void reg_entry_set_data(RegEntry *e, void *data)
{
	if (e->data && e->data != data && e->owner && e->owner->free_data)
		e->owner->free_data(e->data);
	e->data = data;
}
