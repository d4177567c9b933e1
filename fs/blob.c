// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "blob.h"
#include "secret.h"

struct SvidBlob {
	unsigned n_ref; /* atomic */
	bool secret;
	size_t len;
	uint8_t *data; /* secret: secret_alloc(); else points at inline[] */
	uint8_t inline_data[];
};

int svid_blob_new_empty(size_t len, bool secret, SvidBlob **ret, uint8_t **ret_data)
{
	SvidBlob *b;

	if (len > SIZE_MAX / 2)
		return -EINVAL;
	b = malloc(sizeof *b + (secret ? 0 : len + 1));
	if (!b)
		return -ENOMEM;
	if (secret) {
		b->data = secret_alloc(len);
		if (!b->data) {
			free(b);
			return -ENOMEM;
		}
	} else {
		b->data = b->inline_data;
		b->data[len] = 0; /* a NUL after the bytes makes text blobs safe to print */
	}
	b->n_ref = 1;
	b->secret = secret;
	b->len = len;
	*ret = b;
	if (ret_data)
		*ret_data = b->data;
	return 0;
}

int svid_blob_new(const void *data, size_t len, bool secret, SvidBlob **ret)
{
	SvidBlob *b;
	uint8_t *p;
	int r;

	if (!data && len > 0)
		return -EINVAL;
	r = svid_blob_new_empty(len, secret, &b, &p);
	if (r < 0)
		return r;
	if (len)
		memcpy(p, data, len);
	*ret = b;
	return 0;
}

SvidBlob *svid_blob_ref(SvidBlob *b)
{
	if (b)
		__atomic_add_fetch(&b->n_ref, 1, __ATOMIC_RELAXED);
	return b;
}

SvidBlob *svid_blob_unref(SvidBlob *b)
{
	if (!b)
		return NULL;
	if (__atomic_sub_fetch(&b->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
		return NULL;
	if (b->secret)
		secret_free(b->data, b->len); /* wipes before release */
	free(b);
	return NULL;
}

const uint8_t *svid_blob_data(const SvidBlob *b)
{
	return b ? b->data : NULL;
}

size_t svid_blob_size(const SvidBlob *b)
{
	return b ? b->len : 0;
}

bool svid_blob_is_secret(const SvidBlob *b)
{
	return b && b->secret;
}

bool svid_blob_equal(const SvidBlob *a, const SvidBlob *b)
{
	if (a == b)
		return true;
	if (!a || !b || a->len != b->len)
		return false;
	if (a->secret || b->secret)
		return CRYPTO_memcmp(a->data, b->data, a->len) == 0;
	return memcmp(a->data, b->data, a->len) == 0;
}
