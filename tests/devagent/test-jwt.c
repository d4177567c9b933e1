// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "jwt.h"

Test(jwt, base64url_vectors)
{
	/* RFC 4648 §10, in the URL-safe alphabet without padding. */
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *out[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		char *e;
		uint8_t *d;
		size_t n;
		cr_assert_eq(b64url_encode(in[i], strlen(in[i]), &e), 0);
		cr_expect_str_eq(e, out[i]);
		cr_assert_eq(b64url_decode(e, strlen(e), &d, &n), 0);
		cr_expect_eq(n, strlen(in[i]));
		cr_expect_eq(memcmp(d, in[i], n), 0);
		free(e);
		free(d);
	}
	const uint8_t bin[] = {0xfb, 0xff, 0xfe};
	char *e;
	cr_assert_eq(b64url_encode(bin, 3, &e), 0);
	cr_assert_str_eq(e, "-__-");
	free(e);
	uint8_t *d;
	size_t n;
	cr_assert_eq(b64url_decode("a+b/", 4, &d, &n), -EINVAL);
	cr_assert_eq(b64url_decode("abcde", 5, &d, &n), -EINVAL);
}

Test(jwt, json_escaping)
{
	char *buf = NULL;
	size_t len = 0;
	cr_assert_eq(json_append_string(&buf, &len, "a\"b\\c\nd"), 0);
	cr_assert_str_eq(buf, "\"a\\\"b\\\\c\\u000ad\"");
	cr_assert_eq(len, strlen(buf));
	free(buf);
}

static char *part(const char *tok, int idx)
{
	const char *p = tok;
	for (int i = 0; i < idx; i++)
		p = strchr(p, '.') + 1;
	const char *e = strchr(p, '.');
	size_t l = e ? (size_t)(e - p) : strlen(p);
	uint8_t *d;
	size_t n;
	cr_assert_eq(b64url_decode(p, l, &d, &n), 0);
	char *s = strndup((char *)d, n);
	free(d);
	return s;
}

Test(jwt, es256_token_verifies)
{
	EVP_PKEY *k;
	char *kid, *tok;
	const char *aud[] = {"spiffe://example.org/db", "x\"y"};
	cr_assert_eq(jwt_key_generate(&k), 0);
	cr_assert_eq(jwt_key_thumbprint(k, &kid), 0);
	cr_assert_eq(strlen(kid), 43, "SHA-256 in base64url");
	cr_assert_eq(jwt_sign_es256(k, kid, "spiffe://example.org/web", aud, 2, 1000, 1300, &tok), 0);

	char *hdr = part(tok, 0), *claims = part(tok, 1), want[128];
	snprintf(want, sizeof want, "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", kid);
	cr_assert_str_eq(hdr, want);
	cr_assert_str_eq(claims, "{\"aud\":[\"spiffe://example.org/db\",\"x\\\"y\"],\"exp\":1300,"
				 "\"iat\":1000,\"sub\":\"spiffe://example.org/web\"}");

	/* Signature: 64 raw bytes R||S over "header.claims". */
	const char *dot2 = strrchr(tok, '.');
	uint8_t *sig;
	size_t n;
	cr_assert_eq(b64url_decode(dot2 + 1, strlen(dot2 + 1), &sig, &n), 0);
	cr_assert_eq(n, 64);
	ECDSA_SIG *es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	unsigned char *der = NULL;
	int dlen = i2d_ECDSA_SIG(es, &der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	cr_assert_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
	cr_assert_eq(EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)tok,
				      (size_t)(dot2 - tok)), 1);
	/* A changed claim no longer verifies. */
	tok[strchr(tok, '.') - tok + 3] ^= 1;
	cr_assert_neq(EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)tok,
				       (size_t)(dot2 - tok)), 1);
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	free(sig);
	free(hdr);
	free(claims);
	jwt_token_free(tok);
	cr_assert_eq(jwt_sign_es256(k, kid, "spiffe://x/y", aud, 0, 1, 2, &tok), -EINVAL,
		     "audience required");
	free(kid);
	EVP_PKEY_free(k);
}

Test(jwt, jwks_document)
{
	EVP_PKEY *k[2];
	char *kid[2], *j;
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(jwt_key_generate(&k[i]), 0);
		cr_assert_eq(jwt_key_thumbprint(k[i], &kid[i]), 0);
	}
	cr_assert_str_neq(kid[0], kid[1]);
	char *again;
	cr_assert_eq(jwt_key_thumbprint(k[0], &again), 0);
	cr_assert_str_eq(again, kid[0], "thumbprint is deterministic");
	free(again);
	cr_assert_eq(jwks_json(k, (const char *const *)kid, 2, &j), 0);
	cr_assert_eq(strncmp(j, "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"", 28), 0);
	cr_assert(strstr(j, kid[0]) && strstr(j, kid[1]));
	/* SPIRE serves standard JWKS (bundleutil.StandardJWKS): no "use" member. */
	cr_assert(strstr(j, "\",\"crv\":\"P-256\",\"x\":\""));
	cr_assert_null(strstr(j, "\"use\""));
	cr_assert_str_eq(j + strlen(j) - 3, "}]}");
	free(j);
	cr_assert_eq(jwks_json(NULL, NULL, 0, &j), 0);
	cr_assert_str_eq(j, "{\"keys\":[]}");
	free(j);
	for (int i = 0; i < 2; i++) {
		free(kid[i]);
		EVP_PKEY_free(k[i]);
	}
}
