// SPDX-License-Identifier: Apache-2.0
/* convert: protobuf-c fixtures built here (valid messages, missing fields, empty lists, bad
 * chains, trailing garbage, huge hints) through the pure decoders. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "delegatedidentity.pb-c.h"
#include "fixtures.h"
#include "macro.h"
#include "stream.h"
#include "workload.pb-c.h"

static FxBuf leaf, inter, root, key, key2;
static char why[256];

static void setup(void)
{
	leaf = fx_cert("leaf", 0);
	inter = fx_cert("intermediate", 1);
	root = fx_cert("root", 1);
	key = fx_key();
	key2 = fx_key();
	why[0] = '\0';
}

static void teardown(void)
{
	free(leaf.p);
	free(inter.p);
	free(root.p);
	free(key.p);
	free(key2.p);
}

TestSuite(convert, .init = setup, .fini = teardown);

static FxBuf pack(const ProtobufCMessage *m)
{
	FxBuf b;
	cr_assert_eq(stream_pack(m, &b.p, &b.n), 0);
	return b;
}

static ProtobufCBinaryData bin(FxBuf b)
{
	return (ProtobufCBinaryData){.len = b.n, .data = b.p};
}

/* ---- Workload API X509SVIDResponse ---- */

typedef struct WlFixture {
	X509SVIDResponse resp;
	X509SVID svid[3];
	X509SVID *svids[3];
	X509SVIDResponse__FederatedBundlesEntry fed[2];
	X509SVIDResponse__FederatedBundlesEntry *feds[2];
	FxBuf chain;
} WlFixture;

static void wl_init(WlFixture *f, size_t n_svids)
{
	memset(f, 0, sizeof(*f));
	x509_svidresponse__init(&f->resp);
	f->chain = fx_cat(leaf, inter);
	for (size_t i = 0; i < 3; i++) {
		x509_svid__init(&f->svid[i]);
		f->svid[i].spiffe_id = (char *)(i == 0 ? "spiffe://example.org/web"
						       : "spiffe://example.org/db");
		f->svid[i].x509_svid = bin(f->chain);
		f->svid[i].x509_svid_key = bin(i == 0 ? key : key2);
		f->svid[i].bundle = bin(root);
		f->svids[i] = &f->svid[i];
	}
	f->resp.n_svids = n_svids;
	f->resp.svids = f->svids;
	for (size_t i = 0; i < 2; i++) {
		x509_svidresponse__federated_bundles_entry__init(&f->fed[i]);
		f->fed[i].key = (char *)(i == 0 ? "spiffe://partner.org" : "spiffe://other.net");
		f->fed[i].value = bin(root);
		f->feds[i] = &f->fed[i];
	}
	f->resp.n_federated_bundles = 2;
	f->resp.federated_bundles = f->feds;
}

static int wl_convert(WlFixture *f, ConvertX509 **ret)
{
	FxBuf b = pack(&f->resp.base);
	int r = convert_workload_x509(b.p, b.n, ret, why, sizeof(why));
	free(b.p);
	free(f->chain.p);
	return r;
}

Test(convert, workload_x509_valid)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	wl_init(&f, 2);
	f.svid[1].hint = (char *)"db";
	FxBuf chain = fx_cat(leaf, inter);
	cr_assert_eq(wl_convert(&f, &x), 0, "%s", why);
	const SvidX509Update *u = convert_x509_update(x);
	cr_assert_eq(u->n_svids, 2);
	cr_assert_str_eq(u->svids[0].spiffe_id, "spiffe://example.org/web");
	cr_assert_eq(u->svids[0].chain_len, chain.n);
	cr_assert_arr_eq(u->svids[0].chain, chain.p, chain.n);
	cr_assert_eq(u->svids[0].key_len, key.n);
	cr_assert_arr_eq(u->svids[0].key, key.p, key.n);
	cr_assert_arr_eq(u->svids[1].key, key2.p, key2.n);
	cr_assert_str_eq(u->svids[1].hint, "db");
	cr_assert_eq(u->svids[0].expires_at, 0);
	/* own trust domain once (both SVIDs share it), then the two federated ones */
	cr_assert_eq(u->n_bundles, 3);
	cr_assert_str_eq(u->bundles[0].trust_domain, "example.org");
	cr_assert_str_eq(u->bundles[1].trust_domain, "partner.org");
	cr_assert_str_eq(u->bundles[2].trust_domain, "other.net");
	cr_assert_arr_eq(u->bundles[1].data, root.p, root.n);
	cr_assert_eq(u->n_federates_with, 2);
	cr_assert_str_eq(u->federates_with[0], "partner.org");
	cr_assert_str_eq(u->federates_with[1], "other.net");
	convert_x509_free(x);
	free(chain.p);
}

