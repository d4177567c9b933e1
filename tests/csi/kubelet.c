// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "csi.pb-c.h"
#include "kubelet.h"
#include "wrappers.pb-c.h"
#include "util.h"

struct Kubelet {
	grpc_channel *ch;
	grpc_completion_queue *cq;
};

int kubelet_new(const char *socket_path, Kubelet **ret)
{
	Kubelet *k = calloc(1, sizeof *k);
	char target[256];
	grpc_arg args[1];
	grpc_channel_args ca = {.num_args = 1, .args = args};

	if (!k)
		return -ENOMEM;
	snprintf(target, sizeof target, "unix:%s", socket_path);
	/* kubelet forces :authority localhost for unix sockets. */
	args[0].type = GRPC_ARG_STRING;
	args[0].key = (char *)GRPC_ARG_DEFAULT_AUTHORITY;
	args[0].value.string = (char *)"localhost";
	grpc_channel_credentials *cr = grpc_insecure_credentials_create();
	k->ch = grpc_channel_create(target, cr, &ca);
	grpc_channel_credentials_release(cr);
	k->cq = grpc_completion_queue_create_for_pluck(NULL);
	*ret = k;
	return 0;
}

Kubelet *kubelet_free(Kubelet *k)
{
	if (!k)
		return NULL;
	grpc_channel_destroy(k->ch);
	grpc_completion_queue_shutdown(k->cq);
	while (grpc_completion_queue_pluck(k->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
		   .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(k->cq);
	free(k);
	return NULL;
}

/* One unary call with the request's bytes as they are (s: a slice we give away). */
static int call_slice(Kubelet *k, const char *method, grpc_slice s,
		      const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp,
		      char *msg, size_t msglen, int timeout_ms)
{
	gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
				       gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	grpc_call *call =
	    grpc_channel_create_call(k->ch, NULL, GRPC_PROPAGATE_DEFAULTS, k->cq,
				     grpc_slice_from_static_string(method), NULL, dl, NULL);
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&s, 1), *recv = NULL;
	grpc_slice_unref(s);
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
	grpc_op ops[6];
	int tag;

	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	grpc_call_error e = grpc_call_start_batch(call, ops, 6, &tag, NULL);
	if (e != GRPC_CALL_OK) {
		grpc_call_unref(call);
		grpc_byte_buffer_destroy(send);
		return -EIO;
	}
	grpc_completion_queue_pluck(k->cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (msg && msglen) {
		char *d = grpc_slice_to_c_string(details);
		snprintf(msg, msglen, "%s", d);
		gpr_free(d);
	}
	int r = (int)status;
	if (status == GRPC_STATUS_OK && ret_resp) {
		*ret_resp = NULL;
		if (recv) {
			grpc_byte_buffer_reader rd;
			grpc_byte_buffer_reader_init(&rd, recv);
			grpc_slice flat = grpc_byte_buffer_reader_readall(&rd);
			*ret_resp = protobuf_c_message_unpack(
			    resp_desc, NULL, GRPC_SLICE_LENGTH(flat), GRPC_SLICE_START_PTR(flat));
			grpc_slice_unref(flat);
			grpc_byte_buffer_reader_destroy(&rd);
		}
		if (!*ret_resp)
			r = -EBADMSG;
	}
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_byte_buffer_destroy(send);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	grpc_call_unref(call);
	return r;
}

/* The packed request; with nul_marker, every "<NUL>" becomes five NUL bytes (a hostile client's
 * request: protobuf strings carry a length, C strings cannot say it). The same length, so the
 * framing stays valid; a marker of plain text cannot be mistaken for a tag or a length. */
static grpc_slice pack_slice(const ProtobufCMessage *req, bool nul_marker)
{
	size_t len = protobuf_c_message_get_packed_size(req);
	grpc_slice s = grpc_slice_malloc(len);
	uint8_t *p = GRPC_SLICE_START_PTR(s), *m;

	protobuf_c_message_pack(req, p);
	while (nul_marker && (m = memmem(p, len, KUBELET_NUL, 5)))
		memset(m, 0, 5);
	return s;
}

int kubelet_call(Kubelet *k, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp,
		 char *msg, size_t msglen, int timeout_ms)
{
	return call_slice(k, method, pack_slice(req, false), resp_desc, ret_resp, msg, msglen,
			  timeout_ms);
}

int kubelet_register_plugin(Kubelet *k, char **ret_name, char **ret_version, char **ret_node_id)
{
	Csi__V1__GetPluginInfoRequest a = CSI__V1__GET_PLUGIN_INFO_REQUEST__INIT;
	Csi__V1__NodeGetInfoRequest b = CSI__V1__NODE_GET_INFO_REQUEST__INIT;
	Csi__V1__GetPluginInfoResponse *pi = NULL;
	Csi__V1__NodeGetInfoResponse *ni = NULL;
	int r;

	r = kubelet_call(k, "/csi.v1.Identity/GetPluginInfo", &a.base,
			 &csi__v1__get_plugin_info_response__descriptor, (ProtobufCMessage **)&pi,
			 NULL, 0, 10000);
	if (r != 0)
		return r;
	*ret_name = strdup(pi->name);
	*ret_version = strdup(pi->vendor_version);
	protobuf_c_message_free_unpacked(&pi->base, NULL);
	r = kubelet_call(k, "/csi.v1.Node/NodeGetInfo", &b.base,
			 &csi__v1__node_get_info_response__descriptor, (ProtobufCMessage **)&ni,
			 NULL, 0, 10000);
	if (r != 0)
		return r;
	*ret_node_id = strdup(ni->node_id);
	protobuf_c_message_free_unpacked(&ni->base, NULL);
	return 0;
}

void kubelet_volume_id(const char *pod_uid, const char *vol_name, char out[69])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, pod_uid, strlen(pod_uid));
	EVP_DigestUpdate(c, vol_name, strlen(vol_name));
	EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	memcpy(out, "csi-", 4);
	for (unsigned i = 0; i < 32; i++)
		sprintf(out + 4 + 2 * i, "%02x", md[i]);
}

