// SPDX-License-Identifier: Apache-2.0
/* Attribution of callers to pods (fs/access.c): every cgroup shape kubelet and the runtimes
 * produce is attributed to its pod, and every hostile or unattributable shape under a kubepods
 * hierarchy is denied, never taken for the host (svidfs issue 12, items 1 and 2). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access.h"
#include "macro.h"

static AccessPolicy *policy(const char *root)
{
	AccessPolicy *p = NULL;
	cr_assert_eq(access_policy_new(root, &p), 0, "root %s", root ? root : "(null)");
	return p;
}

/* An API pod (apiserver UUID) in both spellings, another one, and static pods (32 hex). */
#define UID "0b6a2a6c-6f3e-4f4e-9a3c-2f5d9b1c7e11"
#define UID_ "0b6a2a6c_6f3e_4f4e_9a3c_2f5d9b1c7e11"
#define UID2 "9d1e3c2a-1111-4222-8333-944455556666"
#define UID2_ "9d1e3c2a_1111_4222_8333_944455556666"
#define HASH "6f1d9a3b0c2e4f5a8b7c6d5e4f3a2b1c"
#define HASH2 "0123456789abcdef0123456789abcdef"
#define CTR "d7dfb4a21fe1703a8537e60d5af248af729315d187b24a538102d14874c8117d"
#define SD_B "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
#define CG_B "/kubepods/besteffort/pod"

/* ---- every legitimate shape ------------------------------------------------------------ */

typedef struct Root {
	const char *config; /* --cgroup-root */
	const char *sd_parent, *sd_prefix; /* where systemd-driver pods are, NULL: not tested */
	const char *fs_parent; /* where cgroupfs-driver pods are, NULL: not tested */
} Root;

static const Root roots[] = {
	{"/", "", "", ""},
	{NULL, "", "", ""},
	/* kind: kubelet --cgroup-root=/kubelet, given as kubelet's value or as the slice. */
	{"/kubelet", "/kubelet.slice", "kubelet-", "/kubelet"},
	{"/kubelet.slice", "/kubelet.slice", "kubelet-", NULL},
	/* a '-' in kubelet's root is escaped as '_' in systemd names */
	{"/node-a/pods", "/node_a.slice/node_a-pods.slice", "node_a-pods-", "/node-a/pods"},
	{"//node-a//pods/", "/node_a.slice/node_a-pods.slice", "node_a-pods-", "/node-a/pods"},
};

static const char *const partitions[] = {"", "system"};
static const char *const qoses[] = {"", "burstable", "besteffort"}; /* "": Guaranteed */
/* Container cgroups below the pod, per driver; "": a process in the pod cgroup itself. */
static const char *const sd_ctrs[] = {"", "/cri-containerd-" CTR ".scope", "/crio-" CTR ".scope",
				      "/crio-conmon-" CTR ".scope", "/docker-" CTR ".scope",
				      "/crio-" CTR ".scope/container",
				      "/cri-containerd-" CTR ".scope/init.scope/sub"};
static const char *const fs_ctrs[] = {"", "/" CTR, "/crio-" CTR, "/crio-conmon-" CTR,
				      "/" CTR "/nested-by-the-app"};

static void underscores(char *dst, const char *uid)
{
	for (; *uid; uid++)
		*dst++ = *uid == '-' ? '_' : *uid;
	*dst = 0;
}

/* The pod cgroup kubelet creates with the systemd driver. */
static void sd_path(char *out, size_t size, const Root *r, const char *part, const char *qos,
		    const char *uid, const char *ctr)
{
	char cur[256], esc[64];
	int n = snprintf(out, size, "%s/%skubepods.slice", r->sd_parent, r->sd_prefix);
	snprintf(cur, sizeof cur, "%skubepods", r->sd_prefix);
	const char *levels[] = {part, qos};
	for (size_t i = 0; i < 2; i++) {
		if (!*levels[i])
			continue;
		size_t l = strlen(cur);
		snprintf(cur + l, sizeof cur - l, "-%s", levels[i]);
		n += snprintf(out + n, size - (size_t)n, "/%s.slice", cur);
	}
	underscores(esc, uid);
	snprintf(out + n, size - (size_t)n, "/%s-pod%s.slice%s", cur, esc, ctr);
}

static void fs_path(char *out, size_t size, const Root *r, const char *part, const char *qos,
		    const char *uid, const char *ctr)
{
	snprintf(out, size, "%s/kubepods%s%s%s%s/pod%s%s", r->fs_parent, *part ? "/" : "", part,
		 *qos ? "/" : "", qos, uid, ctr);
}

