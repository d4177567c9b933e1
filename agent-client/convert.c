// SPDX-License-Identifier: Apache-2.0
/* Messages that carry keys or tokens (X.509-SVID and JWT-SVID responses) are decoded with an
 * allocator on the secure heap: protobuf-c copies every bytes and string field out of the wire
 * buffer, so each copy of a key lives in locked, non-dumpable memory and is wiped when the
 * message is freed, also when it fails to decode half-way. Bundle messages carry nothing secret
 * and use protobuf-c's default allocator. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "convert.h"
#include "delegatedidentity.pb-c.h"
#include "macro.h"
#include "secret.h"
#include "workload.pb-c.h"

#define SPIFFE_PREFIX "spiffe://"

/* ---- secure allocator ---- */

static ProtobufCAllocator secure_allocator = {
	.alloc = secret_pb_alloc,
	.free = secret_pb_free,
};

/* ---- helpers ---- */

_printf_(4, 5) static int reject(int r, char *why, size_t why_len, const char *fmt, ...)
{
	if (why && why_len > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return r;
}

bool convert_trust_domain_is_valid(const char *td)
{
	size_t n = td ? strlen(td) : 0;

	if (n == 0 || n > 255 || streq(td, ".") || streq(td, ".."))
		return false;
	for (const char *c = td; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' ||
		      *c == '-' || *c == '_'))
			return false;
	return true;
}

/* "spiffe://td" -> "td"; a key without the scheme is taken as a bare name. */
static const char *strip_spiffe(const char *s)
{
	if (s && strncmp(s, SPIFFE_PREFIX, strlen(SPIFFE_PREFIX)) == 0)
		return s + strlen(SPIFFE_PREFIX);
	return s;
}

/* Reads one DER TLV header at p (definite, minimal length; at most 4 length bytes). */
static int der_tlv(const uint8_t *p, size_t len, uint8_t *ret_tag, size_t *ret_hdr,
		   size_t *ret_body)
{
	size_t body, hdr;

	if (len < 2)
		return -EINVAL;
	if (p[1] < 0x80) {
		body = p[1];
		hdr = 2;
	} else {
		size_t n = p[1] & 0x7f;
		if (n == 0 || n > 4 || len < 2 + n || p[2] == 0)
			return -EINVAL;
		body = 0;
		for (size_t i = 0; i < n; i++)
			body = (body << 8) | p[2 + i];
		if (body < 0x80)
			return -EINVAL; /* not minimal: BER, not DER */
		hdr = 2 + n;
	}
	if (body > len - hdr)
		return -EINVAL;
	*ret_tag = p[0];
	*ret_hdr = hdr;
	*ret_body = body;
	return 0;
}

/* Counts the DER certificates in buf, which must hold nothing else. The check is structural
 * (Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE,
 * signatureValue BIT STRING }): the store parses and validates the certificates it keeps, and a
 * full parse here would cost ~150 us per certificate with OpenSSL 3. */
static int der_certs_count(const uint8_t *buf, size_t len)
{
	static const uint8_t want[3] = {0x30, 0x30, 0x03};
	size_t off = 0;
	int n = 0;

	if (len == 0)
		return -EINVAL;
	while (off < len) {
		uint8_t tag;
		size_t hdr, body;
		if (der_tlv(buf + off, len - off, &tag, &hdr, &body) < 0 || tag != 0x30)
			return -EINVAL;
		const uint8_t *in = buf + off + hdr;
		size_t in_off = 0;
		for (size_t k = 0; k < 3; k++) {
			uint8_t t;
			size_t h, b;
			if (der_tlv(in + in_off, body - in_off, &t, &h, &b) < 0 || t != want[k])
				return -EINVAL;
			in_off += h + b;
		}
		if (in_off != body)
			return -EINVAL;
		off += hdr + body;
		n++;
	}
	return n;
}

/* spiffe://<valid td>/<non-empty path>; the store checks the rest against the leaf. */
static bool spiffe_id_shape_ok(const char *id)
{
	const char *td = strip_spiffe(id);
	if (!id || td == id)
		return false;
	const char *slash = strchr(td, '/');
	if (!slash || slash[1] == '\0' || slash - td > 255)
		return false;
	char buf[256];
	memcpy(buf, td, slash - td);
	buf[slash - td] = '\0';
	return convert_trust_domain_is_valid(buf);
}

