// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cleanup.h"
#include "macro.h"
#include "pem.h"
#include "secret.h"
#include "x509check.h"

#define SPIFFE_PREFIX "spiffe://"
#define SPIFFE_ID_MAX 2048
#define SPIFFE_TD_MAX 255

static bool td_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool path_char(char c)
{
	return td_char(c) || (c >= 'A' && c <= 'Z');
}

bool spiffe_td_valid(const char *td)
{
	size_t n = td ? strlen(td) : 0;

	if (n == 0 || n > SPIFFE_TD_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!td_char(td[i]))
			return false;
	return true;
}

int spiffe_id_check(const char *id, size_t len, bool need_path, const char **ret_why)
{
	const char *why = NULL;
	size_t i, td_len;

	if (len > SPIFFE_ID_MAX)
		why = "SPIFFE ID longer than 2048 bytes";
	else if (len < strlen(SPIFFE_PREFIX) || memcmp(id, SPIFFE_PREFIX, strlen(SPIFFE_PREFIX)))
		why = "SPIFFE ID scheme is not spiffe://";
	if (why)
		goto fail;
	i = strlen(SPIFFE_PREFIX);
	for (td_len = 0; i + td_len < len && id[i + td_len] != '/'; td_len++)
		if (!td_char(id[i + td_len])) {
			why = "SPIFFE ID trust domain has a character outside [a-z0-9._-]";
			goto fail;
		}
	if (td_len == 0) {
		why = "SPIFFE ID has an empty trust domain";
		goto fail;
	}
	if (td_len > SPIFFE_TD_MAX) {
		why = "SPIFFE ID trust domain longer than 255 bytes";
		goto fail;
	}
	i += td_len;
	if (i == len) {
		if (need_path) {
			why = "SPIFFE ID has no path (a trust domain ID cannot be an SVID)";
			goto fail;
		}
		return 0;
	}
	/* id[i] == '/': segments follow, each non-empty, not "." or "..", no trailing slash. */
	while (i < len) {
		size_t seg = 0;
		i++; /* the '/' */
		for (; i + seg < len && id[i + seg] != '/'; seg++)
			if (!path_char(id[i + seg])) {
				why = id[i + seg] == '%'
					  ? "SPIFFE ID path is percent-encoded"
					  : "SPIFFE ID path has a character outside [a-zA-Z0-9._-]";
				goto fail;
			}
		if (seg == 0) {
			why = i == len ? "SPIFFE ID path has a trailing slash"
				       : "SPIFFE ID path has an empty segment";
			goto fail;
		}
		if ((seg == 1 && id[i] == '.') || (seg == 2 && id[i] == '.' && id[i + 1] == '.')) {
			why = "SPIFFE ID path has a '.' or '..' segment";
			goto fail;
		}
		i += seg;
	}
	return 0;
fail:
	if (ret_why)
		*ret_why = why;
	return -EINVAL;
}

static int reason(char **ret_reason, int r, const char *fmt, ...) _printf_(3, 4);
static int reason(char **ret_reason, int r, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*ret_reason = s; /* NULL on ENOMEM: the caller reports a generic line */
	ERR_clear_error();
	return r;
}

static void x509_stack_freep(STACK_OF(X509) * *sk)
{
	if (*sk)
		sk_X509_pop_free(*sk, X509_free);
}

static void general_names_freep(GENERAL_NAMES **g)
{
	if (*g)
		GENERAL_NAMES_free(*g);
}

static void p8_freep(PKCS8_PRIV_KEY_INFO **p)
{
	if (*p)
		PKCS8_PRIV_KEY_INFO_free(*p);
}

static void pkey_freep(EVP_PKEY **p)
{
	if (*p)
		EVP_PKEY_free(*p);
}

