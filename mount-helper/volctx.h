/* SPDX-License-Identifier: Apache-2.0 */
/* volctx.h: validation of a NodePublishVolume request (capability, flags, kubelet's pod facts,
 * svidfs.spiffe.io/ volume attributes, the target path's shape) and its mapping to a control-socket
 * register request. Owns one validated copy of the request's facts. Pure: no I/O, no logging, so
 * any thread may use its own VolCtx; fuzzed from random protobuf bytes. Errors are -EINVAL with a
 * one-line message for a cluster operator in the caller's buffer. Never copies the secrets field.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include "csi.pb-c.h"
#include "kv.h"

typedef struct VolCtx VolCtx;

#define VOLCTX_ERR_MAX 512

/* The kubelet keys (podInfoOnMount: true) and the plugin's own volume attributes. */
#define VOLCTX_KEY_POD_NAME "csi.storage.k8s.io/pod.name"
#define VOLCTX_KEY_POD_NAMESPACE "csi.storage.k8s.io/pod.namespace"
#define VOLCTX_KEY_POD_UID "csi.storage.k8s.io/pod.uid"
#define VOLCTX_KEY_SERVICE_ACCOUNT "csi.storage.k8s.io/serviceAccount.name"
#define VOLCTX_KEY_EPHEMERAL "csi.storage.k8s.io/ephemeral"
#define VOLCTX_KUBELET_PREFIX "csi.storage.k8s.io/"
#define VOLCTX_ATTR_PREFIX "svidfs.spiffe.io/"

/* Validates everything that needs no file system: required fields, a plain read-only mount
 * capability, ephemeral mode, the pod facts, every volume attribute, and that target_path has
 * kubelet's shape <kubelet_root>/pods/<uid>/volumes/kubernetes.io~csi/<name>/mount with no "."
 * or ".." component. Does NOT compare the context's pod uid with the path's: see
 * volctx_check_pod_matches_target(). */
int volctx_from_publish(const Csi__V1__NodePublishVolumeRequest *req, const char *kubelet_root,
			VolCtx **ret, char *err, size_t errlen);
VolCtx *volctx_free(VolCtx *c); /* NULL-safe, returns NULL */

/* -EINVAL with a message when the pod uid kubelet vouched for differs from the pods/<uid>/
 * component of target_path (a volume must never be published into another pod's directory). */
int volctx_check_pod_matches_target(const VolCtx *c, char *err, size_t errlen);

/* Checks a target (or volume) path's shape as above and returns the pod uid and volume name in
 * it. Used by publish, unpublish and volume stats. */
int volctx_parse_target(const char *kubelet_root, const char *target_path, char **ret_pod_uid,
			char **ret_volume_name, char *err, size_t errlen);

/* Validates a volume_id: 1-128 printable ASCII bytes without spaces. */
int volctx_check_volume_id(const char *volume_id, char *err, size_t errlen);

/* op=register ... ref=<volume_id> target=<target_path> for the daemon
 * (docs/control-protocol.md). */
int volctx_register_request(const VolCtx *c, KvMsg **ret);

const char *volctx_volume_id(const VolCtx *c);
const char *volctx_target_path(const VolCtx *c);
const char *volctx_pod_uid(const VolCtx *c);	    /* from the volume context */
const char *volctx_target_pod_uid(const VolCtx *c); /* from target_path */
const char *volctx_pod_name(const VolCtx *c);	    /* "" when kubelet sent none */
const char *volctx_pod_namespace(const VolCtx *c);
const char *volctx_service_account(const VolCtx *c);
const char *volctx_layout(const VolCtx *c); /* NULL: the daemon's default */
/* The gid from volume_mount_group, or -1 when none was given. */
long volctx_gid(const VolCtx *c);
