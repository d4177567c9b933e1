/* SPDX-License-Identifier: Apache-2.0 */
/* kubelet.h: a CSI client that behaves as kubelet does towards a node plugin, for the
 * integration tests and benchmarks: GetPluginInfo and NodeGetInfo at registration,
 * NodeGetCapabilities before every NodePublishVolume, kubelet's volume ids
 * (csi-<sha256(pod uid + volume name)>), target paths under a kubelet root with the parent made
 * 0750, and the podInfoOnMount volume context. Owns one gRPC channel; one thread per Kubelet. */
#pragma once

#include <grpc/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

typedef struct Kubelet Kubelet;

int kubelet_new(const char *socket_path, Kubelet **ret);
Kubelet *kubelet_free(Kubelet *k); /* NULL-safe */

/* One unary call. Returns the gRPC status code (or -errno for a local failure); the response is
 * unpacked into *ret_resp on OK (free with protobuf_c_message_free_unpacked). */
int kubelet_call(Kubelet *k, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp,
		 char *msg, size_t msglen, int timeout_ms);

/* The registration kubelet and node-driver-registrar do: GetPluginInfo then NodeGetInfo. */
int kubelet_register_plugin(Kubelet *k, char **ret_name, char **ret_version, char **ret_node_id);

/* Put where a NUL should go in a request's strings (with KubeletVolume.nul_marker). */
#define KUBELET_NUL "<NUL>"

/* A pod's CSI inline volume as kubelet would publish it. */
#define KUBELET_MAX_CTX 32
typedef struct {
	char pod_uid[40], ns[64], name[64], sa[64], vol_name[64];
	char volume_id[80], target_path[512];
	/* request shape; defaults from kubelet_pod_init() are what kubelet sends */
	bool no_capability, block, no_access_mode, readonly, no_access_type;
	int access_mode;
	const char *fs_type, *mount_flag, *volume_mount_group;
	const char *ctx_key[KUBELET_MAX_CTX], *ctx_value[KUBELET_MAX_CTX];
	size_t n_ctx;
	const char *secret_key, *secret_value;
	bool nul_marker; /* hostile: every KUBELET_NUL in the packed request becomes NUL bytes */
} KubeletVolume;

/* Fills v for pod (uid, ns, name, sa) and volume name under kubelet_root, with the
 * podInfoOnMount keys and readonly=true, and creates the target's parent (0750). */
int kubelet_pod_init(KubeletVolume *v, const char *kubelet_root, const char *pod_uid,
		     const char *ns, const char *name, const char *sa, const char *vol_name);
/* Sets (or, with value NULL, removes) a volume context key. */
void kubelet_volume_set(KubeletVolume *v, const char *key, const char *value);
/* A fresh random pod UID (UUID v4 form). */
void kubelet_random_uid(char out[37]);
/* kubelet's volume id for an inline volume. */
void kubelet_volume_id(const char *pod_uid, const char *vol_name, char out[69]);

/* NodeGetCapabilities (must succeed, as in kubelet) then NodePublishVolume. Returns the code. */
int kubelet_publish(Kubelet *k, const KubeletVolume *v, char *msg, size_t msglen, int timeout_ms);
/* NodePublishVolume only (for concurrency tests that must not add a round trip). */
int kubelet_publish_only(Kubelet *k, const KubeletVolume *v, char *msg, size_t msglen,
			 int timeout_ms);
int kubelet_unpublish(Kubelet *k, const char *volume_id, const char *target_path, char *msg,
		      size_t msglen, int timeout_ms);
/* NodeGetVolumeStats: returns the code; abnormal and message of the volume condition. */
int kubelet_volume_stats(Kubelet *k, const char *volume_id, const char *path, bool *ret_abnormal,
			 char *cond, size_t condlen, char *msg, size_t msglen);
/* Probe: returns the code; *ret_ready from the BoolValue (true when absent). */
int kubelet_probe(Kubelet *k, bool *ret_ready);

const char *kubelet_code_name(int code);