Test(convert, workload_x509_duplicate_hint_keeps_first)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	wl_init(&f, 3);
	f.svid[1].hint = (char *)"same";
	f.svid[2].hint = (char *)"same";
	f.svid[2].spiffe_id = (char *)"spiffe://example.org/third";
	cr_assert_eq(wl_convert(&f, &x), 0, "%s", why);
	const SvidX509Update *u = convert_x509_update(x);
	cr_assert_eq(u->n_svids, 2);
	cr_assert_str_eq(u->svids[1].spiffe_id, "spiffe://example.org/db");
	convert_x509_free(x);
}

Test(convert, workload_x509_empty_svids_rejected)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	wl_init(&f, 0);
	cr_assert_eq(wl_convert(&f, &x), -EINVAL);
	cr_assert_null(x);
	cr_assert(strstr(why, "no SVIDs"), "%s", why);
}

Test(convert, workload_x509_missing_spiffe_id)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	wl_init(&f, 1);
	f.svid[0].spiffe_id = (char *)"";
	cr_assert_eq(wl_convert(&f, &x), -EINVAL);
	cr_assert(strstr(why, "spiffe_id"), "%s", why);
}

Test(convert, workload_x509_malformed_spiffe_id)
{
	const char *bad[] = {"https://example.org/web", "spiffe://example.org", "spiffe://example.org/",
			     "spiffe://Example.org/web", "spiffe://../web", "spiffe:///web"};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		WlFixture f;
		ConvertX509 *x = NULL;
		wl_init(&f, 1);
		f.svid[0].spiffe_id = (char *)bad[i];
		cr_assert_eq(wl_convert(&f, &x), -EINVAL, "%s accepted", bad[i]);
	}
}

Test(convert, workload_x509_missing_chain)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	wl_init(&f, 1);
	f.svid[0].x509_svid = (ProtobufCBinaryData){0};
	cr_assert_eq(wl_convert(&f, &x), -EINVAL);
	cr_assert(strstr(why, "x509_svid"), "%s", why);
}

Test(convert, workload_x509_missing_key)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	wl_init(&f, 1);
	f.svid[0].x509_svid_key = (ProtobufCBinaryData){0};
	cr_assert_eq(wl_convert(&f, &x), -EINVAL);
	cr_assert(strstr(why, "key"), "%s", why);
}

Test(convert, workload_x509_missing_bundle)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	wl_init(&f, 1);
	f.svid[0].bundle = (ProtobufCBinaryData){0};
	cr_assert_eq(wl_convert(&f, &x), -EINVAL);
}

Test(convert, workload_x509_chain_not_der)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	FxBuf junk = fx_bytes("-----BEGIN CERTIFICATE-----\nnot der\n");
	wl_init(&f, 1);
	f.svid[0].x509_svid = bin(junk);
	cr_assert_eq(wl_convert(&f, &x), -EINVAL);
	cr_assert(strstr(why, "DER"), "%s", why);
	free(junk.p);
}

Test(convert, workload_x509_chain_trailing_garbage)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	FxBuf tail = fx_bytes("\x30\x03zz"), chain = fx_cat(leaf, tail);
	wl_init(&f, 1);
	f.svid[0].x509_svid = bin(chain);
	cr_assert_eq(wl_convert(&f, &x), -EINVAL);
	free(tail.p);
	free(chain.p);
}

/* The chain check is structural DER: Certificate ::= SEQUENCE { SEQUENCE, SEQUENCE, BIT STRING }
 * with definite, minimal lengths and nothing left over. */
