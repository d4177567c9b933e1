/* SPDX-License-Identifier: Apache-2.0 */
/* testpki.h: test-time X.509 material built with OpenSSL (no fixtures on disk): keys (EC P-256,
 * RSA-2048), CA and leaf certificates with chosen SAN, basicConstraints, keyUsage and validity,
 * and ready-made SPIFFE chains. Owns what it returns (free with the matching *_free/done).
 * Single-threaded helper; tests may share its outputs across threads read-only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "svid_types.h"

EVP_PKEY *testpki_key_ec(void);	 /* P-256; aborts on failure */
EVP_PKEY *testpki_key_rsa(void); /* 2048 bits */

typedef struct TestCertOpts {
	const char *cn; /* subject CN; NULL with empty_subject gives an empty subject */
	bool empty_subject;
	const char *san; /* OpenSSL syntax, e.g. "URI:spiffe://td/x,DNS:a"; NULL: no SAN */
	bool san_critical;
	int ca;			       /* 1: CA:TRUE, 0: CA:FALSE, -1: no basicConstraints */
	const char *key_usage;	       /* e.g. "digitalSignature"; NULL: no keyUsage extension */
	int64_t not_before, not_after; /* Unix; 0: now - 60 and now + 3600 */
	uint64_t serial;	       /* 0: random 64 bits */
} TestCertOpts;

/* Signed by issuer_key (self-signed when issuer is NULL: issuer_key must be key). */
X509 *testpki_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const TestCertOpts *o);
TestCertOpts testpki_opts_ca(const char *td); /* CA:TRUE, keyCertSign,cRLSign */
/* CA:FALSE, digitalSignature,...; .san points into one of 4 per-thread rotating buffers. */
TestCertOpts testpki_opts_leaf(const char *spiffe_id);

uint8_t *testpki_der(X509 *x, size_t *ret_len);	      /* malloc'ed DER */
uint8_t *testpki_pkcs8(EVP_PKEY *k, size_t *ret_len); /* malloc'ed unencrypted PKCS#8 DER */
/* Appends DER of x to *buf (realloc). */
void testpki_append(uint8_t **buf, size_t *len, X509 *x);

/* A trust domain's CA: root (self-signed) and one intermediate. */
typedef struct TestCa {
	char *td;
	EVP_PKEY *root_key, *int_key;
	X509 *root, *inter;
	uint8_t *bundle; /* root DER */
	size_t bundle_len;
} TestCa;
void testpki_ca(TestCa *ca, const char *td);
void testpki_ca_done(TestCa *ca);

/* A leaf under ca->inter: chain = leaf + intermediate, key = PKCS#8 of the leaf key. */
typedef struct TestSvid {
	char *spiffe_id;
	EVP_PKEY *key;
	X509 *leaf;
	uint8_t *chain, *pkcs8;
	size_t chain_len, pkcs8_len;
} TestSvid;
/* o may be NULL (defaults for spiffe_id); rsa picks RSA-2048 instead of P-256. */
void testpki_svid(TestSvid *s, const TestCa *ca, const char *spiffe_id, bool rsa,
		  const TestCertOpts *o);
void testpki_svid_done(TestSvid *s);
SvidX509Input testpki_input(const TestSvid *s, const char *hint);
