// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "pem.h"

int der_next(const uint8_t *p, size_t len, size_t *ret_tlv_len)
{
	size_t hdr, body;

	if (len < 2 || p[0] != 0x30)
		return -EIO;
	if (p[1] < 0x80) {
		hdr = 2;
		body = p[1];
	} else {
		size_t n = p[1] & 0x7f;
		/* Indefinite length (0x80) is BER, not DER; more than 4 length bytes is absurd. */
		if (n == 0 || n > 4 || len < 2 + n)
			return -EIO;
		body = 0;
		for (size_t i = 0; i < n; i++)
			body = (body << 8) | p[2 + i];
		hdr = 2 + n;
	}
	if (body > len - hdr)
		return -EIO;
	*ret_tlv_len = hdr + body;
	return 0;
}

int der_count(const uint8_t *p, size_t len, size_t *ret_n)
{
	size_t n = 0, off = 0;

	if (len == 0)
		return -EINVAL;
	while (off < len) {
		size_t l;
		int r = der_next(p + off, len - off, &l);
		if (r < 0)
			return r;
		off += l;
		n++;
	}
	*ret_n = n;
	return 0;
}

static size_t b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

size_t pem_encoded_len(const char *label, size_t der_len)
{
	size_t b = b64_len(der_len);
	size_t lines = (b + 63) / 64;
	/* "-----BEGIN " label "-----\n" ... "-----END " label "-----\n" */
	return (11 + strlen(label) + 6) + b + lines + (9 + strlen(label) + 6);
}

static uint8_t *put(uint8_t *out, const char *s)
{
	size_t n = strlen(s);
	memcpy(out, s, n);
	return out + n;
}

uint8_t *pem_write(uint8_t *out, const char *label, const uint8_t *der, size_t der_len)
{
	unsigned char line[65];

	out = put(out, "-----BEGIN ");
	out = put(out, label);
	out = put(out, "-----\n");
	for (size_t off = 0; off < der_len; off += 48) {
		size_t chunk = der_len - off < 48 ? der_len - off : 48;
		int n = EVP_EncodeBlock(line, der + off, (int)chunk);
		memcpy(out, line, (size_t)n);
		out += n;
		*out++ = '\n';
	}
	OPENSSL_cleanse(line, sizeof line);
	out = put(out, "-----END ");
	out = put(out, label);
	out = put(out, "-----\n");
	return out;
}
