// SPDX-License-Identifier: Apache-2.0
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fixtures.h"

static EVP_PKEY *ec_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

FxBuf fx_cert(const char *cn, int ca)
{
	EVP_PKEY *k = ec_key();
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, k);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints,
						  ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, k, EVP_sha256());
	FxBuf b = {0};
	int n = i2d_X509(x, &b.p);
	b.n = n > 0 ? (size_t)n : 0;
	X509_free(x);
	EVP_PKEY_free(k);
	return b;
}

FxBuf fx_key(void)
{
	EVP_PKEY *k = ec_key();
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
	FxBuf b = {0};
	int n = i2d_PKCS8_PRIV_KEY_INFO(p8, &b.p);
	b.n = n > 0 ? (size_t)n : 0;
	PKCS8_PRIV_KEY_INFO_free(p8);
	EVP_PKEY_free(k);
	return b;
}

FxBuf fx_cat(FxBuf a, FxBuf b)
{
	FxBuf r = {.p = malloc(a.n + b.n + 1), .n = a.n + b.n};
	memcpy(r.p, a.p, a.n);
	memcpy(r.p + a.n, b.p, b.n);
	return r;
}

FxBuf fx_bytes(const char *s)
{
	FxBuf r = {.p = (uint8_t *)strdup(s), .n = strlen(s)};
	return r;
}
