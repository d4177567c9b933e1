// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "blob.h"
#include "secret.h"

struct SvidBudget {
	unsigned n_ref; /* atomic */
	size_t limit;
	size_t used; /* atomic */
	SvidBudget *parent;
};

struct SvidBlob {
	unsigned n_ref; /* atomic */
	bool secret;
	SvidBudget *budget; /* charged len bytes; NULL: none */
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
	b->budget = NULL;
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

/* Gives len back to b and its parents up to (not including) end. */
static void budget_release(SvidBudget *b, SvidBudget *end, size_t len)
{
	for (; b != end; b = b->parent)
		__atomic_sub_fetch(&b->used, len, __ATOMIC_RELAXED);
}

SvidBlob *svid_blob_unref(SvidBlob *b)
{
	if (!b)
		return NULL;
	if (__atomic_sub_fetch(&b->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
		return NULL;
	if (b->secret)
		secret_free(b->data, b->len); /* wipes before release */
	if (b->budget) {
		budget_release(b->budget, NULL, b->len);
		svid_budget_unref(b->budget);
	}
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

int svid_budget_new(size_t limit, SvidBudget *parent, SvidBudget **ret)
{
	SvidBudget *b = calloc(1, sizeof *b);

	if (!b)
		return -ENOMEM;
	b->n_ref = 1;
	b->limit = limit;
	b->parent = svid_budget_ref(parent);
	*ret = b;
	return 0;
}

SvidBudget *svid_budget_ref(SvidBudget *b)
{
	if (b)
		__atomic_add_fetch(&b->n_ref, 1, __ATOMIC_RELAXED);
	return b;
}

SvidBudget *svid_budget_unref(SvidBudget *b)
{
	while (b && __atomic_sub_fetch(&b->n_ref, 1, __ATOMIC_ACQ_REL) == 0) {
		SvidBudget *p = b->parent;
		free(b);
		b = p;
	}
	return NULL;
}

size_t svid_budget_used(const SvidBudget *b)
{
	return b ? __atomic_load_n(&b->used, __ATOMIC_RELAXED) : 0;
}

size_t svid_budget_limit(const SvidBudget *b)
{
	return b ? b->limit : 0;
}

/* Charges len to b and its parents, all or nothing. */
static int budget_charge(SvidBudget *b, size_t len)
{
	SvidBudget *x;

	for (x = b; x; x = x->parent) {
		size_t used = __atomic_add_fetch(&x->used, len, __ATOMIC_RELAXED);
		if (used > x->limit || used < len)
			break;
	}
	if (!x)
		return 0;
	budget_release(b, x->parent, len);
	return -ENOSPC;
}

int svid_blob_new_charged(const void *data, size_t len, SvidBudget *budget, SvidBlob **ret)
{
	SvidBlob *b;
	int r;

	if (budget) {
		r = budget_charge(budget, len);
		if (r < 0)
			return r;
	}
	r = svid_blob_new(data, len, true, &b);
	if (r < 0) {
		budget_release(budget, NULL, len);
		return r;
	}
	b->budget = svid_budget_ref(budget);
	*ret = b;
	return 0;
}
