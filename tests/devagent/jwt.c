// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/sha.h>

#include "cleanup.h"
#include "jwt.h"
#include "macro.h"
#include "secret.h"

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64url_encode(const void *data, size_t len, char **ret)
{
	const uint8_t *in = data;
	char *out = malloc(len / 3 * 4 + 5), *o = out;
	size_t i = 0;

	if (!out)
		return -ENOMEM;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*o++ = b64url_alphabet[v >> 18 & 63];
		*o++ = b64url_alphabet[v >> 12 & 63];
		*o++ = b64url_alphabet[v >> 6 & 63];
		*o++ = b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		*o++ = b64url_alphabet[v >> 18 & 63];
		*o++ = b64url_alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*o++ = b64url_alphabet[v >> 18 & 63];
		*o++ = b64url_alphabet[v >> 12 & 63];
		*o++ = b64url_alphabet[v >> 6 & 63];
	}
	*o = '\0';
	*ret = out;
	return 0;
}

int b64url_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len)
{
	uint8_t *out = malloc(len / 4 * 3 + 3);
	size_t n = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (!out)
		return -ENOMEM;
	if (len % 4 == 1)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		const char *p = s[i] ? strchr(b64url_alphabet, s[i]) : NULL;
		if (!p)
			goto bad;
		acc = acc << 6 | (uint32_t)(p - b64url_alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	*ret = out;
	*ret_len = n;
	return 0;
bad:
	free(out);
	return -EINVAL;
}

/* Growable string helpers. */
static int buf_append(char **buf, size_t *len, const char *s, size_t n)
{
	char *p = realloc(*buf, *len + n + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p + *len, s, n);
	*len += n;
	p[*len] = '\0';
	*buf = p;
	return 0;
}

static int buf_appendf(char **buf, size_t *len, const char *fmt, ...) _printf_(3, 4);
static int buf_appendf(char **buf, size_t *len, const char *fmt, ...)
{
	_cleanup_free_ char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	return buf_append(buf, len, s, (size_t)n);
}

int json_append_string(char **buf, size_t *len, const char *s)
{
	int r = buf_append(buf, len, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; r >= 0 && *p; p++) {
		if (*p == '"' || *p == '\\')
			r = buf_appendf(buf, len, "\\%c", *p);
		else if (*p < 0x20)
			r = buf_appendf(buf, len, "\\u%04x", *p);
		else
			r = buf_append(buf, len, (const char *)p, 1);
	}
	return r < 0 ? r : buf_append(buf, len, "\"", 1);
}

int jwt_key_generate(EVP_PKEY **ret)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	if (!k)
		return -EIO;
	*ret = k;
	return 0;
}

/* x and y, base64url of the 32-byte big-endian coordinates. */
static int ec_coords(EVP_PKEY *key, char **ret_x, char **ret_y)
{
	BIGNUM *x = NULL, *y = NULL;
	uint8_t bx[32], by[32];
	/* Declared before the first goto: jumping past it would free an indeterminate pointer. */
	_cleanup_free_ char *sx = NULL;
	int r = -EINVAL;

	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
	    BN_bn2binpad(x, bx, sizeof bx) != 32 || BN_bn2binpad(y, by, sizeof by) != 32)
		goto out;
	if ((r = b64url_encode(bx, sizeof bx, &sx)) < 0 || (r = b64url_encode(by, sizeof by, ret_y)) < 0)
		goto out;
	*ret_x = TAKE_PTR(sx);
	r = 0;
out:
	BN_free(x);
	BN_free(y);
	return r;
}

int jwt_key_thumbprint(EVP_PKEY *key, char **ret)
{
	_cleanup_free_ char *x = NULL, *y = NULL, *canon = NULL;
	uint8_t md[SHA256_DIGEST_LENGTH];
	int r;

	if ((r = ec_coords(key, &x, &y)) < 0)
		return r;
	/* RFC 7638 §3.2: required members only, lexicographic order, no whitespace. */
	if (asprintf(&canon, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y) < 0)
		return -ENOMEM;
	SHA256((const unsigned char *)canon, strlen(canon), md);
	return b64url_encode(md, sizeof md, ret);
}

