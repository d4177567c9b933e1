// SPDX-License-Identifier: Apache-2.0
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "macro.h"
#include "pem.h"
#include "render.h"

#define LABEL_CERT "CERTIFICATE"
#define LABEL_KEY "PRIVATE KEY"

/* Up to this many DER ranges go into one PEM file (a key, a chain, several bundles). */
typedef struct Part {
	const char *label;
	const uint8_t *der;
	size_t len;
} Part;

typedef struct Parts {
	Part *v;
	size_t n, cap;
} Parts;

static int parts_add(Parts *p, const char *label, const uint8_t *der, size_t len)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		Part *v = realloc(p->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = (Part){label, der, len};
	return 0;
}

/* Every certificate of a concatenated DER blob, in order. */
static int parts_add_certs(Parts *p, const SvidBlob *b)
{
	const uint8_t *d = svid_blob_data(b);
	size_t len = svid_blob_size(b), off = 0;

	while (off < len) {
		size_t l;
		int r = der_next(d + off, len - off, &l);
		if (r < 0)
			return r; /* cannot happen: the store validated the framing */
		r = parts_add(p, LABEL_CERT, d + off, l);
		if (r < 0)
			return r;
		off += l;
	}
	return 0;
}

static int parts_render(const Parts *p, bool secret, SvidBlob **ret)
{
	size_t total = 0;
	uint8_t *out, *end;
	SvidBlob *b;
	int r;

	for (size_t i = 0; i < p->n; i++)
		total += pem_encoded_len(p->v[i].label, p->v[i].len);
	r = svid_blob_new_empty(total, secret, &b, &out);
	if (r < 0)
		return r;
	end = out;
	for (size_t i = 0; i < p->n; i++)
		end = pem_write(end, p->v[i].label, p->v[i].der, p->v[i].len);
	assert(end == out + total);
	*ret = b;
	return 0;
}

static int add_bundle(Parts *p, const SvidSet *set, const char *td)
{
	const SvidBlob *b = svid_set_x509_bundle(set, td);
	return b ? parts_add_certs(p, b) : -ENOENT;
}

int svid_render(const SvidSet *set, size_t svid_index, SvidFileKind kind, const char *arg,
		SvidBlob **ret)
{
	_cleanup_free_ Part *v = NULL;
	Parts p = {0};
	const SvidBlob *chain = NULL, *key = NULL;
	const char *own = NULL;
	bool secret = false;
	int r = 0;

	if (!set || !ret || kind < 0 || kind >= _SVID_FILE_KIND_MAX)
		return -EINVAL;
	if (kind != SVID_FILE_TRUST_BUNDLE && kind != SVID_FILE_JWT_BUNDLE) {
		if (svid_index >= svid_set_n_svids(set))
			return -ENOENT;
		chain = svid_set_chain_der(set, svid_index, NULL);
		key = svid_set_key_der(set, svid_index);
		own = svid_set_trust_domain(set, svid_index);
	}
	switch (kind) {
	case SVID_FILE_CREDENTIAL_BUNDLE:
		secret = true;
		r = parts_add(&p, LABEL_KEY, svid_blob_data(key), svid_blob_size(key));
		if (r >= 0)
			r = parts_add_certs(&p, chain);
		break;
	case SVID_FILE_CERT_CHAIN:
		r = parts_add_certs(&p, chain);
		break;
	case SVID_FILE_KEY:
		secret = true;
		r = parts_add(&p, LABEL_KEY, svid_blob_data(key), svid_blob_size(key));
		break;
	case SVID_FILE_TRUST_BUNDLE:
		if (!arg)
			return -EINVAL;
		r = add_bundle(&p, set, arg);
		break;
	case SVID_FILE_BUNDLE:
		r = add_bundle(&p, set, own);
		break;
	case SVID_FILE_BUNDLE_FEDERATED:
		/* Own first, then each federated trust domain that has a bundle. */
		if (svid_set_x509_bundle(set, own))
			r = add_bundle(&p, set, own);
		for (size_t i = 0; r >= 0 && i < svid_set_n_federates_with(set); i++) {
			const char *td = svid_set_federates_with(set, i);
			if (!streq(td, own) && svid_set_x509_bundle(set, td))
				r = add_bundle(&p, set, td);
		}
		if (r >= 0 && p.n == 0)
			r = -ENOENT;
		break;
	case SVID_FILE_JWT_BUNDLE: {
		const SvidBlob *b;
		if (!arg)
			return -EINVAL;
		b = svid_set_jwt_bundle(set, arg);
		if (!b)
			return -ENOENT;
		return svid_blob_new(svid_blob_data(b), svid_blob_size(b), false, ret);
	}
	default:
		return -EINVAL;
	}
	v = p.v;
	if (r < 0)
		return r;
	return parts_render(&p, secret, ret);
}

/* ---- status.json ---- */

typedef struct Buf {
	char *s;
	size_t n, cap;
	int err;
} Buf;

static void buf_grow(Buf *b, size_t more)
{
	char *s;
	size_t cap;

	if (b->err || b->n + more + 1 <= b->cap)
		return;
	cap = MAX(b->cap * 2, b->n + more + 1);
	cap = MAX(cap, (size_t)1024);
	s = realloc(b->s, cap);
	if (!s) {
		b->err = -ENOMEM;
		return;
	}
	b->s = s;
	b->cap = cap;
}

static void buf_putn(Buf *b, const char *s, size_t n)
{
	buf_grow(b, n);
	if (b->err)
		return;
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
}

static void buf_puts(Buf *b, const char *s)
{
	buf_putn(b, s, strlen(s));
}

static void buf_printf(Buf *b, const char *fmt, ...) _printf_(2, 3);
static void buf_printf(Buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	assert(n >= 0 && (size_t)n < sizeof tmp);
	buf_putn(b, tmp, (size_t)n);
}

