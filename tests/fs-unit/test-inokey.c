// SPDX-License-Identifier: Apache-2.0
/* inokey: the keyed inode-number permutation and generations (file handles cannot be forged). */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdint.h>
#include <string.h>

#include "inokey.h"
#include "tree.h"

static InoKey *key_of(uint8_t seed)
{
	uint8_t k[INO_KEY_SIZE];
	InoKey *key = NULL;

	for (size_t i = 0; i < sizeof k; i++)
		k[i] = (uint8_t)(seed + i);
	cr_assert_eq(ino_key_new(k, &key), 0);
	return key;
}

Test(inokey, wrap_is_a_permutation_and_unwraps)
{
	InoKey *k = key_of(1);
	uint64_t samples[] = {2, 3, 4, 0xffffffffffffffffULL, 0x8000000000000000ULL,
			      tree_ino(0, 0, 1), tree_ino(5, 17, 123456), tree_ino(TREE_SLOT_MAX, 4095, 7)};

	for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
		uint64_t w = ino_key_wrap(k, samples[i]);
		cr_assert(w > 1, "wrap of %#llx gave a reserved number", (unsigned long long)samples[i]);
		cr_assert_eq(ino_key_unwrap(k, w), samples[i]);
	}
	for (uint64_t x = 2; x < 200000; x++)
		cr_assert_eq(ino_key_unwrap(k, ino_key_wrap(k, x)), x);
	ino_key_free(k);
}

Test(inokey, root_and_zero_are_fixed)
{
	InoKey *k = key_of(9);

	cr_assert_eq(ino_key_wrap(k, 1), 1);
	cr_assert_eq(ino_key_unwrap(k, 1), 1);
	cr_assert_eq(ino_key_wrap(k, 0), 0);
	ino_key_free(k);
}

/* Neighbouring plain numbers (the next slot, the next serial) land far apart: knowing one's own
 * numbers says nothing about another workload's. */
Test(inokey, neighbours_are_unrelated)
{
	InoKey *k = key_of(3);
	uint64_t a = tree_ino(7, 16, 1000), near[] = {tree_ino(8, 16, 1000), tree_ino(7, 16, 1001),
						       tree_ino(6, 16, 1000), tree_ino(7, 17, 1000)};
	uint64_t wa = ino_key_wrap(k, a);

	for (size_t i = 0; i < 4; i++) {
		uint64_t d = wa ^ ino_key_wrap(k, near[i]);
		int bits = __builtin_popcountll(d);
		cr_assert(bits > 12 && bits < 52, "only %d bits differ", bits);
	}
	ino_key_free(k);
}

Test(inokey, keys_differ_generations_differ)
{
	InoKey *k1 = key_of(1), *k2 = key_of(2);
	uint64_t x = tree_ino(1, 16, 42);

	cr_assert_neq(ino_key_wrap(k1, x), ino_key_wrap(k2, x));
	cr_assert_neq(ino_key_generation(k1, x, 0), ino_key_generation(k2, x, 0));
	cr_assert_neq(ino_key_generation(k1, x, 0), ino_key_generation(k1, x, 1));
	cr_assert_eq(ino_key_generation(k1, x, 5), ino_key_generation(k1, x, 5));
	for (uint64_t i = 2; i < 1000; i++) {
		uint64_t g = ino_key_generation(k1, i, 77);
		cr_assert(g != 0 && g <= 0xffffffffu);
	}
	ino_key_free(k1);
	ino_key_free(k2);
}

Test(inokey, export_round_trips_and_zero_key_refused)
{
	uint8_t zero[INO_KEY_SIZE] = {0}, out[INO_KEY_SIZE];
	InoKey *k = NULL, *k2 = NULL;

	cr_assert_eq(ino_key_new(zero, &k), -EINVAL);
	cr_assert_eq(ino_key_new(NULL, &k), 0);
	ino_key_export(k, out);
	cr_assert_eq(ino_key_new(out, &k2), 0);
	cr_assert_eq(ino_key_wrap(k, 12345), ino_key_wrap(k2, 12345));
	ino_key_free(k);
	ino_key_free(k2);
}

/* The round function is SipHash-2-4: check the implementation against OpenSSL's. */
Test(inokey, generation_is_siphash_2_4)
{
	uint8_t kb[INO_KEY_SIZE], msg[16], mac[8];
	uint64_t plain = 0x0123456789abcdefULL, epoch = 99, m1 = epoch ^ 0x67656e65726174ULL, ref;
	InoKey *k = NULL;
	size_t outl = 0;

	for (size_t i = 0; i < sizeof kb; i++)
		kb[i] = (uint8_t)(0xa0 + i);
	cr_assert_eq(ino_key_new(kb, &k), 0);
	memcpy(msg, &plain, 8);
	memcpy(msg + 8, &m1, 8);
	EVP_MAC *alg = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	cr_assert_not_null(alg);
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(alg);
	size_t size = 8;
	OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
			       OSSL_PARAM_END};
	cr_assert(EVP_MAC_init(ctx, kb, sizeof kb, params));
	cr_assert(EVP_MAC_update(ctx, msg, sizeof msg));
	cr_assert(EVP_MAC_final(ctx, mac, &outl, sizeof mac));
	cr_assert_eq(outl, 8);
	memcpy(&ref, mac, 8);
	ref &= 0xffffffffu;
	cr_assert_eq(ino_key_generation(k, plain, epoch), ref ? ref : 1);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(alg);
	ino_key_free(k);
}