Test(convert, workload_x509_chain_der_structure)
{
	static const struct {
		const char *what;
		uint8_t b[16];
		size_t n;
	} bad[] = {
		{"a SEQUENCE that is not a certificate", {0x30, 0x03, 0x02, 0x01, 0x00}, 5},
		{"indefinite length", {0x30, 0x80, 0x30, 0x00, 0x30, 0x00, 0x03, 0x00, 0x00, 0x00}, 10},
		{"non-minimal length", {0x30, 0x81, 0x06, 0x30, 0x00, 0x30, 0x00, 0x03, 0x00}, 9},
		{"length past the end", {0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30}, 7},
		{"extra element", {0x30, 0x08, 0x30, 0x00, 0x30, 0x00, 0x03, 0x00, 0x05, 0x00}, 10},
		{"wrong signature tag", {0x30, 0x06, 0x30, 0x00, 0x30, 0x00, 0x04, 0x00}, 8},
		{"not a SEQUENCE", {0x31, 0x06, 0x30, 0x00, 0x30, 0x00, 0x03, 0x00}, 8},
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		WlFixture f;
		ConvertX509 *x = NULL;
		wl_init(&f, 1);
		f.svid[0].x509_svid = (ProtobufCBinaryData){.len = bad[i].n, .data = (uint8_t *)bad[i].b};
		cr_assert_eq(wl_convert(&f, &x), -EINVAL, "%s accepted", bad[i].what);
	}
	/* the minimal well-formed shape passes the structural check */
	WlFixture f;
	ConvertX509 *x = NULL;
	static const uint8_t shape[] = {0x30, 0x06, 0x30, 0x00, 0x30, 0x00, 0x03, 0x00};
	wl_init(&f, 1);
	f.svid[0].x509_svid = (ProtobufCBinaryData){.len = sizeof(shape), .data = (uint8_t *)shape};
	cr_assert_eq(wl_convert(&f, &x), 0, "%s", why);
	convert_x509_free(x);
}

Test(convert, workload_x509_truncated_chain)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	wl_init(&f, 1);
	f.svid[0].x509_svid.len = leaf.n - 1;
	f.svid[0].x509_svid.data = leaf.p;
	cr_assert_eq(wl_convert(&f, &x), -EINVAL);
}

Test(convert, workload_x509_huge_hint)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	char *hint = malloc(CONVERT_MAX_HINT + 2);
	memset(hint, 'h', CONVERT_MAX_HINT + 1);
	hint[CONVERT_MAX_HINT + 1] = '\0';
	wl_init(&f, 1);
	f.svid[0].hint = hint;
	cr_assert_eq(wl_convert(&f, &x), -EINVAL);
	cr_assert(strstr(why, "hint"), "%s", why);
	free(hint);
}

Test(convert, workload_x509_hint_at_limit_accepted)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	char *hint = malloc(CONVERT_MAX_HINT + 1);
	memset(hint, 'h', CONVERT_MAX_HINT);
	hint[CONVERT_MAX_HINT] = '\0';
	wl_init(&f, 1);
	f.svid[0].hint = hint;
	cr_assert_eq(wl_convert(&f, &x), 0, "%s", why);
	convert_x509_free(x);
	free(hint);
}

Test(convert, workload_x509_bad_federated_key)
{
	const char *bad[] = {"", "spiffe://", "spiffe://../etc", "spiffe://UPPER.org",
			     "spiffe://a/b"};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		WlFixture f;
		ConvertX509 *x = NULL;
		wl_init(&f, 1);
		f.fed[0].key = (char *)bad[i];
		cr_assert_eq(wl_convert(&f, &x), -EINVAL, "\"%s\" accepted", bad[i]);
	}
}

Test(convert, workload_x509_federated_bundle_not_der)
{
	WlFixture f;
	ConvertX509 *x = NULL;
	FxBuf junk = fx_bytes("garbage");
	wl_init(&f, 1);
	f.fed[1].value = bin(junk);
	cr_assert_eq(wl_convert(&f, &x), -EINVAL);
	free(junk.p);
}

Test(convert, workload_x509_undecodable)
{
	ConvertX509 *x = NULL;
	static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	cr_assert_eq(convert_workload_x509(junk, sizeof(junk), &x, why, sizeof(why)), -EBADMSG);
	cr_assert_null(x);
	/* a wrong wire type for field 1 */
	static const uint8_t wrong[] = {0x08, 0x01};
	cr_assert_eq(convert_workload_x509(wrong, sizeof(wrong), &x, why, sizeof(why)), -EBADMSG);
}

/* Every truncation and every single-byte corruption of a valid message is either accepted or
 * rejected cleanly (ASan would catch anything worse). */