/* The file a process in that cgroup reads: v2, v1 (every controller), hybrid (v1 + 0::). */
static void cgroup_file(char *out, size_t size, int layout, const char *path)
{
	if (layout == 0) {
		snprintf(out, size, "0::%s\n", path);
		return;
	}
	snprintf(out, size,
		 "12:pids:%s\n11:memory:%s\n7:cpu,cpuacct:%s\n3:net_cls,net_prio:%s\n"
		 "1:name=systemd:%s\n%s%s%s",
		 path, path, path, path, path, layout == 2 ? "0::" : "", layout == 2 ? path : "",
		 layout == 2 ? "\n" : "");
}

static void expect_pod(const AccessPolicy *p, const char *text, const char *uid)
{
	char got[ACCESS_UID_MAX] = "", why[ACCESS_REASON_MAX] = "";
	int r = access_parse_pod_uid(p, text, got, why);
	cr_assert_eq(r, 0, "not attributed (%d: %s):\n%s", r, why, text);
	cr_assert_str_eq(got, uid, "wrong pod for\n%s", text);
}

/* Every container shape of both drivers for one pod cgroup, in one cgroup layout. */
static unsigned check_pod_shapes(const AccessPolicy *p, const Root *r, const char *part,
				 const char *qos, const char *uid, int layout)
{
	char path[1024], text[8192];
	unsigned n = 0;

	for (size_t i = 0; r->sd_parent && i < ELEMENTSOF(sd_ctrs); i++, n++) {
		sd_path(path, sizeof path, r, part, qos, uid, sd_ctrs[i]);
		cgroup_file(text, sizeof text, layout, path);
		expect_pod(p, text, uid);
	}
	for (size_t i = 0; r->fs_parent && i < ELEMENTSOF(fs_ctrs); i++, n++) {
		fs_path(path, sizeof path, r, part, qos, uid, fs_ctrs[i]);
		cgroup_file(text, sizeof text, layout, path);
		expect_pod(p, text, uid);
	}
	return n;
}

/* Roots (kubelet --cgroup-root) x system partition x QoS x API/static UID x v2/v1/hybrid x
 * container shapes of the systemd and cgroupfs drivers. */
Test(access, every_kubelet_shape_is_attributed_to_its_pod)
{
	static const char *const uids[] = {UID, HASH};
	unsigned n = 0;

	for (size_t ri = 0; ri < ELEMENTSOF(roots); ri++) {
		AccessPolicy *p = policy(roots[ri].config);
		for (size_t pi = 0; pi < ELEMENTSOF(partitions); pi++)
			for (size_t qi = 0; qi < ELEMENTSOF(qoses); qi++)
				for (size_t ui = 0; ui < ELEMENTSOF(uids); ui++)
					for (int layout = 0; layout < 3; layout++)
						n += check_pod_shapes(p, &roots[ri], partitions[pi],
								      qoses[qi], uids[ui], layout);
		access_policy_free(p);
	}
	cr_log_info("%u shapes attributed", n);
	cr_assert_gt(n, 1000);
}

/* ---- explicit cases ------------------------------------------------------------------- */

typedef struct Case {
	const char *name;
	const char *root; /* NULL: "/" */
	const char *text;
	int expect; /* 0: pod `uid`; -ENOENT: host; -EACCES: denied with `reason` in the reason */
	const char *uid_or_reason;
} Case;

static void run_cases(const Case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const Case *c = &cases[i];
		AccessPolicy *p = policy(c->root);
		char uid[ACCESS_UID_MAX] = "", why[ACCESS_REASON_MAX] = "";
		int r = access_parse_pod_uid(p, c->text, uid, why);
		cr_expect_eq(r, c->expect, "%s: got %d (%s / %s), expected %d", c->name, r, uid,
			     why, c->expect);
		if (r == 0 && c->expect == 0)
			cr_expect_str_eq(uid, c->uid_or_reason, "%s", c->name);
		if (r == -EACCES && c->expect == -EACCES && c->uid_or_reason)
			cr_expect(strstr(why, c->uid_or_reason), "%s: reason '%s' lacks '%s'",
				  c->name, why, c->uid_or_reason);
		access_policy_free(p);
	}
}

#define NESTED "is named like a pod"
#define NOPOD "no pod cgroup where kubelet puts it"
#define ABOVE "in no pod"
#define MISPLACED "where --cgroup-root does not put it"

/* Issue 12, item 1: a process of pod B that may create child cgroups moves into one named
 * after pod A. */