/* ---- X.509-SVID updates ---- */

struct ConvertX509 {
	ProtobufCMessage *msg; /* unpacked with secure_allocator */
	bool delegated;
	SvidX509Input *svids;
	const char **federates_with;
	SvidBundleInput *bundles;
	char **owned; /* spiffe ids, trust domain names and chains built here */
	size_t n_owned;
	SvidX509Update update;
};

static int own(ConvertX509 *x, void *p)
{
	if (!p)
		return -ENOMEM;
	x->owned[x->n_owned++] = p;
	return 0;
}

ConvertX509 *convert_x509_free(ConvertX509 *x)
{
	if (!x)
		return NULL;
	if (x->msg) /* every block, keys included, is wiped as it is freed */
		protobuf_c_message_free_unpacked(x->msg, &secure_allocator);
	for (size_t i = 0; i < x->n_owned; i++)
		free(x->owned[i]);
	free(x->owned);
	free(x->svids);
	free(x->federates_with);
	free(x->bundles);
	free(x);
	return NULL;
}

static bool hint_seen(const SvidX509Input *svids, size_t n, const char *hint)
{
	if (!hint || !*hint)
		return false;
	for (size_t i = 0; i < n; i++)
		if (svids[i].hint && streq(svids[i].hint, hint))
			return true;
	return false;
}

static bool bundle_seen(const SvidBundleInput *b, size_t n, const char *td)
{
	for (size_t i = 0; i < n; i++)
		if (streq(b[i].trust_domain, td))
			return true;
	return false;
}

int convert_workload_x509(const uint8_t *buf, size_t len, ConvertX509 **ret, char *why,
			  size_t why_len)
{
	_cleanup_(convert_x509_freep) ConvertX509 *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	X509SVIDResponse *m = x509_svidresponse__unpack(&secure_allocator, len, buf);
	if (!m)
		return reject(-EBADMSG, why, why_len, "not a valid X509SVIDResponse");
	x->msg = &m->base;

	if (m->n_svids == 0)
		return reject(-EINVAL, why, why_len, "no SVIDs in response");
	size_t n_fed = m->n_federated_bundles;
	x->svids = calloc(m->n_svids, sizeof(*x->svids));
	x->bundles = calloc(m->n_svids + n_fed, sizeof(*x->bundles));
	x->federates_with = calloc(n_fed ? n_fed : 1, sizeof(char *));
	x->owned = calloc(m->n_svids, sizeof(char *));
	if (!x->svids || !x->bundles || !x->federates_with || !x->owned)
		return -ENOMEM;

	size_t n = 0, nb = 0;
	for (size_t i = 0; i < m->n_svids; i++) {
		const X509SVID *s = m->svids[i];
		if (!spiffe_id_shape_ok(s->spiffe_id))
			return reject(-EINVAL, why, why_len, "svids[%zu]: missing or malformed spiffe_id",
				      i);
		if (s->x509_svid.len == 0)
			return reject(-EINVAL, why, why_len, "svids[%zu] (%s): missing x509_svid", i,
				      s->spiffe_id);
		if (der_certs_count(s->x509_svid.data, s->x509_svid.len) < 0)
			return reject(-EINVAL, why, why_len,
				      "svids[%zu] (%s): x509_svid is not concatenated DER certificates",
				      i, s->spiffe_id);
		if (s->x509_svid_key.len == 0)
			return reject(-EINVAL, why, why_len, "svids[%zu] (%s): missing x509_svid_key",
				      i, s->spiffe_id);
		if (s->bundle.len == 0 || der_certs_count(s->bundle.data, s->bundle.len) < 0)
			return reject(-EINVAL, why, why_len,
				      "svids[%zu] (%s): bundle missing or not DER certificates", i,
				      s->spiffe_id);
		if (strlen(s->hint) > CONVERT_MAX_HINT)
			return reject(-EINVAL, why, why_len,
				      "svids[%zu] (%s): hint longer than %d bytes", i, s->spiffe_id,
				      CONVERT_MAX_HINT);
		if (hint_seen(x->svids, n, s->hint))
			continue;
		x->svids[n++] = (SvidX509Input){
			.spiffe_id = s->spiffe_id,
			.chain = s->x509_svid.data,
			.chain_len = s->x509_svid.len,
			.key = s->x509_svid_key.data,
			.key_len = s->x509_svid_key.len,
			.hint = s->hint,
		};
		const char *td = strip_spiffe(s->spiffe_id);
		char *tdc = strndup(td, strchr(td, '/') - td);
		if (own(x, tdc) < 0)
			return -ENOMEM;
		if (!bundle_seen(x->bundles, nb, tdc))
			x->bundles[nb++] = (SvidBundleInput){
				.trust_domain = tdc, .data = s->bundle.data, .len = s->bundle.len};
	}

	size_t nf = 0;
	for (size_t i = 0; i < n_fed; i++) {
		const X509SVIDResponse__FederatedBundlesEntry *e = m->federated_bundles[i];
		const char *td = strip_spiffe(e->key);
		if (!convert_trust_domain_is_valid(td))
			return reject(-EINVAL, why, why_len,
				      "federated_bundles[%zu]: bad trust domain key", i);
		if (der_certs_count(e->value.data, e->value.len) < 0)
			return reject(-EINVAL, why, why_len,
				      "federated bundle of %s is not DER certificates", td);
		x->federates_with[nf++] = td;
		if (!bundle_seen(x->bundles, nb, td))
			x->bundles[nb++] = (SvidBundleInput){
				.trust_domain = td, .data = e->value.data, .len = e->value.len};
	}

	x->update = (SvidX509Update){
		.svids = x->svids,
		.n_svids = n,
		.federates_with = x->federates_with,
		.n_federates_with = nf,
		.bundles = x->bundles,
		.n_bundles = nb,
	};
	*ret = TAKE_PTR(x);
	return 0;
}