Test(convert, workload_x509_truncations_and_flips_never_crash)
{
	WlFixture f;
	wl_init(&f, 2);
	FxBuf b = pack(&f.resp.base);
	free(f.chain.p);
	size_t accepted = 0;
	for (size_t n = 0; n < b.n; n++) {
		ConvertX509 *x = NULL;
		if (convert_workload_x509(b.p, n, &x, why, sizeof(why)) == 0)
			accepted++;
		convert_x509_free(x);
	}
	for (size_t i = 0; i < b.n; i += 7) {
		ConvertX509 *x = NULL;
		uint8_t *c = malloc(b.n);
		memcpy(c, b.p, b.n);
		c[i] ^= 0x5a;
		(void)convert_workload_x509(c, b.n, &x, why, sizeof(why));
		convert_x509_free(x);
		free(c);
	}
	cr_assert_lt(accepted, b.n);
	free(b.p);
}

/* ---- Delegated API SubscribeToX509SVIDsResponse ---- */

typedef struct DlFixture {
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509SVIDsResponse resp;
	Spire__Api__Agent__Delegatedidentity__V1__X509SVIDWithKey wk[2];
	Spire__Api__Agent__Delegatedidentity__V1__X509SVIDWithKey *wks[2];
	Spire__Api__Types__X509SVID svid[2];
	Spire__Api__Types__SPIFFEID id[2];
	ProtobufCBinaryData chain[2];
	char *fw[2];
} DlFixture;

static void dl_init(DlFixture *f, size_t n)
{
	memset(f, 0, sizeof(*f));
	spire__api__agent__delegatedidentity__v1__subscribe_to_x509_svids_response__init(&f->resp);
	f->chain[0] = bin(leaf);
	f->chain[1] = bin(inter);
	for (size_t i = 0; i < 2; i++) {
		spire__api__agent__delegatedidentity__v1__x509_svidwith_key__init(&f->wk[i]);
		spire__api__types__x509_svid__init(&f->svid[i]);
		spire__api__types__spiffeid__init(&f->id[i]);
		f->id[i].trust_domain = (char *)"example.org";
		f->id[i].path = (char *)(i == 0 ? "/ns/default/sa/web" : "/ns/default/sa/db");
		f->svid[i].id = &f->id[i];
		f->svid[i].n_cert_chain = 2;
		f->svid[i].cert_chain = f->chain;
		f->svid[i].expires_at = 1700000000 + (int64_t)i;
		f->wk[i].x509_svid = &f->svid[i];
		f->wk[i].x509_svid_key = bin(i == 0 ? key : key2);
		f->wks[i] = &f->wk[i];
	}
	f->resp.n_x509_svids = n;
	f->resp.x509_svids = f->wks;
	f->fw[0] = (char *)"spiffe://partner.org";
	f->fw[1] = (char *)"spiffe://other.net";
	f->resp.n_federates_with = 2;
	f->resp.federates_with = f->fw;
}

static int dl_convert(DlFixture *f, ConvertX509 **ret)
{
	FxBuf b = pack(&f->resp.base);
	int r = convert_delegated_x509(b.p, b.n, ret, why, sizeof(why));
	free(b.p);
	return r;
}

Test(convert, delegated_x509_valid)
{
	DlFixture f;
	ConvertX509 *x = NULL;
	dl_init(&f, 2);
	f.svid[1].hint = (char *)"db";
	cr_assert_eq(dl_convert(&f, &x), 0, "%s", why);
	const SvidX509Update *u = convert_x509_update(x);
	FxBuf chain = fx_cat(leaf, inter);
	cr_assert_eq(u->n_svids, 2);
	cr_assert_str_eq(u->svids[0].spiffe_id, "spiffe://example.org/ns/default/sa/web");
	cr_assert_str_eq(u->svids[1].spiffe_id, "spiffe://example.org/ns/default/sa/db");
	cr_assert_eq(u->svids[0].chain_len, chain.n);
	cr_assert_arr_eq(u->svids[0].chain, chain.p, chain.n);
	cr_assert_arr_eq(u->svids[0].key, key.p, key.n);
	cr_assert_eq(u->svids[0].expires_at, 1700000000);
	cr_assert_eq(u->svids[1].expires_at, 1700000001);
	cr_assert_str_eq(u->svids[1].hint, "db");
	cr_assert_eq(u->n_federates_with, 2);
	cr_assert_str_eq(u->federates_with[0], "partner.org");
	cr_assert_str_eq(u->federates_with[1], "other.net");
	cr_assert_eq(u->n_bundles, 0);
	cr_assert_null(u->bundles);
	convert_x509_free(x);
	free(chain.p);
}

