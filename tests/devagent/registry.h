/* SPDX-License-Identifier: Apache-2.0 */
/* registry.h: the development agent's registration entries (SPIFFE ID, selector set, hint,
 * federates_with, admin flag) and SPIRE's matching rule: an entry matches a caller when ALL of the
 * entry's selectors are in the caller's set. Pure: no I/O, no logging, no locking (the caller
 * serialises access; the devagent holds its server lock). Each entry carries one opaque data
 * pointer owned by the registry (freed with the free function given to registry_new). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct Registry Registry;
typedef struct RegEntry RegEntry;

typedef void (*RegistryFreeFn)(void *data);

int registry_new(RegistryFreeFn free_data, Registry **ret);
Registry *registry_free(Registry *r); /* NULL-safe, returns NULL */
void registry_set_free_data(Registry *r, RegistryFreeFn free_data);

/* Parses an entry spec: "<spiffe-id> [selectors=t:v,t:v] [selector=t:v]... [hint=H]
 * [federates_with=td,td] [admin=true|false] [id=ENTRY-ID]" (whitespace separated). At least one
 * selector is required. -EINVAL on a bad SPIFFE ID, selector, trust domain or key; -EEXIST when
 * the entry id is taken. The id defaults to "entry-<n>". ret may be NULL. */
int registry_add_spec(Registry *r, const char *spec, RegEntry **ret);
/* Same from parts; selectors are "type:value". */
int registry_add(Registry *r, const char *entry_id, const char *spiffe_id,
		 const char *const *selectors, size_t n_selectors, const char *hint,
		 const char *const *federates_with, size_t n_fw, bool admin, RegEntry **ret);
/* Removes one entry by entry id, or every entry whose SPIFFE ID equals `key`. Returns the number
 * removed (>= 1) or -ENOENT. */
int registry_remove(Registry *r, const char *key);

size_t registry_count(const Registry *r);
RegEntry *registry_at(const Registry *r, size_t i); /* insertion order */
RegEntry *registry_find(const Registry *r, const char *entry_id);

enum {
	REGISTRY_MATCH_DELEGATED = 1 << 0, /* skip admin entries (never served over the admin API) */
};
/* Entries (insertion order) whose selectors are all in `selectors` ("type:value" strings).
 * *ret is a malloc'd array (free() it, not the entries); n may be 0 with *ret NULL. */
int registry_match(const Registry *r, const char *const *selectors, size_t n_selectors,
		   unsigned flags, RegEntry ***ret, size_t *ret_n);
bool reg_entry_matches(const RegEntry *e, const char *const *selectors, size_t n_selectors);

/* --auto-k8s: when the set has k8s:pod-uid:U, k8s:ns:N and k8s:sa:S and no entry "auto-U" exists,
 * adds spiffe://<td>/ns/N/sa/S with those three selectors under id "auto-U". Returns 1 when
 * added, 0 when nothing was needed, -EINVAL when the names make no valid SPIFFE ID. */
int registry_auto_k8s(Registry *r, const char *trust_domain, const char *const *selectors,
		      size_t n_selectors, RegEntry **ret);

const char *reg_entry_id(const RegEntry *e);
const char *reg_entry_spiffe_id(const RegEntry *e);
const char *reg_entry_trust_domain(const RegEntry *e); /* "example.org" */
const char *reg_entry_path(const RegEntry *e);         /* "/ns/x/sa/y" */
const char *reg_entry_hint(const RegEntry *e);         /* "" when none */
bool reg_entry_admin(const RegEntry *e);
size_t reg_entry_n_selectors(const RegEntry *e);
const char *reg_entry_selector(const RegEntry *e, size_t i); /* sorted "type:value" */
size_t reg_entry_n_federates_with(const RegEntry *e);
const char *reg_entry_federates_with(const RegEntry *e, size_t i); /* sorted "spiffe://td" */
void *reg_entry_data(const RegEntry *e);
void reg_entry_set_data(RegEntry *e, void *data); /* frees the previous data */

/* Validation helpers (pure). */
/* "spiffe://td/path" with a non-root path -> td and path (malloc'd); -EINVAL otherwise. */
int spiffe_id_parse(const char *id, char **ret_td, char **ret_path);
bool trust_domain_valid(const char *td);
/* "type:value" with a non-empty type (no ':') and non-empty value. */
bool selector_valid(const char *s);
