/* SPDX-License-Identifier: Apache-2.0 */
/* access.h: who may enter which workload directory. Owns the attribution of a caller to a pod:
 * the parser turns /proc/<tid>/cgroup text (cgroup v1, v2 and hybrid; the systemd and cgroupfs
 * drivers) into exactly one pod UID, "a host process", or a denial with its reason;
 * access_check is the pure rule of docs/daemon.md (Access). Never logs. Any thread may call
 * these functions once the policy is built (access_policy_trust_own_pod is part of building). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define ACCESS_UID_MAX 64
#define ACCESS_REASON_MAX 512

typedef struct AccessPolicy AccessPolicy;

/* cgroup_root (NULL: "/"): where kubelet's kubepods cgroup is, given either as kubelet's own
 * --cgroup-root value ("/kubelet": pods in /kubelet/kubepods/... with the cgroupfs driver,
 * /kubelet.slice/kubelet-kubepods.slice/... with the systemd driver) or as the cgroup path that
 * contains the kubepods cgroup ("/kubelet.slice"). -EINVAL unless absolute and free of "." and
 * ".." components. */
int access_policy_new(const char *cgroup_root, AccessPolicy **ret);
AccessPolicy *access_policy_free(AccessPolicy *p); /* NULL-safe */

/* svidfs runs in a DaemonSet pod next to its CSI plugin, which walks from the mount root into
 * every pod's directory to bind-mount it. Callers in the daemon's own pod are therefore treated
 * as node components (governed by modes), not as a pod. Reads <proc_root>/<own pid>/cgroup
 * (proc_root NULL: "/proc"); returns 1 and fills ret_uid when the daemon is attributed to a pod,
 * 0 when not (nothing is trusted then). kubelet put the daemon where it puts every pod on this
 * node: when cgroup_root misses that place but the daemon's path reads as exactly one pod below
 * it, that place counts as a root too (access_policy_own_root). */
int access_policy_trust_own_pod(AccessPolicy *p, const char *proc_root,
				char ret_uid[ACCESS_UID_MAX]);
/* The parent of the kubepods cgroup found from the daemon's own cgroup, NULL when none was
 * needed. Valid while p lives. */
const char *access_policy_own_root(const AccessPolicy *p);

/* 1 when <proc_root>/self and <proc_root>/1 are in different cgroup namespaces (the daemon sees
 * other processes' cgroup paths relative to its own namespace, as "/../.."; such callers are
 * denied), 0 when not or when it cannot tell. */
int access_cgroupns_private(const char *proc_root);

/* Attributes the text of a /proc/<tid>/cgroup file. 0 with the pod UID (lowercase, dashed, as
 * the pod's registration spells it); -ENOENT: no line is in a kubepods hierarchy (a host
 * process); -EACCES: not attributable to exactly one pod, with the reason (and the offending
 * path) in ret_reason when it is not NULL. ret_uid is written only on success. */
int access_parse_pod_uid(const AccessPolicy *p, const char *cgroup_text,
			 char ret_uid[ACCESS_UID_MAX], char ret_reason[ACCESS_REASON_MAX]);

typedef enum AccessTarget {
	ACCESS_TARGET_POD,	/* pods/<uid> */
	ACCESS_TARGET_IDENTITY, /* identities/<name> */
	ACCESS_TARGET_SELF,	/* self */
	_ACCESS_TARGET_MAX,
} AccessTarget;

typedef struct AccessCaller {
	pid_t tid;	     /* 0: not visible in the daemon's pid namespace */
	bool known;	     /* the cgroup could be read */
	bool in_pod;	     /* attributed to exactly one pod */
	bool own_pod;	     /* in the daemon's own pod: a node component, in_pod is false */
	bool unattributable; /* in a kubepods hierarchy but not exactly one pod's: denied */
	char pod_uid[ACCESS_UID_MAX];
	char reason[ACCESS_REASON_MAX]; /* why unattributable */
} AccessCaller;

/* Fills a caller from <proc_root>/<tid>/cgroup (proc_root NULL: "/proc"). Never fails: an
 * unreadable file leaves known=false, which access_check denies. */
void access_caller_from_proc(const AccessPolicy *p, const char *proc_root, pid_t tid,
			     AccessCaller *ret);

/* 0, or -EACCES with a reason that lives as long as *c: a caller in a pod cgroup may enter only
 * its own pod's directory; an unattributable caller nothing; a caller in no pod cgroup is
 * governed by file modes; pid 0 is denied. */
int access_check(const AccessCaller *c, AccessTarget t, const char *target_name,
		 const char **ret_reason);