Test(access, nested_cgroup_named_after_another_pod_is_denied)
{
	static const Case cases[] = {
	    {"v2 systemd, inside B's container", NULL,
	     "0::" SD_B UID2_ ".slice/cri-containerd-" CTR ".scope/kubepods-besteffort-pod" UID_
	     ".slice\n",
	     -EACCES, NESTED},
	    {"v2 systemd, a whole kubepods tree inside B", NULL,
	     "0::" SD_B UID2_ ".slice/cri-containerd-" CTR
	     ".scope/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
	     ".slice/x.scope\n",
	     -EACCES, NESTED},
	    {"v1 cgroupfs, inside B's container", NULL,
	     "12:pids:" CG_B UID2 "/" CTR "/pod" UID "\n11:memory:" CG_B UID2 "/" CTR "\n", -EACCES,
	     NESTED},
	    {"v1 cgroupfs, directly below B", NULL, "4:cpu:/kubepods/pod" UID2 "/pod" UID "\n",
	     -EACCES, NESTED},
	    {"static pod named inside an API pod", NULL,
	     "0::/kubepods/burstable/pod" UID2 "/" CTR "/pod" HASH "\n", -EACCES, NESTED},
	    {"an API pod named inside a static pod", NULL,
	     "0::" SD_B HASH ".slice/crio-" CTR ".scope/kubepods-pod" UID_ ".slice\n", -EACCES,
	     NESTED},
	    {"upper case does not hide it", NULL,
	     "0::" SD_B UID2_ ".slice/crio-" CTR ".scope/POD" UID "\n", -EACCES, NESTED},
	    {"a partial UID is enough to refuse", NULL,
	     "0::/kubepods/pod" UID2 "/" CTR "/x-pod0b6a2a6c\n", -EACCES, NESTED},
	    {"kind root, nested", "/kubelet",
	     "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" UID2_
	     ".slice/cri-containerd-" CTR ".scope/kubelet-kubepods-pod" UID_ ".slice\n",
	     -EACCES, NESTED},
	    {"two pod levels in one path", NULL,
	     "0::/kubepods.slice/kubepods-pod" UID_ ".slice/kubepods-pod" UID2_ ".slice\n",
	     -EACCES, NESTED},
	    /* Names below the pod that only resemble "pod" are the container's business. */
	    {"podman inside a pod", NULL,
	     "0::" SD_B UID2_ ".slice/cri-containerd-" CTR ".scope/libpod-" CTR ".scope\n", 0,
	     UID2},
	    {"a service called podcast inside a pod", NULL,
	     "0::/kubepods/pod" UID2 "/" CTR "/podcast.service\n", 0, UID2},
	};
	run_cases(cases, ELEMENTSOF(cases));
}

/* Issue 12, item 2: static pods (32 hex) were taken for the host; every process under
 * kubepods must resolve to exactly one pod. */
Test(access, static_pods_are_pods_not_the_host)
{
	static const Case cases[] = {
	    {"v2 systemd besteffort static pod", NULL,
	     "0::" SD_B HASH ".slice/cri-containerd-" CTR ".scope\n", 0, HASH},
	    {"v1 cgroupfs guaranteed static pod", NULL,
	     "5:memory:/kubepods/pod" HASH2 "/" CTR "\n2:pids:/kubepods/pod" HASH2 "/" CTR "\n", 0,
	     HASH2},
	    {"kind static pod (control plane)", "/kubelet",
	     "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
	     "kubelet-kubepods-burstable-pod" HASH ".slice/cri-containerd-" CTR ".scope\n",
	     0, HASH},
	};
	run_cases(cases, ELEMENTSOF(cases));
}

Test(access, malformed_uids_are_denied)
{
	static const Case cases[] = {
	    {"31 hex", NULL, "0::" CG_B "6f1d9a3b0c2e4f5a8b7c6d5e4f3a2b1/" CTR "\n", -EACCES,
	     NOPOD},
	    {"33 hex", NULL, "0::" CG_B HASH "a/" CTR "\n", -EACCES, NOPOD},
	    {"35 chars", NULL, "0::" CG_B "0b6a2a6c-6f3e-4f4e-9a3c-2f5d9b1c7e1/" CTR "\n", -EACCES,
	     NOPOD},
	    {"37 chars", NULL, "0::" CG_B UID "1/" CTR "\n", -EACCES, NOPOD},
	    {"upper-case UUID", NULL, "0::" CG_B "0B6A2A6C-6F3E-4F4E-9A3C-2F5D9B1C7E11\n", -EACCES,
	     NOPOD},
	    {"upper-case hash", NULL,
	     "0::" SD_B "6F1D9A3B0C2E4F5A8B7C6D5E4F3A2B1C.slice\n", -EACCES, NOPOD},
	    {"mixed - and _ (systemd)", NULL,
	     "0::" SD_B "0b6a2a6c_6f3e-4f4e_9a3c_2f5d9b1c7e11.slice\n", -EACCES, NOPOD},
	    {"dashes in a systemd name", NULL, "0::" SD_B UID ".slice\n", -EACCES, NOPOD},
	    {"underscores in a cgroupfs name", NULL, "0::" CG_B UID_ "\n", -EACCES, NOPOD},
	    {"separator in the wrong place", NULL,
	     "0::" CG_B "0b6a2a6c6-f3e-4f4e-9a3c-2f5d9b1c7e11\n", -EACCES, NOPOD},
	    {"not hex", NULL, "0::" CG_B "0b6a2a6c-6f3e-4f4e-9a3c-2f5d9b1c7eg1\n", -EACCES,
	     NOPOD},
	    {"a uid kubelet never makes (static manifest's own)", NULL,
	     "0::/kubepods/podmy-static-pod/" CTR "\n", -EACCES, NOPOD},
	    {"no uid at all", NULL, "0::/kubepods.slice/kubepods-pod.slice\n", -EACCES, NOPOD},
	};
	run_cases(cases, ELEMENTSOF(cases));
}

