/* SPDX-License-Identifier: Apache-2.0 */
/* blob.h: immutable byte strings with an atomic refcount, shared between the store, rendered
 * files and FUSE inodes across threads. A secret blob lives in locked memory (common/secret.h)
 * and is wiped when its last reference goes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct SvidBlob SvidBlob;

int svid_blob_new(const void *data, size_t len, bool secret, SvidBlob **ret); /* copies data */
/* An uninitialised blob to fill before it is shared (renderers build output in place). */
int svid_blob_new_empty(size_t len, bool secret, SvidBlob **ret, uint8_t **ret_data);
SvidBlob *svid_blob_ref(SvidBlob *b);   /* NULL-safe */
SvidBlob *svid_blob_unref(SvidBlob *b); /* NULL-safe, returns NULL */
const uint8_t *svid_blob_data(const SvidBlob *b);
size_t svid_blob_size(const SvidBlob *b);
bool svid_blob_is_secret(const SvidBlob *b);
bool svid_blob_equal(const SvidBlob *a, const SvidBlob *b); /* constant-time for secrets */
