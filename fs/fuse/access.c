// SPDX-License-Identifier: Apache-2.0
/*
 * Attribution: which pod, if any, a caller's cgroup paths put it in.
 *
 * What kubelet creates (pkg/kubelet/cm; the facts this parser relies on):
 * - A pod's cgroup name is a list of names: the components of kubelet's --cgroup-root, then
 *   "kubepods", then (with --cgroups-per-qos, the default) "burstable" or "besteffort" for those
 *   QoS classes (Guaranteed pods sit directly in kubepods), then "pod" + the pod UID. The alpha
 *   system partition (feature gate NodeSystemPartition, cgroup v2) puts "system" right after
 *   "kubepods", with the same QoS levels below it.
 * - The cgroupfs driver joins the list with '/': /kubepods/burstable/pod<uid>.
 * - The systemd driver escapes '-' as '_' in each name (systemd reads '-' as a step in the slice
 *   tree), joins the list with '-', appends ".slice" and expands it into the nested slices
 *   systemd creates, each named after all its ancestors: /kubepods.slice/
 *   kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice. kubelet's
 *   --cgroup-root=/kubelet (kind) thus gives /kubelet.slice/kubelet-kubepods.slice/...
 * - Pod UIDs: an API pod's UID is a random UUID the apiserver assigns at creation (a client
 *   cannot choose it), printed in lowercase: 36 characters, separators after 8, 12, 16 and 20
 *   hex digits ('-' with cgroupfs, '_' with systemd). A static pod (manifest file or URL) whose
 *   manifest sets no uid gets the MD5 of the pod and its source in lowercase hex: 32 characters
 *   (its mirror pod in the API has an apiserver UUID, but the cgroup uses the static pod's own).
 *   A manifest that sets metadata.uid keeps it verbatim; nothing else is recognised, so such a
 *   pod's processes are denied, never taken for the host.
 * - Below the pod cgroup: the runtime's container cgroups (containerd cri-containerd-<64 hex>
 *   .scope or <64 hex>, CRI-O crio-<64 hex>.scope, crio-conmon-<64 hex>.scope or crio-<64 hex>,
 *   cri-dockerd docker-<64 hex>.scope), and whatever a container creates below its own cgroup
 *   when it is delegated one. None of it is needed to attribute the caller, so any name is
 *   accepted there except one that looks like a pod or a kubepods cgroup.
 *
 * A process can create child cgroups wherever it is delegated one (its container, possibly its
 * pod) and move into them, but it can never leave the subtree kubelet put it in. So the pod is
 * read at the one place kubelet puts it, never "the deepest match"; anything in a kubepods
 * hierarchy that does not resolve to exactly one pod is denied, never taken for the host.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access.h"
#include "cleanup.h"
#include "macro.h"

/* /proc/<tid>/cgroup: one line per hierarchy, each path at most PATH_MAX. */
#define CGROUP_FILE_MAX (64u << 10)
/* A reason shows at most this much of a path: a kubelet path with a container scope and a
 * nested cgroup below it fits whole. */
#define SHOWN_MAX 400
#define SHOWN_HEAD 120

/* One place the kubepods cgroup may be. */
typedef struct KubeRoot {
	char *parent;	      /* its parent cgroup, without trailing '/'; "" for the root */
	char *kubepods_slice; /* the systemd driver's name for it: "kubepods.slice" or
				 "kubelet-kubepods.slice" below /kubelet.slice */
} KubeRoot;

struct AccessPolicy {
	KubeRoot roots[3]; /* --cgroup-root as given, its systemd expansion, the daemon's own */
	size_t n_roots;
	char own_uid[ACCESS_UID_MAX]; /* the daemon's own pod, "" when none */
	bool own_root; /* the last root was found from the daemon's own cgroup */
};

typedef struct Span {
	const char *s;
	size_t n;
} Span;

static bool span_eq(Span a, const char *s)
{
	return a.n == strlen(s) && memcmp(a.s, s, a.n) == 0;
}

