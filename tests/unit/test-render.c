// SPDX-License-Identifier: Apache-2.0
/* Every layout's exact bytes: outputs are compared byte for byte with what OpenSSL's own PEM
 * writer makes from the input DER, and parsed back (keys must match their leaf). */
#include <ctype.h>
#include <inttypes.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <criterion/criterion.h>

#include "macro.h"
#include "pem.h"
#include "render.h"
#include "secret.h"
#include "store.h"
#include "testpki.h"

#define ID "spiffe://example.org/ns/default/sa/web"

static TestCa ca, fed, fed2;
static TestSvid svid, svid2;
static SvidStore *st;
static SvidSet *set;

static void load(void)
{
	SvidX509Input in[2] = {testpki_input(&svid, "default"), testpki_input(&svid2, "second")};
	const char *fw[] = {"zz.example", "fed.example"};
	SvidX509Update u = {.svids = in, .n_svids = 2, .federates_with = fw, .n_federates_with = 2};
	SvidBundleInput b[] = {{"example.org", ca.bundle, ca.bundle_len},
			       {"fed.example", fed.bundle, fed.bundle_len},
			       {"zz.example", fed2.bundle, fed2.bundle_len}};
	const char *jwks = "{\"keys\":[{\"kid\":\"a\"}]}\n";
	SvidBundleInput j = {"example.org", (const uint8_t *)jwks, strlen(jwks)};

	cr_assert_eq(svid_store_set_x509_bundles(st, "agent", b, 3, 1), 0);
	cr_assert_eq(svid_store_set_jwt_bundles(st, "agent", &j, 1, 1), 0);
	cr_assert_eq(svid_store_update_x509(st, "pods/a", "agent", &u, 1700000000), 0);
	svid_set_unref(set);
	cr_assert_eq(svid_store_get(st, "pods/a", &set), 0);
}

static void setup(void)
{
	testpki_ca(&ca, "example.org");
	testpki_ca(&fed, "fed.example");
	/* a two-certificate bundle: root and intermediate */
	testpki_ca(&fed2, "zz.example");
	testpki_append(&fed2.bundle, &fed2.bundle_len, fed2.inter);
	testpki_svid(&svid, &ca, ID, false, NULL);
	testpki_svid(&svid2, &ca, "spiffe://example.org/second", true, NULL);
	cr_assert_eq(svid_store_new(0, &st), 0);
	cr_assert_eq(svid_store_add(st, "pods/a", NULL), 0);
	load();
}

static void teardown(void)
{
	svid_set_unref(set);
	svid_store_unref(st);
	testpki_svid_done(&svid);
	testpki_svid_done(&svid2);
	testpki_ca_done(&ca);
	testpki_ca_done(&fed);
	testpki_ca_done(&fed2);
}

TestSuite(render, .init = setup, .fini = teardown);

/* OpenSSL's PEM writer output for the given blocks: the reference bytes. */
typedef struct Expect {
	BIO *bio;
} Expect;

static void expect_block(BIO *bio, const char *label, const uint8_t *der, size_t len)
{
	cr_assert_gt(PEM_write_bio(bio, label, "", der, (long)len), 0);
}

static void expect_certs(BIO *bio, const uint8_t *der, size_t len)
{
	size_t off = 0;
	while (off < len) {
		size_t l;
		cr_assert_eq(der_next(der + off, len - off, &l), 0);
		expect_block(bio, "CERTIFICATE", der + off, l);
		off += l;
	}
}

static void assert_bytes(const SvidBlob *b, BIO *bio)
{
	char *want;
	long n = BIO_get_mem_data(bio, &want);
	cr_assert_eq(svid_blob_size(b), (size_t)n, "size %zu, want %ld", svid_blob_size(b), n);
	cr_assert_eq(memcmp(svid_blob_data(b), want, (size_t)n), 0, "bytes differ");
}

