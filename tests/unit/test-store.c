// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <ctype.h>
#include <string.h>
#include <time.h>
#include <openssl/x509v3.h>
#include <criterion/criterion.h>

#include "render.h"
#include "secret.h"
#include "store.h"
#include "testpki.h"

#define ID "spiffe://example.org/ns/default/sa/web"
#define NOW ((int64_t)time(NULL))

static TestCa ca, fed;
static SvidStore *st;

static void setup(void)
{
	testpki_ca(&ca, "example.org");
	testpki_ca(&fed, "fed.example");
	cr_assert_eq(svid_store_new(1000, &st), 0);
	cr_assert_eq(svid_store_add(st, "pods/a", NULL), 0);
}

static void teardown(void)
{
	svid_store_unref(st);
	testpki_ca_done(&ca);
	testpki_ca_done(&fed);
}

TestSuite(store, .init = setup, .fini = teardown);

static int update1(const char *name, const char *source, const SvidX509Input *in, size_t n)
{
	SvidX509Update u = {.svids = in, .n_svids = n};
	return svid_store_update_x509(st, name, source, &u, 1700000000);
}

static SvidSet *get(const char *name)
{
	SvidSet *s = NULL;
	cr_assert_eq(svid_store_get(st, name, &s), 0);
	return s;
}

/* Updates pods/a with one SVID whose leaf uses options o; returns the store's answer. */
static int try_leaf(const TestCertOpts *o, bool rsa)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, rsa, o);
	SvidX509Input in = testpki_input(&s, NULL);
	int r = update1("pods/a", "agent", &in, 1);
	testpki_svid_done(&s);
	return r;
}

static void assert_rejected(int r, int want, const char *reason)
{
	SvidSet *s = get("pods/a");
	cr_assert_eq(r, want, "got %d (%s)", r,
		     svid_set_last_error(s) ? svid_set_last_error(s) : "");
	cr_assert_not_null(svid_set_last_error(s));
	cr_assert_str_eq(svid_set_last_error(s), reason);
	cr_assert_eq(svid_set_last_error_at(s), 1700000000);
	cr_assert_eq(svid_set_n_svids(s), 0, "nothing accepted");
	svid_set_unref(s);
}

Test(store, accepts_valid_ec_svid_and_keeps_exact_bytes)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, "web");
	cr_assert_eq(update1("pods/a", "agent", &in, 1), 0);
	SvidSet *set = get("pods/a");
	size_t n_certs;
	const SvidBlob *chain = svid_set_chain_der(set, 0, &n_certs);
	const SvidBlob *key = svid_set_key_der(set, 0);

	cr_assert_eq(svid_set_n_svids(set), 1);
	cr_assert_str_eq(svid_set_spiffe_id(set, 0), ID);
	cr_assert_str_eq(svid_set_trust_domain(set, 0), "example.org");
	cr_assert_str_eq(svid_set_hint(set, 0), "web");
	cr_assert_str_eq(svid_set_source(set), "agent");
	cr_assert_eq(svid_set_updated_at(set), 1700000000);
	cr_assert_null(svid_set_last_error(set));
	cr_assert_eq(n_certs, 2);
	cr_assert_eq(svid_blob_size(chain), s.chain_len);
	cr_assert_eq(memcmp(svid_blob_data(chain), s.chain, s.chain_len), 0);
	cr_assert_eq(svid_blob_size(key), s.pkcs8_len);
	cr_assert_eq(memcmp(svid_blob_data(key), s.pkcs8, s.pkcs8_len), 0);
	cr_assert(svid_blob_is_secret(key));
	cr_assert_not(svid_blob_is_secret(chain));

	/* serial and validity as OpenSSL reads them from the leaf */
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(s.leaf), NULL);
	char *hex = BN_bn2hex(bn);
	for (char *c = hex; *c; c++)
		*c = (char)tolower(*c);
	cr_assert_str_eq(svid_set_serial(set, 0), hex);
	OPENSSL_free(hex);
	BN_free(bn);
	int day, sec;
	cr_assert(ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(s.leaf)));
	int64_t na = NOW + (int64_t)day * 86400 + sec;
	cr_assert(svid_set_not_after(set, 0) >= na - 2 && svid_set_not_after(set, 0) <= na + 2);
	cr_assert(svid_set_not_before(set, 0) < NOW);
	cr_assert_not(svid_set_expired(set, 0, NOW));
	svid_set_unref(set);
	testpki_svid_done(&s);
}

Test(store, accepts_rsa2048_svid)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, true, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	cr_assert_eq(update1("pods/a", "agent", &in, 1), 0);
	SvidSet *set = get("pods/a");
	cr_assert_eq(svid_blob_size(svid_set_key_der(set, 0)), s.pkcs8_len);
	cr_assert_eq(memcmp(svid_blob_data(svid_set_key_der(set, 0)), s.pkcs8, s.pkcs8_len), 0);
	cr_assert_str_eq(svid_set_hint(set, 0), "", "no hint reads as empty");
	svid_set_unref(set);
	testpki_svid_done(&s);
}

Test(store, accepts_leaf_directly_under_root)
{
	TestSvid s = {0};
	TestCertOpts o = testpki_opts_leaf(ID);
	s.key = testpki_key_ec();
	s.leaf = testpki_cert(s.key, ca.root, ca.root_key, &o);
	testpki_append(&s.chain, &s.chain_len, s.leaf);
	s.pkcs8 = testpki_pkcs8(s.key, &s.pkcs8_len);
	s.spiffe_id = strdup(ID);
	SvidX509Input in = testpki_input(&s, NULL);
	cr_assert_eq(update1("pods/a", "agent", &in, 1), 0);
	SvidSet *set = get("pods/a");
	size_t n;
	svid_set_chain_der(set, 0, &n);
	cr_assert_eq(n, 1);
	svid_set_unref(set);
	testpki_svid_done(&s);
}

