// SPDX-License-Identifier: Apache-2.0
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "testpki.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "testpki: %s failed at %s:%d\n", #x, __FILE__, __LINE__);  \
			ERR_print_errors_fp(stderr);                                               \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

EVP_PKEY *testpki_key_ec(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	CHECK(k);
	return k;
}

EVP_PKEY *testpki_key_rsa(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	CHECK(k);
	return k;
}

TestCertOpts testpki_opts_ca(const char *td)
{
	static __thread char san[300];
	snprintf(san, sizeof san, "URI:spiffe://%s", td);
	return (TestCertOpts){
	    .cn = "test CA", .san = san, .ca = 1, .key_usage = "critical,keyCertSign,cRLSign"};
}

TestCertOpts testpki_opts_leaf(const char *spiffe_id)
{
	/* a few rotating buffers, so defaults made for one call do not clobber a caller's */
	static __thread char san[4][2200];
	static __thread unsigned next;
	char *b = san[next++ % 4];
	snprintf(b, sizeof san[0], "URI:%s", spiffe_id);
	return (TestCertOpts){.cn = "test SVID",
			      .san = b,
			      .ca = 0,
			      .key_usage =
				  "critical,digitalSignature,keyEncipherment,keyAgreement"};
}

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	CHECK(e);
	CHECK(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
}

X509 *testpki_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const TestCertOpts *o)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;
	time_t now = time(NULL);
	uint64_t serial = o->serial;

	CHECK(x && name);
	CHECK(X509_set_version(x, X509_VERSION_3));
	if (!serial)
		CHECK(RAND_bytes((unsigned char *)&serial, sizeof serial) == 1);
	serial &= 0x7fffffffffffffffULL; /* positive */
	serial |= 1;
	CHECK(ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial));
	if (!o->empty_subject)
		CHECK(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						 (const unsigned char *)(o->cn ? o->cn : "test"),
						 -1, -1, 0));
	CHECK(X509_set_subject_name(x, name));
	CHECK(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name));
	X509_NAME_free(name);
	CHECK(ASN1_TIME_set(X509_getm_notBefore(x),
			    o->not_before ? (time_t)o->not_before : now - 60));
	CHECK(
	    ASN1_TIME_set(X509_getm_notAfter(x), o->not_after ? (time_t)o->not_after : now + 3600));
	CHECK(X509_set_pubkey(x, key));
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	if (o->ca >= 0)
		add_ext(x, &ctx, NID_basic_constraints,
			o->ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	if (o->key_usage)
		add_ext(x, &ctx, NID_key_usage, o->key_usage);
	add_ext(x, &ctx, NID_subject_key_identifier, "hash");
	add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
	if (o->san) {
		char *v = NULL;
		CHECK(asprintf(&v, "%s%s", o->san_critical ? "critical," : "", o->san) > 0);
		add_ext(x, &ctx, NID_subject_alt_name, v);
		free(v);
	}
	CHECK(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	return x;
}

uint8_t *testpki_der(X509 *x, size_t *ret_len)
{
	unsigned char *p = NULL;
	int n = i2d_X509(x, &p);
	CHECK(n > 0);
	uint8_t *r = malloc((size_t)n);
	CHECK(r);
	memcpy(r, p, (size_t)n);
	OPENSSL_free(p);
	*ret_len = (size_t)n;
	return r;
}

uint8_t *testpki_pkcs8(EVP_PKEY *k, size_t *ret_len)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
	unsigned char *p = NULL;
	int n;

	CHECK(p8);
	n = i2d_PKCS8_PRIV_KEY_INFO(p8, &p);
	PKCS8_PRIV_KEY_INFO_free(p8);
	CHECK(n > 0);
	uint8_t *r = malloc((size_t)n);
	CHECK(r);
	memcpy(r, p, (size_t)n);
	OPENSSL_clear_free(p, (size_t)n);
	*ret_len = (size_t)n;
	return r;
}

void testpki_append(uint8_t **buf, size_t *len, X509 *x)
{
	size_t n;
	uint8_t *d = testpki_der(x, &n);
	uint8_t *b = realloc(*buf, *len + n);
	CHECK(b);
	memcpy(b + *len, d, n);
	free(d);
	*buf = b;
	*len += n;
}

void testpki_ca(TestCa *ca, const char *td)
{
	TestCertOpts o = testpki_opts_ca(td);

	*ca = (TestCa){.td = strdup(td)};
	ca->root_key = testpki_key_ec();
	ca->int_key = testpki_key_ec();
	char root_cn[300], int_cn[300];
	snprintf(root_cn, sizeof root_cn, "%s test root CA", td);
	snprintf(int_cn, sizeof int_cn, "%s test intermediate CA", td);
	o.cn = root_cn;
	ca->root = testpki_cert(ca->root_key, NULL, ca->root_key, &o);
	o.cn = int_cn;
	ca->inter = testpki_cert(ca->int_key, ca->root, ca->root_key, &o);
	testpki_append(&ca->bundle, &ca->bundle_len, ca->root);
}

void testpki_ca_done(TestCa *ca)
{
	free(ca->td);
	EVP_PKEY_free(ca->root_key);
	EVP_PKEY_free(ca->int_key);
	X509_free(ca->root);
	X509_free(ca->inter);
	free(ca->bundle);
	*ca = (TestCa){0};
}

void testpki_svid(TestSvid *s, const TestCa *ca, const char *spiffe_id, bool rsa,
		  const TestCertOpts *o)
{
	TestCertOpts def = {0};

	if (!o)
		def = testpki_opts_leaf(spiffe_id);
	*s = (TestSvid){.spiffe_id = strdup(spiffe_id)};
	s->key = rsa ? testpki_key_rsa() : testpki_key_ec();
	s->leaf = testpki_cert(s->key, ca->inter, ca->int_key, o ? o : &def);
	testpki_append(&s->chain, &s->chain_len, s->leaf);
	testpki_append(&s->chain, &s->chain_len, ca->inter);
	s->pkcs8 = testpki_pkcs8(s->key, &s->pkcs8_len);
}

void testpki_svid_done(TestSvid *s)
{
	free(s->spiffe_id);
	EVP_PKEY_free(s->key);
	X509_free(s->leaf);
	free(s->chain);
	free(s->pkcs8);
	*s = (TestSvid){0};
}

SvidX509Input testpki_input(const TestSvid *s, const char *hint)
{
	return (SvidX509Input){
	    .spiffe_id = s->spiffe_id,
	    .chain = s->chain,
	    .chain_len = s->chain_len,
	    .key = s->pkcs8,
	    .key_len = s->pkcs8_len,
	    .hint = hint,
	};
}
