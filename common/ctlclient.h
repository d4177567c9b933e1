/* SPDX-License-Identifier: Apache-2.0 */
/* ctlclient.h: a client of the svidfs daemon's control socket (docs/control-protocol.md). Owns one
 * connection; one thread at a time per CtlClient (open one per thread). Blocking I/O bounded by a
 * timeout. Never logs: callers log with their own context. */
#pragma once

#include "kv.h"

typedef struct CtlClient CtlClient;

/* Largest reply accepted (a `list` of thousands of workloads fits). */
#define CTL_REPLY_MAX (4u * 1024 * 1024)

/* Connects to the unix socket at path. -ENOENT/-ECONNREFUSED when no daemon listens there,
 * -ENAMETOOLONG for a path beyond sun_path, -ETIMEDOUT if the connect or handshake stalls. */
int ctl_client_connect(const char *path, int timeout_ms, CtlClient **ret);
CtlClient *ctl_client_free(CtlClient *c); /* NULL-safe, returns NULL */

/* Sends req and reads one reply within timeout_ms (-1: no limit). Returns 0 when a reply arrived
 * (whatever its status=), or the transport error (-ETIMEDOUT, -ECONNRESET, -EPIPE, ...). */
int ctl_client_call(CtlClient *c, const KvMsg *req, int timeout_ms, KvMsg **ret_reply);

/* One-shot: connect, call, close. */
int ctl_call(const char *path, const KvMsg *req, int timeout_ms, KvMsg **ret_reply);

/* The reply's status= as an int (0 or -errno); -EBADMSG when missing or malformed. */
int ctl_reply_status(const KvMsg *reply);
/* The reply's error= line, or a generic text when the daemon sent none. Never NULL. */
const char *ctl_reply_error(const KvMsg *reply);
