/* SPDX-License-Identifier: Apache-2.0 */
/* x509check.h: SPIFFE ID syntax and X509-SVID validation (the X509-SVID standard; docs/store.md), the
 * store's gatekeeper. Owns nothing beyond the SvidCheck it fills; pure; thread-safe. Never checks
 * the chain against a trust bundle (bundles arrive on another stream, maybe later). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svid_types.h"

/* A trust domain name without scheme: [a-z0-9._-]{1,255}. */
bool spiffe_td_valid(const char *td);
/* 0 when id is a valid SPIFFE ID ("spiffe://td/seg/..."; with need_path a root ID is refused);
 * else -EINVAL and *ret_why (static text) says which rule failed. */
int spiffe_id_check(const char *id, size_t len, bool need_path, const char **ret_why);

typedef struct SvidCheck {
	char *spiffe_id;    /* the leaf's URI SAN */
	char *trust_domain; /* its trust domain */
	char *serial;	    /* lowercase hex */
	int64_t not_before, not_after;
	size_t n_certs;
} SvidCheck;

/* Validates one SVID: chain framing and parsing, URI SAN, leaf and CA flags, keyUsage, key match,
 * and in->spiffe_id (when non-empty) against the leaf. On failure returns -EIO (unparsable DER)
 * or -EINVAL (a rule broken), sets *ret_reason to one malloc'ed line (never key bytes) and
 * leaves *ret untouched. */
int x509check_svid(const SvidX509Input *in, SvidCheck *ret, char **ret_reason);
void x509check_done(SvidCheck *c);

/* A bundle: one or more concatenated DER certificates, each parsing fully. */
int x509check_bundle(const uint8_t *der, size_t len, size_t *ret_n, char **ret_reason);