static SvidBlob *render(size_t i, SvidFileKind k, const char *arg)
{
	SvidBlob *b = NULL;
	int r = svid_render(set, i, k, arg, &b);
	cr_assert_eq(r, 0, "render kind %d: %d", k, r);
	return b;
}

/* Parses PEM blocks back: returns their count, and the private key if one is there. */
static size_t parse_back(const SvidBlob *b, EVP_PKEY **ret_key, X509 **ret_leaf)
{
	BIO *bio = BIO_new_mem_buf(svid_blob_data(b), (int)svid_blob_size(b));
	char *name, *hdr;
	unsigned char *data;
	long len;
	size_t n = 0;

	while (PEM_read_bio(bio, &name, &hdr, &data, &len) == 1) {
		const unsigned char *p = data;
		if (streq(name, "PRIVATE KEY") && ret_key) {
			*ret_key = d2i_AutoPrivateKey(NULL, &p, len);
			cr_assert_not_null(*ret_key);
		} else if (streq(name, "CERTIFICATE") && ret_leaf && !*ret_leaf) {
			*ret_leaf = d2i_X509(NULL, &p, len);
			cr_assert_not_null(*ret_leaf);
		}
		OPENSSL_free(name);
		OPENSSL_free(hdr);
		OPENSSL_clear_free(data, (size_t)len);
		n++;
	}
	ERR_clear_error();
	BIO_free(bio);
	return n;
}

Test(render, credential_bundle_is_key_then_leaf_then_intermediates)
{
	SvidBlob *b = render(0, SVID_FILE_CREDENTIAL_BUNDLE, NULL);
	BIO *want = BIO_new(BIO_s_mem());
	expect_block(want, "PRIVATE KEY", svid.pkcs8, svid.pkcs8_len);
	expect_certs(want, svid.chain, svid.chain_len);
	assert_bytes(b, want);
	cr_assert(svid_blob_is_secret(b));
	cr_assert_eq(strncmp((const char *)svid_blob_data(b), "-----BEGIN PRIVATE KEY-----\n", 28),
		     0);
	EVP_PKEY *k = NULL;
	X509 *leaf = NULL;
	cr_assert_eq(parse_back(b, &k, &leaf), 3);
	cr_assert_eq(EVP_PKEY_eq(X509_get0_pubkey(leaf), k), 1, "key matches leaf");
	cr_assert_eq(X509_cmp(leaf, svid.leaf), 0);
	EVP_PKEY_free(k);
	X509_free(leaf);
	BIO_free(want);
	svid_blob_unref(b);
}

Test(render, cert_chain_is_leaf_and_intermediates_without_key)
{
	SvidBlob *b = render(0, SVID_FILE_CERT_CHAIN, NULL);
	BIO *want = BIO_new(BIO_s_mem());
	expect_certs(want, svid.chain, svid.chain_len);
	assert_bytes(b, want);
	cr_assert_not(svid_blob_is_secret(b));
	cr_assert_null(strstr((const char *)svid_blob_data(b), "PRIVATE"));
	/* round trip: PEM_read_bio_X509 of each block equals the input DER */
	BIO *in = BIO_new_mem_buf(svid_blob_data(b), (int)svid_blob_size(b));
	X509 *x1 = PEM_read_bio_X509(in, NULL, NULL, NULL),
	     *x2 = PEM_read_bio_X509(in, NULL, NULL, NULL);
	cr_assert(x1 && x2);
	cr_assert_eq(X509_cmp(x1, svid.leaf), 0);
	cr_assert_eq(X509_cmp(x2, ca.inter), 0);
	X509_free(x1);
	X509_free(x2);
	BIO_free(in);
	BIO_free(want);
	svid_blob_unref(b);
}