Test(access, unattributable_paths_under_kubepods_are_denied)
{
	static const Case cases[] = {
	    {"a scope in kubepods.slice", NULL, "0::/kubepods.slice/foo.scope\n", -EACCES, NOPOD},
	    {"not a pod below a QoS level", NULL, "0::/kubepods/burstable/notapod/x\n", -EACCES,
	     NOPOD},
	    {"the kubepods cgroup itself", NULL, "0::/kubepods.slice\n", -EACCES, ABOVE},
	    {"a QoS cgroup", NULL, "0::/kubepods/besteffort\n", -EACCES, ABOVE},
	    {"a systemd QoS slice", NULL, "0::/kubepods.slice/kubepods-burstable.slice\n", -EACCES,
	     ABOVE},
	    {"pod one level too deep", NULL, "0::/kubepods/burstable/besteffort/pod" UID "\n",
	     -EACCES, NOPOD},
	    {"QoS twice", NULL, "0::/kubepods/burstable/burstable/pod" UID "\n", -EACCES, NOPOD},
	    {"system partition below QoS", NULL, "0::/kubepods/burstable/system/pod" UID "\n",
	     -EACCES, NOPOD},
	    {"an unknown QoS class", NULL, "0::/kubepods/Burstable/pod" UID "\n", -EACCES, NOPOD},
	    {"systemd names that do not nest", NULL,
	     "0::/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod" UID_ ".slice\n",
	     -EACCES, NOPOD},
	    {"a cgroupfs pod in a systemd tree", NULL,
	     "0::/kubepods.slice/kubepods-burstable.slice/pod" UID "\n", -EACCES, NOPOD},
	    {"a systemd pod in a cgroupfs tree", NULL,
	     "0::/kubepods/burstable/kubepods-burstable-pod" UID_ ".slice\n", -EACCES, NOPOD},
	    {"upper-case KUBEPODS", NULL, "0::/KUBEPODS/pod" UID "\n", -EACCES, MISPLACED},
	    /* kubepods where the configured root does not put it: a wrong --cgroup-root (kind
	     * without --cgroup-root=/kubelet) must fail closed, not make every pod the host. */
	    {"kind layout with the default root", NULL,
	     "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" UID_ ".slice\n",
	     -EACCES, MISPLACED},
	    {"a pod outside the configured root", "/svidfs-test",
	     "0::/svidfs-testx/kubepods/pod" UID "\n", -EACCES, MISPLACED},
	    {"kubepods below a host service", NULL,
	     "0::/system.slice/foo.service/kubepods/pod" UID "\n", -EACCES, MISPLACED},
	    {"a stray kubepods slice", NULL, "0::/system.slice/kubepods-pod" UID_ ".slice\n",
	     -EACCES, MISPLACED},
	};
	run_cases(cases, ELEMENTSOF(cases));
}

Test(access, hierarchies_must_agree)
{
	static const Case cases[] = {
	    {"v1 lines name two pods", NULL,
	     "12:pids:/kubepods/pod" UID "/c\n11:memory:/kubepods/pod" UID2 "/c\n", -EACCES,
	     "different pods"},
	    {"v1 agrees, v2 names another pod", NULL,
	     "3:cpu:/kubepods/pod" UID "\n0::/kubepods.slice/kubepods-pod" UID2_ ".slice\n",
	     -EACCES, "different pods"},
	    {"one v1 line nested, the others fine", NULL,
	     "12:pids:/kubepods/pod" UID2 "/" CTR "/pod" UID "\n11:memory:/kubepods/pod" UID2
	     "/" CTR "\n0::/kubepods/pod" UID2 "/" CTR "\n",
	     -EACCES, NESTED},
	    {"one line unattributable", NULL,
	     "12:pids:/kubepods/pod" UID "\n11:memory:/kubepods/burstable\n", -EACCES, ABOVE},
	    /* The unified hierarchy of a hybrid node with the cgroupfs driver keeps the
	     * runtime's path: a host line never overrides a pod. */
	    {"hybrid, unified line outside kubepods", NULL,
	     "12:pids:/kubepods/besteffort/pod" UID "/" CTR "\n"
	     "11:memory:/kubepods/besteffort/pod" UID "/" CTR "\n"
	     "1:name=systemd:/system.slice/containerd.service\n0::/\n",
	     0, UID},
	    {"no trailing newline", NULL, "0::/kubepods/pod" UID, 0, UID},
	};
	run_cases(cases, ELEMENTSOF(cases));
}