void kubelet_random_uid(char out[37])
{
	unsigned char b[16];

	RAND_bytes(b, sizeof b);
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

void kubelet_volume_set(KubeletVolume *v, const char *key, const char *value)
{
	for (size_t i = 0; i < v->n_ctx; i++)
		if (strcmp(v->ctx_key[i], key) == 0) {
			if (!value) {
				v->n_ctx--;
				v->ctx_key[i] = v->ctx_key[v->n_ctx];
				v->ctx_value[i] = v->ctx_value[v->n_ctx];
			} else
				v->ctx_value[i] = value;
			return;
		}
	if (value && v->n_ctx < KUBELET_MAX_CTX) {
		v->ctx_key[v->n_ctx] = key;
		v->ctx_value[v->n_ctx++] = value;
	}
}

int kubelet_pod_init(KubeletVolume *v, const char *kubelet_root, const char *pod_uid,
		     const char *ns, const char *name, const char *sa, const char *vol_name)
{
	char parent[400];

	memset(v, 0, sizeof *v);
	snprintf(v->pod_uid, sizeof v->pod_uid, "%s", pod_uid);
	snprintf(v->ns, sizeof v->ns, "%s", ns);
	snprintf(v->name, sizeof v->name, "%s", name);
	snprintf(v->sa, sizeof v->sa, "%s", sa);
	snprintf(v->vol_name, sizeof v->vol_name, "%s", vol_name);
	kubelet_volume_id(pod_uid, vol_name, v->volume_id);
	if ((size_t)snprintf(parent, sizeof parent, "%s/pods/%s/volumes/kubernetes.io~csi/%s",
			     kubelet_root, pod_uid, vol_name) >= sizeof parent)
		return -ENAMETOOLONG;
	snprintf(v->target_path, sizeof v->target_path, "%s/mount", parent);
	v->readonly = true;
	v->access_mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER;
	kubelet_volume_set(v, "csi.storage.k8s.io/pod.name", v->name);
	kubelet_volume_set(v, "csi.storage.k8s.io/pod.namespace", v->ns);
	kubelet_volume_set(v, "csi.storage.k8s.io/pod.uid", v->pod_uid);
	kubelet_volume_set(v, "csi.storage.k8s.io/serviceAccount.name", v->sa);
	kubelet_volume_set(v, "csi.storage.k8s.io/ephemeral", "true");
	return mkdir_p(parent, 0750, 0750);
}

int kubelet_publish_only(Kubelet *k, const KubeletVolume *v, char *msg, size_t msglen,
			 int timeout_ms)
{
	Csi__V1__NodePublishVolumeRequest req = CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__INIT;
	Csi__V1__VolumeCapability cap = CSI__V1__VOLUME_CAPABILITY__INIT;
	Csi__V1__VolumeCapability__MountVolume mnt = CSI__V1__VOLUME_CAPABILITY__MOUNT_VOLUME__INIT;
	Csi__V1__VolumeCapability__BlockVolume blk = CSI__V1__VOLUME_CAPABILITY__BLOCK_VOLUME__INIT;
	Csi__V1__VolumeCapability__AccessMode am = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__INIT;
	Csi__V1__NodePublishVolumeRequest__VolumeContextEntry ce[KUBELET_MAX_CTX],
	    *cep[KUBELET_MAX_CTX];
	Csi__V1__NodePublishVolumeRequest__SecretsEntry se =
	    CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__SECRETS_ENTRY__INIT;
	Csi__V1__NodePublishVolumeRequest__SecretsEntry *sep = &se;
	char *flag = (char *)v->mount_flag;

	req.volume_id = (char *)v->volume_id;
	req.target_path = (char *)v->target_path;
	req.readonly = v->readonly;
	if (!v->no_capability) {
		req.volume_capability = &cap;
		if (v->block) {
			cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK;
			cap.block = &blk;
		} else if (!v->no_access_type) {
			cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
			cap.mount = &mnt;
			mnt.fs_type = (char *)(v->fs_type ? v->fs_type : "");
			if (flag) {
				mnt.n_mount_flags = 1;
				mnt.mount_flags = &flag;
			}
			if (v->volume_mount_group)
				mnt.volume_mount_group = (char *)v->volume_mount_group;
		}
		if (!v->no_access_mode) {
			am.mode = v->access_mode;
			cap.access_mode = &am;
		}
	}
	for (size_t i = 0; i < v->n_ctx; i++) {
		csi__v1__node_publish_volume_request__volume_context_entry__init(&ce[i]);
		ce[i].key = (char *)v->ctx_key[i];
		ce[i].value = (char *)v->ctx_value[i];
		cep[i] = &ce[i];
	}
	req.n_volume_context = v->n_ctx;
	req.volume_context = cep;
	if (v->secret_key) {
		se.key = (char *)v->secret_key;
		se.value = (char *)v->secret_value;
		req.n_secrets = 1;
		req.secrets = &sep;
	}
	ProtobufCMessage *resp = NULL;
	int r = call_slice(k, "/csi.v1.Node/NodePublishVolume", pack_slice(&req.base, v->nul_marker),
			   &csi__v1__node_publish_volume_response__descriptor, &resp, msg, msglen,
			   timeout_ms);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return r;
}

int kubelet_publish(Kubelet *k, const KubeletVolume *v, char *msg, size_t msglen, int timeout_ms)
{
	Csi__V1__NodeGetCapabilitiesRequest cr = CSI__V1__NODE_GET_CAPABILITIES_REQUEST__INIT;
	Csi__V1__NodeGetCapabilitiesResponse *caps = NULL;
	int r;

	/* kubelet asks before every publish (access-mode mapping) and fails the publish if the
	 * question fails. */
	r = kubelet_call(k, "/csi.v1.Node/NodeGetCapabilities", &cr.base,
			 &csi__v1__node_get_capabilities_response__descriptor,
			 (ProtobufCMessage **)&caps, msg, msglen, 10000);
	if (r != 0)
		return r;
	protobuf_c_message_free_unpacked(&caps->base, NULL);
	return kubelet_publish_only(k, v, msg, msglen, timeout_ms);
}

int kubelet_unpublish(Kubelet *k, const char *volume_id, const char *target_path, char *msg,
		      size_t msglen, int timeout_ms)
{
	Csi__V1__NodeUnpublishVolumeRequest req = CSI__V1__NODE_UNPUBLISH_VOLUME_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;

	req.volume_id = (char *)volume_id;
	req.target_path = (char *)target_path;
	int r = kubelet_call(k, "/csi.v1.Node/NodeUnpublishVolume", &req.base,
			     &csi__v1__node_unpublish_volume_response__descriptor, &resp, msg,
			     msglen, timeout_ms);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return r;
}

int kubelet_volume_stats(Kubelet *k, const char *volume_id, const char *path, bool *ret_abnormal,
			 char *cond, size_t condlen, char *msg, size_t msglen)
{
	Csi__V1__NodeGetVolumeStatsRequest req = CSI__V1__NODE_GET_VOLUME_STATS_REQUEST__INIT;
	Csi__V1__NodeGetVolumeStatsResponse *resp = NULL;

	req.volume_id = (char *)volume_id;
	req.volume_path = (char *)path;
	int r = kubelet_call(k, "/csi.v1.Node/NodeGetVolumeStats", &req.base,
			     &csi__v1__node_get_volume_stats_response__descriptor,
			     (ProtobufCMessage **)&resp, msg, msglen, 10000);
	if (r != 0)
		return r;
	if (!resp->volume_condition || resp->n_usage == 0) {
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return -EBADMSG;
	}
	*ret_abnormal = resp->volume_condition->abnormal;
	snprintf(cond, condlen, "%s", resp->volume_condition->message);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int kubelet_probe(Kubelet *k, bool *ret_ready)
{
	Csi__V1__ProbeRequest req = CSI__V1__PROBE_REQUEST__INIT;
	Csi__V1__ProbeResponse *resp = NULL;
	int r = kubelet_call(k, "/csi.v1.Identity/Probe", &req.base,
			     &csi__v1__probe_response__descriptor, (ProtobufCMessage **)&resp, NULL,
			     0, 10000);
	if (r != 0)
		return r;
	*ret_ready = resp->ready ? resp->ready->value : true;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

const char *kubelet_code_name(int c)
{
	return c < 0 ? "LOCAL_ERROR" : grpc_status_name(c);
}
