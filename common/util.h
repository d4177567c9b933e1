/* SPDX-License-Identifier: Apache-2.0 */
/* util.h: small helpers shared by every svidfs program (directories, gRPC status names). No
 * state; any thread. */
#pragma once

#include <sys/types.h>

/* Creates path and any missing parents: parents with parents_mode, path itself with mode. An
 * existing directory is fine. */
int mkdir_p(const char *path, mode_t parents_mode, mode_t mode);
/* The same for the directory that will hold path (its last component is not created). */
int mkdir_parents(const char *path, mode_t parents_mode, mode_t mode);

/* A connected AF_UNIX socket of `type` (SOCK_STREAM, SOCK_SEQPACKET), close-on-exec; -errno
 * (-ENOENT/-ECONNREFUSED when nobody listens, -ENAMETOOLONG). */
int unix_connect(const char *path, int type);

/* "UNAVAILABLE" for 14; "?" outside the gRPC status range. */
const char *grpc_status_name(int code);
