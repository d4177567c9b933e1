// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "volctx.h"

#define ROOT "/var/lib/kubelet"
#define UID "0b6c1e0e-4f2a-4c3e-9d1e-2f7a8b9c0d1e"
#define TARGET ROOT "/pods/" UID "/volumes/kubernetes.io~csi/spiffe/mount"

/* A request as kubelet sends it for an inline volume with podInfoOnMount: true. */
typedef struct {
	Csi__V1__NodePublishVolumeRequest req;
	Csi__V1__VolumeCapability cap;
	Csi__V1__VolumeCapability__MountVolume mount;
	Csi__V1__VolumeCapability__AccessMode mode;
	Csi__V1__NodePublishVolumeRequest__VolumeContextEntry ctx[24], *ctxp[24];
	char *flags[2];
} Req;

static Req *R;

static void set_ctx(const char *k, const char *v)
{
	Csi__V1__NodePublishVolumeRequest *q = &R->req;
	for (size_t i = 0; i < q->n_volume_context; i++)
		if (strcmp(q->volume_context[i]->key, k) == 0) {
			if (!v) {
				q->volume_context[i] = q->volume_context[--q->n_volume_context];
				return;
			}
			q->volume_context[i]->value = (char *)v;
			return;
		}
	if (!v)
		return;
	size_t n = q->n_volume_context++;
	csi__v1__node_publish_volume_request__volume_context_entry__init(&R->ctx[n]);
	R->ctx[n].key = (char *)k;
	R->ctx[n].value = (char *)v;
	R->ctxp[n] = &R->ctx[n];
}

static void setup(void)
{
	R = calloc(1, sizeof *R);
	csi__v1__node_publish_volume_request__init(&R->req);
	csi__v1__volume_capability__init(&R->cap);
	csi__v1__volume_capability__mount_volume__init(&R->mount);
	csi__v1__volume_capability__access_mode__init(&R->mode);
	R->mode.mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER;
	R->cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
	R->cap.mount = &R->mount;
	R->cap.access_mode = &R->mode;
	R->req.volume_id = "csi-3f4b6c0d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c";
	R->req.target_path = TARGET;
	R->req.volume_capability = &R->cap;
	R->req.readonly = 1;
	R->req.volume_context = R->ctxp;
	set_ctx("csi.storage.k8s.io/pod.name", "web-7d4b9c-x2x");
	set_ctx("csi.storage.k8s.io/pod.namespace", "shop");
	set_ctx("csi.storage.k8s.io/pod.uid", UID);
	set_ctx("csi.storage.k8s.io/serviceAccount.name", "web");
	set_ctx("csi.storage.k8s.io/ephemeral", "true");
}

static void teardown(void)
{
	free(R);
}

TestSuite(volctx, .init = setup, .fini = teardown);

static void reset(void)
{
	teardown();
	setup();
}

static char err[VOLCTX_ERR_MAX];

static VolCtx *ok(void)
{
	VolCtx *c = NULL;
	err[0] = 0;
	int r = volctx_from_publish(&R->req, ROOT, &c, err, sizeof err);
	cr_assert_eq(r, 0, "expected success, got %d: %s", r, err);
	return c;
}

static void bad(const char *needle)
{
	VolCtx *c = NULL;
	err[0] = 0;
	int r = volctx_from_publish(&R->req, ROOT, &c, err, sizeof err);
	cr_assert_eq(r, -EINVAL, "expected -EINVAL for \"%s\", got %d", needle, r);
	cr_assert_null(c);
	cr_assert(strstr(err, needle), "message \"%s\" lacks \"%s\"", err, needle);
}

static char *format(const KvMsg *m)
{
	char *s = NULL;
	cr_assert_eq(kv_format(m, &s, NULL), 0);
	return s;
}

Test(volctx, kubelet_request_maps_to_register)
{
	VolCtx *c = ok();
	cr_assert_str_eq(volctx_pod_uid(c), UID);
	cr_assert_str_eq(volctx_target_pod_uid(c), UID);
	cr_assert_str_eq(volctx_pod_namespace(c), "shop");
	cr_assert_str_eq(volctx_pod_name(c), "web-7d4b9c-x2x");
	cr_assert_str_eq(volctx_service_account(c), "web");
	cr_assert_null(volctx_layout(c));
	cr_assert_eq(volctx_gid(c), -1);
	cr_assert_eq(volctx_check_pod_matches_target(c, err, sizeof err), 0);
	KvMsg *m = NULL;
	cr_assert_eq(volctx_register_request(c, &m), 0);
	char *s = format(m);
	cr_assert_str_eq(
	    s, "op=register\nkind=pod\npod_uid=" UID "\nnamespace=shop\n"
	       "service_account=web\npod_name=web-7d4b9c-x2x\n"
	       "ref=csi-3f4b6c0d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c\n"
	       "target=" TARGET "\n\n");
	free(s);
	kv_free(m);
	volctx_free(c);
}

