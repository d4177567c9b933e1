/* SPDX-License-Identifier: Apache-2.0 */
/* stack.h: the real svidfs stack for the CSI integration tests and benchmarks: the development
 * agent (auto-k8s mode), the svidfs daemon and svidfs-csi, started as child processes in a
 * per-run temporary directory, inside a private mount namespace the caller enters first (so no
 * mount can outlive the run). Owns the directory and the child pids; killed by pid. One thread. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include "kv.h"

typedef struct Stack Stack;

typedef struct {
	int first_svid_delay_ms; /* the development agent's delay before a new pod's first SVID */
	int svid_ttl_s;		 /* SVID lifetime (0: the agent's default) */
	int publish_timeout_s;	 /* svidfs-csi --publish-timeout (0: 30) */
	bool verbose;		 /* children's logs to stderr instead of files */
} StackOptions;

/* unshare(CLONE_NEWNS) and make every mount private: call once before stack_start(). */
int stack_enter_private_mount_ns(void);

int stack_start(const StackOptions *o, Stack **ret);
Stack *stack_free(Stack *s); /* kills children by pid, unmounts, removes the directory */

const char *stack_dir(const Stack *s);
const char *stack_csi_socket(const Stack *s);
const char *stack_kubelet_root(const Stack *s);
const char *stack_svidfs_mount(const Stack *s);
const char *stack_control_socket(const Stack *s);
const char *stack_trust_domain(const Stack *s);

/* One control-socket request to the daemon; returns the reply's status or a transport error. */
int stack_ctl(Stack *s, const char *op, const char *workload, KvMsg **ret_reply);

/* Restarts svidfs-csi (SIGKILL when hard, else SIGTERM) and waits until it serves again. */
int stack_restart_plugin(Stack *s, bool hard);
/* Runs a second svidfs-csi on the same endpoint and returns its exit status (it must refuse to
 * steal the socket), or -errno. */
int stack_run_second_plugin(Stack *s);
/* The plugin's log so far (malloc'ed, NUL-terminated), or NULL. */
char *stack_plugin_log(Stack *s);
/* Stops svidfs-csi with SIGTERM; true when it exited 0 and its log holds no sanitizer report
 * (AddressSanitizer, LeakSanitizer, UBSan), which is how the sanitizer lane checks the plugin. */
bool stack_stop_plugin_cleanly(Stack *s);
/* Stops the daemon (SIGKILL: its FUSE mount stays, ENOTCONN) or starts it again. */
int stack_kill_daemon(Stack *s);
/* Asks the development agent to rotate every SVID now. */
int stack_rotate(Stack *s);
/* Changes the development agent's delay before a new pod's first SVID. */
int stack_set_first_svid_delay(Stack *s, int ms);

/* Runs fn in a child process that behaves as a container of pod pod_uid: it joins a
 * kubepods-...-pod<uid>.slice cgroup, enters its own mount namespace, bind-mounts volume (a
 * target path, or NULL) at <dir> as the container runtime does, then drops to uid/gid when
 * uid != 0. fn gets the mount dir and a pipe to write results to; it returns 0 or an errno.
 * Returns fn's result (or a negative errno if the child could not be set up), with up to
 * outlen-1 bytes of what fn wrote in out. */
typedef int (*PodFn)(const char *dir, int out_fd, void *arg);
int stack_pod_exec(Stack *s, const char *pod_uid, const char *volume, uid_t uid, gid_t gid,
		   PodFn fn, void *arg, char *out, size_t outlen);
