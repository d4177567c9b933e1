/* SPDX-License-Identifier: Apache-2.0 */
/* fuseconn.h: owns the daemon's /dev/fuse connection: mounting it with mount(2) (not
 * fusermount), remembering the kernel's FUSE_INIT request, and adopting a live connection that a
 * previous daemon left with a keeper (docs/takeover.md). It is the
 * session's I/O layer (fuse_session_custom_io): every request and reply passes through it, which
 * is how a planned handover drains. Thread-safe: libfuse's worker threads call the I/O hooks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fuse_session;
typedef struct FuseConn FuseConn;

#define FUSE_CONN_INIT_MAX 512

/* Opens /dev/fuse and mounts it read-only at mountpoint (allow_other, default_permissions). */
int fuse_conn_mount(const char *mountpoint, const char *fsname, FuseConn **ret);
/* Takes ownership of fd (a /dev/fuse connection another process mounted) and the INIT request
 * bytes it recorded; the session will see that INIT replayed first, and its reply is swallowed
 * (the kernel already has one). */
int fuse_conn_adopt(int fd, const void *init, size_t init_len, FuseConn **ret);
FuseConn *fuse_conn_free(FuseConn *c); /* does not unmount; closes fd unless attached */

/* Hands the connection to the session (the session closes the fd at destroy). An adopted
 * connection's recorded INIT is processed here, before the caller starts the loop. */
int fuse_conn_attach(FuseConn *c, struct fuse_session *se);

int fuse_conn_fd(const FuseConn *c);
bool fuse_conn_adopted(const FuseConn *c);
/* The kernel's INIT request once seen (fresh mounts record it on the first read). -EAGAIN before. */
int fuse_conn_get_init(FuseConn *c, const void **ret, size_t *ret_len);

/* Asks the kernel to resend every request a dead daemon had read but not answered
 * (FUSE_NOTIFY_RESEND, Linux >= 6.9). -EOPNOTSUPP on older kernels. */
int fuse_conn_request_resend(FuseConn *c);

/* Planned handover: from now on reads report end of session, so the loop stops taking new
 * requests, finishes the ones it holds, and returns; the kernel queues the rest for the next
 * daemon. Safe from any thread. */
void fuse_conn_drain(FuseConn *c);

/* Counters for status: requests read, replies written. */
uint64_t fuse_conn_requests(const FuseConn *c);
/* Wall-clock microseconds of this process's first and latest reply to the kernel (0: none yet);
 * the handover time is the successor's first minus the predecessor's last. Notifications count
 * as replies too. */
uint64_t fuse_conn_first_reply_us(const FuseConn *c);
uint64_t fuse_conn_last_reply_us(const FuseConn *c);
