// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "cleanup.h"
#include "macro.h"
#include "secret.h"

typedef struct Der {
	uint8_t *p;
	size_t n;
} Der;

struct Ca {
	char *td;
	EVP_PKEY *key;
	X509 *cert;
	Der cert_der;
	Der *extra; /* upstream intermediates appended to each chain */
	size_t n_extra;
	uint8_t *bundle;
	size_t bundle_len, bundle_count;
};

struct CaLeaf {
	Der *chain;
	size_t n_chain;
	uint8_t *key; /* secret memory */
	size_t key_len;
	int64_t not_after;
	char serial[48];
};

static const char *const key_type_names[_KEY_TYPE_MAX] = {
	[KEY_TYPE_EC_P256] = "ec-p256",
	[KEY_TYPE_RSA_2048] = "rsa-2048",
};

int key_type_from_string(const char *s)
{
	for (int i = 0; i < _KEY_TYPE_MAX; i++)
		if (s && streq(s, key_type_names[i]))
			return i;
	return -EINVAL;
}

const char *key_type_to_string(KeyType t)
{
	return t < _KEY_TYPE_MAX ? key_type_names[t] : NULL;
}

static int der_of(X509 *x, Der *ret)
{
	int n = i2d_X509(x, NULL);
	if (n <= 0)
		return -EIO;
	uint8_t *p = malloc((size_t)n), *q = p;
	if (!p)
		return -ENOMEM;
	if (i2d_X509(x, &q) != n) {
		free(p);
		return -EIO;
	}
	ret->p = p;
	ret->n = (size_t)n;
	return 0;
}

static int append(uint8_t **buf, size_t *len, const uint8_t *p, size_t n)
{
	uint8_t *b = realloc(*buf, *len + n);
	if (!b)
		return -ENOMEM;
	memcpy(b + *len, p, n);
	*buf = b;
	*len += n;
	return 0;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EIO;
}

static int random_serial(X509 *cert, char *hex, size_t hexlen)
{
	BIGNUM *bn = BN_new();
	int r = -EIO;
	if (!bn)
		return -ENOMEM;
	/* 127 bits: positive and at most 16 bytes, as RFC 5280 asks. */
	if (BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert))) {
		if (hex) {
			char *h = BN_bn2hex(bn);
			if (h) {
				snprintf(hex, hexlen, "%s", h);
				for (char *c = hex; *c; c++)
					*c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
				OPENSSL_free(h);
			}
		}
		r = 0;
	}
	BN_free(bn);
	return r;
}

/* A certificate skeleton: version 3, serial, validity, subject, public key. */
static int cert_new(EVP_PKEY *pub, const char *org, const char *cn, int64_t not_before,
		    int64_t not_after, char *serial_hex, size_t serial_len, X509 **ret)
{
	X509 *x = X509_new();
	if (!x)
		return -ENOMEM;
	X509_NAME *name = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 || random_serial(x, serial_hex, serial_len) < 0 ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) ||
	    !X509_NAME_add_entry_by_txt(name, "C", MBSTRING_ASC, (const unsigned char *)"US", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)org, -1, -1, 0) ||
	    (cn && !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					       (const unsigned char *)cn, -1, -1, 0)) ||
	    X509_set_pubkey(x, pub) != 1) {
		X509_free(x);
		return -EIO;
	}
	*ret = x;
	return 0;
}