Test(store, rejects_leaf_without_san)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.san = NULL;
	assert_rejected(try_leaf(&o, false), -EINVAL,
			"svid 0 (" ID "): leaf has no subjectAltName (no URI SAN)");
}

Test(store, rejects_leaf_with_only_dns_san)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.san = "DNS:web.example.org";
	assert_rejected(try_leaf(&o, false), -EINVAL,
			"svid 0 (" ID "): leaf has 0 URI SANs, exactly one is required");
}

Test(store, rejects_two_uri_sans)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.san = "URI:" ID ",URI:spiffe://example.org/other";
	assert_rejected(try_leaf(&o, false), -EINVAL,
			"svid 0 (" ID "): leaf has 2 URI SANs, exactly one is required");
}

Test(store, accepts_extra_dns_san_next_to_uri)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.san = "DNS:web.example.org,URI:" ID;
	cr_assert_eq(try_leaf(&o, false), 0);
}

Test(store, rejects_non_spiffe_uri)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.san = "URI:https://example.org/web";
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, &o);
	SvidX509Input in = testpki_input(&s, NULL);
	in.spiffe_id = NULL; /* Workload-API style input without an ID: the reason says "?" */
	int r = update1("pods/a", "agent", &in, 1);
	assert_rejected(r, -EINVAL, "svid 0 (?): SPIFFE ID scheme is not spiffe://");
	testpki_svid_done(&s);
}

Test(store, rejects_root_spiffe_id_on_leaf)
{
	TestCertOpts o = testpki_opts_leaf("spiffe://example.org");
	TestSvid s;
	testpki_svid(&s, &ca, "spiffe://example.org", false, &o);
	SvidX509Input in = testpki_input(&s, NULL);
	assert_rejected(update1("pods/a", "agent", &in, 1), -EINVAL,
			"svid 0 (spiffe://example.org): SPIFFE ID has no path (a trust domain ID "
			"cannot be an SVID)");
	testpki_svid_done(&s);
}

Test(store, rejects_invalid_spiffe_id_syntax_in_san)
{
	TestCertOpts o = testpki_opts_leaf("spiffe://example.org/a/../b");
	assert_rejected(try_leaf(&o, false), -EINVAL,
			"svid 0 (" ID "): SPIFFE ID path has a '.' or '..' segment");
}

Test(store, rejects_leaf_that_is_a_ca)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.ca = 1;
	assert_rejected(try_leaf(&o, false), -EINVAL,
			"svid 0 (" ID "): leaf is a CA (basicConstraints cA=true)");
}

Test(store, accepts_leaf_without_basic_constraints)
{
	/* cA defaults to false when the extension is absent (as go-spiffe reads it). */
	TestCertOpts o = testpki_opts_leaf(ID);
	o.ca = -1;
	cr_assert_eq(try_leaf(&o, false), 0);
}

Test(store, rejects_leaf_without_key_usage)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.key_usage = NULL;
	assert_rejected(try_leaf(&o, false), -EINVAL, "svid 0 (" ID "): leaf has no keyUsage");
}

Test(store, rejects_key_usage_without_digital_signature)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.key_usage = "critical,keyEncipherment";
	assert_rejected(try_leaf(&o, false), -EINVAL,
			"svid 0 (" ID "): keyUsage lacks digitalSignature");
}

Test(store, rejects_key_usage_with_key_cert_sign)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.key_usage = "critical,digitalSignature,keyCertSign";
	assert_rejected(try_leaf(&o, false), -EINVAL, "svid 0 (" ID "): keyUsage has keyCertSign");
}

Test(store, rejects_key_usage_with_crl_sign)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.key_usage = "critical,digitalSignature,cRLSign";
	assert_rejected(try_leaf(&o, false), -EINVAL, "svid 0 (" ID "): keyUsage has cRLSign");
}

Test(store, rejects_empty_subject_with_non_critical_san)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.empty_subject = true;
	assert_rejected(try_leaf(&o, false), -EINVAL,
			"svid 0 (" ID
			"): leaf has an empty subject and a non-critical subjectAltName");
	o.san_critical = true;
	cr_assert_eq(try_leaf(&o, false), 0, "critical SAN makes an empty subject fine");
}

Test(store, rejects_intermediate_that_is_not_a_ca)
{
	TestSvid s = {0};
	TestCertOpts io = testpki_opts_ca("example.org"), lo = testpki_opts_leaf(ID);
	EVP_PKEY *ik = testpki_key_ec();
	io.ca = 0;
	io.key_usage = "critical,digitalSignature";
	X509 *inter = testpki_cert(ik, ca.root, ca.root_key, &io);
	s.key = testpki_key_ec();
	s.leaf = testpki_cert(s.key, inter, ik, &lo);
	testpki_append(&s.chain, &s.chain_len, s.leaf);
	testpki_append(&s.chain, &s.chain_len, inter);
	s.pkcs8 = testpki_pkcs8(s.key, &s.pkcs8_len);
	s.spiffe_id = strdup(ID);
	SvidX509Input in = testpki_input(&s, NULL);
	assert_rejected(update1("pods/a", "agent", &in, 1), -EINVAL,
			"svid 0 (" ID "): chain certificate 1 is not a CA");
	X509_free(inter);
	EVP_PKEY_free(ik);
	testpki_svid_done(&s);
}