/* A JSON string (RFC 8259): quotes, backslash and control characters escaped; bytes >= 0x80
 * pass through (names come from validated SPIFFE IDs; hints and reasons are agent text). */
static void buf_json_str(Buf *b, const char *s)
{
	if (!s) {
		buf_puts(b, "null");
		return;
	}
	buf_puts(b, "\"");
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		switch (*c) {
		case '"':
			buf_puts(b, "\\\"");
			break;
		case '\\':
			buf_puts(b, "\\\\");
			break;
		case '\n':
			buf_puts(b, "\\n");
			break;
		case '\r':
			buf_puts(b, "\\r");
			break;
		case '\t':
			buf_puts(b, "\\t");
			break;
		default:
			if (*c < 0x20 || *c == 0x7f)
				buf_printf(b, "\\u%04x", *c);
			else
				buf_putn(b, (const char *)c, 1);
		}
	}
	buf_puts(b, "\"");
}

/* "key": "2024-01-02T03:04:05Z", "key_unix": 1704164645 (both null when t is 0). */
static void buf_time(Buf *b, const char *key, int64_t t)
{
	char s[64];
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == 0 || !gmtime_r(&tt, &tm)) {
		buf_printf(b, "\"%s\": null, \"%s_unix\": null", key, key);
		return;
	}
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	buf_printf(b, "\"%s\": \"%s\", \"%s_unix\": %" PRId64, key, s, key, t);
}

static void buf_td_list(Buf *b, const SvidSet *set, size_t n,
			const char *(*get)(const SvidSet *, size_t))
{
	buf_puts(b, "[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_puts(b, ", ");
		buf_json_str(b, get(set, i));
	}
	buf_puts(b, "]");
}

int svid_render_status(const SvidSet *set, const SvidStatusExtra *extra, SvidBlob **ret)
{
	_cleanup_free_ char *s = NULL;
	const SvidStatusExtra none = {0};
	int64_t now;
	Buf b = {0};
	int r;

	if (!set || !ret)
		return -EINVAL;
	if (!extra)
		extra = &none;
	now = extra->now ? extra->now : (int64_t)time(NULL);

	buf_puts(&b, "{\n  \"name\": ");
	buf_json_str(&b, svid_set_name(set));
	buf_printf(&b, ",\n  \"generation\": %" PRIu64, svid_set_generation(set));
	buf_printf(&b, ",\n  \"x509_generation\": %" PRIu64, svid_set_x509_generation(set));
	buf_puts(&b, ",\n  \"source\": ");
	buf_json_str(&b, svid_set_source(set));
	buf_puts(&b, ",\n  ");
	buf_time(&b, "updated_at", svid_set_updated_at(set));
	buf_puts(&b, ",\n  \"svids\": [");
	for (size_t i = 0; i < svid_set_n_svids(set); i++) {
		size_t n_certs;
		svid_set_chain_der(set, i, &n_certs);
		buf_puts(&b, i ? ",\n    {" : "\n    {");
		buf_puts(&b, "\"spiffe_id\": ");
		buf_json_str(&b, svid_set_spiffe_id(set, i));
		buf_puts(&b, ", \"trust_domain\": ");
		buf_json_str(&b, svid_set_trust_domain(set, i));
		buf_puts(&b, ", \"hint\": ");
		buf_json_str(&b, svid_set_hint(set, i));
		buf_puts(&b, ", \"serial\": ");
		buf_json_str(&b, svid_set_serial(set, i));
		buf_puts(&b, ", ");
		buf_time(&b, "not_before", svid_set_not_before(set, i));
		buf_puts(&b, ", ");
		buf_time(&b, "not_after", svid_set_not_after(set, i));
		buf_printf(&b, ", \"expired\": %s, \"chain_length\": %zu}",
			   svid_set_expired(set, i, now) ? "true" : "false", n_certs);
	}
	buf_puts(&b, svid_set_n_svids(set) ? "\n  ]" : "]");
	buf_puts(&b, ",\n  \"federates_with\": ");
	buf_td_list(&b, set, svid_set_n_federates_with(set), svid_set_federates_with);
	buf_puts(&b, ",\n  \"x509_bundles\": ");
	buf_td_list(&b, set, svid_set_n_bundles(set), svid_set_bundle_td);
	buf_puts(&b, ",\n  \"jwt_bundles\": ");
	buf_td_list(&b, set, svid_set_n_jwt_bundles(set), svid_set_jwt_bundle_td);
	buf_puts(&b, ",\n  \"last_rejected\": ");
	if (svid_set_last_error(set)) {
		buf_puts(&b, "{");
		buf_time(&b, "at", svid_set_last_error_at(set));
		buf_puts(&b, ", \"reason\": ");
		buf_json_str(&b, svid_set_last_error(set));
		buf_puts(&b, "}");
	} else {
		buf_puts(&b, "null");
	}
	buf_puts(&b, ",\n  \"agent\": ");
	buf_json_str(&b, extra->agent);
	buf_puts(&b, ",\n  \"stream_state\": ");
	buf_json_str(&b, extra->stream_state);
	buf_puts(&b, ",\n  ");
	buf_time(&b, "last_message_at", extra->last_message_at);
	if (extra->last_message_at)
		buf_printf(&b, ",\n  \"stale_seconds\": %" PRId64,
			   MAX(now - extra->last_message_at, (int64_t)0));
	else
		buf_puts(&b, ",\n  \"stale_seconds\": null");
	buf_puts(&b, "\n}\n");
	s = b.s;
	if (b.err)
		return b.err;
	r = svid_blob_new(s, b.n, false, ret);
	return r;
}