/* CA certificate for td, signed by (issuer, issuer_key), or self-signed when issuer is NULL. */
static int make_ca_cert(const char *td, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
			int64_t lifetime_s, X509 **ret)
{
	_cleanup_free_ char *uri = NULL, *cn = NULL;
	int64_t now = (int64_t)time(NULL);
	X509 *x = NULL;
	int r;

	if (asprintf(&uri, "URI:spiffe://%s", td) < 0 ||
	    asprintf(&cn, "svidfs-devagent %s CA", issuer ? "intermediate" : "root") < 0)
		return -ENOMEM;
	if ((r = cert_new(key, "SPIFFE", cn, now - 60, now + lifetime_s, NULL, 0, &x)) < 0)
		return r;
	if (X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x)) != 1) {
		r = -EIO;
		goto fail;
	}
	if ((r = add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE")) < 0 ||
	    (r = add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
	    (r = add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash")) < 0 ||
	    (r = add_ext(x, issuer ? issuer : x, NID_authority_key_identifier, "keyid:always")) < 0 ||
	    (r = add_ext(x, issuer ? issuer : x, NID_subject_alt_name, uri)) < 0)
		goto fail;
	if (X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) <= 0) {
		r = -EIO;
		goto fail;
	}
	*ret = x;
	return 0;
fail:
	X509_free(x);
	return r;
}

static Ca *ca_alloc(const char *td)
{
	Ca *ca = calloc(1, sizeof *ca);
	if (ca && !(ca->td = strdup(td))) {
		free(ca);
		return NULL;
	}
	return ca;
}

int ca_new_self_signed(const char *trust_domain, Ca **ret)
{
	Ca *ca = ca_alloc(trust_domain);
	int r;

	if (!ca)
		return -ENOMEM;
	if (!(ca->key = EVP_EC_gen("P-256"))) {
		r = -EIO;
		goto fail;
	}
	if ((r = make_ca_cert(trust_domain, ca->key, NULL, NULL, 365 * 86400, &ca->cert)) < 0 ||
	    (r = der_of(ca->cert, &ca->cert_der)) < 0 ||
	    (r = append(&ca->bundle, &ca->bundle_len, ca->cert_der.p, ca->cert_der.n)) < 0)
		goto fail;
	ca->bundle_count = 1;
	*ret = ca;
	return 0;
fail:
	ca_free(ca);
	return r;
}

static bool self_signed(X509 *x)
{
	return X509_check_issued(x, x) == X509_V_OK;
}

int ca_new_intermediate(const char *trust_domain, const char *upstream_cert_file,
			const char *upstream_key_file, Ca **ret)
{
	X509 *up = NULL;
	EVP_PKEY *up_key = NULL;
	BIO *b = NULL;
	Ca *ca = ca_alloc(trust_domain);
	int r = -EINVAL;

	if (!ca)
		return -ENOMEM;
	if (!(b = BIO_new_file(upstream_cert_file, "r"))) {
		r = errno > 0 ? -errno : -ENOENT;
		goto out;
	}
	for (X509 *x; (x = PEM_read_bio_X509(b, NULL, NULL, NULL));) {
		Der d;
		if (!up) {
			up = x;
			if (self_signed(x) && (r = der_of(x, &d)) >= 0) {
				r = append(&ca->bundle, &ca->bundle_len, d.p, d.n);
				free(d.p);
				ca->bundle_count++;
			}
			continue;
		}
		if ((r = der_of(x, &d)) >= 0) {
			if (self_signed(x)) {
				r = append(&ca->bundle, &ca->bundle_len, d.p, d.n);
				free(d.p);
				ca->bundle_count++;
			} else {
				Der *e = realloc(ca->extra, (ca->n_extra + 1) * sizeof *e);
				if (e) {
					ca->extra = e;
					e[ca->n_extra++] = d;
				} else {
					free(d.p);
					r = -ENOMEM;
				}
			}
		}
		X509_free(x);
		if (r < 0)
			goto out;
	}
	ERR_clear_error(); /* PEM_read at end of file queues an error */
	BIO_free(b);
	b = NULL;
	r = -EINVAL;
	if (!up || ca->bundle_count == 0)
		goto out;
	if (!(b = BIO_new_file(upstream_key_file, "r"))) {
		r = errno > 0 ? -errno : -ENOENT;
		goto out;
	}
	if (!(up_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) ||
	    X509_check_private_key(up, up_key) != 1)
		goto out;
	if (!(ca->key = EVP_EC_gen("P-256"))) {
		r = -EIO;
		goto out;
	}
	if ((r = make_ca_cert(trust_domain, ca->key, up, up_key, 365 * 86400, &ca->cert)) < 0 ||
	    (r = der_of(ca->cert, &ca->cert_der)) < 0)
		goto out;
	*ret = TAKE_PTR(ca);
	r = 0;
out:
	BIO_free(b);
	X509_free(up);
	EVP_PKEY_free(up_key);
	ca_free(ca);
	return r;
}

Ca *ca_free(Ca *ca)
{
	if (!ca)
		return NULL;
	free(ca->td);
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	free(ca->cert_der.p);
	for (size_t i = 0; i < ca->n_extra; i++)
		free(ca->extra[i].p);
	free(ca->extra);
	free(ca->bundle);
	free(ca);
	return NULL;
}

const char *ca_trust_domain(const Ca *ca)
{
	return ca->td;
}

const uint8_t *ca_bundle(const Ca *ca, size_t *ret_len)
{
	*ret_len = ca->bundle_len;
	return ca->bundle;
}

size_t ca_bundle_count(const Ca *ca)
{
	return ca->bundle_count;
}

const uint8_t *ca_cert(const Ca *ca, size_t *ret_len)
{
	*ret_len = ca->cert_der.n;
	return ca->cert_der.p;
}

static bool is_self_signed_ca(const Ca *ca)
{
	return ca->bundle_len == ca->cert_der.n && memcmp(ca->bundle, ca->cert_der.p, ca->bundle_len) == 0;
}

int ca_mint(Ca *ca, const char *spiffe_id, KeyType kt, uint64_t ttl_ms, CaLeaf **ret)
{
	_cleanup_free_ char *uri = NULL;
	int64_t now = (int64_t)time(NULL);
	EVP_PKEY *key = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	X509 *x = NULL;
	CaLeaf *l = calloc(1, sizeof *l);
	int r = -EIO, n = 0;

	if (!l)
		return -ENOMEM;
	if (asprintf(&uri, "URI:%s", spiffe_id) < 0) {
		r = -ENOMEM;
		goto out;
	}
	key = kt == KEY_TYPE_RSA_2048 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	if (!key)
		goto out;
	l->not_after = now + (int64_t)((ttl_ms + 999) / 1000);
	/* SPIRE backdates NotBefore a little for clock skew. */
	if ((r = cert_new(key, "SPIRE", NULL, now - 10, l->not_after, l->serial, sizeof l->serial,
			  &x)) < 0)
		goto out;
	r = -EIO;
	if (X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1)
		goto out;
	if ((r = add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
	    /* SPIRE's X509-SVID template (credtemplate): the same three bits for every key type. */
	    (r = add_ext(x, ca->cert, NID_key_usage,
			 "critical,digitalSignature,keyEncipherment,keyAgreement")) < 0 ||
	    (r = add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth")) < 0 ||
	    (r = add_ext(x, ca->cert, NID_subject_key_identifier, "hash")) < 0 ||
	    (r = add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always")) < 0 ||
	    (r = add_ext(x, ca->cert, NID_subject_alt_name, uri)) < 0)
		goto out;
	r = -EIO;
	if (X509_sign(x, ca->key, EVP_sha256()) <= 0)
		goto out;

	size_t n_chain = 1 + (is_self_signed_ca(ca) ? 0 : 1 + ca->n_extra);
	if (!(l->chain = calloc(n_chain, sizeof *l->chain))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = der_of(x, &l->chain[0])) < 0)
		goto out;
	l->n_chain = 1;
	for (size_t i = 1; i < n_chain; i++) {
		const Der *src = i == 1 ? &ca->cert_der : &ca->extra[i - 2];
		if (!(l->chain[i].p = malloc(src->n))) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(l->chain[i].p, src->p, src->n);
		l->chain[i].n = src->n;
		l->n_chain++;
	}

	r = -EIO;
	if (!(p8 = EVP_PKEY2PKCS8(key)))
		goto out;
	n = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL);
	if (n <= 0)
		goto out;
	if (!(l->key = secret_alloc((size_t)n))) {
		r = -ENOMEM;
		goto out;
	}
	unsigned char *q = l->key;
	if (i2d_PKCS8_PRIV_KEY_INFO(p8, &q) != n)
		goto out;
	l->key_len = (size_t)n;
	*ret = TAKE_PTR(l);
	r = 0;
out:
	PKCS8_PRIV_KEY_INFO_free(p8);
	X509_free(x);
	EVP_PKEY_free(key);
	if (l && !l->key_len && l->key) {
		secret_free(l->key, (size_t)n);
		l->key = NULL;
	}
	ca_leaf_free(l);
	return r;
}

CaLeaf *ca_leaf_free(CaLeaf *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->n_chain; i++)
		free(l->chain[i].p);
	free(l->chain);
	secret_free(l->key, l->key_len);
	free(l);
	return NULL;
}

size_t ca_leaf_chain_len(const CaLeaf *l)
{
	return l->n_chain;
}

const uint8_t *ca_leaf_cert(const CaLeaf *l, size_t i, size_t *ret_len)
{
	if (i >= l->n_chain)
		return NULL;
	*ret_len = l->chain[i].n;
	return l->chain[i].p;
}

const uint8_t *ca_leaf_key(const CaLeaf *l, size_t *ret_len)
{
	*ret_len = l->key_len;
	return l->key;
}

int64_t ca_leaf_not_after(const CaLeaf *l)
{
	return l->not_after;
}

const char *ca_leaf_serial(const CaLeaf *l)
{
	return l->serial;
}

int ca_gen_root_files(const char *trust_domain, const char *out_cert, const char *out_key)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = NULL;
	FILE *f = NULL;
	int r = -EIO, fd = -1;

	if (!key)
		return -EIO;
	if ((r = make_ca_cert(trust_domain, key, NULL, NULL, 10 * 365 * 86400LL, &x)) < 0)
		goto out;
	fd = open(out_key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		r = negative_errno();
		goto out;
	}
	fd = -1;
	if (PEM_write_PKCS8PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1) {
		r = -EIO;
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		r = negative_errno();
		goto out;
	}
	f = NULL;
	if (!(f = fopen(out_cert, "we"))) {
		r = negative_errno();
		goto out;
	}
	if (PEM_write_X509(f, x) != 1) {
		r = -EIO;
		goto out;
	}
	r = fclose(f) == 0 ? 0 : negative_errno();
	f = NULL;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}

int bundle_load_pem_file(const char *path, uint8_t **ret, size_t *ret_len, size_t *ret_count)
{
	BIO *b = BIO_new_file(path, "r");
	uint8_t *buf = NULL;
	size_t len = 0, count = 0;
	int r = 0;

	if (!b)
		return errno > 0 ? -errno : -ENOENT;
	for (X509 *x; r >= 0 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL));) {
		Der d;
		if ((r = der_of(x, &d)) >= 0) {
			r = append(&buf, &len, d.p, d.n);
			free(d.p);
			count++;
		}
		X509_free(x);
	}
	BIO_free(b);
	ERR_clear_error();
	if (r >= 0 && count == 0)
		r = -EINVAL;
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_len = len;
	*ret_count = count;
	return 0;
}
