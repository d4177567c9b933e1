// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"

static X509 *parse(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	cr_assert_not_null(x);
	cr_assert_eq(p, der + len, "exactly one certificate");
	return x;
}

static X509 *chain_x509(const CaLeaf *l, size_t i)
{
	size_t len = 0;
	const uint8_t *der = ca_leaf_cert(l, i, &len);
	return parse(der, len);
}

static void check_leaf(const CaLeaf *l, const char *id, bool rsa)
{
	size_t klen;
	X509 *x = chain_x509(l, 0);
	cr_assert_eq(X509_check_ca(x), 0, "cA=false");
	int crit = -1;
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	cr_assert(bc && !bc->ca && crit == 1);
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
	cr_assert(ku && crit == 1, "keyUsage critical");
	ASN1_BIT_STRING_free(ku);
	uint32_t usage = X509_get_key_usage(x);
	cr_assert(usage & KU_DIGITAL_SIGNATURE);
	cr_assert(!(usage & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)));
	/* As SPIRE's leaves, whatever the key type (found by the interop suite). */
	cr_assert(usage & KU_KEY_ENCIPHERMENT, "keyEncipherment (rsa=%d)", rsa);
	cr_assert(usage & KU_KEY_AGREEMENT, "keyAgreement (rsa=%d)", rsa);
	uint32_t eku = X509_get_extended_key_usage(x);
	cr_assert((eku & XKU_SSL_SERVER) && (eku & XKU_SSL_CLIENT));
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	cr_assert_eq(sk_GENERAL_NAME_num(names), 1);
	GENERAL_NAME *g = sk_GENERAL_NAME_value(names, 0);
	cr_assert_eq(g->type, GEN_URI);
	cr_assert_eq(strncmp((const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier), id,
			     strlen(id)), 0);
	GENERAL_NAMES_free(names);
	/* the key matches the certificate */
	const unsigned char *kp = ca_leaf_key(l, &klen);
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &kp, (long)klen);
	cr_assert_not_null(p8);
	EVP_PKEY *k = EVP_PKCS82PKEY(p8);
	cr_assert_eq(X509_check_private_key(x, k), 1);
	cr_assert_eq(EVP_PKEY_get_base_id(k), rsa ? EVP_PKEY_RSA : EVP_PKEY_EC);
	EVP_PKEY_free(k);
	PKCS8_PRIV_KEY_INFO_free(p8);
	X509_free(x);
}

static bool verifies(const CaLeaf *l, const uint8_t *roots, size_t rlen)
{
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509) *inter = sk_X509_new_null();
	for (const unsigned char *p = roots; p < roots + rlen;) {
		X509 *r = d2i_X509(NULL, &p, (long)(roots + rlen - p));
		X509_STORE_add_cert(store, r);
		X509_free(r);
	}
	X509 *leaf = chain_x509(l, 0);
	for (size_t i = 1; i < ca_leaf_chain_len(l); i++)
		sk_X509_push(inter, chain_x509(l, i));
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, leaf, inter);
	bool ok = X509_verify_cert(ctx) == 1;
	X509_STORE_CTX_free(ctx);
	X509_free(leaf);
	sk_X509_pop_free(inter, X509_free);
	X509_STORE_free(store);
	return ok;
}

Test(ca, key_types)
{
	cr_assert_eq(key_type_from_string("ec-p256"), KEY_TYPE_EC_P256);
	cr_assert_eq(key_type_from_string("rsa-2048"), KEY_TYPE_RSA_2048);
	cr_assert_eq(key_type_from_string("ed25519"), -EINVAL);
	cr_assert_str_eq(key_type_to_string(KEY_TYPE_RSA_2048), "rsa-2048");
}

Test(ca, self_signed_leaf)
{
	Ca *ca;
	CaLeaf *a, *b;
	size_t blen;
	cr_assert_eq(ca_new_self_signed("example.org", &ca), 0);
	cr_assert_eq(ca_bundle_count(ca), 1);
	int64_t now = (int64_t)time(NULL);
	cr_assert_eq(ca_mint(ca, "spiffe://example.org/web", KEY_TYPE_EC_P256, 3600 * 1000, &a), 0);
	cr_assert_eq(ca_mint(ca, "spiffe://example.org/web", KEY_TYPE_EC_P256, 1500, &b), 0);
	cr_assert_eq(ca_leaf_chain_len(a), 1, "a self-signed CA is in the bundle, not the chain");
	check_leaf(a, "spiffe://example.org/web", false);
	cr_assert(ca_leaf_not_after(a) >= now + 3600 && ca_leaf_not_after(a) <= now + 3601);
	cr_assert(ca_leaf_not_after(b) >= now + 2 && ca_leaf_not_after(b) <= now + 3, "TTL rounds up");
	cr_assert_str_neq(ca_leaf_serial(a), ca_leaf_serial(b), "random serials");
	const uint8_t *bundle = ca_bundle(ca, &blen);
	cr_assert(verifies(a, bundle, blen));
	ca_leaf_free(a);
	ca_leaf_free(b);
	ca_free(ca);
}