Test(access, paths_outside_the_namespace_or_malformed_are_denied)
{
	static const Case cases[] = {
	    /* What a daemon in a private cgroup namespace sees of everyone else. */
	    {"'..' before kubepods", NULL,
	     "0::/../../kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
	     ".slice/cri-containerd-" CTR ".scope\n",
	     -EACCES, "cgroup namespace"},
	    {"'..' of a sibling pod", NULL,
	     "0::/../../../kubepods-burstable.slice/kubepods-burstable-pod" UID_ ".slice/x.scope\n",
	     -EACCES, "cgroup namespace"},
	    {"'..' of a host process", NULL, "0::/../../../../system.slice/sshd.service\n",
	     -EACCES, "cgroup namespace"},
	    /* No kubepods in sight, yet a pod's: the namespace's root is a cgroupfs pod's. */
	    {"'..' of a cgroupfs sibling pod", NULL, "0::/../../pod" UID "/" CTR "\n", -EACCES,
	     "cgroup namespace"},
	    {"the host's root seen from nspawn", NULL, "0::/..\n", -EACCES, "cgroup namespace"},
	    {"'..' inside a pod path", NULL, "0::/kubepods/pod" UID "/../pod" UID2 "\n", -EACCES,
	     "cgroup namespace"},
	    {"'.' component", NULL, "0::/kubepods/./pod" UID "\n", -EACCES, "malformed"},
	    {"empty component", NULL, "0::/kubepods//pod" UID "\n", -EACCES, "malformed"},
	    {"relative path", NULL, "0::kubepods/pod" UID "\n", -EACCES, "absolute"},
	    {"no path", NULL, "0::\n", -EACCES, "absolute"},
	    {"not a cgroup line", NULL, "garbage\n", -EACCES, "malformed"},
	    {"empty file", NULL, "", -EACCES, "empty"},
	};
	run_cases(cases, ELEMENTSOF(cases));
}

Test(access, host_processes_are_in_no_pod)
{
	static const Case cases[] = {
	    {"root cgroup", NULL, "0::/\n", -ENOENT, NULL},
	    {"a service", NULL, "0::/system.slice/sshd.service\n", -ENOENT, NULL},
	    {"kubelet itself", NULL, "0::/system.slice/kubelet.service\n", -ENOENT, NULL},
	    {"a user session", NULL, "0::/user.slice/user-0.slice/session-3.scope\n", -ENOENT,
	     NULL},
	    {"podman on the host", NULL, "0::/user.slice/user-0.slice/podman-1234.scope\n",
	     -ENOENT, NULL},
	    {"a docker container outside Kubernetes", NULL,
	     "0::/system.slice/docker-" CTR ".scope\n", -ENOENT, NULL},
	    {"a pod-like name outside any kubepods", NULL, "0::/system.slice/pod" UID ".scope\n",
	     -ENOENT, NULL},
	    {"v1 host", NULL,
	     "9:name=systemd:/system.slice/a.service\n8:pids:/\n4:memory:/x\n0::/\n", -ENOENT,
	     NULL},
	    {"outside the configured root", "/svidfs-test", "0::/svidfs-other/x.scope\n", -ENOENT,
	     NULL},
	    {"the kubelet root, not its kubepods", "/kubelet", "0::/kubelet.slice/x.scope\n",
	     -ENOENT, NULL},
	};
	run_cases(cases, ELEMENTSOF(cases));
}

Test(access, a_root_given_as_a_plain_path_keeps_working)
{
	/* Configurations of earlier releases named the cgroup that holds kubepods. */
	static const Case cases[] = {
	    {"systemd names below a plain root", "/svidfs-test/",
	     "0::/svidfs-test/kubepods.slice/kubepods-pod" UID_ ".slice\n", 0, UID},
	    {"cgroupfs names below a plain root", "/svidfs-test",
	     "0::/svidfs-test/kubepods/besteffort/pod" UID "\n", 0, UID},
	    {"the systemd expansion of the same root", "/svidfs-test",
	     "0::/svidfs_test.slice/svidfs_test-kubepods.slice/svidfs_test-kubepods-pod" UID_
	     ".slice\n",
	     0, UID},
	    {"a different root is refused", "/svidfs-test",
	     "0::/kubepods.slice/kubepods-pod" UID_ ".slice\n", -EACCES, MISPLACED},
	};
	run_cases(cases, ELEMENTSOF(cases));
}