int convert_delegated_x509(const uint8_t *buf, size_t len, ConvertX509 **ret, char *why,
			   size_t why_len)
{
	_cleanup_(convert_x509_freep) ConvertX509 *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->delegated = true;
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509SVIDsResponse *m =
		spire__api__agent__delegatedidentity__v1__subscribe_to_x509_svids_response__unpack(
			&secure_allocator, len, buf);
	if (!m)
		return reject(-EBADMSG, why, why_len, "not a valid SubscribeToX509SVIDsResponse");
	x->msg = &m->base;

	size_t ns = m->n_x509_svids;
	x->svids = calloc(ns ? ns : 1, sizeof(*x->svids));
	x->federates_with = calloc(m->n_federates_with ? m->n_federates_with : 1, sizeof(char *));
	x->owned = calloc(2 * ns + 1, sizeof(char *));
	if (!x->svids || !x->federates_with || !x->owned)
		return -ENOMEM;

	size_t n = 0;
	for (size_t i = 0; i < ns; i++) {
		const Spire__Api__Agent__Delegatedidentity__V1__X509SVIDWithKey *w = m->x509_svids[i];
		const Spire__Api__Types__X509SVID *s = w->x509_svid;
		if (!s)
			return reject(-EINVAL, why, why_len, "x509_svids[%zu]: missing x509_svid", i);
		if (!s->id || !convert_trust_domain_is_valid(s->id->trust_domain) ||
		    s->id->path[0] != '/' || s->id->path[1] == '\0')
			return reject(-EINVAL, why, why_len,
				      "x509_svids[%zu]: missing or malformed id", i);
		_cleanup_free_ char *id = NULL;
		if (asprintf(&id, SPIFFE_PREFIX "%s%s", s->id->trust_domain, s->id->path) < 0)
			return -ENOMEM;
		if (s->n_cert_chain == 0)
			return reject(-EINVAL, why, why_len, "x509_svids[%zu] (%s): empty cert_chain",
				      i, id);
		if (w->x509_svid_key.len == 0)
			return reject(-EINVAL, why, why_len,
				      "x509_svids[%zu] (%s): missing x509_svid_key", i, id);
		if (strlen(s->hint) > CONVERT_MAX_HINT)
			return reject(-EINVAL, why, why_len,
				      "x509_svids[%zu] (%s): hint longer than %d bytes", i, id,
				      CONVERT_MAX_HINT);
		size_t chain_len = 0;
		for (size_t k = 0; k < s->n_cert_chain; k++) {
			if (der_certs_count(s->cert_chain[k].data, s->cert_chain[k].len) != 1)
				return reject(-EINVAL, why, why_len,
					      "x509_svids[%zu] (%s): cert_chain[%zu] is not one DER "
					      "certificate",
					      i, id, k);
			chain_len += s->cert_chain[k].len;
		}
		if (hint_seen(x->svids, n, s->hint))
			continue;
		uint8_t *chain = malloc(chain_len);
		if (own(x, chain) < 0)
			return -ENOMEM;
		for (size_t k = 0, off = 0; k < s->n_cert_chain; k++) {
			memcpy(chain + off, s->cert_chain[k].data, s->cert_chain[k].len);
			off += s->cert_chain[k].len;
		}
		x->svids[n++] = (SvidX509Input){
			.spiffe_id = id,
			.chain = chain,
			.chain_len = chain_len,
			.key = w->x509_svid_key.data,
			.key_len = w->x509_svid_key.len,
			.hint = s->hint,
			.expires_at = s->expires_at,
		};
		own(x, TAKE_PTR(id));
	}

	for (size_t i = 0; i < m->n_federates_with; i++) {
		const char *td = strip_spiffe(m->federates_with[i]);
		if (!convert_trust_domain_is_valid(td))
			return reject(-EINVAL, why, why_len, "federates_with[%zu]: bad trust domain",
				      i);
		x->federates_with[i] = td;
	}

	x->update = (SvidX509Update){
		.svids = x->svids,
		.n_svids = n,
		.federates_with = x->federates_with,
		.n_federates_with = m->n_federates_with,
	};
	*ret = TAKE_PTR(x);
	return 0;
}