Test(store, rejects_ca_in_chain_without_key_cert_sign)
{
	TestSvid s = {0};
	TestCertOpts io = testpki_opts_ca("example.org"), lo = testpki_opts_leaf(ID);
	EVP_PKEY *ik = testpki_key_ec();
	io.key_usage = "critical,digitalSignature,cRLSign";
	X509 *inter = testpki_cert(ik, ca.root, ca.root_key, &io);
	s.key = testpki_key_ec();
	s.leaf = testpki_cert(s.key, inter, ik, &lo);
	testpki_append(&s.chain, &s.chain_len, s.leaf);
	testpki_append(&s.chain, &s.chain_len, inter);
	s.pkcs8 = testpki_pkcs8(s.key, &s.pkcs8_len);
	s.spiffe_id = strdup(ID);
	SvidX509Input in = testpki_input(&s, NULL);
	assert_rejected(update1("pods/a", "agent", &in, 1), -EINVAL,
			"svid 0 (" ID "): chain certificate 1 keyUsage lacks keyCertSign");
	X509_free(inter);
	EVP_PKEY_free(ik);
	testpki_svid_done(&s);
}

Test(store, rejects_mismatched_key_same_type)
{
	TestSvid s, other;
	testpki_svid(&s, &ca, ID, false, NULL);
	testpki_svid(&other, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	in.key = other.pkcs8;
	in.key_len = other.pkcs8_len;
	assert_rejected(update1("pods/a", "agent", &in, 1), -EINVAL,
			"svid 0 (" ID "): private key does not match the leaf");
	testpki_svid_done(&s);
	testpki_svid_done(&other);
}

Test(store, rejects_mismatched_key_other_type)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	EVP_PKEY *rsa = testpki_key_rsa();
	size_t n;
	uint8_t *der = testpki_pkcs8(rsa, &n);
	SvidX509Input in = testpki_input(&s, NULL);
	in.key = der;
	in.key_len = n;
	assert_rejected(update1("pods/a", "agent", &in, 1), -EINVAL,
			"svid 0 (" ID "): private key does not match the leaf");
	free(der);
	EVP_PKEY_free(rsa);
	testpki_svid_done(&s);
}

Test(store, rejects_key_that_is_not_pkcs8)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	unsigned char *trad = NULL;
	int n = i2d_PrivateKey(s.key, &trad); /* SEC1 ECPrivateKey, not PKCS#8 */
	cr_assert_gt(n, 0);
	SvidX509Input in = testpki_input(&s, NULL);
	in.key = trad;
	in.key_len = (size_t)n;
	assert_rejected(update1("pods/a", "agent", &in, 1), -EIO,
			"svid 0 (" ID "): private key is not one PKCS#8 DER structure");
	in.key = NULL;
	in.key_len = 0;
	assert_rejected(update1("pods/a", "agent", &in, 1), -EINVAL,
			"svid 0 (" ID "): no private key");
	OPENSSL_free(trad);
	testpki_svid_done(&s);
}

Test(store, rejects_trailing_garbage_after_key)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	uint8_t *k = malloc(s.pkcs8_len + 1);
	memcpy(k, s.pkcs8, s.pkcs8_len);
	k[s.pkcs8_len] = 0;
	SvidX509Input in = testpki_input(&s, NULL);
	in.key = k;
	in.key_len = s.pkcs8_len + 1;
	assert_rejected(update1("pods/a", "agent", &in, 1), -EIO,
			"svid 0 (" ID "): private key is not one PKCS#8 DER structure");
	free(k);
	testpki_svid_done(&s);
}

Test(store, rejects_trailing_garbage_in_chain)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	uint8_t *c = malloc(s.chain_len + 3);
	memcpy(c, s.chain, s.chain_len);
	memcpy(c + s.chain_len, "\x30\x05\x01", 3);
	SvidX509Input in = testpki_input(&s, NULL);
	in.chain = c;
	in.chain_len = s.chain_len + 3;
	char want[200];
	snprintf(want, sizeof want,
		 "svid 0 (" ID "): chain: certificate 2 at byte %zu is not a complete DER SEQUENCE",
		 s.chain_len);
	assert_rejected(update1("pods/a", "agent", &in, 1), -EIO, want);
	free(c);
	testpki_svid_done(&s);
}

Test(store, rejects_truncated_chain)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	size_t leaf_len;
	uint8_t *leaf = testpki_der(s.leaf, &leaf_len);
	SvidX509Input in = testpki_input(&s, NULL);
	char want[200];
	in.chain_len = s.chain_len - 10;
	snprintf(want, sizeof want,
		 "svid 0 (" ID "): chain: certificate 1 at byte %zu is not a complete DER SEQUENCE",
		 leaf_len);
	assert_rejected(update1("pods/a", "agent", &in, 1), -EIO, want);
	in.chain_len = 0;
	assert_rejected(update1("pods/a", "agent", &in, 1), -EINVAL,
			"svid 0 (" ID "): chain: no certificate");
	free(leaf);
	testpki_svid_done(&s);
}

Test(store, rejects_corrupt_certificate)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	uint8_t *c = malloc(s.chain_len);
	memcpy(c, s.chain, s.chain_len);
	cr_assert_eq(c[4], 0x30, "tbsCertificate SEQUENCE");
	c[4] = 0x31; /* framing intact, content not a certificate */
	in.chain = c;
	assert_rejected(update1("pods/a", "agent", &in, 1), -EIO,
			"svid 0 (" ID "): chain: certificate 0 does not parse");
	free(c);
	testpki_svid_done(&s);
}

Test(store, rejects_spiffe_id_that_differs_from_leaf)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	in.spiffe_id = "spiffe://example.org/other";
	assert_rejected(update1("pods/a", "agent", &in, 1), -EINVAL,
			"svid 0 (spiffe://example.org/other): agent sent SPIFFE ID "
			"spiffe://example.org/other but the leaf is " ID);
	testpki_svid_done(&s);
}

