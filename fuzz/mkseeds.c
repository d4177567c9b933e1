// SPDX-License-Identifier: Apache-2.0
/* fuzz-mkseeds: writes the protobuf seeds of the agent and csi fuzz targets into
 * <dir>/agent/seed-* and <dir>/csi/seed-*: real messages as the SPIRE agent and kubelet send
 * them, with valid SPIFFE certificate chains and keys from the test PKI (tests/unit/testpki), so
 * the fuzzer starts deep in convert.c, x509check.c and volctx.c. Keys and serials are random: a
 * rerun changes the bytes, not the shapes. Usage: fuzz-mkseeds fuzz/corpus (docs/fuzzing.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "csi.pb-c.h"
#include "delegatedidentity.pb-c.h"
#include "testpki.h"
#include "workload.pb-c.h"

typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509SVIDsResponse DX509Resp;
typedef Spire__Api__Agent__Delegatedidentity__V1__X509SVIDWithKey DSvidWithKey;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509BundlesResponse DX509Bundles;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509BundlesResponse__CaCertificatesEntry
	DX509BundleEntry;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToJWTBundlesResponse DJwtBundles;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToJWTBundlesResponse__BundlesEntry
	DJwtBundleEntry;
typedef Spire__Api__Agent__Delegatedidentity__V1__FetchJWTSVIDsResponse DJwtResp;
typedef Csi__V1__NodePublishVolumeRequest PublishReq;
typedef Csi__V1__NodePublishVolumeRequest__VolumeContextEntry CtxEntry;

/* The agent target's first byte (fuzz/fuzz-agent.c). */
enum {
	MSG_WORKLOAD_X509,
	MSG_DELEGATED_X509,
	MSG_WORKLOAD_X509_BUNDLES,
	MSG_WORKLOAD_JWT_BUNDLES,
	MSG_DELEGATED_X509_BUNDLES,
	MSG_DELEGATED_JWT_BUNDLES,
	MSG_WORKLOAD_JWT,
	MSG_DELEGATED_JWT,
};

static const char *outdir;

static void write_seed(const char *target, const char *name, int prefix, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n + 1);
	char path[512];
	FILE *f;

	if (!buf)
		abort();
	protobuf_c_message_pack(m, buf);
	snprintf(path, sizeof path, "%s/%s/seed-%s", outdir, target, name);
	f = fopen(path, "wb");
	if (!f || (prefix >= 0 && fputc(prefix, f) == EOF) || fwrite(buf, 1, n, f) != n ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	free(buf);
}

static ProtobufCBinaryData bin(const uint8_t *p, size_t n)
{
	return (ProtobufCBinaryData){.len = n, .data = (uint8_t *)p};
}

static ProtobufCBinaryData der(X509 *x)
{
	size_t n;
	uint8_t *p = testpki_der(x, &n);
	return bin(p, n);
}

/* header.payload.signature; the store reads only exp and iat from the payload. */
static const char jwt_token[] =
	"eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0."
	"eyJhdWQiOlsic3BpZmZlOi8vZXhhbXBsZS5vcmcvZGIiXSwiZXhwIjoxNzAwMDAzNjAwLCJpYXQiOjE3MDAw"
	"MDAwMDAsInN1YiI6InNwaWZmZTovL2V4YW1wbGUub3JnL25zL2RlZmF1bHQvc2Evd2ViIn0."
	"c2lnbmF0dXJlLWJ5dGVzLWFyZS1ub3QtY2hlY2tlZC1ieS1zdmlkZnM";
static const char jwks[] =
	"{\"keys\":[{\"kty\":\"EC\",\"kid\":\"k1\",\"use\":\"jwt-svid\",\"crv\":\"P-256\","
	"\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