const SvidX509Update *convert_x509_update(const ConvertX509 *x)
{
	return &x->update;
}

/* ---- bundle maps ---- */

struct ConvertBundles {
	ProtobufCMessage *msg;
	SvidBundleInput *bundles;
	size_t n;
};

ConvertBundles *convert_bundles_free(ConvertBundles *b)
{
	if (!b)
		return NULL;
	if (b->msg)
		protobuf_c_message_free_unpacked(b->msg, NULL);
	free(b->bundles);
	free(b);
	return NULL;
}

/* Every generated map entry is {base, char *key, ProtobufCBinaryData value}. */
typedef struct MapEntry {
	ProtobufCMessage base;
	char *key;
	ProtobufCBinaryData value;
} MapEntry;

static int bundles_from_map(ProtobufCMessage *msg, MapEntry **entries, size_t n, bool x509,
			    ConvertBundles **ret, char *why, size_t why_len)
{
	_cleanup_(convert_bundles_freep) ConvertBundles *b = calloc(1, sizeof(*b));
	if (!b) {
		protobuf_c_message_free_unpacked(msg, NULL);
		return -ENOMEM;
	}
	b->msg = msg;
	if (n == 0)
		return reject(-EINVAL, why, why_len, "empty bundle map");
	b->bundles = calloc(n, sizeof(*b->bundles));
	if (!b->bundles)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *td = strip_spiffe(entries[i]->key);
		if (!convert_trust_domain_is_valid(td))
			return reject(-EINVAL, why, why_len, "bundle map entry %zu: bad trust domain",
				      i);
		if (x509 && der_certs_count(entries[i]->value.data, entries[i]->value.len) < 0)
			return reject(-EINVAL, why, why_len,
				      "bundle of %s is not DER certificates", td);
		if (!x509 && entries[i]->value.len == 0)
			return reject(-EINVAL, why, why_len, "JWT bundle of %s is empty", td);
		if (bundle_seen(b->bundles, b->n, td))
			return reject(-EINVAL, why, why_len, "bundle of %s appears twice", td);
		b->bundles[b->n++] = (SvidBundleInput){
			.trust_domain = td, .data = entries[i]->value.data, .len = entries[i]->value.len};
	}
	*ret = TAKE_PTR(b);
	return 0;
}

#define BUNDLES_CONVERTER(fn, type, unpack, field, x509, what)                                      \
	int fn(const uint8_t *buf, size_t len, ConvertBundles **ret, char *why, size_t why_len)    \
	{                                                                                          \
		_Static_assert(sizeof(*((type *)0)->field[0]) == sizeof(MapEntry), "map entry");    \
		type *m = unpack(NULL, len, buf);                                                  \
		if (!m)                                                                            \
			return reject(-EBADMSG, why, why_len, "not a valid " what);                \
		return bundles_from_map(&m->base, (MapEntry **)m->field, m->n_##field, x509, ret,  \
					why, why_len);                                             \
	}

BUNDLES_CONVERTER(convert_workload_x509_bundles, X509BundlesResponse,
		  x509_bundles_response__unpack, bundles, true, "X509BundlesResponse")