Test(access, policy_rejects_bad_roots)
{
	AccessPolicy *p = NULL;
	cr_assert_eq(access_policy_new("relative", &p), -EINVAL);
	cr_assert_eq(access_policy_new("", &p), -EINVAL);
	cr_assert_eq(access_policy_new("/a/../b", &p), -EINVAL);
	cr_assert_eq(access_policy_new("/a/./b", &p), -EINVAL);
	cr_assert_null(p);
	cr_assert_null(access_policy_free(NULL));
}

Test(access, the_reason_shows_the_path_safely)
{
	AccessPolicy *p = policy("/");
	char uid[ACCESS_UID_MAX], why[ACCESS_REASON_MAX], text[4096];

	cr_assert_eq(access_parse_pod_uid(p, "0::/kubepods/pod" UID "/c\x01tl/pod" UID2 "\n", uid,
					  why),
		     -EACCES);
	cr_assert(strstr(why, "/kubepods/pod" UID "/c?tl/pod" UID2), "%s", why);
	/* A long path keeps its head and tail; the reason stays bounded. */
	int n = snprintf(text, sizeof text, "0::/kubepods/pod" UID);
	for (int i = 0; i < 60; i++)
		n += snprintf(text + n, sizeof text - (size_t)n, "/deep%02d", i);
	snprintf(text + n, sizeof text - (size_t)n, "/pod" UID2 "\n");
	cr_assert_eq(access_parse_pod_uid(p, text, uid, why), -EACCES);
	cr_assert(strstr(why, "cgroup /kubepods/pod" UID), "%s", why);
	cr_assert(strstr(why, "...") && strstr(why, "/pod" UID2 ": "), "%s", why);
	cr_assert_lt(strlen(why), ACCESS_REASON_MAX - 1);
	/* No reason buffer: still denied. */
	cr_assert_eq(access_parse_pod_uid(p, text, uid, NULL), -EACCES);
	access_policy_free(p);
}

Test(access, check_rules)
{
	const char *why = NULL;
	AccessCaller host = {.tid = 10, .known = true};
	AccessCaller pod = {.tid = 11, .known = true, .in_pod = true, .pod_uid = UID};
	AccessCaller zero = {.tid = 0};
	AccessCaller unknown = {.tid = 12};
	AccessCaller unattr = {.tid = 13, .known = true, .unattributable = true,
			       .reason = "cgroup /kubepods.slice: in no pod"};
	cr_assert_eq(access_check(&host, ACCESS_TARGET_POD, UID, &why), 0);
	cr_assert_eq(access_check(&host, ACCESS_TARGET_IDENTITY, "node", &why), 0);
	cr_assert_eq(access_check(&pod, ACCESS_TARGET_POD, UID, &why), 0);
	cr_assert_eq(access_check(&pod, ACCESS_TARGET_POD, "other", &why), -EACCES);
	cr_assert_not_null(why);
	cr_assert_eq(access_check(&pod, ACCESS_TARGET_IDENTITY, "node", &why), -EACCES);
	cr_assert_eq(access_check(&pod, ACCESS_TARGET_SELF, NULL, &why), -EACCES);
	cr_assert_eq(access_check(&zero, ACCESS_TARGET_POD, UID, &why), -EACCES);
	cr_assert_eq(access_check(&unknown, ACCESS_TARGET_POD, UID, &why), -EACCES);
	/* Unattributable: nothing at all, with the parser's reason. */
	for (AccessTarget t = 0; t < _ACCESS_TARGET_MAX; t++) {
		why = NULL;
		cr_assert_eq(access_check(&unattr, t, UID, &why), -EACCES);
		cr_assert_str_eq(why, "cgroup /kubepods.slice: in no pod");
	}
}