Test(store, rejection_reason_is_one_printable_line)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	in.spiffe_id = "spiffe://example.org/x\n\"evil\"";
	cr_assert_eq(update1("pods/a", "agent", &in, 1), -EINVAL);
	SvidSet *set = get("pods/a");
	const char *e = svid_set_last_error(set);
	cr_assert(strncmp(e, "svid 0 (spiffe://example.org/x?\"evil\"): ", 40) == 0, "%s", e);
	svid_set_unref(set);
	testpki_svid_done(&s);
}

Test(store, expired_svid_is_accepted_and_flagged)
{
	TestCertOpts o = testpki_opts_leaf(ID);
	o.not_before = 1600000000;
	o.not_after = 1600003600;
	cr_assert_eq(try_leaf(&o, false), 0);
	SvidSet *set = get("pods/a");
	cr_assert_eq(svid_set_not_before(set, 0), 1600000000);
	cr_assert_eq(svid_set_not_after(set, 0), 1600003600);
	cr_assert(svid_set_expired(set, 0, NOW));
	cr_assert(svid_set_expired(set, 0, 1600003600), "expired at notAfter");
	cr_assert_not(svid_set_expired(set, 0, 1600003599));
	svid_set_unref(set);
}

Test(store, rejected_update_keeps_last_good_svids)
{
	TestSvid good, bad;
	TestCertOpts o = testpki_opts_leaf(ID);
	o.key_usage = "critical,digitalSignature,keyCertSign";
	testpki_svid(&good, &ca, ID, false, NULL);
	testpki_svid(&bad, &ca, ID, false, &o);
	SvidX509Input gi = testpki_input(&good, NULL), bi = testpki_input(&bad, NULL);

	cr_assert_eq(update1("pods/a", "agent", &gi, 1), 0);
	SvidSet *before = get("pods/a");
	cr_assert_eq(update1("pods/a", "agent", &bi, 1), -EINVAL);
	SvidSet *after = get("pods/a");
	cr_assert_eq(svid_set_generation(after), svid_set_generation(before) + 1,
		     "a rejection is a change (status.json shows it)");
	cr_assert_eq(svid_set_x509_generation(after), svid_set_x509_generation(before));
	cr_assert_eq(svid_set_n_svids(after), 1);
	cr_assert(svid_blob_equal(svid_set_key_der(after, 0), svid_set_key_der(before, 0)));
	cr_assert_str_eq(svid_set_last_error(after), "svid 0 (" ID "): keyUsage has keyCertSign");
	cr_assert_null(svid_set_last_error(before), "old snapshot unchanged");
	cr_assert_eq(svid_set_updated_at(after), 1700000000);
	svid_set_unref(before);
	svid_set_unref(after);
	testpki_svid_done(&good);
	testpki_svid_done(&bad);
}

Test(store, one_bad_svid_rejects_the_whole_update)
{
	TestSvid a, b;
	TestCertOpts o = testpki_opts_leaf("spiffe://example.org/b");
	o.ca = 1;
	testpki_svid(&a, &ca, ID, false, NULL);
	testpki_svid(&b, &ca, "spiffe://example.org/b", false, &o);
	SvidX509Input in[2] = {testpki_input(&a, "a"), testpki_input(&b, "b")};
	cr_assert_eq(update1("pods/a", "agent", in, 2), -EINVAL);
	SvidSet *set = get("pods/a");
	cr_assert_eq(svid_set_n_svids(set), 0);
	cr_assert_str_eq(
	    svid_set_last_error(set),
	    "svid 1 (spiffe://example.org/b): leaf is a CA (basicConstraints cA=true)");
	svid_set_unref(set);
	testpki_svid_done(&a);
	testpki_svid_done(&b);
}

Test(store, several_svids_keep_order_and_duplicate_hints_are_dropped)
{
	TestSvid a, b, c;
	testpki_svid(&a, &ca, ID, false, NULL);
	testpki_svid(&b, &ca, "spiffe://example.org/b", false, NULL);
	testpki_svid(&c, &ca, "spiffe://example.org/c", false, NULL);
	SvidX509Input in[4] = {testpki_input(&a, "internal"), testpki_input(&b, "external"),
			       testpki_input(&c, "internal"), testpki_input(&c, "")};
	cr_assert_eq(update1("pods/a", "agent", in, 4), 0);
	SvidSet *set = get("pods/a");
	cr_assert_eq(svid_set_n_svids(set), 3);
	cr_assert_str_eq(svid_set_spiffe_id(set, 0), ID, "the first is the default identity");
	cr_assert_str_eq(svid_set_hint(set, 0), "internal");
	cr_assert_str_eq(svid_set_spiffe_id(set, 1), "spiffe://example.org/b");
	cr_assert_str_eq(svid_set_hint(set, 1), "external");
	cr_assert_str_eq(svid_set_spiffe_id(set, 2), "spiffe://example.org/c");
	cr_assert_str_eq(svid_set_hint(set, 2), "", "empty hints never collide");
	cr_assert_null(svid_set_spiffe_id(set, 3));
	cr_assert_null(svid_set_key_der(set, 3));
	svid_set_unref(set);
	testpki_svid_done(&a);
	testpki_svid_done(&b);
	testpki_svid_done(&c);
}

Test(store, empty_update_is_valid_and_removes_svids)
{
	TestSvid a;
	testpki_svid(&a, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&a, NULL);
	cr_assert_eq(update1("pods/a", "agent", &in, 1), 0);
	SvidSet *s1 = get("pods/a");
	cr_assert_eq(update1("pods/a", "agent", NULL, 0), 0);
	SvidSet *s2 = get("pods/a");
	cr_assert_eq(svid_set_n_svids(s2), 0);
	cr_assert_gt(svid_set_x509_generation(s2), svid_set_x509_generation(s1));
	cr_assert_null(svid_set_last_error(s2));
	cr_assert_eq(svid_set_n_svids(s1), 1, "readers of the old snapshot keep it");
	svid_set_unref(s1);
	svid_set_unref(s2);
	testpki_svid_done(&a);
}