BUNDLES_CONVERTER(convert_workload_jwt_bundles, JWTBundlesResponse, jwtbundles_response__unpack,
		  bundles, false, "JWTBundlesResponse")
BUNDLES_CONVERTER(convert_delegated_x509_bundles,
		  Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509BundlesResponse,
		  spire__api__agent__delegatedidentity__v1__subscribe_to_x509_bundles_response__unpack,
		  ca_certificates, true, "SubscribeToX509BundlesResponse")
BUNDLES_CONVERTER(convert_delegated_jwt_bundles,
		  Spire__Api__Agent__Delegatedidentity__V1__SubscribeToJWTBundlesResponse,
		  spire__api__agent__delegatedidentity__v1__subscribe_to_jwtbundles_response__unpack,
		  bundles, false, "SubscribeToJWTBundlesResponse")

const SvidBundleInput *convert_bundles_get(const ConvertBundles *b, size_t *ret_n)
{
	*ret_n = b->n;
	return b->bundles;
}

/* ---- JWT-SVIDs ---- */

void agent_jwt_free(AgentJwt *j, size_t n)
{
	if (!j)
		return;
	for (size_t i = 0; i < n; i++) {
		free(j[i].spiffe_id);
		if (j[i].token)
			secret_free(j[i].token, strlen(j[i].token) + 1);
		free(j[i].hint);
	}
	free(j);
}

static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decodes unpadded base64url; out must hold len * 3 / 4 + 1 bytes. */
static int b64url_decode(const char *in, size_t len, char *out, size_t *ret_len)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int v = b64url_value(in[i]);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	if (bits >= 6)
		return -EINVAL;
	out[o] = '\0';
	*ret_len = o;
	return 0;
}

static const char *json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Skips a JSON string starting at '"'; returns the byte after the closing quote or NULL. */
static const char *json_skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Skips any JSON value; returns the ',' or closing bracket after it, or NULL. */
static const char *json_skip_value(const char *p, const char *end)
{
	int depth = 0;

	while (p < end) {
		if (*p == '"') {
			p = json_skip_string(p, end);
			if (!p)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']') {
			if (depth == 0)
				return p;
			depth--;
		} else if (*p == ',' && depth == 0)
			return p;
		p++;
	}
	return NULL;
}

int convert_jwt_times(const char *token, int64_t *ret_exp, int64_t *ret_iat)
{
	const char *dot1 = token ? strchr(token, '.') : NULL;
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot2 || strchr(dot2 + 1, '.'))
		return -EINVAL;
	size_t plen = dot2 - (dot1 + 1);
	_cleanup_free_ char *json = malloc(plen * 3 / 4 + 2);
	size_t jlen;
	if (!json)
		return -ENOMEM;
	if (b64url_decode(dot1 + 1, plen, json, &jlen) < 0)
		return -EINVAL;

	const char *p = json_ws(json, json + jlen), *end = json + jlen;
	int64_t exp = 0, iat = 0;
	if (p >= end || *p != '{')
		return -EINVAL;
	p = json_ws(p + 1, end);
	while (p < end && *p != '}') {
		if (*p != '"')
			return -EINVAL;
		const char *k = p + 1, *ke = json_skip_string(p, end);
		if (!ke)
			return -EINVAL;
		size_t klen = ke - 1 - k;
		p = json_ws(ke, end);
		if (p >= end || *p != ':')
			return -EINVAL;
		p = json_ws(p + 1, end);
		int64_t *want = NULL;
		if (klen == 3 && memcmp(k, "exp", 3) == 0)
			want = &exp;
		else if (klen == 3 && memcmp(k, "iat", 3) == 0)
			want = &iat;
		if (want) {
			char *e;
			errno = 0;
			double d = strtod(p, &e);
			/* Written so that a NaN (which fails every comparison) is refused too. */
			if (e == p || errno != 0 || !(d >= 0 && d <= 9e15))
				return -EINVAL;
			*want = (int64_t)d;
		}
		p = json_skip_value(p, end);
		if (!p)
			return -EINVAL;
		p = json_ws(p, end);
		if (p < end && *p == ',')
			p = json_ws(p + 1, end);
	}
	if (p >= end)
		return -EINVAL;
	*ret_exp = exp;
	*ret_iat = iat;
	return 0;
}