static void fake_cgroup(const char *dir, int pid, const char *text)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%d", dir, pid);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/%d/cgroup", dir, pid);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void rm_rf(const char *dir)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(access, caller_from_fake_proc)
{
	char dir[] = "/tmp/svidfs-access.XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	AccessPolicy *p = policy("/");
	AccessCaller c;

	fake_cgroup(dir, 42, "0::/kubepods/pod" UID "/c1\n");
	access_caller_from_proc(p, dir, 42, &c);
	cr_assert(c.known);
	cr_assert(c.in_pod);
	cr_assert_not(c.unattributable);
	cr_assert_str_eq(c.pod_uid, UID);
	/* A static pod's process is a pod's, not the host's. */
	fake_cgroup(dir, 44, "0::" SD_B HASH ".slice/cri-containerd-" CTR ".scope\n");
	access_caller_from_proc(p, dir, 44, &c);
	cr_assert(c.known && c.in_pod);
	cr_assert_str_eq(c.pod_uid, HASH);
	/* Unattributable: known, denied, with the reason. */
	fake_cgroup(dir, 45, "0::/kubepods.slice/foo.scope\n");
	access_caller_from_proc(p, dir, 45, &c);
	cr_assert(c.known && c.unattributable && !c.in_pod);
	cr_assert(strstr(c.reason, "/kubepods.slice/foo.scope"), "%s", c.reason);
	/* A file larger than any real one: denied, not truncated into something else. */
	char *big = malloc(70000);
	size_t n = 0;
	while (n < 69000)
		n += (size_t)sprintf(big + n, "12:pids:/system.slice/%0100d\n", 0);
	sprintf(big + n, "0::/kubepods/pod" UID2 "/c/pod" UID "\n");
	fake_cgroup(dir, 46, big);
	free(big);
	access_caller_from_proc(p, dir, 46, &c);
	cr_assert(c.unattributable);
	cr_assert(strstr(c.reason, "longer than"), "%s", c.reason);
	const char *why;
	cr_assert_eq(access_check(&c, ACCESS_TARGET_IDENTITY, "node", &why), -EACCES);
	/* Missing, pid 0. */
	access_caller_from_proc(p, dir, 43, &c);
	cr_assert_not(c.known);
	access_caller_from_proc(p, dir, 0, &c);
	cr_assert_not(c.known);
	access_policy_free(p);
	rm_rf(dir);
}

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
	/* ...while every other pod stays fenced to its own directory... */
	fake_cgroup(dir, 43, "0::/kubepods/pod" UID2 "/app\n");
	access_caller_from_proc(p, dir, 43, &c);
	cr_assert(c.in_pod);
	cr_assert_not(c.own_pod);
	cr_assert_eq(access_check(&c, ACCESS_TARGET_POD, UID, &why), -EACCES);
	cr_assert_eq(access_check(&c, ACCESS_TARGET_POD, UID2, &why), 0);
	/* ...and a cgroup in the daemon's pod named after another pod is no node component. */
	fake_cgroup(dir, 44, "0::/kubepods/pod" UID "/csi/pod" UID2 "\n");
	access_caller_from_proc(p, dir, 44, &c);
	cr_assert(c.unattributable && !c.own_pod);
	cr_assert_eq(access_check(&c, ACCESS_TARGET_POD, UID2, &why), -EACCES);

	/* The daemon as a static pod (systemd driver, kind root). */
	AccessPolicy *k = policy("/kubelet");
	fake_cgroup(dir, getpid(),
		    "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" HASH
		    ".slice/cri-containerd-" CTR ".scope\n");
	cr_assert_eq(access_policy_trust_own_pod(k, dir, uid), 1);
	cr_assert_str_eq(uid, HASH);
	/* The daemon in an unattributable cgroup trusts nothing. */
	fake_cgroup(dir, getpid(), "0::/kubepods/burstable\n");
	cr_assert_eq(access_policy_trust_own_pod(k, dir, uid), 0);
	access_policy_free(k);
	access_policy_free(p);
	rm_rf(dir);
}

/* The DaemonSet on kind with the default root: kubelet put the daemon below /kubelet.slice,
 * so pods are recognised there too; nothing else changes. */