Test(store, bad_arguments_and_unknown_workloads)
{
	SvidX509Update u = {0};
	SvidSet *set = NULL;
	cr_assert_eq(svid_store_update_x509(st, "pods/nope", "agent", &u, 1), -ENOENT);
	cr_assert_eq(svid_store_update_x509(st, "pods/a", NULL, &u, 1), -EINVAL);
	cr_assert_eq(svid_store_update_x509(st, "pods/a", "agent", NULL, 1), -EINVAL);
	u.n_svids = 1;
	cr_assert_eq(svid_store_update_x509(st, "pods/a", "agent", &u, 1), -EINVAL);
	cr_assert_eq(svid_store_get(st, "pods/nope", &set), -ENOENT);
	cr_assert_eq(svid_store_get_by_slot(st, 99, &set), -ENOENT);
	cr_assert_eq(svid_store_get_by_slot(st, 0, &set), -ENOENT);
	cr_assert_eq(svid_store_remove(st, "pods/nope"), -ENOENT);
	cr_assert_eq(svid_store_add(st, "", NULL), -EINVAL);
	cr_assert_null(set);
}

Test(store, rejects_invalid_federates_with)
{
	const char *fw[] = {"fed.example", "Bad_TD!"};
	SvidX509Update u = {.federates_with = fw, .n_federates_with = 2};
	cr_assert_eq(svid_store_update_x509(st, "pods/a", "agent", &u, 1700000000), -EINVAL);
	SvidSet *set = get("pods/a");
	cr_assert_str_eq(svid_set_last_error(set), "federates_with: invalid trust domain Bad_TD!");
	svid_set_unref(set);
}

Test(store, generations_start_above_base_and_count_every_change)
{
	uint32_t slot;
	SvidSet *a = get("pods/a");
	cr_assert_eq(svid_set_generation(a), 1001);
	cr_assert_eq(svid_store_add(st, "pods/b", &slot), 0);
	SvidSet *b = get("pods/b");
	cr_assert_eq(svid_set_generation(b), 1002);
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	cr_assert_eq(update1("pods/a", "agent", &in, 1), 0);
	SvidSet *a2 = get("pods/a");
	cr_assert_eq(svid_set_generation(a2), 1003);
	cr_assert_eq(svid_set_x509_generation(a2), 1003);
	/* The same content again: a new generation (updated_at may move) but the same x509
	 * generation, so files that depend only on SVIDs and keys need not change. */
	cr_assert_eq(update1("pods/a", "agent", &in, 1), 0);
	SvidSet *a3 = get("pods/a");
	cr_assert_eq(svid_set_generation(a3), 1004);
	cr_assert_eq(svid_set_x509_generation(a3), 1003);
	svid_set_unref(a);
	svid_set_unref(b);
	svid_set_unref(a2);
	svid_set_unref(a3);
	testpki_svid_done(&s);
}

typedef struct Event {
	char name[64];
	uint32_t slot;
	uint64_t gen;
	bool removed;
	uint64_t seen_gen; /* what svid_store_get returned inside the callback */
} Event;
static Event events[32];
static size_t n_events;

static void on_change(void *ud, const char *name, uint32_t slot, uint64_t gen, bool removed)
{
	SvidStore *s = ud;
	SvidSet *set = NULL;
	Event *e = &events[n_events++];
	snprintf(e->name, sizeof e->name, "%s", name);
	e->slot = slot;
	e->gen = gen;
	e->removed = removed;
	/* The lock is not held here: a reader call must not deadlock. */
	if (svid_store_get(s, name, &set) == 0) {
		e->seen_gen = svid_set_generation(set);
		svid_set_unref(set);
	}
}

Test(store, change_callback_after_each_swap_without_lock)
{
	uint32_t slot_a;
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	SvidBundleInput bi = {"example.org", ca.bundle, ca.bundle_len};

	cr_assert_eq(svid_store_add(st, "pods/a", &slot_a), 0);
	svid_store_set_change_callback(st, on_change, st);
	cr_assert_eq(update1("pods/a", "agent", &in, 1), 0);
	in.key_len--; /* rejection */
	cr_assert_lt(update1("pods/a", "agent", &in, 1), 0);
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent", &bi, 1, 1), 0);
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent", &bi, 1, 2), 0); /* identical */
	cr_assert_eq(svid_store_set_x509_bundles(st, "other", &bi, 1, 2), 0); /* not its source */
	cr_assert_eq(svid_store_remove(st, "pods/a"), 0);

	cr_assert_eq(n_events, 4);
	for (size_t i = 0; i < 4; i++) {
		cr_assert_str_eq(events[i].name, "pods/a");
		cr_assert_eq(events[i].slot, slot_a);
		cr_assert_eq(events[i].removed, i == 3);
		if (i < 3)
			cr_assert_eq(events[i].seen_gen, events[i].gen, "callback after the swap");
		if (i > 0)
			cr_assert_eq(events[i].gen, events[i - 1].gen + 1);
	}
	testpki_svid_done(&s);
}

