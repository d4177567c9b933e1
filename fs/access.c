// SPDX-License-Identifier: Apache-2.0
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "cleanup.h"
#include "macro.h"

struct AccessPolicy {
	char *root; /* without trailing '/'; "" for anywhere */
	regex_t re;
	char own_uid[ACCESS_UID_MAX]; /* the daemon's own pod, "" when none */
};

int access_policy_new(const char *cgroup_root, const char *pod_pattern, AccessPolicy **ret)
{
	_cleanup_free_ AccessPolicy *p = calloc(1, sizeof *p);
	size_t n;

	if (!p)
		return -ENOMEM;
	if (!cgroup_root)
		cgroup_root = "/";
	if (cgroup_root[0] != '/')
		return -EINVAL;
	p->root = strdup(cgroup_root);
	if (!p->root)
		return -ENOMEM;
	n = strlen(p->root);
	while (n > 0 && p->root[n - 1] == '/')
		p->root[--n] = 0;
	if (regcomp(&p->re, pod_pattern ? pod_pattern : ACCESS_DEFAULT_POD_PATTERN, REG_EXTENDED) !=
	    0) {
		free(p->root);
		return -EINVAL;
	}
	if (p->re.re_nsub < 1) {
		regfree(&p->re);
		free(p->root);
		return -EINVAL;
	}
	*ret = TAKE_PTR(p);
	return 0;
}

AccessPolicy *access_policy_free(AccessPolicy *p)
{
	if (!p)
		return NULL;
	regfree(&p->re);
	free(p->root);
	free(p);
	return NULL;
}

/* Looks for a pod component in one cgroup path (below the root). 0, or -ENOENT. */
static int path_pod_uid(const AccessPolicy *p, const char *path, size_t len,
			char ret_uid[ACCESS_UID_MAX])
{
	size_t rl = strlen(p->root);
	char comp[256];

	if (rl > 0) {
		if (len < rl || memcmp(path, p->root, rl) != 0 || (len > rl && path[rl] != '/'))
			return -ENOENT;
		path += rl;
		len -= rl;
	}
	/* The deepest pod component wins (a pod cgroup nested in another is unusual anyway). */
	int found = -ENOENT;
	size_t i = 0;
	while (i < len) {
		while (i < len && path[i] == '/')
			i++;
		size_t s = i;
		while (i < len && path[i] != '/')
			i++;
		size_t cl = i - s;
		if (cl == 0 || cl >= sizeof comp)
			continue;
		memcpy(comp, path + s, cl);
		comp[cl] = 0;
		regmatch_t m[2];
		if (regexec(&p->re, comp, 2, m, 0) != 0 || m[1].rm_so < 0)
			continue;
		size_t ul = (size_t)(m[1].rm_eo - m[1].rm_so);
		if (ul == 0 || ul >= ACCESS_UID_MAX)
			continue;
		for (size_t k = 0; k < ul; k++) {
			char c = comp[m[1].rm_so + (regoff_t)k];
			ret_uid[k] = c == '_' ? '-' : (char)tolower((unsigned char)c);
		}
		ret_uid[ul] = 0;
		found = 0;
	}
	return found;
}

int access_parse_pod_uid(const AccessPolicy *p, const char *text, char ret_uid[ACCESS_UID_MAX])
{
	char uid[ACCESS_UID_MAX], first[ACCESS_UID_MAX] = "";
	const char *line = text;

	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t ll = nl ? (size_t)(nl - line) : strlen(line);
		/* "<id>:<controllers>:<path>"; v2 is "0::<path>", v1 names its controllers. */
		const char *c1 = memchr(line, ':', ll);
		const char *c2 = c1 ? memchr(c1 + 1, ':', ll - (size_t)(c1 + 1 - line)) : NULL;
		if (c2) {
			const char *path = c2 + 1;
			size_t pl = ll - (size_t)(path - line);
			if (path_pod_uid(p, path, pl, uid) == 0) {
				if (first[0] && !streq(first, uid))
					return -EINVAL;
				strcpy(first, uid);
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	if (!first[0])
		return -ENOENT;
	strcpy(ret_uid, first);
	return 0;
}

void access_caller_from_proc(const AccessPolicy *p, const char *proc_root, pid_t tid,
			     AccessCaller *ret)
{
	char path[128], buf[8192];
	_cleanup_close_ int fd = -1;
	ssize_t n;
	size_t len = 0;

	*ret = (AccessCaller){.tid = tid};
	if (tid <= 0)
		return;
	snprintf(path, sizeof path, "%s/%d/cgroup", proc_root ? proc_root : "/proc", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	if (len == 0)
		return;
	buf[len] = 0;
	int r = access_parse_pod_uid(p, buf, ret->pod_uid);
	if (r == -EINVAL)
		return; /* two pods at once: leave it unknown, so denied */
	ret->known = true;
	ret->in_pod = r == 0;
	if (ret->in_pod && p->own_uid[0] && streq(ret->pod_uid, p->own_uid)) {
		ret->in_pod = false;
		ret->own_pod = true;
	}
}

int access_policy_trust_own_pod(AccessPolicy *p, const char *proc_root,
				char ret_uid[ACCESS_UID_MAX])
{
	AccessCaller self;
	int r;

	p->own_uid[0] = 0;
	access_caller_from_proc(p, proc_root, getpid(), &self);
	r = self.known && self.in_pod;
	if (r) {
		memcpy(p->own_uid, self.pod_uid, ACCESS_UID_MAX);
		memcpy(ret_uid, self.pod_uid, ACCESS_UID_MAX);
	}
	return r;
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