/* Parses concatenated DER certificates; each must fill its TLV exactly. */
static int parse_certs(const uint8_t *der, size_t len, const char *what, STACK_OF(X509) * *ret,
		       char **ret_reason)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *sk = NULL;
	size_t off = 0;

	if (len == 0)
		return reason(ret_reason, -EINVAL, "%s%sno certificate", what, *what ? ": " : "");
	sk = sk_X509_new_null();
	if (!sk)
		return -ENOMEM;
	while (off < len) {
		size_t tlv;
		const unsigned char *p = der + off;
		size_t idx = (size_t)sk_X509_num(sk);
		X509 *x;

		if (der_next(der + off, len - off, &tlv) < 0)
			return reason(
			    ret_reason, -EIO,
			    "%s%scertificate %zu at byte %zu is not a complete DER SEQUENCE", what,
			    *what ? ": " : "", idx, off);
		x = d2i_X509(NULL, &p, (long)tlv);
		if (!x || p != der + off + tlv) {
			X509_free(x);
			return reason(ret_reason, -EIO, "%s%scertificate %zu does not parse", what,
				      *what ? ": " : "", idx);
		}
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			return -ENOMEM;
		}
		off += tlv;
	}
	*ret = TAKE_PTR(sk);
	return 0;
}

int x509check_bundle(const uint8_t *der, size_t len, size_t *ret_n, char **ret_reason)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *sk = NULL;
	int r = parse_certs(der, len, "", &sk, ret_reason);
	if (r < 0)
		return r;
	*ret_n = (size_t)sk_X509_num(sk);
	return 0;
}

static int asn1_time_unix(const ASN1_TIME *t, int64_t *ret)
{
	struct tm tm = {0};

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -EIO;
	*ret = (int64_t)timegm(&tm);
	return 0;
}

static char *serial_hex(X509 *x)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *h, *s;

	if (!bn)
		return NULL;
	h = BN_bn2hex(bn);
	BN_free(bn);
	if (!h)
		return NULL;
	for (char *c = h; *c; c++)
		if (*c >= 'A' && *c <= 'F')
			*c = (char)(*c - 'A' + 'a');
	s = strdup(h);
	OPENSSL_free(h);
	return s;
}

/* The leaf's only URI SAN, validated as a SPIFFE ID with a path. */
static int leaf_spiffe_id(X509 *leaf, char **ret_id, char **ret_reason)
{
	_cleanup_(general_names_freep) GENERAL_NAMES *names = NULL;
	const ASN1_IA5STRING *uri = NULL;
	const char *why;
	int crit = -1, n_uri = 0;

	names = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	if (!names)
		return reason(ret_reason, -EINVAL,
			      crit == -2 ? "leaf has several subjectAltName extensions"
					 : "leaf has no subjectAltName (no URI SAN)");
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		if (g->type == GEN_URI) {
			n_uri++;
			uri = g->d.uniformResourceIdentifier;
		}
	}
	if (n_uri != 1)
		return reason(ret_reason, -EINVAL, "leaf has %d URI SANs, exactly one is required",
			      n_uri);
	if (X509_NAME_entry_count(X509_get_subject_name(leaf)) == 0 && crit != 1)
		return reason(ret_reason, -EINVAL,
			      "leaf has an empty subject and a non-critical subjectAltName");
	/* An embedded NUL would make the C string differ from the certified name. */
	if (memchr(uri->data, 0, (size_t)uri->length))
		return reason(ret_reason, -EINVAL, "URI SAN contains a NUL byte");
	if (spiffe_id_check((const char *)uri->data, (size_t)uri->length, true, &why) < 0)
		return reason(ret_reason, -EINVAL, "%s", why);
	*ret_id = strndup((const char *)uri->data, (size_t)uri->length);
	return *ret_id ? 0 : -ENOMEM;
}