Test(store, slots_are_unique_small_and_reused)
{
	uint32_t a, b, c, again, d;
	cr_assert_eq(svid_store_add(st, "pods/a", &a), 0);
	cr_assert_eq(svid_store_add(st, "pods/b", &b), 0);
	cr_assert_eq(svid_store_add(st, "identities/x", &c), 0);
	cr_assert_eq(svid_store_add(st, "pods/b", &again), 0, "idempotent");
	cr_assert_eq(again, b);
	cr_assert_eq(a, 1);
	cr_assert_neq(a, b);
	cr_assert_neq(b, c);
	cr_assert_eq(svid_store_count(st), 3);
	SvidSet *set = NULL;
	cr_assert_eq(svid_store_get_by_slot(st, b, &set), 0);
	cr_assert_str_eq(svid_set_name(set), "pods/b");
	cr_assert_eq(svid_set_slot(set), b);
	svid_set_unref(set);
	cr_assert_eq(svid_store_remove(st, "pods/b"), 0);
	cr_assert_eq(svid_store_get_by_slot(st, b, &set), -ENOENT);
	cr_assert_eq(svid_store_add(st, "pods/d", &d), 0);
	cr_assert_eq(d, b, "a freed slot is reused");
	SvidSet *d0 = get("pods/d");
	cr_assert_gt(svid_set_generation(d0), 1003, "generations never go back with a reused slot");
	svid_set_unref(d0);

	SvidSet **v;
	size_t n;
	cr_assert_eq(svid_store_list(st, &v, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(svid_set_name(v[0]), "identities/x");
	cr_assert_str_eq(svid_set_name(v[1]), "pods/a");
	cr_assert_str_eq(svid_set_name(v[2]), "pods/d");
	for (size_t i = 0; i < n; i++)
		svid_set_unref(v[i]);
	free(v);
}

static int wipes;
static size_t wipe_len;
static bool wipe_zero = true;
static void wipe_hook(const void *p, size_t n, void *ud)
{
	const uint8_t *b = p;
	if (n != wipe_len)
		return;
	wipes++;
	for (size_t i = 0; i < n; i++)
		wipe_zero = wipe_zero && b[i] == 0;
}

Test(store, removed_workload_key_is_wiped_when_last_reader_lets_go)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	cr_assert_eq(update1("pods/a", "agent", &in, 1), 0);
	wipe_len = s.pkcs8_len;
	secret_set_free_hook(wipe_hook, NULL);
	SvidSet *reader = get("pods/a");
	cr_assert_eq(svid_store_remove(st, "pods/a"), 0);
	cr_assert_eq(wipes, 0, "a reader still holds the set");
	cr_assert_eq(memcmp(svid_blob_data(svid_set_key_der(reader, 0)), s.pkcs8, s.pkcs8_len), 0);
	svid_set_unref(reader);
	cr_assert_eq(wipes, 1);
	cr_assert(wipe_zero, "the freed key buffer still held key bytes");
	secret_set_free_hook(NULL, NULL);
	testpki_svid_done(&s);
}

Test(store, rotation_wipes_the_old_key)
{
	TestSvid s1, s2;
	testpki_svid(&s1, &ca, ID, false, NULL);
	testpki_svid(&s2, &ca, ID, false, NULL);
	SvidX509Input i1 = testpki_input(&s1, NULL), i2 = testpki_input(&s2, NULL);
	cr_assert_eq(update1("pods/a", "agent", &i1, 1), 0);
	wipe_len = s1.pkcs8_len;
	secret_set_free_hook(wipe_hook, NULL);
	cr_assert_eq(update1("pods/a", "agent", &i2, 1), 0);
	cr_assert_geq(wipes, 1);
	cr_assert(wipe_zero);
	secret_set_free_hook(NULL, NULL);
	testpki_svid_done(&s1);
	testpki_svid_done(&s2);
}

/* ---- bundles ---- */

static void set_svid_fed(const char *name, const char *source, const char *const *fw, size_t nfw)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	SvidX509Update u = {
	    .svids = &in, .n_svids = 1, .federates_with = fw, .n_federates_with = nfw};
	cr_assert_eq(svid_store_update_x509(st, name, source, &u, 1700000000), 0);
	testpki_svid_done(&s);
}

Test(store, bundles_visible_own_first_then_federated_sorted)
{
	TestCa zzz, aaa;
	testpki_ca(&zzz, "zzz.example");
	testpki_ca(&aaa, "aaa.example");
	SvidBundleInput b[] = {
	    {"zzz.example", zzz.bundle, zzz.bundle_len},
	    {"unrelated.example", aaa.bundle, aaa.bundle_len},
	    {"example.org", ca.bundle, ca.bundle_len},
	    {"aaa.example", aaa.bundle, aaa.bundle_len},
	};
	const char *fw[] = {"zzz.example", "aaa.example", "missing.example", "zzz.example"};
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent", b, 4, 1), 0);
	set_svid_fed("pods/a", "agent", fw, 4);
	SvidSet *set = get("pods/a");
	cr_assert_eq(svid_set_n_federates_with(set), 3, "sorted and unique");
	cr_assert_str_eq(svid_set_federates_with(set, 0), "aaa.example");
	cr_assert_str_eq(svid_set_federates_with(set, 1), "missing.example");
	cr_assert_str_eq(svid_set_federates_with(set, 2), "zzz.example");
	cr_assert_eq(svid_set_n_bundles(set), 3);
	cr_assert_str_eq(svid_set_bundle_td(set, 0), "example.org");
	cr_assert_str_eq(svid_set_bundle_td(set, 1), "aaa.example");
	cr_assert_str_eq(svid_set_bundle_td(set, 2), "zzz.example");
	cr_assert_null(svid_set_bundle_td(set, 3));
	const SvidBlob *own = svid_set_x509_bundle(set, "example.org");
	cr_assert_eq(svid_blob_size(own), ca.bundle_len);
	cr_assert_eq(memcmp(svid_blob_data(own), ca.bundle, ca.bundle_len), 0);
	cr_assert_null(svid_set_x509_bundle(set, "unrelated.example"), "not federated with");
	cr_assert_null(svid_set_x509_bundle(set, "missing.example"));
	svid_set_unref(set);
	testpki_ca_done(&zzz);
	testpki_ca_done(&aaa);
}