Test(convert, delegated_x509_empty_list_is_an_update)
{
	DlFixture f;
	ConvertX509 *x = NULL;
	dl_init(&f, 0);
	f.resp.n_federates_with = 0;
	cr_assert_eq(dl_convert(&f, &x), 0, "%s", why);
	cr_assert_eq(convert_x509_update(x)->n_svids, 0);
	cr_assert_eq(convert_x509_update(x)->n_federates_with, 0);
	convert_x509_free(x);
	/* and a zero-length message is exactly that */
	cr_assert_eq(convert_delegated_x509((const uint8_t *)"", 0, &x, why, sizeof(why)), 0);
	cr_assert_eq(convert_x509_update(x)->n_svids, 0);
	convert_x509_free(x);
}

Test(convert, delegated_x509_missing_svid)
{
	DlFixture f;
	ConvertX509 *x = NULL;
	dl_init(&f, 1);
	f.wk[0].x509_svid = NULL;
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
}

Test(convert, delegated_x509_missing_or_bad_id)
{
	DlFixture f;
	ConvertX509 *x = NULL;
	dl_init(&f, 1);
	f.svid[0].id = NULL;
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
	dl_init(&f, 1);
	f.id[0].trust_domain = (char *)"";
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
	dl_init(&f, 1);
	f.id[0].path = (char *)"no-slash";
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
	dl_init(&f, 1);
	f.id[0].path = (char *)"/";
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
	dl_init(&f, 1);
	f.id[0].trust_domain = (char *)"spiffe://example.org";
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
}

Test(convert, delegated_x509_empty_chain)
{
	DlFixture f;
	ConvertX509 *x = NULL;
	dl_init(&f, 1);
	f.svid[0].n_cert_chain = 0;
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
}

Test(convert, delegated_x509_chain_element_must_be_one_cert)
{
	DlFixture f;
	ConvertX509 *x = NULL;
	FxBuf two = fx_cat(leaf, inter), junk = fx_bytes("junk"), tail = fx_cat(leaf, junk);
	ProtobufCBinaryData one[1];
	dl_init(&f, 1);
	one[0] = bin(two); /* the Workload API's concatenation is wrong here */
	f.svid[0].cert_chain = one;
	f.svid[0].n_cert_chain = 1;
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
	one[0] = bin(junk);
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
	one[0] = bin(tail);
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
	free(two.p);
	free(junk.p);
	free(tail.p);
}

Test(convert, delegated_x509_missing_key)
{
	DlFixture f;
	ConvertX509 *x = NULL;
	dl_init(&f, 2);
	f.wk[1].x509_svid_key = (ProtobufCBinaryData){0};
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
	cr_assert(strstr(why, "x509_svids[1]"), "%s", why);
}

Test(convert, delegated_x509_huge_hint)
{
	DlFixture f;
	ConvertX509 *x = NULL;
	char *hint = malloc(100000);
	memset(hint, 'x', 99999);
	hint[99999] = '\0';
	dl_init(&f, 1);
	f.svid[0].hint = hint;
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
	free(hint);
}

Test(convert, delegated_x509_bad_federates_with)
{
	DlFixture f;
	ConvertX509 *x = NULL;
	dl_init(&f, 1);
	f.fw[1] = (char *)"spiffe://../../etc";
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
}

Test(convert, delegated_x509_undecodable)
{
	ConvertX509 *x = NULL;
	static const uint8_t junk[] = {0x0a, 0x05, 0x01};
	cr_assert_eq(convert_delegated_x509(junk, sizeof(junk), &x, why, sizeof(why)), -EBADMSG);
	cr_assert_null(x);
}

Test(convert, delegated_x509_truncations_never_crash)
{
	DlFixture f;
	dl_init(&f, 2);
	FxBuf b = pack(&f.resp.base);
	for (size_t n = 0; n < b.n; n++) {
		ConvertX509 *x = NULL;
		(void)convert_delegated_x509(b.p, n, &x, why, sizeof(why));
		convert_x509_free(x);
	}
	free(b.p);
}

Test(convert, why_never_contains_key_bytes)
{
	DlFixture f;
	ConvertX509 *x = NULL;
	FxBuf printable = fx_bytes("SECRETKEYSECRETKEY");
	dl_init(&f, 1);
	f.wk[0].x509_svid_key = bin(printable);
	f.svid[0].n_cert_chain = 0;
	cr_assert_eq(dl_convert(&f, &x), -EINVAL);
	cr_assert_null(strstr(why, "SECRET"), "%s", why);
	free(printable.p);
}

/* ---- bundle maps ---- */

