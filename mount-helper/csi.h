/* SPDX-License-Identifier: Apache-2.0 */
/* csi.h: the CSI gRPC server (csi.v1 Identity and Node services) on a unix socket. Owns the
 * grpc_server, its completion queue and the one CQ thread that accepts calls and answers the
 * cheap RPCs, plus a bounded pool of worker threads for the RPCs that block on the daemon or on
 * mount(2) (NodePublishVolume, NodeUnpublishVolume, NodeGetVolumeStats, Probe). Anything else is
 * UNIMPLEMENTED. Created, started and stopped by one thread (main). */
#pragma once

#include "publish.h"

typedef struct CsiServer CsiServer;

typedef struct {
	const char *socket_path; /* filesystem path of the unix socket */
	const char *driver_name;
	const char *node_id;
	unsigned socket_mode; /* e.g. 0660 */
	unsigned max_workers; /* concurrent blocking RPCs; more wait in a queue */
	Publisher *publisher; /* borrowed; outlives the server */
} CsiServerConfig;

/* Takes the socket's lockfile (<socket>.lock; -EADDRINUSE when another plugin holds it), removes
 * a stale socket, listens and chmods the socket. Logs its own failures. */
int csi_server_new(const CsiServerConfig *cfg, CsiServer **ret);
int csi_server_start(CsiServer *s);
/* Stops accepting, cancels running calls, lets workers finish, joins every thread. */
void csi_server_stop(CsiServer *s);
CsiServer *csi_server_free(CsiServer *s); /* NULL-safe; stops first if needed */
