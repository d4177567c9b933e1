/* SPDX-License-Identifier: Apache-2.0 */
/* access.h: who may enter which workload directory. Owns the compiled pod-cgroup pattern. The
 * parser turns /proc/<tid>/cgroup text (cgroup v1 and v2, systemd and cgroupfs naming) into a
 * pod UID; access_check is the pure rule of design.md (access rules, 3). Never logs. Any thread
 * may call these functions once the policy is built. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#define ACCESS_UID_MAX 64

/* The default pod pattern: a cgroup path component such as
 * kubepods-burstable-pod<uid_with_underscores>.slice (systemd) or pod<uid> (cgroupfs). The
 * first capture group is the UID; '_' in it reads as '-'. */
#define ACCESS_DEFAULT_POD_PATTERN "^[a-z_-]*pod([0-9a-fA-F_-]{36})(\\.slice)?$"

typedef struct AccessPolicy AccessPolicy;

/* cgroup_root: pod cgroups are only recognised below this cgroup path ("/" or NULL: anywhere).
 * pod_pattern: a POSIX extended regex for one path component, NULL for the default. */
int access_policy_new(const char *cgroup_root, const char *pod_pattern, AccessPolicy **ret);
AccessPolicy *access_policy_free(AccessPolicy *p); /* NULL-safe */

/* svidfs runs in a DaemonSet pod next to its CSI plugin, which walks from the mount root into
 * every pod's directory to bind-mount it. Callers in the daemon's own pod are therefore treated
 * as node components (governed by modes), not as a pod. Reads <proc_root>/<own pid>/cgroup
 * (proc_root NULL: "/proc"); returns 1 and fills ret_uid when the daemon is in a pod, 0 when
 * not (nothing is trusted then). */
int access_policy_trust_own_pod(AccessPolicy *p, const char *proc_root,
				char ret_uid[ACCESS_UID_MAX]);

/* 0 with the lowercase, dashed pod UID; -ENOENT when the caller is in no pod cgroup; -EINVAL
 * when two lines name different pods. */
int access_parse_pod_uid(const AccessPolicy *p, const char *cgroup_text,
			 char ret_uid[ACCESS_UID_MAX]);

typedef enum AccessTarget {
	ACCESS_TARGET_POD,	/* pods/<uid> */
	ACCESS_TARGET_IDENTITY, /* identities/<name> */
	ACCESS_TARGET_SELF,	/* self */
	_ACCESS_TARGET_MAX,
} AccessTarget;

typedef struct AccessCaller {
	pid_t tid;  /* 0: not visible in the daemon's pid namespace */
	bool known; /* the cgroup could be read */
	bool in_pod;
	bool own_pod; /* in the daemon's own pod: a node component, in_pod is false */
	char pod_uid[ACCESS_UID_MAX];
} AccessCaller;

/* Fills a caller from <proc_root>/<tid>/cgroup (proc_root NULL: "/proc"). Never fails: an
 * unreadable file leaves known=false, which access_check denies. */
void access_caller_from_proc(const AccessPolicy *p, const char *proc_root, pid_t tid,
			     AccessCaller *ret);

/* 0, or -EACCES with a static reason: a caller in a pod cgroup may enter only its own pod's
 * directory; a caller in no pod cgroup is governed by file modes; pid 0 is denied. */
int access_check(const AccessCaller *c, AccessTarget t, const char *target_name,
		 const char **ret_reason);