Test(convert, workload_x509_bundles)
{
	X509BundlesResponse m = X509_BUNDLES_RESPONSE__INIT;
	X509BundlesResponse__BundlesEntry e[2], *ep[2] = {&e[0], &e[1]};
	FxBuf two = fx_cat(root, inter);
	for (int i = 0; i < 2; i++)
		x509_bundles_response__bundles_entry__init(&e[i]);
	e[0].key = (char *)"spiffe://example.org";
	e[0].value = bin(two);
	e[1].key = (char *)"spiffe://partner.org";
	e[1].value = bin(root);
	m.n_bundles = 2;
	m.bundles = ep;
	FxBuf b = pack(&m.base);
	ConvertBundles *cb = NULL;
	size_t n;
	cr_assert_eq(convert_workload_x509_bundles(b.p, b.n, &cb, why, sizeof(why)), 0, "%s", why);
	const SvidBundleInput *in = convert_bundles_get(cb, &n);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(in[0].trust_domain, "example.org");
	cr_assert_eq(in[0].len, two.n);
	cr_assert_arr_eq(in[0].data, two.p, two.n);
	cr_assert_str_eq(in[1].trust_domain, "partner.org");
	convert_bundles_free(cb);
	free(b.p);

	/* duplicate trust domain, bad value, empty map */
	e[1].key = (char *)"example.org";
	b = pack(&m.base);
	cr_assert_eq(convert_workload_x509_bundles(b.p, b.n, &cb, why, sizeof(why)), -EINVAL);
	free(b.p);
	e[1].key = (char *)"spiffe://partner.org";
	e[1].value = (ProtobufCBinaryData){.len = 3, .data = (uint8_t *)"abc"};
	b = pack(&m.base);
	cr_assert_eq(convert_workload_x509_bundles(b.p, b.n, &cb, why, sizeof(why)), -EINVAL);
	free(b.p);
	m.n_bundles = 0;
	b = pack(&m.base);
	cr_assert_eq(convert_workload_x509_bundles(b.p, b.n, &cb, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "empty"), "%s", why);
	free(b.p);
	free(two.p);
}

Test(convert, jwt_bundles_both_apis)
{
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToJWTBundlesResponse m =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_JWTBUNDLES_RESPONSE__INIT;
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToJWTBundlesResponse__BundlesEntry e,
		*ep = &e;
	spire__api__agent__delegatedidentity__v1__subscribe_to_jwtbundles_response__bundles_entry__init(
		&e);
	FxBuf jwks = fx_bytes("{\"keys\":[]}");
	e.key = (char *)"spiffe://example.org";
	e.value = bin(jwks);
	m.n_bundles = 1;
	m.bundles = &ep;
	FxBuf b = pack(&m.base);
	ConvertBundles *cb = NULL;
	size_t n;
	cr_assert_eq(convert_delegated_jwt_bundles(b.p, b.n, &cb, why, sizeof(why)), 0, "%s", why);
	const SvidBundleInput *in = convert_bundles_get(cb, &n);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(in[0].trust_domain, "example.org");
	cr_assert_eq(in[0].len, jwks.n);
	convert_bundles_free(cb);
	/* same wire shape as the Workload API's JWTBundlesResponse */
	cr_assert_eq(convert_workload_jwt_bundles(b.p, b.n, &cb, why, sizeof(why)), 0, "%s", why);
	convert_bundles_free(cb);
	free(b.p);
	e.value = (ProtobufCBinaryData){0};
	b = pack(&m.base);
	cr_assert_eq(convert_delegated_jwt_bundles(b.p, b.n, &cb, why, sizeof(why)), -EINVAL);
	free(b.p);
	free(jwks.p);
}