Test(render, key_is_pkcs8_private_key_block)
{
	SvidBlob *b = render(0, SVID_FILE_KEY, NULL);
	BIO *want = BIO_new(BIO_s_mem());
	expect_block(want, "PRIVATE KEY", svid.pkcs8, svid.pkcs8_len);
	assert_bytes(b, want);
	cr_assert(svid_blob_is_secret(b));
	BIO *in = BIO_new_mem_buf(svid_blob_data(b), (int)svid_blob_size(b));
	EVP_PKEY *k = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	cr_assert_not_null(k);
	cr_assert_eq(EVP_PKEY_eq(k, svid.key), 1);
	EVP_PKEY_free(k);
	BIO_free(in);
	BIO_free(want);
	svid_blob_unref(b);
}

Test(render, second_svid_renders_its_own_rsa_material)
{
	SvidBlob *b = render(1, SVID_FILE_CREDENTIAL_BUNDLE, NULL);
	BIO *want = BIO_new(BIO_s_mem());
	expect_block(want, "PRIVATE KEY", svid2.pkcs8, svid2.pkcs8_len);
	expect_certs(want, svid2.chain, svid2.chain_len);
	assert_bytes(b, want);
	EVP_PKEY *k = NULL;
	X509 *leaf = NULL;
	parse_back(b, &k, &leaf);
	cr_assert_eq(EVP_PKEY_get_base_id(k), EVP_PKEY_RSA);
	cr_assert_eq(EVP_PKEY_get_bits(k), 2048);
	cr_assert_eq(EVP_PKEY_eq(X509_get0_pubkey(leaf), k), 1);
	EVP_PKEY_free(k);
	X509_free(leaf);
	BIO_free(want);
	svid_blob_unref(b);
}

Test(render, missing_svid_index_and_bad_arguments)
{
	SvidBlob *b = NULL;
	cr_assert_eq(svid_render(set, 2, SVID_FILE_CERT_CHAIN, NULL, &b), -ENOENT);
	cr_assert_eq(svid_render(set, 2, SVID_FILE_KEY, NULL, &b), -ENOENT);
	cr_assert_eq(svid_render(set, 0, SVID_FILE_TRUST_BUNDLE, NULL, &b), -EINVAL);
	cr_assert_eq(svid_render(set, 0, SVID_FILE_JWT_BUNDLE, NULL, &b), -EINVAL);
	cr_assert_eq(svid_render(set, 0, _SVID_FILE_KIND_MAX, NULL, &b), -EINVAL);
	cr_assert_eq(svid_render(NULL, 0, SVID_FILE_KEY, NULL, &b), -EINVAL);
	cr_assert_null(b);
}

Test(render, pem_lines_are_64_columns_with_one_newline_each)
{
	SvidBlob *b = render(1, SVID_FILE_CREDENTIAL_BUNDLE, NULL);
	const char *p = (const char *)svid_blob_data(b), *end = p + svid_blob_size(b);
	size_t begins = 0, ends = 0;
	bool in_block = false, short_seen = false;
	cr_assert_eq(end[-1], '\n');
	cr_assert_neq(end[-2], '\n', "exactly one trailing newline");
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)(nl - p);
		cr_assert_not_null(nl);
		cr_assert_gt(len, 0, "no empty lines");
		if (strncmp(p, "-----BEGIN ", 11) == 0) {
			cr_assert_not(in_block);
			in_block = true;
			short_seen = false;
			begins++;
		} else if (strncmp(p, "-----END ", 9) == 0) {
			cr_assert(in_block);
			in_block = false;
			ends++;
		} else {
			cr_assert(in_block);
			cr_assert_leq(len, 64);
			cr_assert_not(short_seen, "only the last base64 line is short");
			if (len < 64)
				short_seen = true;
			for (size_t i = 0; i < len; i++)
				cr_assert(isalnum((unsigned char)p[i]) || p[i] == '+' ||
					  p[i] == '/' || p[i] == '=');
		}
		p = nl + 1;
	}
	cr_assert_eq(begins, 3);
	cr_assert_eq(ends, 3);
	svid_blob_unref(b);
}