static int es256_sign(EVP_PKEY *key, const char *input, char **ret_b64)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t der[80], raw[64];
	size_t der_len = sizeof der;
	ECDSA_SIG *sig = NULL;
	int r = -EIO;

	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)input, strlen(input)) != 1)
		goto out;
	const unsigned char *p = der;
	if (!(sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)))
		goto out;
	/* JWS (RFC 7518 §3.4) wants R || S, each 32 bytes, not DER. */
	if (BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) != 32 ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) != 32)
		goto out;
	r = b64url_encode(raw, sizeof raw, ret_b64);
out:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(ctx);
	return r;
}

int jwt_sign_es256(EVP_PKEY *key, const char *kid, const char *sub, const char *const *aud,
		   size_t n_aud, int64_t iat, int64_t exp, char **ret)
{
	_cleanup_free_ char *header = NULL, *claims = NULL, *h64 = NULL, *c64 = NULL,
			    *sig = NULL, *input = NULL;
	size_t hlen = 0, clen = 0;
	int r;

	if (!key || !kid || !sub || n_aud == 0)
		return -EINVAL;
	if ((r = buf_append(&header, &hlen, "{\"alg\":\"ES256\",\"kid\":", 21)) < 0 ||
	    (r = json_append_string(&header, &hlen, kid)) < 0 ||
	    (r = buf_append(&header, &hlen, ",\"typ\":\"JWT\"}", 13)) < 0)
		return r;
	if ((r = buf_append(&claims, &clen, "{\"aud\":[", 8)) < 0)
		return r;
	for (size_t i = 0; i < n_aud; i++)
		if ((i > 0 && (r = buf_append(&claims, &clen, ",", 1)) < 0) ||
		    (r = json_append_string(&claims, &clen, aud[i])) < 0)
			return r;
	if ((r = buf_appendf(&claims, &clen, "],\"exp\":%" PRId64 ",\"iat\":%" PRId64 ",\"sub\":",
			     exp, iat)) < 0 ||
	    (r = json_append_string(&claims, &clen, sub)) < 0 ||
	    (r = buf_append(&claims, &clen, "}", 1)) < 0)
		return r;
	if ((r = b64url_encode(header, hlen, &h64)) < 0 || (r = b64url_encode(claims, clen, &c64)) < 0)
		return r;
	if (asprintf(&input, "%s.%s", h64, c64) < 0)
		return -ENOMEM;
	if ((r = es256_sign(key, input, &sig)) < 0)
		return r;
	size_t n = strlen(input) + 1 + strlen(sig) + 1;
	char *tok = secret_alloc(n);
	if (!tok)
		return -ENOMEM;
	snprintf(tok, n, "%s.%s", input, sig);
	secret_wipe(sig, strlen(sig));
	*ret = tok;
	return 0;
}

void jwt_token_free(char *token)
{
	if (token)
		secret_free(token, strlen(token) + 1);
}

int jwks_json(EVP_PKEY *const *keys, const char *const *kids, size_t n, char **ret)
{
	_cleanup_free_ char *out = NULL;
	size_t len = 0;
	int r;

	if ((r = buf_append(&out, &len, "{\"keys\":[", 9)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *x = NULL, *y = NULL;
		if ((r = ec_coords(keys[i], &x, &y)) < 0)
			return r;
		if ((r = buf_append(&out, &len, i ? ",{\"kty\":\"EC\",\"kid\":" : "{\"kty\":\"EC\",\"kid\":",
				    i ? 19 : 18)) < 0 ||
		    (r = json_append_string(&out, &len, kids[i])) < 0 ||
		    (r = buf_appendf(&out, &len,
				     ",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
				     x, y)) < 0)
			return r;
	}
	if ((r = buf_append(&out, &len, "]}", 2)) < 0)
		return r;
	*ret = TAKE_PTR(out);
	return 0;
}