static void agent_seeds(void)
{
	TestCa ca, partner;
	TestSvid web, db, rsa, ca_leaf;
	TestCertOpts o;

	testpki_ca(&ca, "example.org");
	testpki_ca(&partner, "partner.org");
	testpki_svid(&web, &ca, "spiffe://example.org/ns/default/sa/web", false, NULL);
	testpki_svid(&db, &ca, "spiffe://example.org/db", false, NULL);
	testpki_svid(&rsa, &ca, "spiffe://example.org/rsa", true, NULL);
	o = testpki_opts_leaf("spiffe://example.org/ca-leaf");
	o.ca = 1; /* refused by x509check: a leaf must not be a CA */
	testpki_svid(&ca_leaf, &ca, "spiffe://example.org/ca-leaf", false, &o);

	/* Workload API X509SVIDResponse: two SVIDs (one hinted), a federated bundle. */
	X509SVID w[4], *wp[4];
	const TestSvid *ws[4] = {&web, &db, &rsa, &ca_leaf};
	for (int i = 0; i < 4; i++) {
		x509_svid__init(&w[i]);
		w[i].spiffe_id = ws[i]->spiffe_id;
		w[i].x509_svid = bin(ws[i]->chain, ws[i]->chain_len);
		w[i].x509_svid_key = bin(ws[i]->pkcs8, ws[i]->pkcs8_len);
		w[i].bundle = bin(ca.bundle, ca.bundle_len);
		wp[i] = &w[i];
	}
	w[1].hint = "db";
	X509SVIDResponse__FederatedBundlesEntry fe = X509_SVIDRESPONSE__FEDERATED_BUNDLES_ENTRY__INIT,
						*fep = &fe;
	fe.key = "spiffe://partner.org";
	fe.value = bin(partner.bundle, partner.bundle_len);
	X509SVIDResponse wr = X509_SVIDRESPONSE__INIT;
	wr.n_svids = 2;
	wr.svids = wp;
	wr.n_federated_bundles = 1;
	wr.federated_bundles = &fep;
	write_seed("agent", "workload-x509", MSG_WORKLOAD_X509, &wr.base);
	wr.svids = wp + 2; /* RSA leaf, then a CA leaf (rejected) */
	wr.n_federated_bundles = 0;
	write_seed("agent", "workload-x509-rsa-and-ca-leaf", MSG_WORKLOAD_X509, &wr.base);
	wr.svids = wp + 3;
	wr.n_svids = 1;
	write_seed("agent", "workload-x509-ca-leaf", MSG_WORKLOAD_X509, &wr.base);
	/* The key of another SVID: refused (key does not match the leaf). */
	w[0].x509_svid_key = w[1].x509_svid_key;
	wr.svids = wp;
	write_seed("agent", "workload-x509-key-mismatch", MSG_WORKLOAD_X509, &wr.base);
	w[0].x509_svid_key = bin(web.pkcs8, web.pkcs8_len);

	/* Delegated API SubscribeToX509SVIDsResponse: one DER certificate per chain element. */
	Spire__Api__Types__SPIFFEID id[2] = {SPIRE__API__TYPES__SPIFFEID__INIT,
					     SPIRE__API__TYPES__SPIFFEID__INIT};
	Spire__Api__Types__X509SVID ds[2] = {SPIRE__API__TYPES__X509_SVID__INIT,
					     SPIRE__API__TYPES__X509_SVID__INIT};
	DSvidWithKey dk[2] = {SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__X509_SVIDWITH_KEY__INIT,
			      SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__X509_SVIDWITH_KEY__INIT};
	DSvidWithKey *dkp[2] = {&dk[0], &dk[1]};
	ProtobufCBinaryData chain[2][2] = {{der(web.leaf), der(ca.inter)},
					   {der(db.leaf), der(ca.inter)}};
	const TestSvid *dsv[2] = {&web, &db};
	for (int i = 0; i < 2; i++) {
		id[i].trust_domain = "example.org";
		id[i].path = strchr(dsv[i]->spiffe_id + strlen("spiffe://"), '/');
		ds[i].id = &id[i];
		ds[i].n_cert_chain = 2;
		ds[i].cert_chain = chain[i];
		ds[i].expires_at = 1700003600;
		dk[i].x509_svid = &ds[i];
		dk[i].x509_svid_key = bin(dsv[i]->pkcs8, dsv[i]->pkcs8_len);
	}
	ds[1].hint = "db";
	char *fed[] = {"spiffe://partner.org"};
	DX509Resp dr = SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_SVIDS_RESPONSE__INIT;
	dr.n_x509_svids = 2;
	dr.x509_svids = dkp;
	dr.n_federates_with = 1;
	dr.federates_with = fed;
	write_seed("agent", "delegated-x509", MSG_DELEGATED_X509, &dr.base);
	dr.n_x509_svids = 0; /* nothing matches yet: valid, the files go away */
	write_seed("agent", "delegated-x509-empty", MSG_DELEGATED_X509, &dr.base);

	/* Bundle maps: X.509 (DER) and JWT (JWKS), both APIs. */
	X509BundlesResponse__BundlesEntry xe[2] = {X509_BUNDLES_RESPONSE__BUNDLES_ENTRY__INIT,
						   X509_BUNDLES_RESPONSE__BUNDLES_ENTRY__INIT};
	X509BundlesResponse__BundlesEntry *xep[2] = {&xe[0], &xe[1]};
	xe[0].key = "spiffe://example.org";
	xe[0].value = bin(ca.bundle, ca.bundle_len);
	xe[1].key = "spiffe://partner.org";
	xe[1].value = bin(partner.bundle, partner.bundle_len);
	X509BundlesResponse xb = X509_BUNDLES_RESPONSE__INIT;
	xb.n_bundles = 2;
	xb.bundles = xep;
	write_seed("agent", "workload-x509-bundles", MSG_WORKLOAD_X509_BUNDLES, &xb.base);

	JWTBundlesResponse__BundlesEntry je = JWTBUNDLES_RESPONSE__BUNDLES_ENTRY__INIT, *jep = &je;
	je.key = "spiffe://example.org";
	je.value = bin((const uint8_t *)jwks, strlen(jwks));
	JWTBundlesResponse jb = JWTBUNDLES_RESPONSE__INIT;
	jb.n_bundles = 1;
	jb.bundles = &jep;
	write_seed("agent", "workload-jwt-bundles", MSG_WORKLOAD_JWT_BUNDLES, &jb.base);

	DX509BundleEntry dxe[2], *dxep[2] = {&dxe[0], &dxe[1]};
	for (int i = 0; i < 2; i++) {
		spire__api__agent__delegatedidentity__v1__subscribe_to_x509_bundles_response__ca_certificates_entry__init(
			&dxe[i]);
		dxe[i].key = xe[i].key;
		dxe[i].value = xe[i].value;
	}
	DX509Bundles dxb =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_BUNDLES_RESPONSE__INIT;
	dxb.n_ca_certificates = 2;
	dxb.ca_certificates = dxep;
	write_seed("agent", "delegated-x509-bundles", MSG_DELEGATED_X509_BUNDLES, &dxb.base);

	DJwtBundleEntry dje =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_JWTBUNDLES_RESPONSE__BUNDLES_ENTRY__INIT;
	DJwtBundleEntry *djep = &dje;
	dje.key = je.key;
	dje.value = je.value;
	DJwtBundles djb = SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_JWTBUNDLES_RESPONSE__INIT;
	djb.n_bundles = 1;
	djb.bundles = &djep;
	write_seed("agent", "delegated-jwt-bundles", MSG_DELEGATED_JWT_BUNDLES, &djb.base);

	/* JWT-SVIDs. */
	JWTSVID wj = JWTSVID__INIT, *wjp = &wj;
	wj.spiffe_id = web.spiffe_id;
	wj.svid = (char *)jwt_token;
	wj.hint = "web";
	JWTSVIDResponse wjr = JWTSVIDRESPONSE__INIT;
	wjr.n_svids = 1;
	wjr.svids = &wjp;
	write_seed("agent", "workload-jwt", MSG_WORKLOAD_JWT, &wjr.base);

	Spire__Api__Types__JWTSVID dj = SPIRE__API__TYPES__JWTSVID__INIT, *djp = &dj;
	dj.token = (char *)jwt_token;
	dj.id = &id[0];
	dj.expires_at = 1700003600;
	dj.issued_at = 1700000000;
	DJwtResp djr = SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__FETCH_JWTSVIDS_RESPONSE__INIT;
	djr.n_svids = 1;
	djr.svids = &djp;
	write_seed("agent", "delegated-jwt", MSG_DELEGATED_JWT, &djr.base);

	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 2; k++)
			free(chain[i][k].data);
	testpki_svid_done(&web);
	testpki_svid_done(&db);
	testpki_svid_done(&rsa);
	testpki_svid_done(&ca_leaf);
	testpki_ca_done(&ca);
	testpki_ca_done(&partner);
}

