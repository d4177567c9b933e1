/* SPDX-License-Identifier: Apache-2.0 */
/* fixtures.h: test-only DER material (certificates, PKCS#8 keys) made with OpenSSL at run time,
 * and a growable byte buffer. Owns what it returns (free with free()). Single-threaded. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct FxBuf {
	uint8_t *p;
	size_t n;
} FxBuf;

/* A self-signed EC P-256 certificate whose subject CN is cn; ca selects basicConstraints. */
FxBuf fx_cert(const char *cn, int ca);
FxBuf fx_key(void); /* an EC P-256 key as unencrypted PKCS#8 DER */
FxBuf fx_cat(FxBuf a, FxBuf b); /* a followed by b (a new buffer) */
FxBuf fx_bytes(const char *s);  /* a copy of the string's bytes */
