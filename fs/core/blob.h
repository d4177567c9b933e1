/* SPDX-License-Identifier: Apache-2.0 */
/* blob.h: immutable byte strings with an atomic refcount, shared between the store, rendered
 * files and FUSE inodes across threads. A secret blob lives in locked memory (common/secret.h)
 * and is wiped when its last reference goes. Also owns byte budgets: a secret blob charged to a
 * budget counts against it (and its parents) for as long as any reference lives, wherever that
 * reference is held. Thread-safe; never logs. */
#pragma once

#include "cleanup.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct SvidBlob SvidBlob;

int svid_blob_new(const void *data, size_t len, bool secret, SvidBlob **ret); /* copies data */
/* An uninitialised blob to fill before it is shared (renderers build output in place). */
int svid_blob_new_empty(size_t len, bool secret, SvidBlob **ret, uint8_t **ret_data);
SvidBlob *svid_blob_ref(SvidBlob *b);   /* NULL-safe */
SvidBlob *svid_blob_unref(SvidBlob *b); /* NULL-safe, returns NULL */
DEFINE_CLEANUP_FUNC(SvidBlob, svid_blob_unref)
const uint8_t *svid_blob_data(const SvidBlob *b);
size_t svid_blob_size(const SvidBlob *b);
bool svid_blob_is_secret(const SvidBlob *b);
bool svid_blob_equal(const SvidBlob *a, const SvidBlob *b); /* constant-time for secrets */

/* A budget of secret bytes. Budgets nest: a charge must fit this budget and every parent. */
typedef struct SvidBudget SvidBudget;
int svid_budget_new(size_t limit, SvidBudget *parent, SvidBudget **ret); /* refs parent */
SvidBudget *svid_budget_ref(SvidBudget *b);   /* NULL-safe */
SvidBudget *svid_budget_unref(SvidBudget *b); /* NULL-safe, returns NULL */
size_t svid_budget_used(const SvidBudget *b);
size_t svid_budget_limit(const SvidBudget *b);
/* A secret copy of data charged to b (NULL: uncharged). -ENOSPC when b or a parent would go
 * over its limit. */
int svid_blob_new_charged(const void *data, size_t len, SvidBudget *b, SvidBlob **ret);