/* A NodePublishVolume request as kubelet sends it for an inline ephemeral volume. */
static void csi_seeds(void)
{
	static const char uid[] = "0b6c1e0e-4f2a-4c3e-9d1e-2f7a8b9c0d1e";
	static const char *const ctx[][2] = {
		{"csi.storage.k8s.io/ephemeral", "true"},
		{"csi.storage.k8s.io/pod.name", "web-0"},
		{"csi.storage.k8s.io/pod.namespace", "shop"},
		{"csi.storage.k8s.io/pod.uid", uid},
		{"csi.storage.k8s.io/serviceAccount.name", "web"},
		{"svidfs.spiffe.io/layout", "spiffe-helper"},
		{"svidfs.spiffe.io/agent", "child-01, child-02"},
		{"svidfs.spiffe.io/svid_file_name", "tls.crt"},
		{"svidfs.spiffe.io/svid_key_file_name", "tls.key"},
		{"svidfs.spiffe.io/jwt_svids", "spiffe://example.org/db=db.jwt,https://x.example=x"},
		{"svidfs.spiffe.io/include_federated_domains", "true"},
	};
	CtxEntry e[sizeof ctx / sizeof ctx[0]];
	CtxEntry *ep[sizeof ctx / sizeof ctx[0]];
	for (size_t i = 0; i < sizeof ctx / sizeof ctx[0]; i++) {
		csi__v1__node_publish_volume_request__volume_context_entry__init(&e[i]);
		e[i].key = (char *)ctx[i][0];
		e[i].value = (char *)ctx[i][1];
		ep[i] = &e[i];
	}
	Csi__V1__VolumeCapability__MountVolume mv = CSI__V1__VOLUME_CAPABILITY__MOUNT_VOLUME__INIT;
	mv.volume_mount_group = "2000";
	Csi__V1__VolumeCapability__AccessMode am = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__INIT;
	am.mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER;
	Csi__V1__VolumeCapability cap = CSI__V1__VOLUME_CAPABILITY__INIT;
	cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
	cap.mount = &mv;
	cap.access_mode = &am;
	char target[256];
	snprintf(target, sizeof target,
		 "/var/lib/kubelet/pods/%s/volumes/kubernetes.io~csi/spiffe/mount", uid);
	PublishReq r = CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__INIT;
	r.volume_id = "csi-5e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f";
	r.target_path = target;
	r.volume_capability = &cap;
	r.readonly = 1;
	r.n_volume_context = sizeof ctx / sizeof ctx[0];
	r.volume_context = ep;
	write_seed("csi", "publish-all-attributes", -1, &r.base);

	/* NodeGetVolumeStatsRequest has the same bytes (volume_id = 1, volume_path = 2). */
	Csi__V1__NodeUnpublishVolumeRequest u = CSI__V1__NODE_UNPUBLISH_VOLUME_REQUEST__INIT;
	u.volume_id = r.volume_id;
	u.target_path = target;
	write_seed("csi", "unpublish-and-stats", -1, &u.base);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR (e.g. fuzz/corpus)\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	agent_seeds();
	csi_seeds();
	return 0;
}