static bool span_ends_with(Span a, const char *suffix)
{
	size_t l = strlen(suffix);
	return a.n >= l && memcmp(a.s + a.n - l, suffix, l) == 0;
}

/* The next component of a path that starts with '/' ("/" itself has none). */
static bool next_comp(Span *rest, Span *ret)
{
	if (rest->n == 0 || (rest->n == 1 && rest->s[0] == '/'))
		return false;
	const char *s = rest->s + 1, *e = memchr(s, '/', rest->n - 1);
	size_t n = e ? (size_t)(e - s) : rest->n - 1;
	*ret = (Span){s, n};
	rest->s = s + n;
	rest->n -= n + 1;
	return true;
}

static void kube_root_done(KubeRoot *r)
{
	free(r->parent);
	free(r->kubepods_slice);
	*r = (KubeRoot){};
}

AccessPolicy *access_policy_free(AccessPolicy *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n_roots; i++)
		kube_root_done(&p->roots[i]);
	free(p);
	return NULL;
}

static inline void access_policy_freep(AccessPolicy **p)
{
	access_policy_free(*p);
}

/* Adds the root whose parent is `parent`; below it, systemd names carry `slice_prefix`. */
static int add_root(AccessPolicy *p, const char *parent, const char *slice_prefix)
{
	KubeRoot *r = &p->roots[p->n_roots];

	r->parent = strdup(parent);
	if (!r->parent || asprintf(&r->kubepods_slice, "%skubepods.slice", slice_prefix) < 0) {
		free(r->parent);
		*r = (KubeRoot){};
		return -ENOMEM;
	}
	p->n_roots++;
	return 0;
}

/* Adds the root whose parent is the cgroup `parent` (normalised, "" for the root): below it the
 * cgroupfs driver's "kubepods", or the systemd driver's kubepods slice, which below
 * "/kubelet.slice" is "kubelet-kubepods.slice". */
static int add_parent_root(AccessPolicy *p, const char *parent)
{
	_cleanup_free_ char *prefix = NULL;
	const char *slash = strrchr(parent, '/');
	Span last = slash ? (Span){slash + 1, strlen(slash + 1)} : (Span){};
	int r;

	if (span_ends_with(last, ".slice") && !span_eq(last, "-.slice"))
		r = asprintf(&prefix, "%.*s-", (int)(last.n - 6), last.s);
	else
		r = asprintf(&prefix, "%s", "");
	if (r < 0)
		return -ENOMEM;
	return add_root(p, parent, prefix);
}