Test(volctx, attributes_map_to_register)
{
	set_ctx("svidfs.spiffe.io/layout", "spiffe-helper");
	set_ctx("svidfs.spiffe.io/agent", "local, backup");
	set_ctx("svidfs.spiffe.io/svid_file_name", "cert.pem");
	set_ctx("svidfs.spiffe.io/svid_key_file_name", "key.pem");
	set_ctx("svidfs.spiffe.io/svid_bundle_file_name", "ca.pem");
	set_ctx("svidfs.spiffe.io/jwt_bundle_file_name", "jwks.json");
	set_ctx("svidfs.spiffe.io/jwt_svids", "https://api.example.org=api.jwt,vault=vault.token");
	set_ctx("svidfs.spiffe.io/include_federated_domains", "true");
	R->mount.volume_mount_group = "2000";
	VolCtx *c = ok();
	cr_assert_eq(volctx_gid(c), 2000);
	KvMsg *m = NULL;
	cr_assert_eq(volctx_register_request(c, &m), 0);
	char *s = format(m);
	cr_assert_str_eq(
	    s, "op=register\nkind=pod\npod_uid=" UID "\nnamespace=shop\n"
	       "service_account=web\npod_name=web-7d4b9c-x2x\n"
	       "agent=local\nagent=backup\nlayout=spiffe-helper\ngid=2000\n"
	       "svid_file_name=cert.pem\nsvid_key_file_name=key.pem\n"
	       "svid_bundle_file_name=ca.pem\njwt_bundle_file_name=jwks.json\n"
	       "jwt_svid=api.jwt https://api.example.org\njwt_svid=vault.token vault\n"
	       "include_federated_domains=true\n"
	       "ref=csi-3f4b6c0d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c\n"
	       "target=" TARGET "\n\n");
	free(s);
	kv_free(m);
	volctx_free(c);
}

Test(volctx, other_kubelet_keys_accepted)
{
	set_ctx("csi.storage.k8s.io/serviceAccount.tokens", "{\"aud\":{\"token\":\"secret\"}}");
	volctx_free(ok());
}

Test(volctx, required_fields)
{
	R->req.volume_id = "";
	bad("volume_id is missing");
	reset();
	R->req.volume_id = "has space";
	bad("volume_id");
	reset();
	R->req.target_path = "";
	bad("target_path is missing");
	reset();
	R->req.volume_capability = NULL;
	bad("volume_capability is missing");
	reset();
	R->cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE__NOT_SET;
	bad("no access type");
}

Test(volctx, capability_must_be_plain_mount)
{
	static Csi__V1__VolumeCapability__BlockVolume blk =
	    CSI__V1__VOLUME_CAPABILITY__BLOCK_VOLUME__INIT;
	R->cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK;
	R->cap.block = &blk;
	bad("block volumes are not supported");
	reset();
	R->mount.fs_type = "ext4";
	bad("fsType \"ext4\"");
	reset();
	R->flags[0] = "rw";
	R->mount.n_mount_flags = 1;
	R->mount.mount_flags = R->flags;
	bad("mount flags are not supported");
}

Test(volctx, access_mode)
{
	R->cap.access_mode = NULL;
	bad("access_mode is missing");
	reset();
	R->mode.mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY;
	bad("SINGLE_NODE_READER_ONLY");
	reset();
	R->mode.mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__UNKNOWN;
	bad("UNKNOWN");
	reset();
	R->mode.mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_MULTI_WRITER;
	volctx_free(ok());
}

Test(volctx, readonly_required)
{
	R->req.readonly = 0;
	bad("readOnly must be set to true");
}

Test(volctx, ephemeral_only)
{
	set_ctx("csi.storage.k8s.io/ephemeral", "false");
	bad("only ephemeral inline volumes");
	reset();
	set_ctx("csi.storage.k8s.io/ephemeral", NULL);
	bad("only ephemeral inline volumes");
}

