/* SPDX-License-Identifier: Apache-2.0 */
/* handover.h: moving a live FUSE connection between processes. Owns nothing persistent: it
 * packs (fd, KvMsg of facts such as the INIT bytes, mount time, takeover count) into one
 * SOCK_SEQPACKET message with SCM_RIGHTS, and back. Used by the keeper (svidfs-keeper), the
 * daemon (store its connection, adopt one at start) and a planned takeover between daemons. */
#pragma once

#include <stddef.h>
#include "kv.h"

#define HANDOVER_MAX_FDS 4
#define HANDOVER_MAX_MSG 65536

/* Sends one message with up to HANDOVER_MAX_FDS fds. */
int handover_send(int sock, const KvMsg *m, const int *fds, size_t n_fds);
/* Receives one message; fds arrive O_CLOEXEC. ret_fds must hold HANDOVER_MAX_FDS. */
int handover_recv(int sock, int timeout_ms, KvMsg **ret, int *ret_fds, size_t *ret_n_fds);

/* Client helpers: connect to a SOCK_SEQPACKET unix socket; -ENOENT/-ECONNREFUSED if nobody
 * listens there. */
int handover_connect(const char *path);
/* One request/reply round trip; the reply's fds (if any) are returned. */
int handover_call(const char *path, const KvMsg *req, const int *fds, size_t n_fds,
		  int timeout_ms, KvMsg **ret, int *ret_fds, size_t *ret_n_fds);

/* Binary <-> lowercase hex, for INIT bytes in a KvMsg. */
int handover_hex_encode(const void *p, size_t n, char **ret);
int handover_hex_decode(const char *s, void *buf, size_t max, size_t *ret_n);

/* Where a daemon leaves its connection for its successor:
 *  - HANDOVER_KEEPER_SYSTEMD: systemd's file descriptor store (FDSTORE=1; the unit needs
 *    FileDescriptorStoreMax=). systemd 252 keeps the store across restarts of the service
 *    (Restart=, systemctl restart) and empties it when the unit stops.
 *  - HANDOVER_KEEPER_SOCKET: an svidfs-keeper process listening on `path` (Kubernetes: a
 *    container of the DaemonSet pod that outlives the daemon container).
 * Facts travel as a KvMsg: `init` (hex INIT request), `mounted_at`, `takeovers`, `mountpoint`. */
typedef enum HandoverKeeperType {
	HANDOVER_KEEPER_NONE,
	HANDOVER_KEEPER_SYSTEMD,
	HANDOVER_KEEPER_SOCKET,
	_HANDOVER_KEEPER_MAX,
} HandoverKeeperType;

typedef struct HandoverKeeper {
	HandoverKeeperType type;
	const char *path; /* HANDOVER_KEEPER_SOCKET */
} HandoverKeeper;

/* Stores (replaces) the connection: fds[0] the /dev/fuse fd, fds[1] the ledger memfd. */
int handover_stash(const HandoverKeeper *k, const int *fds, size_t n_fds, const KvMsg *facts);
/* -ENOENT when the keeper holds nothing. */
int handover_fetch(const HandoverKeeper *k, int *ret_fds, size_t *ret_n_fds, KvMsg **ret_facts);
/* Clean unmount: the keeper forgets the connection. */
int handover_release(const HandoverKeeper *k);