Test(render, trust_bundle_per_trust_domain_never_merged)
{
	SvidBlob *own = render(0, SVID_FILE_TRUST_BUNDLE, "example.org");
	SvidBlob *f = render(0, SVID_FILE_TRUST_BUNDLE, "fed.example");
	SvidBlob *z = render(0, SVID_FILE_TRUST_BUNDLE, "zz.example");
	BIO *w1 = BIO_new(BIO_s_mem()), *w2 = BIO_new(BIO_s_mem()), *w3 = BIO_new(BIO_s_mem());
	expect_certs(w1, ca.bundle, ca.bundle_len);
	expect_certs(w2, fed.bundle, fed.bundle_len);
	expect_certs(w3, fed2.bundle, fed2.bundle_len);
	assert_bytes(own, w1);
	assert_bytes(f, w2);
	assert_bytes(z, w3);
	cr_assert_eq(parse_back(own, NULL, NULL), 1);
	cr_assert_eq(parse_back(z, NULL, NULL), 2, "all certificates of a trust domain");
	cr_assert_not(svid_blob_is_secret(own));
	SvidBlob *none = NULL;
	cr_assert_eq(svid_render(set, 0, SVID_FILE_TRUST_BUNDLE, "other.example", &none), -ENOENT);
	BIO_free(w1);
	BIO_free(w2);
	BIO_free(w3);
	svid_blob_unref(own);
	svid_blob_unref(f);
	svid_blob_unref(z);
}

Test(render, bundle_is_the_svids_own_trust_domain)
{
	SvidBlob *b = render(0, SVID_FILE_BUNDLE, NULL);
	BIO *w = BIO_new(BIO_s_mem());
	expect_certs(w, ca.bundle, ca.bundle_len);
	assert_bytes(b, w);
	BIO_free(w);
	svid_blob_unref(b);
}

Test(render, bundle_federated_is_own_then_federated_sorted)
{
	SvidBlob *b = render(0, SVID_FILE_BUNDLE_FEDERATED, NULL);
	BIO *w = BIO_new(BIO_s_mem());
	expect_certs(w, ca.bundle, ca.bundle_len);
	expect_certs(w, fed.bundle, fed.bundle_len);
	expect_certs(w, fed2.bundle, fed2.bundle_len);
	assert_bytes(b, w);
	cr_assert_eq(parse_back(b, NULL, NULL), 4);
	BIO_free(w);
	svid_blob_unref(b);
}

Test(render, bundles_absent_until_the_agent_sends_them)
{
	SvidBlob *b = NULL;
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent", NULL, 0, 2), 0);
	svid_set_unref(set);
	cr_assert_eq(svid_store_get(st, "pods/a", &set), 0);
	cr_assert_eq(svid_render(set, 0, SVID_FILE_BUNDLE, NULL, &b), -ENOENT);
	cr_assert_eq(svid_render(set, 0, SVID_FILE_BUNDLE_FEDERATED, NULL, &b), -ENOENT);
	cr_assert_eq(svid_render(set, 0, SVID_FILE_TRUST_BUNDLE, "example.org", &b), -ENOENT);
	b = render(0, SVID_FILE_CERT_CHAIN, NULL); /* SVIDs do not need the bundle */
	svid_blob_unref(b);
}

Test(render, jwt_bundle_is_the_jwks_as_sent)
{
	SvidBlob *b = render(0, SVID_FILE_JWT_BUNDLE, "example.org");
	cr_assert_eq(svid_blob_size(b), strlen("{\"keys\":[{\"kid\":\"a\"}]}\n"));
	cr_assert_eq(memcmp(svid_blob_data(b), "{\"keys\":[{\"kid\":\"a\"}]}\n", svid_blob_size(b)),
		     0);
	cr_assert_not(svid_blob_is_secret(b));
	svid_blob_unref(b);
	cr_assert_eq(svid_render(set, 0, SVID_FILE_JWT_BUNDLE, "fed.example", &b), -ENOENT);
}