Test(access, the_daemons_own_pod_shows_where_pods_are)
{
	char dir[] = "/tmp/svidfs-access.XXXXXX", uid[ACCESS_UID_MAX];
	cr_assert_not_null(mkdtemp(dir));
	AccessPolicy *p = policy(NULL);
	AccessCaller c;
	const char *why;
#define KIND "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods"

	cr_assert_null(access_policy_own_root(p));
	fake_cgroup(dir, 42, KIND "-pod" UID_ ".slice/cri-containerd-" CTR ".scope\n");
	access_caller_from_proc(p, dir, 42, &c);
	cr_assert(c.unattributable, "kind pods fail closed before the daemon knows");

	fake_cgroup(dir, getpid(), KIND "-besteffort.slice/kubelet-kubepods-besteffort-pod" HASH
				   ".slice/cri-containerd-" CTR ".scope\n");
	cr_assert_eq(access_policy_trust_own_pod(p, dir, uid), 1);
	cr_assert_str_eq(uid, HASH);
	cr_assert_str_eq(access_policy_own_root(p), "/kubelet.slice");
	access_caller_from_proc(p, dir, 42, &c);
	cr_assert(c.in_pod && !c.own_pod);
	cr_assert_str_eq(c.pod_uid, UID);
	cr_assert_eq(access_check(&c, ACCESS_TARGET_POD, UID2, &why), -EACCES);
	fake_cgroup(dir, 43,
		    KIND "-pod" UID_ ".slice/cri-containerd-" CTR
			 ".scope/kubelet-kubepods-pod" UID2_ ".slice\n");
	access_caller_from_proc(p, dir, 43, &c);
	cr_assert(c.unattributable);
	fake_cgroup(dir, 44, "0::/kubelet.slice/kubelet-kubepods.slice/foo.scope\n");
	access_caller_from_proc(p, dir, 44, &c);
	cr_assert(c.unattributable);
	fake_cgroup(dir, 45, "0::/system.slice/kubelet.service\n");
	access_caller_from_proc(p, dir, 45, &c);
	cr_assert(c.known && !c.in_pod && !c.unattributable);

	/* Called again from a host cgroup: the place found before is dropped. */
	fake_cgroup(dir, getpid(), "0::/system.slice/svidfs.service\n");
	cr_assert_eq(access_policy_trust_own_pod(p, dir, uid), 0);
	cr_assert_null(access_policy_own_root(p));
	access_caller_from_proc(p, dir, 42, &c);
	cr_assert(c.unattributable);

	/* cgroup v1, a node in a container with the host's cgroup namespace (cgroupfs driver). */
	fake_cgroup(dir, getpid(),
		    "4:pids:/docker/" CTR "/kubelet/kubepods/besteffort/pod" UID2 "/" CTR "\n"
		    "3:memory:/docker/" CTR "/kubelet/kubepods/besteffort/pod" UID2 "/" CTR "\n"
		    "0::/\n");
	cr_assert_eq(access_policy_trust_own_pod(p, dir, uid), 1);
	cr_assert_str_eq(uid, UID2);
	cr_assert_str_eq(access_policy_own_root(p), "/docker/" CTR "/kubelet");
	fake_cgroup(dir, 46, "4:pids:/docker/" CTR "/kubelet/kubepods/pod" UID "/x\n");
	access_caller_from_proc(p, dir, 46, &c);
	cr_assert(c.in_pod);
	cr_assert_str_eq(c.pod_uid, UID);

	/* Nothing is learnt from a path that does not read as exactly one pod. */
	static const char *const bad[] = {
	    /* nested */
	    KIND "-pod" UID_ ".slice/x.scope/kubelet-kubepods-pod" UID2_ ".slice\n",
	    /* slices that do not nest */
	    "0::/foo.slice/bar-kubepods.slice/bar-kubepods-pod" UID_ ".slice\n",
	    /* no pod */
	    "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice\n",
	    /* not a driver's name */
	    "0::/kubelet.slice/xkubepods/pod" UID "\n",
	    /* two places */
	    "0::/a/kubepods/pod" UID "\n0::/b/kubepods/pod" UID "\n",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		fake_cgroup(dir, getpid(), bad[i]);
		cr_assert_eq(access_policy_trust_own_pod(p, dir, uid), 0, "%s", bad[i]);
		cr_assert_null(access_policy_own_root(p), "%s", bad[i]);
	}
	access_caller_from_proc(p, dir, 42, &c);
	cr_assert(c.unattributable);
	access_policy_free(p);

	/* With the place configured, nothing is added. */
	p = policy("/kubelet");
	fake_cgroup(dir, getpid(), KIND "-pod" HASH ".slice/cri-containerd-" CTR ".scope\n");
	cr_assert_eq(access_policy_trust_own_pod(p, dir, uid), 1);
	cr_assert_null(access_policy_own_root(p));
	access_policy_free(p);
	rm_rf(dir);
#undef KIND
}

Test(access, private_cgroup_namespace_is_detected)
{
	char dir[] = "/tmp/svidfs-access.XXXXXX", a[256], b[256];
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(access_cgroupns_private(dir), 0); /* cannot tell: not private */
	static const char *const dirs[] = {"self", "self/ns", "1", "1/ns"};
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		snprintf(a, sizeof a, "%s/%s", dir, dirs[i]);
		cr_assert_eq(mkdir(a, 0700), 0);
	}
	snprintf(a, sizeof a, "%s/self/ns/cgroup", dir);
	snprintf(b, sizeof b, "%s/1/ns/cgroup", dir);
	fclose(fopen(a, "w"));
	cr_assert_eq(link(a, b), 0); /* the same namespace */
	cr_assert_eq(access_cgroupns_private(dir), 0);
	unlink(b);
	fclose(fopen(b, "w")); /* another one */
	cr_assert_eq(access_cgroupns_private(dir), 1);
	rm_rf(dir);
}
