/* SPDX-License-Identifier: Apache-2.0 */
/* store.h: owns every workload's current identity (an immutable, reference-counted SvidSet) and
 * the trust bundles per agent. Thread-safe: any thread may call anything. Never logs, never does
 * I/O, never holds its lock across a callback or a render. Validation follows the X509-SVID
 * standard (docs/store.md, Validation); a rejected update leaves the last good set. */
#pragma once

#include "cleanup.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "blob.h"
#include "svid_types.h"

typedef struct SvidStore SvidStore;
typedef struct SvidSet SvidSet;

/* Generations start above gen_base (a restarted daemon passes a value above any it used, e.g.
 * from a clock) and increase by one on every change of any workload: a (workload, generation)
 * pair never names two different contents. */
int svid_store_new(uint64_t gen_base, SvidStore **ret);
SvidStore *svid_store_unref(SvidStore *s); /* NULL-safe, returns NULL */

/* Called after every swap (update, rejection, bundle change, removal) on the writer's thread,
 * without the store lock held. removed=true when the workload went away. Must not block. */
typedef void (*SvidStoreChangeFn)(void *userdata, const char *name, uint32_t slot,
				  uint64_t generation, bool removed);
void svid_store_set_change_callback(SvidStore *s, SvidStoreChangeFn fn, void *userdata);

/* Workloads are named ("pods/<uid>", "identities/<name>", "self" are the daemon's names) and get
 * a small slot number, unique among live workloads, for inode numbering. Idempotent. */
int svid_store_add(SvidStore *s, const char *name, uint32_t *ret_slot);
/* Adds name at exactly `slot` (>= 1), as after a takeover where the kernel still holds inode
 * numbers of that slot. -EBUSY when the slot is taken (or name lives at another slot). */
int svid_store_add_slot(SvidStore *s, const char *name, uint32_t slot);
int svid_store_remove(SvidStore *s, const char *name); /* -ENOENT; frees keys once unreferenced */

/* Full-snapshot X.509 update from agent `source` (its configured name). Validates every SVID;
 * any failure rejects the whole update (-EINVAL bad input, -EIO unparsable DER), records
 * the reason and its time for status.json, bumps the generation, and keeps the previous SVIDs.
 * An update with no SVIDs is valid (the agent has no entry yet, or revoked it: files go away). */
int svid_store_update_x509(SvidStore *s, const char *name, const char *source,
			   const SvidX509Update *u, int64_t now);

/* Full-snapshot bundle maps from agent `source`. Every workload served by that source gets a new
 * generation when its bundles change (identical content is not a change). */
int svid_store_set_x509_bundles(SvidStore *s, const char *source, const SvidBundleInput *b,
				size_t n, int64_t now);
int svid_store_set_jwt_bundles(SvidStore *s, const char *source, const SvidBundleInput *b,
			       size_t n, int64_t now);

/* JWT-SVID cache, per (workload, audience). A token is fresh until half its lifetime. put does
 * not change the workload's generation; each cached token gets its own serial (never reused).
 * At most SVID_JWT_AUDIENCES_MAX audiences are cached per workload (the least fresh goes).
 * Tokens live in locked memory and are charged to their workload's budget for as long as any
 * reference lives (the cache's, or an inode's the kernel holds): put fails with -ENOSPC when
 * the workload's budget or the store's total would be exceeded, so one workload's tokens can
 * never take the memory other workloads' keys need. */
#define SVID_JWT_AUDIENCES_MAX 32
int svid_store_put_jwt(SvidStore *s, const char *name, const char *audience,
		       const SvidJwtInput *jwt);
/* Budgets in bytes (default unlimited); only before the first svid_store_add (-EBUSY after). */
int svid_store_set_jwt_budget(SvidStore *s, size_t per_workload, size_t total);
/* Token bytes alive for one workload (name NULL: all). */
size_t svid_store_jwt_bytes(SvidStore *s, const char *name);
/* Forgets the cached token of an audience the workload no longer shows; -ENOENT if none. */
int svid_store_drop_jwt(SvidStore *s, const char *name, const char *audience);
/* -ENOENT when no fresh token is cached at `now`. ret_token is a secret blob. */
int svid_store_get_jwt(SvidStore *s, const char *name, const char *audience, int64_t now,
		       SvidBlob **ret_token, int64_t *ret_fresh_until, uint64_t *ret_serial);

/* A new reference to the current set; -ENOENT if absent. */
int svid_store_get(SvidStore *s, const char *name, SvidSet **ret);
int svid_store_get_by_slot(SvidStore *s, uint32_t slot, SvidSet **ret);
/* New references to every current set, sorted by name; free with svid_set_unref + free(). */
int svid_store_list(SvidStore *s, SvidSet ***ret, size_t *ret_n);
size_t svid_store_count(SvidStore *s);

SvidSet *svid_set_ref(SvidSet *set);
SvidSet *svid_set_unref(SvidSet *set); /* NULL-safe, returns NULL */
DEFINE_CLEANUP_FUNC(SvidSet, svid_set_unref)

const char *svid_set_name(const SvidSet *set);
uint32_t svid_set_slot(const SvidSet *set);
uint64_t svid_set_generation(const SvidSet *set);
uint64_t svid_set_x509_generation(const SvidSet *set); /* changes only when SVIDs/keys change */
const char *svid_set_source(const SvidSet *set);       /* agent that sent the SVIDs, or NULL */
int64_t svid_set_updated_at(const SvidSet *set);       /* last accepted update, 0 if none */
const char *svid_set_last_error(const SvidSet *set);   /* last rejection reason, or NULL */
int64_t svid_set_last_error_at(const SvidSet *set);

size_t svid_set_n_svids(const SvidSet *set); /* the first one is the default identity */
const char *svid_set_spiffe_id(const SvidSet *set, size_t i);
const char *svid_set_trust_domain(const SvidSet *set, size_t i);
const char *svid_set_hint(const SvidSet *set, size_t i); /* "" when none */
const char *svid_set_serial(const SvidSet *set, size_t i); /* lowercase hex */
int64_t svid_set_not_before(const SvidSet *set, size_t i);
int64_t svid_set_not_after(const SvidSet *set, size_t i);
bool svid_set_expired(const SvidSet *set, size_t i, int64_t now);

/* Trust domains whose bundle files this workload shows: its own first, then federates_with in
 * sorted order, each only if the serving agent sent a bundle for it. */
size_t svid_set_n_bundles(const SvidSet *set);
const char *svid_set_bundle_td(const SvidSet *set, size_t i);
size_t svid_set_n_jwt_bundles(const SvidSet *set);
const char *svid_set_jwt_bundle_td(const SvidSet *set, size_t i);
size_t svid_set_n_federates_with(const SvidSet *set);
const char *svid_set_federates_with(const SvidSet *set, size_t i);

/* Raw material for render.c (borrowed; valid while the set is referenced). */
const SvidBlob *svid_set_chain_der(const SvidSet *set, size_t i, size_t *ret_n_certs);
const SvidBlob *svid_set_key_der(const SvidSet *set, size_t i); /* secret */
const SvidBlob *svid_set_x509_bundle(const SvidSet *set, const char *td); /* DER, NULL if none */
const SvidBlob *svid_set_jwt_bundle(const SvidSet *set, const char *td);  /* JWKS JSON */
