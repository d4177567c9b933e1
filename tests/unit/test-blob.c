// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <string.h>
#include <openssl/crypto.h>
#include <criterion/criterion.h>

#include "blob.h"
#include "secret.h"

Test(blob, new_copies_and_reports_size)
{
	char src[] = "hello blob";
	SvidBlob *b = NULL;

	cr_assert_eq(svid_blob_new(src, 10, false, &b), 0);
	src[0] = 'X'; /* the blob owns a copy */
	cr_assert_eq(svid_blob_size(b), 10);
	cr_assert_eq(memcmp(svid_blob_data(b), "hello blob", 10), 0);
	cr_assert_eq(svid_blob_data(b)[10], 0, "text blobs are NUL-terminated past their size");
	cr_assert_not(svid_blob_is_secret(b));
	cr_assert_null(svid_blob_unref(b));
}

Test(blob, empty_and_null_inputs)
{
	SvidBlob *b = NULL;

	cr_assert_eq(svid_blob_new(NULL, 0, false, &b), 0);
	cr_assert_eq(svid_blob_size(b), 0);
	svid_blob_unref(b);
	cr_assert_eq(svid_blob_new(NULL, 5, false, &b), -EINVAL);
	cr_assert_null(svid_blob_ref(NULL));
	cr_assert_null(svid_blob_unref(NULL));
	cr_assert_eq(svid_blob_size(NULL), 0);
	cr_assert_null(svid_blob_data(NULL));
}

Test(blob, new_empty_is_filled_in_place)
{
	SvidBlob *b = NULL;
	uint8_t *p = NULL;

	cr_assert_eq(svid_blob_new_empty(4, true, &b, &p), 0);
	cr_assert_eq(p, svid_blob_data(b));
	memcpy(p, "abcd", 4);
	cr_assert(svid_blob_is_secret(b));
	cr_assert_eq(memcmp(svid_blob_data(b), "abcd", 4), 0);
	svid_blob_unref(b);
}

Test(blob, equal_compares_content_for_secret_and_plain)
{
	SvidBlob *a, *b, *c, *d, *e;

	cr_assert_eq(svid_blob_new("key1", 4, true, &a), 0);
	cr_assert_eq(svid_blob_new("key1", 4, false, &b), 0);
	cr_assert_eq(svid_blob_new("key2", 4, true, &c), 0);
	cr_assert_eq(svid_blob_new("key", 3, true, &d), 0);
	cr_assert_eq(svid_blob_new("key1", 4, false, &e), 0);
	cr_assert(svid_blob_equal(a, b));
	cr_assert(svid_blob_equal(b, e));
	cr_assert(svid_blob_equal(a, a));
	cr_assert_not(svid_blob_equal(a, c));
	cr_assert_not(svid_blob_equal(a, d));
	cr_assert_not(svid_blob_equal(a, NULL));
	cr_assert(svid_blob_equal(NULL, NULL));
	svid_blob_unref(a);
	svid_blob_unref(b);
	svid_blob_unref(c);
	svid_blob_unref(d);
	svid_blob_unref(e);
}

static int hook_calls;
static size_t hook_len;
static bool hook_all_zero;

static void hook(const void *p, size_t n, void *userdata)
{
	const uint8_t *b = p;
	hook_calls++;
	hook_len = n;
	hook_all_zero = true;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			hook_all_zero = false;
}

Test(blob, secret_is_wiped_only_on_last_unref)
{
	static const char key[] = "0123456789abcdef-secret-key-bytes";
	SvidBlob *b = NULL;

	secret_set_free_hook(hook, NULL);
	cr_assert_eq(svid_blob_new(key, sizeof key - 1, true, &b), 0);
	svid_blob_ref(b);
	svid_blob_unref(b);
	cr_assert_eq(hook_calls, 0, "wiped while still referenced");
	cr_assert_eq(memcmp(svid_blob_data(b), key, sizeof key - 1), 0);
	svid_blob_unref(b);
	cr_assert_eq(hook_calls, 1);
	cr_assert_eq(hook_len, sizeof key - 1);
	cr_assert(hook_all_zero, "freed secret buffer still held key bytes");
	secret_set_free_hook(NULL, NULL);
}

Test(blob, plain_blob_does_not_use_secret_memory)
{
	SvidBlob *b = NULL;

	secret_set_free_hook(hook, NULL);
	cr_assert_eq(svid_blob_new("cert", 4, false, &b), 0);
	svid_blob_unref(b);
	cr_assert_eq(hook_calls, 0);
	secret_set_free_hook(NULL, NULL);
}

Test(blob, secret_blob_in_locked_heap_after_secret_init)
{
	SvidBlob *b = NULL;

	cr_assert_eq(secret_init(1 << 16), 0);
	cr_assert(secret_is_locked());
	cr_assert_eq(svid_blob_new("k", 1, true, &b), 0);
	cr_assert_eq(CRYPTO_secure_allocated(svid_blob_data(b)), 1);
	svid_blob_unref(b);
}
