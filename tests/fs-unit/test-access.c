// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access.h"

static AccessPolicy *policy(const char *root)
{
	AccessPolicy *p = NULL;
	cr_assert_eq(access_policy_new(root, NULL, &p), 0);
	return p;
}

#define UID "0b6a2a6c-6f3e-4f4e-9a3c-2f5d9b1c7e11"
#define UID_ "0b6a2a6c_6f3e_4f4e_9a3c_2f5d9b1c7e11"

Test(access, v2_systemd_naming)
{
	AccessPolicy *p = policy("/");
	char uid[ACCESS_UID_MAX];
	cr_assert_eq(access_parse_pod_uid(
			 p,
			 "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
			 ".slice/cri-containerd-abc.scope\n",
			 uid),
		     0);
	cr_assert_str_eq(uid, UID);
	cr_assert_eq(
	    access_parse_pod_uid(p, "0::/kubepods.slice/kubepods-pod" UID_ ".slice\n", uid), 0);
	cr_assert_str_eq(uid, UID);
	access_policy_free(p);
}

Test(access, v1_cgroupfs_naming)
{
	AccessPolicy *p = policy(NULL);
	char uid[ACCESS_UID_MAX];
	const char *text = "12:pids:/kubepods/besteffort/pod" UID "/0123abcd\n"
			   "11:memory:/kubepods/besteffort/pod" UID "/0123abcd\n"
			   "1:name=systemd:/kubepods/besteffort/pod" UID "/0123abcd\n"
			   "0::/\n";
	cr_assert_eq(access_parse_pod_uid(p, text, uid), 0);
	cr_assert_str_eq(uid, UID);
	access_policy_free(p);
}

Test(access, host_processes_are_in_no_pod)
{
	AccessPolicy *p = policy("/");
	char uid[ACCESS_UID_MAX];
	cr_assert_eq(access_parse_pod_uid(p, "0::/system.slice/sshd.service\n", uid), -ENOENT);
	cr_assert_eq(access_parse_pod_uid(p, "0::/user.slice/user-0.slice/podman.scope\n", uid),
		     -ENOENT);
	cr_assert_eq(access_parse_pod_uid(p, "0::/kubepods.slice\n", uid), -ENOENT);
	cr_assert_eq(access_parse_pod_uid(p, "", uid), -ENOENT);
	access_policy_free(p);
}

Test(access, root_restricts_where_pods_are_recognised)
{
	AccessPolicy *p = policy("/svidfs-test/");
	char uid[ACCESS_UID_MAX];
	cr_assert_eq(
	    access_parse_pod_uid(p, "0::/kubepods.slice/kubepods-pod" UID_ ".slice\n", uid),
	    -ENOENT);
	cr_assert_eq(access_parse_pod_uid(
			 p, "0::/svidfs-test/kubepods.slice/kubepods-pod" UID_ ".slice\n", uid),
		     0);
	cr_assert_str_eq(uid, UID);
	cr_assert_eq(access_parse_pod_uid(p, "0::/svidfs-testx/kubepods/pod" UID "\n", uid),
		     -ENOENT);
	access_policy_free(p);
}

Test(access, conflicting_lines_are_refused)
{
	AccessPolicy *p = policy("/");
	char uid[ACCESS_UID_MAX];
	cr_assert_eq(access_parse_pod_uid(p,
					  "3:cpu:/kubepods/pod" UID "\n"
					  "0::/kubepods/pod11111111-2222-3333-4444-555555555555\n",
					  uid),
		     -EINVAL);
	access_policy_free(p);
}

Test(access, custom_pattern)
{
	AccessPolicy *p = NULL;
	char uid[ACCESS_UID_MAX];
	cr_assert_eq(access_policy_new("/", "^workload-([a-z0-9]+)$", &p), 0);
	cr_assert_eq(access_parse_pod_uid(p, "0::/x/workload-abc123/y\n", uid), 0);
	cr_assert_str_eq(uid, "abc123");
	access_policy_free(p);
	cr_assert_eq(access_policy_new("/", "no-group", &p), -EINVAL);
	cr_assert_eq(access_policy_new("relative", NULL, &p), -EINVAL);
}

