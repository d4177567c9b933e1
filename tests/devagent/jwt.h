/* SPDX-License-Identifier: Apache-2.0 */
/* jwt.h: JWT-SVIDs for the development agent: ES256 signing (header {"alg":"ES256","kid":..,
 * "typ":"JWT"}, claims aud (array), exp, iat, sub), RFC 7638 key thumbprints used as kid, JWKS
 * documents (RFC 7517, "use":"jwt-svid") and base64url. Pure (no logging, no I/O); thread-safe
 * for distinct outputs. Tokens are returned in secret memory: release with jwt_token_free(). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

int b64url_encode(const void *data, size_t len, char **ret);          /* no padding */
int b64url_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len);
/* Appends s to *buf as a JSON string literal (with quotes), escaping as RFC 8259 requires. */
int json_append_string(char **buf, size_t *len, const char *s);

int jwt_key_generate(EVP_PKEY **ret);             /* EC P-256 */
int jwt_key_thumbprint(EVP_PKEY *key, char **ret); /* RFC 7638 SHA-256, base64url */

int jwt_sign_es256(EVP_PKEY *key, const char *kid, const char *sub, const char *const *aud,
		   size_t n_aud, int64_t iat, int64_t exp, char **ret);
void jwt_token_free(char *token); /* NULL-safe; wipes */

/* {"keys":[{"kty":"EC","kid":..,"use":"jwt-svid","crv":"P-256","x":..,"y":..},...]} for n EC
 * P-256 keys (n may be 0). */
int jwks_json(EVP_PKEY *const *keys, const char *const *kids, size_t n, char **ret);
