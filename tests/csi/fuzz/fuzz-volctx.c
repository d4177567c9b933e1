// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for NodePublishVolume validation: any bytes kubelet (or anyone who can reach
 * the CSI socket) could send, decoded as protobuf, then validated (see tests/csi/fuzz/README). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pbcheck.h"
#include "volctx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[VOLCTX_ERR_MAX], field[128];
	VolCtx *c = NULL;

	/* The plugin's first look at the bytes (mount-helper/csi.c), then protobuf-c's. */
	(void)pbcheck_strings(&csi__v1__node_publish_volume_request__descriptor, data, size, field,
			      sizeof field);
	Csi__V1__NodePublishVolumeRequest *req =
	    csi__v1__node_publish_volume_request__unpack(NULL, size, data);

	if (!req)
		return 0;
	if (volctx_from_publish(req, "/var/lib/kubelet", &c, err, sizeof err) == 0) {
		KvMsg *m = NULL;
		if (volctx_register_request(c, &m) == 0) {
			char *s = NULL;
			/* Every value reaching the control protocol must be a legal kv line. */
			if (kv_format(m, &s, NULL) < 0)
				abort();
			free(s);
			kv_free(m);
		}
		(void)volctx_check_pod_matches_target(c, err, sizeof err);
		volctx_free(c);
	}
	if (req->target_path) {
		char *uid = NULL, *vol = NULL;
		if (volctx_parse_target("/var/lib/kubelet", req->target_path, &uid, &vol, err,
					sizeof err) == 0) {
			free(uid);
			free(vol);
		}
	}
	csi__v1__node_publish_volume_request__free_unpacked(req, NULL);
	return 0;
}