Test(access, check_rules)
{
	const char *why = NULL;
	AccessCaller host = {.tid = 10, .known = true};
	AccessCaller pod = {.tid = 11, .known = true, .in_pod = true, .pod_uid = UID};
	AccessCaller zero = {.tid = 0};
	AccessCaller unknown = {.tid = 12};
	cr_assert_eq(access_check(&host, ACCESS_TARGET_POD, UID, &why), 0);
	cr_assert_eq(access_check(&host, ACCESS_TARGET_IDENTITY, "node", &why), 0);
	cr_assert_eq(access_check(&pod, ACCESS_TARGET_POD, UID, &why), 0);
	cr_assert_eq(access_check(&pod, ACCESS_TARGET_POD, "other", &why), -EACCES);
	cr_assert_not_null(why);
	cr_assert_eq(access_check(&pod, ACCESS_TARGET_IDENTITY, "node", &why), -EACCES);
	cr_assert_eq(access_check(&pod, ACCESS_TARGET_SELF, NULL, &why), -EACCES);
	cr_assert_eq(access_check(&zero, ACCESS_TARGET_POD, UID, &why), -EACCES);
	cr_assert_eq(access_check(&unknown, ACCESS_TARGET_POD, UID, &why), -EACCES);
}

Test(access, caller_from_fake_proc)
{
	char dir[] = "/tmp/svidfs-access.XXXXXX", path[256];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/42", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/42/cgroup", dir);
	FILE *f = fopen(path, "w");
	fputs("0::/kubepods/pod" UID "/c1\n", f);
	fclose(f);
	AccessPolicy *p = policy("/");
	AccessCaller c;
	access_caller_from_proc(p, dir, 42, &c);
	cr_assert(c.known);
	cr_assert(c.in_pod);
	cr_assert_str_eq(c.pod_uid, UID);
	access_caller_from_proc(p, dir, 43, &c);
	cr_assert_not(c.known);
	access_caller_from_proc(p, dir, 0, &c);
	cr_assert_not(c.known);
	access_policy_free(p);
	unlink(path);
	snprintf(path, sizeof path, "%s/42", dir);
	rmdir(path);
	rmdir(dir);
}

static void fake_cgroup(const char *dir, int pid, const char *line)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%d", dir, pid);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/%d/cgroup", dir, pid);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(line, f);
	fclose(f);
}

#define UID2 "9d1e3c2a-1111-4222-8333-944455556666"

/* Regression (CSI review): the CSI plugin runs in svidfs's own DaemonSet pod and walks into every
 * pod's directory to bind-mount it; callers in the daemon's own pod must not count as a pod. */
Test(access, daemons_own_pod_is_a_node_component)
{
	char dir[] = "/tmp/svidfs-access.XXXXXX", uid[ACCESS_UID_MAX];
	cr_assert_not_null(mkdtemp(dir));
	AccessPolicy *p = policy("/");
	AccessCaller c;
	const char *why;

	/* Not in a pod: nothing is trusted. */
	fake_cgroup(dir, getpid(), "0::/system.slice/svidfs.service\n");
	cr_assert_eq(access_policy_trust_own_pod(p, dir, uid), 0);
	fake_cgroup(dir, 42, "0::/kubepods/pod" UID "/csi\n");
	access_caller_from_proc(p, dir, 42, &c);
	cr_assert(c.in_pod);

	/* In pod UID: its containers (the CSI plugin) may enter any pod directory... */
	fake_cgroup(dir, getpid(), "0::/kubepods/pod" UID "/svidfs\n");
	cr_assert_eq(access_policy_trust_own_pod(p, dir, uid), 1);
	cr_assert_str_eq(uid, UID);
	access_caller_from_proc(p, dir, 42, &c);
	cr_assert(c.known);
	cr_assert_not(c.in_pod);
	cr_assert(c.own_pod);
	cr_assert_eq(access_check(&c, ACCESS_TARGET_POD, UID2, &why), 0);
	/* ...while every other pod stays fenced to its own directory. */
	fake_cgroup(dir, 43, "0::/kubepods/pod" UID2 "/app\n");
	access_caller_from_proc(p, dir, 43, &c);
	cr_assert(c.in_pod);
	cr_assert_not(c.own_pod);
	cr_assert_eq(access_check(&c, ACCESS_TARGET_POD, UID, &why), -EACCES);
	cr_assert_eq(access_check(&c, ACCESS_TARGET_POD, UID2, &why), 0);
	access_policy_free(p);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}