Test(render, spiffe_helper_and_kubernetes_layouts_share_kinds)
{
	/* spiffe-helper svid.pem == k8s tls.crt == CERT_CHAIN; svid_key.pem == tls.key == KEY;
	 * svid_bundle.pem == ca.crt == BUNDLE. The three renders are independent pieces. */
	SvidBlob *crt = render(0, SVID_FILE_CERT_CHAIN, NULL),
		 *key = render(0, SVID_FILE_KEY, NULL);
	SvidBlob *cred = render(0, SVID_FILE_CREDENTIAL_BUNDLE, NULL);
	cr_assert_eq(svid_blob_size(cred), svid_blob_size(key) + svid_blob_size(crt));
	cr_assert_eq(memcmp(svid_blob_data(cred), svid_blob_data(key), svid_blob_size(key)), 0);
	cr_assert_eq(memcmp(svid_blob_data(cred) + svid_blob_size(key), svid_blob_data(crt),
			    svid_blob_size(crt)),
		     0);
	svid_blob_unref(crt);
	svid_blob_unref(key);
	svid_blob_unref(cred);
}

static int wipes;
static size_t want_len;
static bool all_zero = true;
static void hook(const void *p, size_t n, void *ud)
{
	const uint8_t *b = p;
	if (n != want_len)
		return;
	wipes++;
	for (size_t i = 0; i < n; i++)
		all_zero = all_zero && !b[i];
}

Test(render, rendered_key_blobs_are_wiped_on_release)
{
	SvidBlob *k = render(0, SVID_FILE_KEY, NULL),
		 *c = render(0, SVID_FILE_CREDENTIAL_BUNDLE, NULL);
	secret_set_free_hook(hook, NULL);
	want_len = svid_blob_size(k);
	svid_blob_unref(k);
	cr_assert_eq(wipes, 1);
	want_len = svid_blob_size(c);
	svid_blob_unref(c);
	cr_assert_eq(wipes, 2);
	cr_assert(all_zero);
	secret_set_free_hook(NULL, NULL);
}

Test(render, pem_encoder_edge_lengths_match_openssl)
{
	uint8_t der[200];
	for (size_t i = 0; i < sizeof der; i++)
		der[i] = (uint8_t)(i * 37 + 11);
	size_t lens[] = {1, 2, 3, 47, 48, 49, 95, 96, 97, 200};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		uint8_t out[400];
		BIO *w = BIO_new(BIO_s_mem());
		char *want;
		expect_block(w, "TEST", der, lens[i]);
		long n = BIO_get_mem_data(w, &want);
		cr_assert_eq(pem_encoded_len("TEST", lens[i]), (size_t)n, "len %zu", lens[i]);
		cr_assert_eq(pem_write(out, "TEST", der, lens[i]), out + n);
		cr_assert_eq(memcmp(out, want, (size_t)n), 0, "len %zu", lens[i]);
		BIO_free(w);
	}
}