Test(convert, delegated_x509_bundles_and_garbage)
{
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509BundlesResponse m =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_BUNDLES_RESPONSE__INIT;
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509BundlesResponse__CaCertificatesEntry
		e, *ep = &e;
	spire__api__agent__delegatedidentity__v1__subscribe_to_x509_bundles_response__ca_certificates_entry__init(
		&e);
	e.key = (char *)"spiffe://example.org";
	e.value = bin(root);
	m.n_ca_certificates = 1;
	m.ca_certificates = &ep;
	FxBuf b = pack(&m.base);
	ConvertBundles *cb = NULL;
	size_t n;
	cr_assert_eq(convert_delegated_x509_bundles(b.p, b.n, &cb, why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(convert_bundles_get(cb, &n)[0].trust_domain, "example.org");
	convert_bundles_free(cb);
	for (size_t k = 0; k < b.n; k++) {
		cb = NULL;
		(void)convert_delegated_x509_bundles(b.p, k, &cb, why, sizeof(why));
		convert_bundles_free(cb);
	}
	static const uint8_t junk[] = {0x0a, 0x80};
	cr_assert_eq(convert_delegated_x509_bundles(junk, sizeof(junk), &cb, why, sizeof(why)),
		     -EBADMSG);
	free(b.p);
}

/* ---- JWT-SVIDs ---- */

/* header {"alg":"ES256"}, payload below, fake signature */
static char *make_jwt(const char *payload)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t n = strlen(payload);
	char *out = malloc(64 + n * 2);
	char *o = out + sprintf(out, "eyJhbGciOiJFUzI1NiJ9.");
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint8_t)payload[i] << 16;
		if (i + 1 < n)
			v |= (uint8_t)payload[i + 1] << 8;
		if (i + 2 < n)
			v |= (uint8_t)payload[i + 2];
		*o++ = tbl[(v >> 18) & 63];
		*o++ = tbl[(v >> 12) & 63];
		if (i + 1 < n)
			*o++ = tbl[(v >> 6) & 63];
		if (i + 2 < n)
			*o++ = tbl[v & 63];
	}
	strcpy(o, ".c2ln");
	return out;
}

Test(convert, jwt_times)
{
	int64_t exp, iat;
	char *t = make_jwt("{\"sub\":\"spiffe://x/\\\"exp\\\":1\",\"aud\":[\"a\",{\"exp\":2}],"
			   "\"exp\": 1700000300 ,\"iat\":1700000000}");
	cr_assert_eq(convert_jwt_times(t, &exp, &iat), 0);
	cr_assert_eq(exp, 1700000300);
	cr_assert_eq(iat, 1700000000);
	free(t);
	t = make_jwt("{\"sub\":\"x\"}");
	cr_assert_eq(convert_jwt_times(t, &exp, &iat), 0);
	cr_assert_eq(exp, 0);
	free(t);
	t = make_jwt("[1,2]");
	cr_assert_eq(convert_jwt_times(t, &exp, &iat), -EINVAL);
	free(t);
	t = make_jwt("{\"exp\":\"soon\"}");
	cr_assert_eq(convert_jwt_times(t, &exp, &iat), -EINVAL);
	free(t);
	cr_assert_eq(convert_jwt_times("a.b", &exp, &iat), -EINVAL);
	cr_assert_eq(convert_jwt_times("a.!!.c", &exp, &iat), -EINVAL);
	cr_assert_eq(convert_jwt_times("a.b.c.d", &exp, &iat), -EINVAL);
	/* strtod() reads these, but they are no times: a NaN passed the range check and was
	 * converted to int64_t, which is undefined (fuzz/corpus/agent/crash-jwt-exp-nan). */
	static const char *const odd[] = {"{\"exp\":nan}", "{\"exp\":NAN}", "{\"iat\":-nan}",
					  "{\"exp\":inf}", "{\"exp\":1e400}"};
	for (size_t i = 0; i < ELEMENTSOF(odd); i++) {
		t = make_jwt(odd[i]);
		cr_assert_eq(convert_jwt_times(t, &exp, &iat), -EINVAL, "%s", odd[i]);
		free(t);
	}
}

