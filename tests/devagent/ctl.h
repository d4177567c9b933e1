/* SPDX-License-Identifier: Apache-2.0 */
/* ctl.h: the development agent's control socket (unix stream, common/kv.h messages: request
 * "op=..." plus keys, reply "status=0|-errno" and "error=" on failure; docs/devagent.md lists the
 * ops) and the matching client, `svidfs-devagent ctl`. A Ctl owns its listening socket (guarded by
 * a flock'ed "<path>.lock") and one thread that serves any number of connections; every op is a
 * call into the Server. */
#pragma once

#include "server.h"

typedef struct Ctl Ctl;

int ctl_new(const char *path, Server *s, Ctl **ret);
Ctl *ctl_free(Ctl *c); /* NULL-safe; stops the thread, removes the socket */

/* `svidfs-devagent ctl [--control PATH] [--wait MS] OP [ARG...]`: prints the reply's keys (one
 * key=value a line) and returns the process exit code (0 ok, 1 failed op, 2 usage). */
int ctl_client_main(int argc, char **argv);