Test(render, der_framing)
{
	size_t n;
	const uint8_t two[] = {0x30, 0x01, 0x00, 0x30, 0x00};
	const uint8_t longform[] = {0x30, 0x81, 0x01, 0x05};
	const uint8_t indefinite[] = {0x30, 0x80, 0x00, 0x00};
	const uint8_t notseq[] = {0x31, 0x00};
	const uint8_t overrun[] = {0x30, 0x05, 0x00};
	cr_assert_eq(der_count(two, sizeof two, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(der_count(longform, sizeof longform, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(der_count(indefinite, sizeof indefinite, &n), -EIO);
	cr_assert_eq(der_count(notseq, sizeof notseq, &n), -EIO);
	cr_assert_eq(der_count(overrun, sizeof overrun, &n), -EIO);
	cr_assert_eq(der_count(two, 0, &n), -EINVAL);
	cr_assert_eq(der_count(two, 4, &n), -EIO, "trailing partial SEQUENCE");
}

/* ---- status.json ---- */

/* A strict RFC 8259 validator: enough to prove the output is JSON. */
static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *json_value(const char *p);

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				p += 4;
			} else if (!strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *json_value(const char *p)
{
	p = json_ws(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		bool obj = *p == '{';
		p = json_ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				p = json_string(json_ws(p));
				if (!p)
					return NULL;
				p = json_ws(p);
				if (*p++ != ':')
					return NULL;
			}
			p = json_value(p);
			if (!p)
				return NULL;
			p = json_ws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	if (*p == '"')
		return json_string(p);
	if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (*p == '-' || isdigit((unsigned char)*p)) {
		p++;
		while (isdigit((unsigned char)*p))
			p++;
		return p;
	}
	return NULL;
}

static void assert_json(const char *s)
{
	const char *end = json_value(s);
	cr_assert_not_null(end, "not JSON:\n%s", s);
	cr_assert_eq(*json_ws(end), 0, "trailing bytes after JSON");
}

static char *status(const SvidStatusExtra *x)
{
	SvidBlob *b = NULL;
	cr_assert_eq(svid_render_status(set, x, &b), 0);
	cr_assert_not(svid_blob_is_secret(b));
	char *s = strndup((const char *)svid_blob_data(b), svid_blob_size(b));
	cr_assert_eq(strlen(s), svid_blob_size(b), "no NUL inside");
	svid_blob_unref(b);
	assert_json(s);
	return s;
}

#define HAS(s, sub) cr_assert_not_null(strstr((s), (sub)), "missing %s in\n%s", (sub), (s))

Test(render, status_json_reports_ids_serials_validity_and_bundles)
{
	SvidStatusExtra x = {.agent = "agent-1",
			     .stream_state = "connected",
			     .last_message_at = 1700000100,
			     .now = 1700000130};
	char *s = status(&x);
	char buf[200];
	HAS(s, "\"name\": \"pods/a\"");
	snprintf(buf, sizeof buf, "\"generation\": %" PRIu64, svid_set_generation(set));
	HAS(s, buf);
	HAS(s, "\"spiffe_id\": \"" ID "\"");
	HAS(s, "\"spiffe_id\": \"spiffe://example.org/second\"");
	HAS(s, "\"hint\": \"default\"");
	HAS(s, "\"hint\": \"second\"");
	snprintf(buf, sizeof buf, "\"serial\": \"%s\"", svid_set_serial(set, 0));
	HAS(s, buf);
	HAS(s, "\"updated_at\": \"2023-11-14T22:13:20Z\", \"updated_at_unix\": 1700000000");
	HAS(s, "\"federates_with\": [\"fed.example\", \"zz.example\"]");
	HAS(s, "\"x509_bundles\": [\"example.org\", \"fed.example\", \"zz.example\"]");
	HAS(s, "\"jwt_bundles\": [\"example.org\"]");
	HAS(s, "\"expired\": false");
	HAS(s, "\"chain_length\": 2");
	HAS(s, "\"last_rejected\": null");
	HAS(s, "\"agent\": \"agent-1\"");
	HAS(s, "\"stream_state\": \"connected\"");
	HAS(s, "\"last_message_at_unix\": 1700000100");
	HAS(s, "\"stale_seconds\": 30");
	HAS(s, "\"source\": \"agent\"");
	free(s);
}

Test(render, status_json_times_are_rfc3339_utc)
{
	TestSvid e;
	TestCertOpts o = testpki_opts_leaf(ID);
	o.not_before = 1893553445; /* 2030-01-02T03:04:05Z */
	o.not_after = 1893553445 + 86400;
	testpki_svid(&e, &ca, ID, false, &o);
	SvidX509Input in = testpki_input(&e, NULL);
	SvidX509Update u = {.svids = &in, .n_svids = 1};
	cr_assert_eq(svid_store_update_x509(st, "pods/a", "agent", &u, 1700000000), 0);
	svid_set_unref(set);
	cr_assert_eq(svid_store_get(st, "pods/a", &set), 0);
	SvidStatusExtra x = {.now = 1893553445 + 86400};
	char *s = status(&x);
	HAS(s, "\"not_before\": \"2030-01-02T03:04:05Z\", \"not_before_unix\": 1893553445");
	HAS(s, "\"not_after\": \"2030-01-03T03:04:05Z\", \"not_after_unix\": 1893639845");
	HAS(s, "\"expired\": true");
	HAS(s, "\"stale_seconds\": null");
	HAS(s, "\"agent\": null");
	free(s);
	testpki_svid_done(&e);
}

Test(render, status_json_shows_the_last_rejection)
{
	TestSvid bad;
	TestCertOpts o = testpki_opts_leaf(ID);
	o.key_usage = "critical,digitalSignature,keyCertSign";
	testpki_svid(&bad, &ca, ID, false, &o);
	SvidX509Input in = testpki_input(&bad, NULL);
	SvidX509Update u = {.svids = &in, .n_svids = 1};
	cr_assert_eq(svid_store_update_x509(st, "pods/a", "agent", &u, 1700000500), -EINVAL);
	svid_set_unref(set);
	cr_assert_eq(svid_store_get(st, "pods/a", &set), 0);
	char *s = status(NULL);
	HAS(s, "\"last_rejected\": {\"at\": \"2023-11-14T22:21:40Z\", \"at_unix\": 1700000500, "
	       "\"reason\": \"svid 0 (" ID "): keyUsage has keyCertSign\"}");
	HAS(s, "\"spiffe_id\": \"" ID "\""); /* last good SVIDs still reported */
	free(s);
	testpki_svid_done(&bad);
}

Test(render, status_json_escapes_agent_text)
{
	SvidX509Input in = testpki_input(&svid, "q\"uo\\te\n\ttab\x01\x7f");
	SvidX509Update u = {.svids = &in, .n_svids = 1};
	cr_assert_eq(svid_store_update_x509(st, "pods/a", "agent", &u, 1700000000), 0);
	svid_set_unref(set);
	cr_assert_eq(svid_store_get(st, "pods/a", &set), 0);
	SvidStatusExtra x = {.stream_state = "failed: \"unavailable\"\n"};
	char *s = status(&x);
	HAS(s, "\"hint\": \"q\\\"uo\\\\te\\n\\ttab\\u0001\\u007f\"");
	HAS(s, "\"stream_state\": \"failed: \\\"unavailable\\\"\\n\"");
	free(s);
}

Test(render, status_json_never_holds_key_material)
{
	char *s = status(NULL);
	cr_assert_null(strstr(s, "PRIVATE"));
	cr_assert_null(strstr(s, "BEGIN"));
	/* no 8-byte window of either key's DER, raw or base64 */
	unsigned char b64[64];
	for (size_t off = 0; off + 12 <= svid.pkcs8_len; off += 12) {
		EVP_EncodeBlock(b64, svid.pkcs8 + off, 12);
		cr_assert_null(strstr(s, (char *)b64));
		cr_assert_null(memmem(s, strlen(s), svid.pkcs8 + off, 8));
	}
	free(s);
}

Test(render, status_json_for_a_workload_without_svids)
{
	cr_assert_eq(svid_store_add(st, "pods/empty", NULL), 0);
	svid_set_unref(set);
	cr_assert_eq(svid_store_get(st, "pods/empty", &set), 0);
	char *s = status(NULL);
	HAS(s, "\"svids\": []");
	HAS(s, "\"source\": null");
	HAS(s, "\"updated_at\": null");
	HAS(s, "\"x509_bundles\": []");
	free(s);
	SvidBlob *b = NULL;
	cr_assert_eq(svid_render(set, 0, SVID_FILE_CREDENTIAL_BUNDLE, NULL, &b), -ENOENT);
}
