// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: CSI request validation in svidfs-csi (mount-helper/volctx.c). Any bytes kubelet,
 * or anyone who reaches the CSI socket, could send, decoded with protobuf-c as the plugin's gRPC
 * handlers do: as a NodePublishVolumeRequest (validation, the pod-uid/target cross-check and the
 * op=register message for the daemon), and as the NodeUnpublishVolume and NodeGetVolumeStats
 * requests, whose fields share numbers with it. Whatever the plugin accepts must be safe to act
 * on; the checks below abort otherwise. docs/fuzzing.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "pbcheck.h"
#include "volctx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KUBELET_ROOT "/var/lib/kubelet"

/* A path the plugin will mkdir, mount on or rmdir: below the kubelet root, no "." or "..". */
static void check_target(const char *target, const char *uid, const char *vol)
{
	static const char prefix[] = KUBELET_ROOT "/pods/";

	if (strncmp(target, prefix, strlen(prefix)) != 0 || strstr(target, "/../") ||
	    strstr(target, "/./") || strchr(uid, '/') || strchr(vol, '/') || !*uid || !*vol ||
	    streq(uid, "..") || streq(vol, ".."))
		abort();
}

static void publish(const uint8_t *data, size_t size)
{
	char field[128];
	/* The plugin's first look at the bytes (mount-helper/csi.c: NULs in strings), then
	 * protobuf-c's. */
	(void)pbcheck_strings(&csi__v1__node_publish_volume_request__descriptor, data, size, field,
			      sizeof field);
	Csi__V1__NodePublishVolumeRequest *req =
		csi__v1__node_publish_volume_request__unpack(NULL, size, data);
	char err[VOLCTX_ERR_MAX];
	VolCtx *c = NULL;
	KvMsg *m = NULL;
	char *s = NULL;

	if (!req)
		return;
	if (volctx_from_publish(req, KUBELET_ROOT, &c, err, sizeof err) == 0) {
		check_target(volctx_target_path(c), volctx_target_pod_uid(c), "x");
		if (volctx_check_pod_matches_target(c, err, sizeof err) == 0) {
			if (!streq(volctx_pod_uid(c), volctx_target_pod_uid(c)))
				abort();
			/* Every value reaching the control protocol must be a legal kv line. */
			if (volctx_register_request(c, &m) == 0) {
				if (kv_format(m, &s, NULL) < 0 ||
				    !streq(kv_get(m, "pod_uid"), volctx_pod_uid(c)))
					abort();
				free(s);
				kv_free(m);
			}
		}
		volctx_free(c);
	}
	csi__v1__node_publish_volume_request__free_unpacked(req, NULL);
}

static void unpublish_and_stats(const uint8_t *data, size_t size)
{
	Csi__V1__NodeUnpublishVolumeRequest *u =
		csi__v1__node_unpublish_volume_request__unpack(NULL, size, data);
	Csi__V1__NodeGetVolumeStatsRequest *st =
		csi__v1__node_get_volume_stats_request__unpack(NULL, size, data);
	char err[VOLCTX_ERR_MAX], *uid = NULL, *vol = NULL;

	if (u && volctx_check_volume_id(u->volume_id, err, sizeof err) == 0 &&
	    volctx_parse_target(KUBELET_ROOT, u->target_path, &uid, &vol, err, sizeof err) == 0) {
		check_target(u->target_path, uid, vol);
		uid = (free(uid), NULL);
		vol = (free(vol), NULL);
	}
	if (st && volctx_check_volume_id(st->volume_id, err, sizeof err) == 0 &&
	    st->volume_path && *st->volume_path &&
	    volctx_parse_target(KUBELET_ROOT, st->volume_path, &uid, &vol, err, sizeof err) == 0) {
		check_target(st->volume_path, uid, vol);
		free(uid);
		free(vol);
	}
	if (u)
		csi__v1__node_unpublish_volume_request__free_unpacked(u, NULL);
	if (st)
		csi__v1__node_get_volume_stats_request__free_unpacked(st, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	publish(data, size);
	unpublish_and_stats(data, size);
	return 0;
}