Test(volctx, pod_facts_required)
{
	set_ctx("csi.storage.k8s.io/pod.uid", NULL);
	bad("lacks csi.storage.k8s.io/pod.uid");
	reset();
	set_ctx("csi.storage.k8s.io/pod.namespace", NULL);
	bad("podInfoOnMount: true");
	reset();
	set_ctx("csi.storage.k8s.io/serviceAccount.name", "");
	bad("serviceAccount.name");
	reset();
	set_ctx("csi.storage.k8s.io/pod.name", NULL); /* optional */
	VolCtx *c = ok();
	cr_assert_str_eq(volctx_pod_name(c), "");
	volctx_free(c);
}

Test(volctx, pod_facts_validated)
{
	set_ctx("csi.storage.k8s.io/pod.uid", "../../etc");
	bad("not a valid pod uid");
	reset();
	set_ctx("csi.storage.k8s.io/pod.uid", "0B6C1E0E-4F2A-4C3E-9D1E-2F7A8B9C0D1E");
	bad("not a valid pod uid"); /* kubelet's UIDs are lowercase; the daemon insists */
	reset();
	set_ctx("csi.storage.k8s.io/pod.namespace", "Bad_NS");
	bad("not a valid pod namespace");
	reset();
	set_ctx("csi.storage.k8s.io/serviceAccount.name", "a\nop=unregister");
	bad("not a valid service account");
}

/* The same rules as the daemon's (common/k8sname.c): names are DNS-1123 subdomains, dots only
 * between labels; a UID is a UUID or a static pod's 32 hex digits. */
Test(volctx, pod_facts_follow_the_kubernetes_rules)
{
	const char *bad_names[] = {"a..b", "web-0.", ".web", "web-", "a.-b"};
	for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
		reset();
		set_ctx("csi.storage.k8s.io/pod.name", bad_names[i]);
		bad("not a valid pod name");
		reset();
		set_ctx("csi.storage.k8s.io/serviceAccount.name", bad_names[i]);
		bad("not a valid service account");
	}
	reset();
	set_ctx("csi.storage.k8s.io/pod.namespace", "..");
	bad("not a valid pod namespace");
	reset();
	set_ctx("csi.storage.k8s.io/pod.namespace", "a.b");
	bad("DNS-1123 label");
	reset();
	set_ctx("csi.storage.k8s.io/pod.name", "web-0.shop");
	volctx_free(ok());
}

Test(volctx, unknown_attributes_named)
{
	set_ctx("foo", "bar");
	bad("unknown volume attribute \"foo\"");
	reset();
	set_ctx("svidfs.spiffe.io/layuot", "spiffe");
	bad("unknown volume attribute \"svidfs.spiffe.io/layuot\"");
	reset();
	set_ctx("csi.spiffe.io/audience", "x");
	bad("\"csi.spiffe.io/audience\"");
}

Test(volctx, attribute_values_validated)
{
	set_ctx("svidfs.spiffe.io/layout", "pkcs12");
	bad("is not a layout");
	reset();
	set_ctx("svidfs.spiffe.io/agent", "a,,b");
	bad("empty list element");
	reset();
	set_ctx("svidfs.spiffe.io/agent", "a,a");
	bad("twice");
	reset();
	set_ctx("svidfs.spiffe.io/agent", "a/b");
	bad("not an agent name");
	reset();
	set_ctx("svidfs.spiffe.io/svid_file_name", "../x");
	bad("is not a file name");
	reset();
	set_ctx("svidfs.spiffe.io/svid_key_file_name", "..");
	bad("is not a file name");
	reset();
	set_ctx("svidfs.spiffe.io/jwt_svids", "aud");
	bad("<audience>=<file name>");
	reset();
	set_ctx("svidfs.spiffe.io/jwt_svids", "a b=x");
	bad("audience");
	reset();
	set_ctx("svidfs.spiffe.io/jwt_svids", "a=x,b=x");
	bad("twice");
	reset();
	set_ctx("svidfs.spiffe.io/include_federated_domains", "yes");
	bad("\"true\" or \"false\"");
	reset();
	R->mount.volume_mount_group = "wheel";
	bad("volume_mount_group \"wheel\"");
	reset();
	R->mount.volume_mount_group = "-1";
	bad("volume_mount_group");
}