Test(ca, rsa_leaf)
{
	Ca *ca;
	CaLeaf *a;
	cr_assert_eq(ca_new_self_signed("example.org", &ca), 0);
	cr_assert_eq(ca_mint(ca, "spiffe://example.org/r", KEY_TYPE_RSA_2048, 60000, &a), 0);
	check_leaf(a, "spiffe://example.org/r", true);
	ca_leaf_free(a);
	ca_free(ca);
}

Test(ca, nested_intermediates_share_a_root)
{
	char dir[] = "/tmp/svidfs-test.XXXXXX", cert[64], key[64];
	Ca *c1, *c2;
	CaLeaf *l1, *l2;
	uint8_t *root;
	size_t rlen, count, len1, len2;
	struct stat st;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(cert, sizeof cert, "%s/root.pem", dir);
	snprintf(key, sizeof key, "%s/root.key", dir);
	cr_assert_eq(ca_gen_root_files("example.org", cert, key), 0);
	cr_assert_eq(stat(key, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(ca_new_intermediate("example.org", cert, key, &c1), 0);
	cr_assert_eq(ca_new_intermediate("example.org", cert, key, &c2), 0);
	cr_assert_eq(bundle_load_pem_file(cert, &root, &rlen, &count), 0);
	cr_assert_eq(count, 1);
	const uint8_t *b1 = ca_bundle(c1, &len1), *b2 = ca_bundle(c2, &len2);
	cr_assert(len1 == rlen && len2 == rlen && !memcmp(b1, root, rlen) && !memcmp(b2, root, rlen),
		  "both bundles are the root");
	cr_assert_eq(ca_mint(c1, "spiffe://example.org/a", KEY_TYPE_EC_P256, 60000, &l1), 0);
	cr_assert_eq(ca_mint(c2, "spiffe://example.org/a", KEY_TYPE_EC_P256, 60000, &l2), 0);
	cr_assert_eq(ca_leaf_chain_len(l1), 2, "leaf + intermediate");
	const uint8_t *i1 = ca_leaf_cert(l1, 1, &len1), *i2 = ca_leaf_cert(l2, 1, &len2);
	cr_assert(len1 != len2 || memcmp(i1, i2, len1), "different intermediates");
	cr_assert(verifies(l1, root, rlen));
	cr_assert(verifies(l2, root, rlen));
	X509 *inter = parse(i1, len1);
	cr_assert_eq(X509_check_ca(inter), 1);
	X509_free(inter);
	/* wrong key for the cert */
	char other[64], okey[64];
	snprintf(other, sizeof other, "%s/other.pem", dir);
	snprintf(okey, sizeof okey, "%s/other.key", dir);
	cr_assert_eq(ca_gen_root_files("example.org", other, okey), 0);
	Ca *bad;
	cr_assert_eq(ca_new_intermediate("example.org", cert, okey, &bad), -EINVAL);
	cr_assert_eq(ca_new_intermediate("example.org", "/nonexistent", key, &bad), -ENOENT);
	free(root);
	ca_leaf_free(l1);
	ca_leaf_free(l2);
	ca_free(c1);
	ca_free(c2);
	unlink(cert);
	unlink(key);
	unlink(other);
	unlink(okey);
	rmdir(dir);
}

Test(ca, bundle_file_errors)
{
	uint8_t *b;
	size_t len, count;
	cr_assert_eq(bundle_load_pem_file("/nonexistent.pem", &b, &len, &count), -ENOENT);
	char path[] = "/tmp/svidfs-test-pem.XXXXXX";
	int fd = mkstemp(path);
	cr_assert(write(fd, "not a pem\n", 10) == 10);
	close(fd);
	cr_assert_eq(bundle_load_pem_file(path, &b, &len, &count), -EINVAL);
	unlink(path);
}