int access_policy_new(const char *cgroup_root, AccessPolicy **ret)
{
	_cleanup_(access_policy_freep) AccessPolicy *p = calloc(1, sizeof *p);
	_cleanup_free_ char *given = NULL, *expanded = strdup(""), *joined = NULL,
			    *prefix = NULL;
	size_t rl, gl = 0, jl = 0, n = 0;
	bool any_slice = false;
	Span rest, c;
	int r;

	if (!p || !expanded)
		return -ENOMEM;
	if (!cgroup_root)
		cgroup_root = "/";
	if (cgroup_root[0] != '/')
		return -EINVAL;
	rl = strlen(cgroup_root);
	/* given: the path, normalised; joined: the systemd name of its last slice, without
	 * ".slice"; expanded: the nested slices systemd creates for it. */
	given = calloc(1, rl + 1);
	joined = calloc(1, rl + 1);
	if (!given || !joined)
		return -ENOMEM;
	rest = (Span){cgroup_root, rl};
	while (next_comp(&rest, &c)) {
		if (c.n == 0)
			continue; /* "//" or a trailing '/' */
		if (span_eq(c, ".") || span_eq(c, ".."))
			return -EINVAL;
		any_slice |= span_ends_with(c, ".slice");
		gl += (size_t)sprintf(given + gl, "/%.*s", (int)c.n, c.s);
		if (n++ > 0)
			joined[jl++] = '-';
		for (size_t i = 0; i < c.n; i++)
			joined[jl++] = c.s[i] == '-' ? '_' : c.s[i];
		char *e = NULL;
		if (asprintf(&e, "%s/%.*s.slice", expanded, (int)jl, joined) < 0)
			return -ENOMEM;
		free(expanded);
		expanded = e;
	}
	/* As given: a cgroupfs root (kubepods below it), or the cgroup that holds the kubepods
	 * slice. */
	r = add_parent_root(p, given);
	if (r < 0)
		return r;
	/* kubelet's own --cgroup-root value: with the systemd driver its names become slices. */
	if (n > 0 && !any_slice) {
		if (asprintf(&prefix, "%s-", joined) < 0)
			return -ENOMEM;
		r = add_root(p, expanded, prefix);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(p);
	return 0;
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* A pod UID as kubelet spells it in a cgroup name (see the top of this file): 36 characters
 * with `sep` after 8, 12, 16 and 20 hex digits, or 32 hex digits; lowercase only, as kubelet
 * never writes another case. Fills the dashed form the pod's registration uses. */
static bool parse_uid(Span u, char sep, char ret[ACCESS_UID_MAX])
{
	if (u.n != 32 && u.n != 36)
		return false;
	for (size_t i = 0; i < u.n; i++) {
		bool dash = u.n == 36 && (i == 8 || i == 13 || i == 18 || i == 23);
		if (dash ? u.s[i] != sep : !is_lower_hex(u.s[i]))
			return false;
		ret[i] = dash ? '-' : u.s[i];
	}
	ret[u.n] = 0;
	return true;
}

/* needle in lower case */
static bool at_ci(Span a, size_t i, const char *needle, size_t l)
{
	return i + l <= a.n && tolower((unsigned char)a.s[i]) == needle[0] &&
	       strncasecmp(a.s + i, needle, l) == 0;
}

static bool span_contains_ci(Span a, const char *needle)
{
	size_t l = strlen(needle);
	for (size_t i = 0; i + l <= a.n; i++)
		if (at_ci(a, i, needle, l))
			return true;
	return false;
}

/* A name that tries to look like kubelet's: "kubepods" anywhere, or "pod" at the start or
 * after a separator followed by what could be (a part of) a UID. Only checked below the pod,
 * where kubelet and the runtimes never put such names. */
static bool looks_like_pod(Span c)
{
	if (span_contains_ci(c, "kubepods"))
		return true;
	for (size_t i = 0; i + 3 <= c.n; i++) {
		if (!at_ci(c, i, "pod", 3) || (i > 0 && !strchr("-_.", c.s[i - 1])))
			continue;
		size_t k = i + 3;
		while (k < c.n &&
		       (isxdigit((unsigned char)c.s[k]) || c.s[k] == '-' || c.s[k] == '_'))
			k++;
		if (k - (i + 3) >= 8)
			return true;
	}
	return false;
}

/* "<cur>-<level>.slice": a child slice of the systemd name cur (without ".slice"). */
static bool slice_child(Span c, Span cur, const char *level)
{
	size_t l = strlen(level);
	return c.n == cur.n + 1 + l + 6 && memcmp(c.s, cur.s, cur.n) == 0 && c.s[cur.n] == '-' &&
	       memcmp(c.s + cur.n + 1, level, l) == 0 && span_ends_with(c, ".slice");
}

/* Writes "cgroup <path>: <what>" with the path made printable and shortened. Returns -EACCES. */
static int deny(char *why, Span path, const char *what)
{
	char shown[SHOWN_MAX + 1];
	size_t n = 0;

	if (!why)
		return -EACCES;
	for (size_t i = 0; i < path.n; i++) {
		/* A long path keeps its head and its tail, where a nesting shows. */
		if (path.n > SHOWN_MAX && i == SHOWN_HEAD) {
			memcpy(shown + n, "...", 3);
			n += 3;
			i = path.n - (SHOWN_MAX - SHOWN_HEAD - 3);
		}
		unsigned char ch = (unsigned char)path.s[i];
		shown[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	shown[n] = 0;
	snprintf(why, ACCESS_REASON_MAX, "cgroup %s: %s", shown, what);
	return -EACCES;
}

/* After the kubepods cgroup: [system/][burstable|besteffort/]pod<uid>[/anything not
 * pod-like], in the driver's spelling. 0 with the UID, or -EACCES. */
static int parse_pods(Span path, Span rest, Span kubepods, bool systemd,
		      char ret_uid[ACCESS_UID_MAX], char *why)
{
	/* systemd: the name of the last level, without ".slice"; each next one extends it. */
	Span cur = {kubepods.s, systemd ? kubepods.n - 6 : 0}, c;
	char uid[ACCESS_UID_MAX];
	bool have = next_comp(&rest, &c);

	if (have && (systemd ? slice_child(c, cur, "system") : span_eq(c, "system"))) {
		cur = (Span){c.s, c.n - (systemd ? 6 : 0)};
		have = next_comp(&rest, &c);
	}
	if (have && (systemd ? slice_child(c, cur, "burstable") || slice_child(c, cur, "besteffort")
			     : span_eq(c, "burstable") || span_eq(c, "besteffort"))) {
		cur = (Span){c.s, c.n - (systemd ? 6 : 0)};
		have = next_comp(&rest, &c);
	}
	if (!have)
		return deny(why, path, "in the kubepods hierarchy but in no pod");
	bool pod;
	if (systemd)
		pod = c.n > cur.n + 4 + 6 && memcmp(c.s, cur.s, cur.n) == 0 &&
		      memcmp(c.s + cur.n, "-pod", 4) == 0 && span_ends_with(c, ".slice") &&
		      parse_uid((Span){c.s + cur.n + 4, c.n - cur.n - 4 - 6}, '_', uid);
	else
		pod = c.n > 3 && memcmp(c.s, "pod", 3) == 0 &&
		      parse_uid((Span){c.s + 3, c.n - 3}, '-', uid);
	if (!pod)
		return deny(why, path,
			    "no pod cgroup where kubelet puts it (a malformed pod UID, a wrong "
			    "level or an unknown name)");
	while (next_comp(&rest, &c))
		if (looks_like_pod(c))
			return deny(why, path, "a cgroup below the pod's is named like a pod");
	strcpy(ret_uid, uid);
	return 0;
}

/* One hierarchy's path: 0 with the pod UID, -ENOENT outside any kubepods hierarchy, -EACCES
 * (reason in why) in one but not exactly one pod. */
static int classify(const AccessPolicy *p, Span path, char ret_uid[ACCESS_UID_MAX], char *why)
{
	Span rest = path, c;

	if (path.n == 0 || path.s[0] != '/')
		return deny(why, path, "not an absolute cgroup path");
	while (next_comp(&rest, &c)) {
		/* The kernel writes ".." for a cgroup outside the reader's cgroup namespace. */
		if (span_eq(c, ".."))
			return deny(why, path,
				    "outside the daemon's cgroup namespace ('..'; run svidfs in "
				    "the host cgroup namespace)");
		if (c.n == 0 || span_eq(c, "."))
			return deny(why, path, "malformed cgroup path");
	}
	for (size_t i = 0; i < p->n_roots; i++) {
		const KubeRoot *r = &p->roots[i];
		size_t pl = strlen(r->parent);
		if (path.n <= pl + 1 || memcmp(path.s, r->parent, pl) != 0 || path.s[pl] != '/')
			continue;
		rest = (Span){path.s + pl, path.n - pl};
		next_comp(&rest, &c);
		if (span_eq(c, "kubepods") || span_eq(c, r->kubepods_slice))
			return parse_pods(path, rest, c, !span_eq(c, "kubepods"), ret_uid, why);
	}
	rest = path;
	while (next_comp(&rest, &c))
		if (span_contains_ci(c, "kubepods"))
			return deny(why, path,
				    "a kubepods cgroup where --cgroup-root does not put it");
	return -ENOENT;
}

int access_parse_pod_uid(const AccessPolicy *p, const char *text, char ret_uid[ACCESS_UID_MAX],
			 char ret_reason[ACCESS_REASON_MAX])
{
	char uid[ACCESS_UID_MAX], first[ACCESS_UID_MAX] = "";
	bool any = false;

	/* Every line must be attributable. A line outside any kubepods hierarchy does not
	 * override a pod: a hierarchy the runtime does not manage (a named v1 hierarchy, the
	 * unified one of a hybrid node with the cgroupfs driver) keeps the runtime's own path,
	 * and being in a pod only ever narrows what a caller may enter. */
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n'), *l = line;
		size_t ll = nl ? (size_t)(nl - line) : strlen(line);
		line = nl ? nl + 1 : NULL;
		if (ll == 0)
			continue;
		any = true;
		/* "<id>:<controllers>:<path>"; v2 is "0::<path>", v1 names its controllers. */
		const char *c1 = memchr(l, ':', ll);
		const char *c2 = c1 ? memchr(c1 + 1, ':', ll - (size_t)(c1 + 1 - l)) : NULL;
		if (!c2)
			return deny(ret_reason, (Span){l, ll}, "malformed /proc/<pid>/cgroup line");
		Span path = {c2 + 1, ll - (size_t)(c2 + 1 - l)};
		int r = classify(p, path, uid, ret_reason);
		if (r == -EACCES)
			return r;
		if (r == 0 && first[0] && !streq(first, uid)) {
			if (ret_reason)
				snprintf(ret_reason, ACCESS_REASON_MAX,
					 "cgroup hierarchies name different pods (%s, %s)", first,
					 uid);
			return -EACCES;
		}
		if (r == 0)
			strcpy(first, uid);
	}
	if (!any) {
		if (ret_reason)
			snprintf(ret_reason, ACCESS_REASON_MAX, "empty cgroup file");
		return -EACCES;
	}
	if (!first[0])
		return -ENOENT;
	strcpy(ret_uid, first);
	return 0;
}

/* The whole file, NUL-terminated. -EFBIG beyond CGROUP_FILE_MAX. */
static int read_cgroup_file(const char *path, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	buf = malloc(CGROUP_FILE_MAX + 1);
	if (!buf)
		return -ENOMEM;
	while ((n = read(fd, buf + len, CGROUP_FILE_MAX + 1 - len)) > 0) {
		len += (size_t)n;
		if (len > CGROUP_FILE_MAX)
			return -EFBIG;
	}
	if (n < 0)
		return -errno;
	buf[len] = 0;
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

void access_caller_from_proc(const AccessPolicy *p, const char *proc_root, pid_t tid,
			     AccessCaller *ret)
{
	_cleanup_free_ char *buf = NULL;
	char path[128];
	size_t len = 0;
	int r;

	*ret = (AccessCaller){.tid = tid};
	if (tid <= 0)
		return;
	snprintf(path, sizeof path, "%s/%d/cgroup", proc_root ? proc_root : "/proc", (int)tid);
	r = read_cgroup_file(path, &buf, &len);
	if (r == -EFBIG) {
		ret->known = ret->unattributable = true;
		snprintf(ret->reason, sizeof ret->reason, "cgroup file longer than %u bytes",
			 CGROUP_FILE_MAX);
		return;
	}
	if (r < 0 || len == 0)
		return;
	ret->known = true;
	r = access_parse_pod_uid(p, buf, ret->pod_uid, ret->reason);
	ret->unattributable = r == -EACCES;
	ret->in_pod = r == 0;
	if (ret->in_pod && p->own_uid[0] && streq(ret->pod_uid, p->own_uid)) {
		ret->in_pod = false;
		ret->own_pod = true;
	}
}

/* The parent of the first kubepods component of one of the daemon's own cgroup paths, when that
 * component is spelled as a driver spells it ("kubepods", "...kubepods.slice"). */
static char *own_kubepods_parent(const char *text)
{
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n'), *c2 = NULL;
		size_t ll = nl ? (size_t)(nl - line) : strlen(line);
		const char *c1 = memchr(line, ':', ll);
		if (c1)
			c2 = memchr(c1 + 1, ':', ll - (size_t)(c1 + 1 - line));
		if (c2) {
			Span path = {c2 + 1, ll - (size_t)(c2 + 1 - line)}, rest = path, c;
			while (next_comp(&rest, &c))
				if (span_eq(c, "kubepods") || span_ends_with(c, "kubepods.slice"))
					return strndup(path.s, (size_t)(c.s - 1 - path.s));
		}
		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

int access_policy_trust_own_pod(AccessPolicy *p, const char *proc_root,
				char ret_uid[ACCESS_UID_MAX])
{
	_cleanup_free_ char *buf = NULL, *parent = NULL;
	char path[128], uid[ACCESS_UID_MAX];
	size_t len = 0;
	int r;

	p->own_uid[0] = 0;
	if (p->own_root) {
		kube_root_done(&p->roots[--p->n_roots]);
		p->own_root = false;
	}
	snprintf(path, sizeof path, "%s/%d/cgroup", proc_root ? proc_root : "/proc", (int)getpid());
	if (read_cgroup_file(path, &buf, &len) < 0)
		return 0;
	r = access_parse_pod_uid(p, buf, uid, NULL);
	/* kubelet put the daemon (its DaemonSet) where it puts every pod on this node: when the
	 * configured roots miss that place (kind's /kubelet.slice with the default root), it
	 * counts as well, if the daemon's own path then reads as exactly one pod. */
	if (r == -EACCES && p->n_roots < ELEMENTSOF(p->roots) &&
	    (parent = own_kubepods_parent(buf))) {
		bool known = false;
		for (size_t i = 0; i < p->n_roots; i++)
			known |= streq(p->roots[i].parent, parent);
		if (!known && add_parent_root(p, parent) >= 0) {
			r = access_parse_pod_uid(p, buf, uid, NULL);
			if (r < 0)
				kube_root_done(&p->roots[--p->n_roots]);
			p->own_root = r == 0;
		}
	}
	if (r < 0)
		return 0;
	memcpy(p->own_uid, uid, ACCESS_UID_MAX);
	memcpy(ret_uid, uid, ACCESS_UID_MAX);
	return 1;
}

const char *access_policy_own_root(const AccessPolicy *p)
{
	return p->own_root ? p->roots[p->n_roots - 1].parent : NULL;
}

int access_cgroupns_private(const char *proc_root)
{
	char a[128], b[128];
	struct stat sa, sb;

	snprintf(a, sizeof a, "%s/self/ns/cgroup", proc_root ? proc_root : "/proc");
	snprintf(b, sizeof b, "%s/1/ns/cgroup", proc_root ? proc_root : "/proc");
	if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
		return 0;
	return sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino;
}

int access_check(const AccessCaller *c, AccessTarget t, const char *target_name,
		 const char **ret_reason)
{
	if (c->tid <= 0) {
		*ret_reason = "caller pid 0 (not visible in the daemon's pid namespace)";
		return -EACCES;
	}
	if (!c->known) {
		*ret_reason = "caller's cgroup could not be read";
		return -EACCES;
	}
	if (c->unattributable) {
		*ret_reason = c->reason;
		return -EACCES;
	}
	if (!c->in_pod)
		return 0; /* host callers: the kernel checks modes (default_permissions) */
	if (t != ACCESS_TARGET_POD) {
		*ret_reason = t == ACCESS_TARGET_SELF ? "a pod may not enter the daemon's own self/"
						      : "a pod may not enter node identities";
		return -EACCES;
	}
	if (!target_name || !streq(target_name, c->pod_uid)) {
		*ret_reason = "a pod may enter only its own pod directory";
		return -EACCES;
	}
	return 0;
}