Test(volctx, target_path_shape)
{
	static const struct {
		const char *path, *needle;
	} cases[] = {
	    {"relative/path", "not an absolute path"},
	    {"/var/lib/kubelet/pods/" UID "/volumes/kubernetes.io~csi/v/mount/", "empty component"},
	    {"/var/lib/kubelet/pods/" UID "/volumes/kubernetes.io~csi/v/../v/mount", "\"..\""},
	    {"/var/lib/kubelet/pods/" UID "/./volumes/kubernetes.io~csi/v/mount", "\"..\""},
	    {"/var/lib/kubelet//pods/" UID "/volumes/kubernetes.io~csi/v/mount", "empty component"},
	    {"/var/lib/kubelet2/pods/" UID "/volumes/kubernetes.io~csi/v/mount", "not under"},
	    {"/tmp/pods/" UID "/volumes/kubernetes.io~csi/v/mount", "not under"},
	    {"/var/lib/kubelet/pods/" UID "/volumes/kubernetes.io~empty-dir/v/mount", "shape"},
	    {"/var/lib/kubelet/pods/" UID "/volumes/kubernetes.io~csi/v", "end in"},
	    {"/var/lib/kubelet/pods/" UID "/volumes/kubernetes.io~csi/v/mnt", "end in"},
	    {"/var/lib/kubelet/pods/" UID "/volumes/kubernetes.io~csi/v/mount/x", "end in"},
	    {"/var/lib/kubelet/pods/a_b/volumes/kubernetes.io~csi/v/mount", "not a Kubernetes UID"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		reset();
		R->req.target_path = (char *)cases[i].path;
		bad(cases[i].needle);
	}
}

Test(volctx, pod_uid_must_match_target)
{
	R->req.target_path = ROOT "/pods/11111111-2222-3333-4444-555555555555/volumes/"
				  "kubernetes.io~csi/spiffe/mount";
	VolCtx *c = ok(); /* shape is fine; the cross-check is separate (publish orders it) */
	cr_assert_eq(volctx_check_pod_matches_target(c, err, sizeof err), -EINVAL);
	cr_assert(strstr(err, "differs from the uid 11111111-2222-3333-4444-555555555555"), "%s",
		  err);
	volctx_free(c);
}

Test(volctx, parse_target_roots)
{
	char *uid = NULL, *vol = NULL;
	cr_assert_eq(volctx_parse_target("/var/lib/kubelet/", TARGET, &uid, &vol, err, sizeof err),
		     0, "%s", err);
	cr_assert_str_eq(uid, UID);
	cr_assert_str_eq(vol, "spiffe");
	free(uid);
	free(vol);
	cr_assert_eq(volctx_parse_target("/", "/pods/" UID "/volumes/kubernetes.io~csi/v/mount",
					 &uid, NULL, err, sizeof err),
		     0, "%s", err);
	free(uid);
}

/* Random protobuf bytes, and mutations of a valid request, never crash validation. */
Test(volctx, fuzz_decoded_requests)
{
	size_t n = protobuf_c_message_get_packed_size(&R->req.base);
	uint8_t *valid = malloc(n), *buf = malloc(n);
	unsigned seed = 4242;
	int accepted = 0;

	protobuf_c_message_pack(&R->req.base, valid);
	Csi__V1__NodePublishVolumeRequest *q0 =
	    csi__v1__node_publish_volume_request__unpack(NULL, n, valid);
	cr_assert_not_null(q0, "the valid request round-trips");
	VolCtx *c0 = NULL;
	cr_assert_eq(volctx_from_publish(q0, ROOT, &c0, err, sizeof err), 0, "%s", err);
	volctx_free(c0);
	csi__v1__node_publish_volume_request__free_unpacked(q0, NULL);
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(buf, valid, n);
		int muts = 1 + rand_r(&seed) % 2;
		for (int m = 0; m < muts; m++)
			buf[(size_t)rand_r(&seed) % n] = (uint8_t)rand_r(&seed);
		Csi__V1__NodePublishVolumeRequest *q = csi__v1__node_publish_volume_request__unpack(
		    NULL, iter % 4 ? n : (size_t)rand_r(&seed) % (n + 1), buf);
		if (!q)
			continue;
		VolCtx *c = NULL;
		char e[VOLCTX_ERR_MAX];
		if (volctx_from_publish(q, ROOT, &c, e, sizeof e) == 0) {
			KvMsg *m = NULL;
			cr_assert_eq(volctx_register_request(c, &m), 0);
			kv_free(m);
			volctx_free(c);
			accepted++;
		}
		csi__v1__node_publish_volume_request__free_unpacked(q, NULL);
	}
	free(valid);
	free(buf);
	cr_assert_gt(accepted, 0, "some mutations leave the request valid");
}