static int jwt_fill(AgentJwt *j, const char *id, const char *token, const char *hint)
{
	j->spiffe_id = strdup(id);
	j->token = secret_dup(token, strlen(token) + 1);
	j->hint = strdup(hint ? hint : "");
	return j->spiffe_id && j->token && j->hint ? 0 : -ENOMEM;
}

int convert_workload_jwt(const uint8_t *buf, size_t len, AgentJwt **ret, size_t *ret_n, char *why,
			 size_t why_len)
{
	JWTSVIDResponse *m = jwtsvidresponse__unpack(&secure_allocator, len, buf);
	if (!m)
		return reject(-EBADMSG, why, why_len, "not a valid JWTSVIDResponse");
	size_t cnt = m->n_svids;
	AgentJwt *j = calloc(cnt ? cnt : 1, sizeof(*j));
	int r = j ? 0 : -ENOMEM;
	size_t n = 0;
	for (; r >= 0 && n < cnt; n++) {
		const JWTSVID *s = m->svids[n];
		if (!spiffe_id_shape_ok(s->spiffe_id) || !*s->svid) {
			r = reject(-EINVAL, why, why_len, "svids[%zu]: missing spiffe_id or svid", n);
			break;
		}
		r = jwt_fill(&j[n], s->spiffe_id, s->svid, s->hint);
		if (r >= 0 && convert_jwt_times(s->svid, &j[n].expires_at, &j[n].issued_at) < 0)
			r = reject(-EINVAL, why, why_len, "svids[%zu] (%s): token is not a JWT", n,
				   s->spiffe_id);
	}
	protobuf_c_message_free_unpacked(&m->base, &secure_allocator);
	if (r < 0) {
		agent_jwt_free(j, n + 1 <= cnt ? n + 1 : n);
		return r;
	}
	*ret = j;
	*ret_n = n;
	return 0;
}

int convert_delegated_jwt(const uint8_t *buf, size_t len, AgentJwt **ret, size_t *ret_n, char *why,
			  size_t why_len)
{
	Spire__Api__Agent__Delegatedidentity__V1__FetchJWTSVIDsResponse *m =
		spire__api__agent__delegatedidentity__v1__fetch_jwtsvids_response__unpack(
			&secure_allocator, len, buf);
	if (!m)
		return reject(-EBADMSG, why, why_len, "not a valid FetchJWTSVIDsResponse");
	size_t cnt = m->n_svids;
	AgentJwt *j = calloc(cnt ? cnt : 1, sizeof(*j));
	int r = j ? 0 : -ENOMEM;
	size_t n = 0;
	for (; r >= 0 && n < cnt; n++) {
		const Spire__Api__Types__JWTSVID *s = m->svids[n];
		if (!s->id || !convert_trust_domain_is_valid(s->id->trust_domain) ||
		    s->id->path[0] != '/' || !*s->token) {
			r = reject(-EINVAL, why, why_len, "svids[%zu]: missing id or token", n);
			break;
		}
		_cleanup_free_ char *id = NULL;
		if (asprintf(&id, SPIFFE_PREFIX "%s%s", s->id->trust_domain, s->id->path) < 0) {
			r = -ENOMEM;
			break;
		}
		r = jwt_fill(&j[n], id, s->token, s->hint);
		j[n].expires_at = s->expires_at;
		j[n].issued_at = s->issued_at;
	}
	protobuf_c_message_free_unpacked(&m->base, &secure_allocator);
	if (r < 0) {
		agent_jwt_free(j, n + 1 <= cnt ? n + 1 : n);
		return r;
	}
	*ret = j;
	*ret_n = n;
	return 0;
}

/* ---- requests ---- */

int convert_check_selectors(const AgentSelector *sel, size_t n_sel, int32_t pid, char *why,
			    size_t why_len)
{
	if ((n_sel > 0) == (pid > 0) || pid < 0)
		return reject(-EINVAL, why, why_len,
			      "give either selectors or a positive pid, not both");
	for (size_t i = 0; i < n_sel; i++) {
		if (!sel[i].type || !*sel[i].type || strchr(sel[i].type, ':'))
			return reject(-EINVAL, why, why_len,
				      "selector %zu: type must be non-empty and contain no ':'", i);
		if (!sel[i].value || !*sel[i].value)
			return reject(-EINVAL, why, why_len, "selector %zu: empty value", i);
	}
	return 0;
}