Test(store, bundles_follow_the_serving_agent_on_failover)
{
	TestCa other;
	testpki_ca(&other, "example.org"); /* a different CA for the same trust domain */
	SvidBundleInput b1 = {"example.org", ca.bundle, ca.bundle_len};
	SvidBundleInput b2 = {"example.org", other.bundle, other.bundle_len};
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent-1", &b1, 1, 1), 0);
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent-2", &b2, 1, 1), 0);
	set_svid_fed("pods/a", "agent-1", NULL, 0);
	SvidSet *s1 = get("pods/a");
	cr_assert_eq(memcmp(svid_blob_data(svid_set_x509_bundle(s1, "example.org")), ca.bundle,
			    ca.bundle_len),
		     0);
	set_svid_fed("pods/a", "agent-2", NULL, 0);
	SvidSet *s2 = get("pods/a");
	cr_assert_str_eq(svid_set_source(s2), "agent-2");
	cr_assert_eq(svid_blob_size(svid_set_x509_bundle(s2, "example.org")), other.bundle_len);
	cr_assert_eq(memcmp(svid_blob_data(svid_set_x509_bundle(s2, "example.org")), other.bundle,
			    other.bundle_len),
		     0);
	svid_set_unref(s1);
	svid_set_unref(s2);
	testpki_ca_done(&other);
}

Test(store, bundle_change_bumps_only_workloads_of_that_source_that_show_it)
{
	TestCa other;
	testpki_ca(&other, "fed.example");
	const char *fw[] = {"fed.example"};
	SvidBundleInput b[] = {{"example.org", ca.bundle, ca.bundle_len},
			       {"fed.example", fed.bundle, fed.bundle_len}};
	cr_assert_eq(svid_store_add(st, "pods/b", NULL), 0);
	cr_assert_eq(svid_store_add(st, "pods/c", NULL), 0);
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent-1", b, 2, 1), 0);
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent-2", b, 2, 1), 0);
	set_svid_fed("pods/a", "agent-1", fw, 1);   /* shows fed.example */
	set_svid_fed("pods/b", "agent-1", NULL, 0); /* does not */
	set_svid_fed("pods/c", "agent-2", fw, 1);   /* other source */
	SvidSet *a0 = get("pods/a"), *b0 = get("pods/b"), *c0 = get("pods/c");

	b[1].data = other.bundle;
	b[1].len = other.bundle_len;
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent-1", b, 2, 2), 0);
	SvidSet *a1 = get("pods/a"), *b1 = get("pods/b"), *c1 = get("pods/c");
	cr_assert_gt(svid_set_generation(a1), svid_set_generation(c0));
	cr_assert_eq(svid_set_x509_generation(a1), svid_set_x509_generation(a0));
	cr_assert_eq(memcmp(svid_blob_data(svid_set_x509_bundle(a1, "fed.example")), other.bundle,
			    other.bundle_len),
		     0);
	cr_assert_eq(svid_set_generation(b1), svid_set_generation(b0),
		     "its bundles did not change");
	cr_assert_eq(svid_set_generation(c1), svid_set_generation(c0), "served by another agent");
	cr_assert_eq(memcmp(svid_blob_data(svid_set_x509_bundle(c1, "fed.example")), fed.bundle,
			    fed.bundle_len),
		     0);
	SvidSet *sets[] = {a0, b0, c0, a1, b1, c1};
	for (size_t i = 0; i < 6; i++)
		svid_set_unref(sets[i]);
	testpki_ca_done(&other);
}

Test(store, workload_api_bundles_arrive_with_the_svids)
{
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	SvidBundleInput b[] = {{"example.org", ca.bundle, ca.bundle_len},
			       {"fed.example", fed.bundle, fed.bundle_len}};
	const char *fw[] = {"fed.example"};
	SvidX509Update u = {.svids = &in,
			    .n_svids = 1,
			    .bundles = b,
			    .n_bundles = 2,
			    .federates_with = fw,
			    .n_federates_with = 1};
	cr_assert_eq(svid_store_add(st, "self", NULL), 0);
	cr_assert_eq(svid_store_update_x509(st, "self", "workload-api", &u, 5), 0);
	SvidSet *set = get("self");
	uint64_t g = svid_set_generation(set);
	cr_assert_eq(svid_set_n_bundles(set), 2);
	cr_assert_eq(memcmp(svid_blob_data(svid_set_x509_bundle(set, "fed.example")), fed.bundle,
			    fed.bundle_len),
		     0);
	svid_set_unref(set);
	/* The bundles became the source's: an empty bundle map from it now hides them. */
	cr_assert_eq(svid_store_set_x509_bundles(st, "workload-api", NULL, 0, 6), 0);
	set = get("self");
	cr_assert_eq(svid_set_n_bundles(set), 0);
	cr_assert_eq(svid_set_generation(set), g + 1);
	svid_set_unref(set);
	testpki_svid_done(&s);
}