static int check_flags(STACK_OF(X509) * sk, char **ret_reason)
{
	X509 *leaf = sk_X509_value(sk, 0);
	uint32_t flags = X509_get_extension_flags(leaf), ku;

	if (flags & EXFLAG_INVALID)
		return reason(ret_reason, -EINVAL, "leaf has invalid or duplicate extensions");
	if (flags & EXFLAG_CA)
		return reason(ret_reason, -EINVAL, "leaf is a CA (basicConstraints cA=true)");
	if (!(flags & EXFLAG_KUSAGE))
		return reason(ret_reason, -EINVAL, "leaf has no keyUsage");
	ku = X509_get_key_usage(leaf);
	if (!(ku & KU_DIGITAL_SIGNATURE))
		return reason(ret_reason, -EINVAL, "keyUsage lacks digitalSignature");
	if (ku & KU_KEY_CERT_SIGN)
		return reason(ret_reason, -EINVAL, "keyUsage has keyCertSign");
	if (ku & KU_CRL_SIGN)
		return reason(ret_reason, -EINVAL, "keyUsage has cRLSign");
	for (int i = 1; i < sk_X509_num(sk); i++) {
		X509 *ca = sk_X509_value(sk, i);
		uint32_t f = X509_get_extension_flags(ca);
		if (f & EXFLAG_INVALID)
			return reason(ret_reason, -EINVAL,
				      "chain certificate %d has invalid or duplicate extensions",
				      i);
		if (!(f & EXFLAG_CA))
			return reason(ret_reason, -EINVAL, "chain certificate %d is not a CA", i);
		if ((f & EXFLAG_KUSAGE) && !(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN))
			return reason(ret_reason, -EINVAL,
				      "chain certificate %d keyUsage lacks keyCertSign", i);
	}
	return 0;
}

/* OpenSSL's decoders copy the key's DER into buffers of their own and free some unwiped: the
 * scope puts every allocation OpenSSL makes here in the secure heap, wiped when freed. It is
 * declared first, so it closes after p8 and pk are freed. */
static int check_key(X509 *leaf, const uint8_t *key, size_t key_len, char **ret_reason)
{
	_cleanup_(secret_scope_leave) unsigned scope = secret_scope_enter();
	_cleanup_(p8_freep) PKCS8_PRIV_KEY_INFO *p8 = NULL;
	_cleanup_(pkey_freep) EVP_PKEY *pk = NULL;
	const unsigned char *p = key;

	if (!key || key_len == 0)
		return reason(ret_reason, -EINVAL, "no private key");
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)key_len);
	if (!p8 || p != key + key_len)
		return reason(ret_reason, -EIO, "private key is not one PKCS#8 DER structure");
	pk = EVP_PKCS82PKEY(p8);
	if (!pk)
		return reason(ret_reason, -EIO, "private key does not parse");
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), pk) != 1)
		return reason(ret_reason, -EINVAL, "private key does not match the leaf");
	return 0;
}

int x509check_svid(const SvidX509Input *in, SvidCheck *ret, char **ret_reason)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *sk = NULL;
	_cleanup_free_ char *id = NULL, *serial = NULL, *td = NULL;
	int64_t nb, na;
	X509 *leaf;
	int r;

	*ret_reason = NULL;
	r = parse_certs(in->chain, in->chain_len, "chain", &sk, ret_reason);
	if (r < 0)
		return r;
	leaf = sk_X509_value(sk, 0);
	r = leaf_spiffe_id(leaf, &id, ret_reason);
	if (r < 0)
		return r;
	r = check_flags(sk, ret_reason);
	if (r < 0)
		return r;
	r = check_key(leaf, in->key, in->key_len, ret_reason);
	if (r < 0)
		return r;
	if (in->spiffe_id && *in->spiffe_id && strcmp(in->spiffe_id, id) != 0)
		return reason(ret_reason, -EINVAL, "agent sent SPIFFE ID %.256s but the leaf is %s",
			      in->spiffe_id, id);
	if (asn1_time_unix(X509_get0_notBefore(leaf), &nb) < 0 ||
	    asn1_time_unix(X509_get0_notAfter(leaf), &na) < 0)
		return reason(ret_reason, -EIO, "leaf validity times do not parse");
	serial = serial_hex(leaf);
	td = strndup(id + strlen(SPIFFE_PREFIX), strcspn(id + strlen(SPIFFE_PREFIX), "/"));
	if (!serial || !td)
		return -ENOMEM;
	*ret = (SvidCheck){
	    .spiffe_id = TAKE_PTR(id),
	    .trust_domain = TAKE_PTR(td),
	    .serial = TAKE_PTR(serial),
	    .not_before = nb,
	    .not_after = na,
	    .n_certs = (size_t)sk_X509_num(sk),
	};
	ERR_clear_error();
	return 0;
}

void x509check_done(SvidCheck *c)
{
	if (!c)
		return;
	free(c->spiffe_id);
	free(c->trust_domain);
	free(c->serial);
	*c = (SvidCheck){0};
}
