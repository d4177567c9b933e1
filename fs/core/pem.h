/* SPDX-License-Identifier: Apache-2.0 */
/* pem.h: DER framing and exact PEM encoding (RFC 7468 strict form: 64-column base64, one
 * BEGIN/END pair per block, one newline after each line). Owns nothing; pure; thread-safe. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Length of the DER TLV (a SEQUENCE) starting at p, header included; -EIO when p does not start
 * with a complete definite-length SEQUENCE within len bytes. */
int der_next(const uint8_t *p, size_t len, size_t *ret_tlv_len);
/* Number of back-to-back SEQUENCEs filling exactly len bytes; -EIO on bad framing or a trailing
 * remainder, -EINVAL when len is 0. */
int der_count(const uint8_t *p, size_t len, size_t *ret_n);

/* Bytes that pem_write() produces for der_len bytes under label. */
size_t pem_encoded_len(const char *label, size_t der_len);
/* Writes exactly pem_encoded_len() bytes to out and returns the end. Temporary copies of the
 * encoding are wiped, so key material may pass through. */
uint8_t *pem_write(uint8_t *out, const char *label, const uint8_t *der, size_t der_len);
