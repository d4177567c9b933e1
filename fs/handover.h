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