Test(store, invalid_bundles_are_refused_whole)
{
	SvidBundleInput good = {"example.org", ca.bundle, ca.bundle_len};
	uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
	SvidBundleInput bad[] = {good, {"fed.example", junk, sizeof junk}};
	SvidBundleInput badtd[] = {{"spiffe://example.org", ca.bundle, ca.bundle_len}};
	SvidBundleInput dup[] = {good, good};
	SvidBundleInput empty[] = {{"example.org", ca.bundle, 0}};
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent", bad, 2, 1), -EIO);
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent", badtd, 1, 1), -EINVAL);
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent", dup, 2, 1), -EINVAL);
	cr_assert_eq(svid_store_set_x509_bundles(st, "agent", empty, 1, 1), -EINVAL);
	cr_assert_eq(svid_store_set_x509_bundles(st, NULL, &good, 1, 1), -EINVAL);
	set_svid_fed("pods/a", "agent", NULL, 0);
	SvidSet *set = get("pods/a");
	cr_assert_eq(svid_set_n_bundles(set), 0, "nothing was stored");
	svid_set_unref(set);

	/* Inside a Workload API update a bad bundle rejects the update. */
	TestSvid s;
	testpki_svid(&s, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL);
	SvidX509Update u = {.svids = &in, .n_svids = 1, .bundles = bad, .n_bundles = 2};
	cr_assert_eq(svid_store_update_x509(st, "pods/a", "agent", &u, 1700000000), -EIO);
	set = get("pods/a");
	cr_assert_str_eq(svid_set_last_error(set),
			 "bundle fed.example: certificate 0 does not parse");
	svid_set_unref(set);
	testpki_svid_done(&s);
}

Test(store, jwt_bundles_per_source)
{
	const char *jwks = "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"k1\"}]}";
	const char *jwks2 = "{\"keys\":[]}";
	SvidBundleInput b[] = {{"example.org", (const uint8_t *)jwks, strlen(jwks)},
			       {"fed.example", (const uint8_t *)jwks2, strlen(jwks2)}};
	const char *fw[] = {"fed.example"};
	cr_assert_eq(svid_store_set_jwt_bundles(st, "agent", b, 2, 1), 0);
	set_svid_fed("pods/a", "agent", fw, 1);
	SvidSet *set = get("pods/a");
	cr_assert_eq(svid_set_n_jwt_bundles(set), 2);
	cr_assert_str_eq(svid_set_jwt_bundle_td(set, 0), "example.org");
	cr_assert_str_eq(svid_set_jwt_bundle_td(set, 1), "fed.example");
	const SvidBlob *j = svid_set_jwt_bundle(set, "example.org");
	cr_assert_eq(svid_blob_size(j), strlen(jwks));
	cr_assert_eq(memcmp(svid_blob_data(j), jwks, strlen(jwks)), 0);
	cr_assert_eq(svid_set_n_bundles(set), 0, "X.509 bundles are separate");
	svid_set_unref(set);
}

/* ---- JWT-SVID cache ---- */

Test(store, jwt_cache_fresh_until_half_life_with_unique_serials)
{
	SvidJwtInput j = {
	    .spiffe_id = ID, .token = "eyJ.a.b", .issued_at = 1000, .expires_at = 1600};
	SvidBlob *tok = NULL;
	int64_t fresh;
	uint64_t s1, s2;
	cr_assert_eq(svid_store_put_jwt(st, "pods/a", "aud1", &j), 0);
	cr_assert_eq(svid_store_get_jwt(st, "pods/a", "aud1", 1100, &tok, &fresh, &s1), 0);
	cr_assert(svid_blob_is_secret(tok));
	cr_assert_eq(svid_blob_size(tok), 7);
	cr_assert_eq(memcmp(svid_blob_data(tok), "eyJ.a.b", 7), 0);
	cr_assert_eq(fresh, 1300);
	svid_blob_unref(tok);
	cr_assert_eq(svid_store_get_jwt(st, "pods/a", "aud1", 1300, &tok, NULL, NULL), -ENOENT);
	cr_assert_eq(svid_store_get_jwt(st, "pods/a", "aud2", 1100, &tok, NULL, NULL), -ENOENT);
	j.token = "eyJ.c.d";
	j.issued_at = 1300;
	j.expires_at = 1900;
	cr_assert_eq(svid_store_put_jwt(st, "pods/a", "aud1", &j), 0);
	cr_assert_eq(svid_store_get_jwt(st, "pods/a", "aud1", 1400, &tok, &fresh, &s2), 0);
	cr_assert_eq(memcmp(svid_blob_data(tok), "eyJ.c.d", 7), 0);
	cr_assert_gt(s2, s1);
	svid_blob_unref(tok);
	SvidSet *set = get("pods/a");
	cr_assert_eq(svid_set_generation(set), 1001, "put does not change the generation");
	svid_set_unref(set);
	cr_assert_eq(svid_store_put_jwt(st, "pods/nope", "aud1", &j), -ENOENT);
	j.token = "";
	cr_assert_eq(svid_store_put_jwt(st, "pods/a", "aud1", &j), -EINVAL);
}

Test(store, jwt_cache_dropped_when_identity_changes)
{
	SvidJwtInput j = {.spiffe_id = ID, .token = "t", .issued_at = 1000, .expires_at = 3000};
	TestSvid s, s2;
	testpki_svid(&s, &ca, ID, false, NULL);
	testpki_svid(&s2, &ca, ID, false, NULL);
	SvidX509Input in = testpki_input(&s, NULL), in2 = testpki_input(&s2, NULL);
	cr_assert_eq(update1("pods/a", "agent", &in, 1), 0);
	cr_assert_eq(svid_store_put_jwt(st, "pods/a", "aud", &j), 0);
	cr_assert_eq(update1("pods/a", "agent", &in2, 1), 0, "rotation, same SPIFFE ID");
	cr_assert_eq(svid_store_get_jwt(st, "pods/a", "aud", 1100, NULL, NULL, NULL), 0);
	cr_assert_eq(update1("pods/a", "agent", NULL, 0), 0, "identity revoked");
	cr_assert_eq(svid_store_get_jwt(st, "pods/a", "aud", 1100, NULL, NULL, NULL), -ENOENT);
	testpki_svid_done(&s);
	testpki_svid_done(&s2);
}
