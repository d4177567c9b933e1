// SPDX-License-Identifier: Apache-2.0
/* store-demo: renders a sample identity through the real store API, the way the daemon will:
 * a test CA issues an SVID, the "agent" pushes bundles and the SVID update, and every layout's
 * files plus status.json are printed. Then a rotation and a rejected update show how the
 * generation and status.json move. Keys are generated for the demo and never leave it: key blocks
 * are printed shortened. Usage: svidfs-store-demo */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "render.h"
#include "secret.h"
#include "store.h"
#include "testpki.h"

#define WORKLOAD "pods/7f9c2ba4-e88f-11ee-9d4b-0242ac120002"
#define ID "spiffe://example.org/ns/demo/sa/web"

static int print_file(const SvidSet *set, const char *name, SvidFileKind kind, const char *arg)
{
	SvidBlob *b = NULL;
	int r = svid_render(set, 0, kind, arg, &b);
	if (r < 0) {
		printf("--- %s: (absent: %s)\n", name, strerror(-r));
		return 0;
	}
	printf("--- %s (%zu bytes%s)\n", name, svid_blob_size(b),
	       svid_blob_is_secret(b) ? ", secret memory" : "");
	const char *p = (const char *)svid_blob_data(b), *end = p + svid_blob_size(b);
	bool in_key = false;
	size_t key_lines = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		int len = (int)((nl ? nl : end) - p);
		if (strncmp(p, "-----BEGIN PRIVATE KEY-----", 27) == 0)
			in_key = true, key_lines = 0;
		if (in_key && strncmp(p, "-----", 5) != 0) {
			if (key_lines++ == 0)
				printf("%.8s...  (demo key, base64 shortened)\n", p);
		} else {
			printf("%.*s\n", len, p);
		}
		if (strncmp(p, "-----END PRIVATE KEY-----", 25) == 0)
			in_key = false;
		p = nl ? nl + 1 : end;
	}
	svid_blob_unref(b);
	return 0;
}

static void print_status(const SvidSet *set, int64_t now)
{
	SvidStatusExtra x = {
	    .agent = "agent-1", .stream_state = "connected", .last_message_at = now, .now = now};
	SvidBlob *b = NULL;
	if (svid_render_status(set, &x, &b) == 0)
		printf("--- status.json\n%.*s", (int)svid_blob_size(b), svid_blob_data(b));
	svid_blob_unref(b);
}

static void print_all(const SvidSet *set, int64_t now)
{
	char name[300];

	printf("\n=== %s, generation %llu, layout spiffe\n", svid_set_name(set),
	       (unsigned long long)svid_set_generation(set));
	print_file(set, "credential-bundle.private-key.pem", SVID_FILE_CREDENTIAL_BUNDLE, NULL);
	for (size_t i = 0; i < svid_set_n_bundles(set); i++) {
		snprintf(name, sizeof name, "%s.spiffe-trust-bundle.pem",
			 svid_set_bundle_td(set, i));
		print_file(set, name, SVID_FILE_TRUST_BUNDLE, svid_set_bundle_td(set, i));
	}
	printf("\n=== layout spiffe-helper\n");
	print_file(set, "svid.pem", SVID_FILE_CERT_CHAIN, NULL);
	print_file(set, "svid_key.pem", SVID_FILE_KEY, NULL);
	print_file(set, "svid_bundle.pem", SVID_FILE_BUNDLE, NULL);
	printf("\n=== layout kubernetes-tls\n");
	print_file(set, "tls.crt", SVID_FILE_CERT_CHAIN, NULL);
	print_file(set, "tls.key", SVID_FILE_KEY, NULL);
	print_file(set, "ca.crt", SVID_FILE_BUNDLE, NULL);
	printf("\n=== always present\n");
	for (size_t i = 0; i < svid_set_n_jwt_bundles(set); i++) {
		snprintf(name, sizeof name, "jwt-bundles/%s", svid_set_jwt_bundle_td(set, i));
		print_file(set, name, SVID_FILE_JWT_BUNDLE, svid_set_jwt_bundle_td(set, i));
		printf("\n");
	}
	print_status(set, now);
}

int main(int argc, char **argv)
{
	int64_t now = (int64_t)time(NULL);
	const char *fw[] = {"partner.example"};
	const char *jwks = "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"demo\",\"crv\":\"P-256\"}]}";
	TestCa ca, partner;
	TestSvid svid, next;
	SvidStore *st = NULL;
	SvidSet *set = NULL;
	int r;

	secret_init(0);
	testpki_ca(&ca, "example.org");
	testpki_ca(&partner, "partner.example");
	testpki_svid(&svid, &ca, ID, false, NULL);
	testpki_svid(&next, &ca, ID, false, NULL);

	SvidBundleInput bundles[] = {{"example.org", ca.bundle, ca.bundle_len},
				     {"partner.example", partner.bundle, partner.bundle_len}};
	SvidBundleInput jwt = {"example.org", (const uint8_t *)jwks, strlen(jwks)};
	SvidX509Input in = testpki_input(&svid, "web");
	SvidX509Update u = {
	    .svids = &in, .n_svids = 1, .federates_with = fw, .n_federates_with = 1};

	if ((r = svid_store_new(0, &st)) < 0 || (r = svid_store_add(st, WORKLOAD, NULL)) < 0 ||
	    (r = svid_store_set_x509_bundles(st, "agent-1", bundles, 2, now)) < 0 ||
	    (r = svid_store_set_jwt_bundles(st, "agent-1", &jwt, 1, now)) < 0 ||
	    (r = svid_store_update_x509(st, WORKLOAD, "agent-1", &u, now)) < 0 ||
	    (r = svid_store_get(st, WORKLOAD, &set)) < 0) {
		fprintf(stderr, "store-demo: %s\n", strerror(-r));
		return 1;
	}
	{
		print_all(set, now);

		/* Rotation: the agent sends a new SVID; readers of the old set keep it whole. */
		in = testpki_input(&next, "web");
		r = svid_store_update_x509(st, WORKLOAD, "agent-1", &u, now + 1);
		svid_set_unref(set);
		svid_store_get(st, WORKLOAD, &set);
		printf("\n=== after rotation (update returned %d): generation %llu, serial %s\n", r,
		       (unsigned long long)svid_set_generation(set), svid_set_serial(set, 0));

		/* A bad update (key of another SVID) is rejected whole; the last good set stays. */
		in.key = svid.pkcs8;
		in.key_len = svid.pkcs8_len;
		r = svid_store_update_x509(st, WORKLOAD, "agent-1", &u, now + 2);
		svid_set_unref(set);
		svid_store_get(st, WORKLOAD, &set);
		printf("\n=== after a rejected update (returned %d: %s): generation %llu\n", r,
		       strerror(-r), (unsigned long long)svid_set_generation(set));
		print_status(set, now + 2);
	}
	svid_set_unref(set);
	svid_store_unref(st);
	testpki_svid_done(&svid);
	testpki_svid_done(&next);
	testpki_ca_done(&ca);
	testpki_ca_done(&partner);
	return 0;
}
