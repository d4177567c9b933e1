// SPDX-License-Identifier: Apache-2.0
/* mount-helper/pbcheck: a NUL inside any string field of a CSI request is found on the wire,
 * where protobuf-c would have cut the string short. Requests are packed with a marker "<NUL>"
 * where the NUL goes, then the marker's bytes are zeroed in the packed message (same length). */
#include <errno.h>
#include <string.h>
#include <criterion/criterion.h>

#include "csi.pb-c.h"
#include "pbcheck.h"

static Csi__V1__NodePublishVolumeRequest req;
static Csi__V1__VolumeCapability cap;
static Csi__V1__VolumeCapability__MountVolume mnt;
static Csi__V1__NodePublishVolumeRequest__VolumeContextEntry ctx[2], *ctxp[2];
static uint8_t buf[4096];
static size_t len;

static void setup(void)
{
	csi__v1__node_publish_volume_request__init(&req);
	csi__v1__volume_capability__init(&cap);
	csi__v1__volume_capability__mount_volume__init(&mnt);
	req.volume_id = "csi-0123";
	req.target_path = "/var/lib/kubelet/pods/0b6c1e0e-4f2a-4c3e-9d1e-2f7a8b9c0d1e/volumes/"
			  "kubernetes.io~csi/spiffe/mount";
	req.readonly = true;
	cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
	cap.mount = &mnt;
	mnt.fs_type = "";
	req.volume_capability = &cap;
	for (int i = 0; i < 2; i++) {
		csi__v1__node_publish_volume_request__volume_context_entry__init(&ctx[i]);
		ctxp[i] = &ctx[i];
	}
	ctx[0].key = "csi.storage.k8s.io/ephemeral";
	ctx[0].value = "true";
	ctx[1].key = "svidfs.spiffe.io/svid_file_name";
	ctx[1].value = "cert.pem";
	req.n_volume_context = 2;
	req.volume_context = ctxp;
}

TestSuite(pbcheck, .init = setup);

/* Packs req and zeroes every "<NUL>". */
static void pack(void)
{
	uint8_t *m;

	len = csi__v1__node_publish_volume_request__get_packed_size(&req);
	cr_assert_lt(len, sizeof buf);
	csi__v1__node_publish_volume_request__pack(&req, buf);
	while ((m = memmem(buf, len, "<NUL>", 5)))
		memset(m, 0, 5);
}

static int check(char *field, size_t fieldlen)
{
	return pbcheck_strings(&csi__v1__node_publish_volume_request__descriptor, buf, len, field,
			       fieldlen);
}

Test(pbcheck, a_plain_request_passes)
{
	char field[64];
	pack();
	cr_assert_eq(check(field, sizeof field), 0);
	/* and protobuf-c agrees it is a message */
	Csi__V1__NodePublishVolumeRequest *m =
	    csi__v1__node_publish_volume_request__unpack(NULL, len, buf);
	cr_assert_not_null(m);
	csi__v1__node_publish_volume_request__free_unpacked(m, NULL);
}

Test(pbcheck, nul_in_top_level_strings)
{
	char field[64];
	req.target_path = "/var/lib/kubelet/pods/0b6c1e0e-4f2a-4c3e-9d1e-2f7a8b9c0d1e/volumes/"
			  "kubernetes.io~csi/spiffe/mount<NUL>/../../../../etc";
	pack();
	cr_assert_eq(check(field, sizeof field), -EINVAL);
	cr_assert_str_eq(field, "target_path");
	/* What protobuf-c alone makes of it: the path before the NUL. */
	Csi__V1__NodePublishVolumeRequest *m =
	    csi__v1__node_publish_volume_request__unpack(NULL, len, buf);
	cr_assert_not_null(m);
	cr_assert(strstr(m->target_path, "/mount") && !strstr(m->target_path, "etc"));
	csi__v1__node_publish_volume_request__free_unpacked(m, NULL);

	setup();
	req.volume_id = "csi-0123<NUL>x";
	pack();
	cr_assert_eq(check(field, sizeof field), -EINVAL);
	cr_assert_str_eq(field, "volume_id");
}

Test(pbcheck, nul_in_map_and_nested_strings)
{
	char field[64];
	ctx[1].value = "cert.pem<NUL>/../../key";
	pack();
	cr_assert_eq(check(field, sizeof field), -EINVAL);
	cr_assert_str_eq(field, "volume_context.value");

	setup();
	ctx[0].key = "csi.storage.k8s.io/ephemeral<NUL>x";
	pack();
	cr_assert_eq(check(field, sizeof field), -EINVAL);
	cr_assert_str_eq(field, "volume_context.key");

	setup();
	mnt.fs_type = "ext4<NUL>";
	pack();
	cr_assert_eq(check(field, sizeof field), -EINVAL);
	cr_assert_str_eq(field, "volume_capability.mount.fs_type");

	setup();
	mnt.fs_type = "ext4<NUL>";
	pack();
	char tiny[8];
	cr_assert_eq(check(tiny, sizeof tiny), -EINVAL, "a short buffer truncates the path");
	cr_assert_eq(strlen(tiny), sizeof tiny - 1);
}

Test(pbcheck, malformed_bytes)
{
	char field[64];
	pack();
	len -= 3; /* a field cut short */
	cr_assert_eq(check(field, sizeof field), -EBADMSG);

	static const uint8_t group[] = {0x0b, 0x0c};	       /* field 1 start/end group */
	static const uint8_t bad_len[] = {0x0a, 0x7f, 'a'};    /* length beyond the end */
	static const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
					      0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	static const uint8_t field_zero[] = {0x02, 0x00};
	const struct {
		const uint8_t *b;
		size_t n;
	} cases[] = {{group, sizeof group},
		     {bad_len, sizeof bad_len},
		     {long_varint, sizeof long_varint},
		     {field_zero, sizeof field_zero}};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		cr_assert_eq(pbcheck_strings(&csi__v1__node_publish_volume_request__descriptor,
					     cases[i].b, cases[i].n, field, sizeof field),
			     -EBADMSG, "case %zu", i);
}

Test(pbcheck, unknown_fields_are_skipped)
{
	char field[64];
	/* field 99, length-delimited, with a NUL: no string of the schema */
	static const uint8_t unknown[] = {0x9a, 0x06, 0x02, 'a', 0x00};
	cr_assert_eq(pbcheck_strings(&csi__v1__node_publish_volume_request__descriptor, unknown,
				     sizeof unknown, field, sizeof field),
		     0);
}