Test(convert, workload_jwt)
{
	JWTSVIDResponse m = JWTSVIDRESPONSE__INIT;
	JWTSVID s[2], *sp[2] = {&s[0], &s[1]};
	char *tok = make_jwt("{\"exp\":1700000300,\"iat\":1700000000}");
	for (int i = 0; i < 2; i++) {
		jwtsvid__init(&s[i]);
		s[i].spiffe_id = (char *)"spiffe://example.org/web";
		s[i].svid = tok;
	}
	s[1].hint = (char *)"second";
	m.n_svids = 2;
	m.svids = sp;
	FxBuf b = pack(&m.base);
	AgentJwt *j = NULL;
	size_t n = 0;
	cr_assert_eq(convert_workload_jwt(b.p, b.n, &j, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(j[0].token, tok);
	cr_assert_str_eq(j[0].spiffe_id, "spiffe://example.org/web");
	cr_assert_eq(j[0].expires_at, 1700000300);
	cr_assert_eq(j[0].issued_at, 1700000000);
	cr_assert_str_eq(j[1].hint, "second");
	agent_jwt_free(j, n);
	free(b.p);
	s[1].svid = (char *)"not-a-jwt";
	b = pack(&m.base);
	cr_assert_eq(convert_workload_jwt(b.p, b.n, &j, &n, why, sizeof(why)), -EINVAL);
	cr_assert_null(strstr(why, "not-a-jwt"));
	free(b.p);
	s[1].svid = (char *)"";
	b = pack(&m.base);
	cr_assert_eq(convert_workload_jwt(b.p, b.n, &j, &n, why, sizeof(why)), -EINVAL);
	free(b.p);
	free(tok);
}

Test(convert, delegated_jwt)
{
	Spire__Api__Agent__Delegatedidentity__V1__FetchJWTSVIDsResponse m =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__FETCH_JWTSVIDS_RESPONSE__INIT;
	Spire__Api__Types__JWTSVID s, *sp = &s;
	Spire__Api__Types__SPIFFEID id;
	spire__api__types__jwtsvid__init(&s);
	spire__api__types__spiffeid__init(&id);
	id.trust_domain = (char *)"example.org";
	id.path = (char *)"/web";
	s.id = &id;
	s.token = (char *)"aaa.bbb.ccc";
	s.expires_at = 20;
	s.issued_at = 10;
	m.n_svids = 1;
	m.svids = &sp;
	FxBuf b = pack(&m.base);
	AgentJwt *j = NULL;
	size_t n = 0;
	cr_assert_eq(convert_delegated_jwt(b.p, b.n, &j, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(j[0].spiffe_id, "spiffe://example.org/web");
	cr_assert_str_eq(j[0].token, "aaa.bbb.ccc");
	cr_assert_eq(j[0].expires_at, 20);
	cr_assert_eq(j[0].issued_at, 10);
	cr_assert_str_eq(j[0].hint, "");
	agent_jwt_free(j, n);
	free(b.p);
	s.id = NULL;
	b = pack(&m.base);
	cr_assert_eq(convert_delegated_jwt(b.p, b.n, &j, &n, why, sizeof(why)), -EINVAL);
	free(b.p);
	static const uint8_t junk[] = {0x0a, 0x10};
	cr_assert_eq(convert_delegated_jwt(junk, sizeof(junk), &j, &n, why, sizeof(why)), -EBADMSG);
}

/* ---- request checks ---- */

Test(convert, selectors)
{
	AgentSelector ok[] = {{"k8s", "pod-uid:1234"}, {"k8s", "ns:default"}};
	AgentSelector bad_type[] = {{"k8s:pod", "x"}};
	AgentSelector empty_type[] = {{"", "x"}};
	AgentSelector empty_value[] = {{"k8s", ""}};
	cr_assert_eq(convert_check_selectors(ok, 2, 0, why, sizeof(why)), 0);
	cr_assert_eq(convert_check_selectors(NULL, 0, 1234, why, sizeof(why)), 0);
	cr_assert_eq(convert_check_selectors(ok, 2, 1234, why, sizeof(why)), -EINVAL);
	cr_assert_eq(convert_check_selectors(NULL, 0, 0, why, sizeof(why)), -EINVAL);
	cr_assert_eq(convert_check_selectors(NULL, 0, -5, why, sizeof(why)), -EINVAL);
	cr_assert_eq(convert_check_selectors(bad_type, 1, 0, why, sizeof(why)), -EINVAL);
	cr_assert_eq(convert_check_selectors(empty_type, 1, 0, why, sizeof(why)), -EINVAL);
	cr_assert_eq(convert_check_selectors(empty_value, 1, 0, why, sizeof(why)), -EINVAL);
}

Test(convert, trust_domain_names)
{
	cr_assert(convert_trust_domain_is_valid("example.org"));
	cr_assert(convert_trust_domain_is_valid("a-b_c.9"));
	cr_assert_not(convert_trust_domain_is_valid(""));
	cr_assert_not(convert_trust_domain_is_valid("."));
	cr_assert_not(convert_trust_domain_is_valid(".."));
	cr_assert_not(convert_trust_domain_is_valid("a/b"));
	cr_assert_not(convert_trust_domain_is_valid("Example.org"));
	cr_assert_not(convert_trust_domain_is_valid("example.org:443"));
	char longname[300];
	memset(longname, 'a', 299);
	longname[299] = '\0';
	cr_assert_not(convert_trust_domain_is_valid(longname));
}
