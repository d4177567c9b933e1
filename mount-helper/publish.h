/* SPDX-License-Identifier: Apache-2.0 */
/* publish.h: the work behind NodePublishVolume, NodeUnpublishVolume, NodeGetVolumeStats and Probe:
 * validation (volctx), registration through the daemon's control socket, the bind mount and its
 * read-only remount, and rollback. Owns the set of volumes with an operation in flight (so a
 * concurrent call for one volume is ABORTED) and nothing else: every other fact is derived from
 * /proc/self/mountinfo and the daemon, so a restarted plugin can unpublish what an earlier one
 * published. Thread-safe: the CSI worker threads call it concurrently. Logs one line per
 * publish/unpublish (pod, volume, outcome); never logs the request's secrets. */
#pragma once

#include <grpc/status.h>
#include <stdbool.h>
#include <stdint.h>
#include "csi.pb-c.h"

typedef struct Publisher Publisher;

typedef struct {
	const char *kubelet_root;   /* e.g. /var/lib/kubelet */
	const char *svidfs_mount;   /* e.g. /run/svidfs */
	const char *control_socket; /* the daemon's control socket */
	int publish_timeout_ms;	    /* bound on the wait for a pod's first SVID */
} PublisherConfig;

/* The outcome of one RPC: a gRPC status code and, unless OK, a message for the operator. */
typedef struct {
	grpc_status_code code;
	char message[1024];
} CsiStatus;

typedef struct {
	bool abnormal;
	char message[256];
	int64_t bytes_total, bytes_used, bytes_available;
	int64_t inodes_total, inodes_used, inodes_available;
} VolumeStats;

int publisher_new(const PublisherConfig *cfg, Publisher **ret);
Publisher *publisher_free(Publisher *p); /* NULL-safe; no operation may be running */
/* Makes running waits give up (UNAVAILABLE) within about a second: for shutdown. */
void publisher_stop(Publisher *p);

/* rpc_timeout_ms: what is left of the caller's deadline (-1: none); waits never outlast it. */
void publisher_publish(Publisher *p, const Csi__V1__NodePublishVolumeRequest *req,
		       int rpc_timeout_ms, CsiStatus *st);
void publisher_unpublish(Publisher *p, const Csi__V1__NodeUnpublishVolumeRequest *req,
			 CsiStatus *st);
void publisher_volume_stats(Publisher *p, const Csi__V1__NodeGetVolumeStatsRequest *req,
			    VolumeStats *ret, CsiStatus *st);
/* True when the daemon answers op=ping on its control socket. */
bool publisher_probe(Publisher *p);
