// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "k8sname.h"
#include "macro.h"
#include "volctx.h"

#define MAX_AGENTS 16
#define MAX_JWT_SVIDS 32

typedef struct {
	char *audience, *file;
} JwtSvid;

struct VolCtx {
	char *volume_id, *target_path, *target_uid, *volume_name;
	char *pod_uid, *pod_name, *pod_namespace, *service_account;
	long gid;
	char *layout;
	char *agents[MAX_AGENTS];
	size_t n_agents;
	char *svid_file_name, *svid_key_file_name, *svid_bundle_file_name, *jwt_bundle_file_name;
	JwtSvid jwt[MAX_JWT_SVIDS];
	size_t n_jwt;
	char *include_federated; /* "true"/"false" or NULL */
};

VolCtx *volctx_free(VolCtx *c)
{
	if (!c)
		return NULL;
	free(c->volume_id);
	free(c->target_path);
	free(c->target_uid);
	free(c->volume_name);
	free(c->pod_uid);
	free(c->pod_name);
	free(c->pod_namespace);
	free(c->service_account);
	free(c->layout);
	for (size_t i = 0; i < c->n_agents; i++)
		free(c->agents[i]);
	free(c->svid_file_name);
	free(c->svid_key_file_name);
	free(c->svid_bundle_file_name);
	free(c->jwt_bundle_file_name);
	for (size_t i = 0; i < c->n_jwt; i++) {
		free(c->jwt[i].audience);
		free(c->jwt[i].file);
	}
	free(c->include_federated);
	free(c);
	return NULL;
}

DEFINE_CLEANUP_FUNC(VolCtx, volctx_free)
DEFINE_CLEANUP_FUNC(KvMsg, kv_free)

static int fail(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Quotes untrusted text for an error message: printable ASCII kept, the rest as '?', cut at 80. */
static const char *q(const char *s, char buf[static 96])
{
	size_t i = 0;

	for (; s && s[i] && i < 80; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s && s[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = 0;
	return buf;
}

static bool all_chars(const char *s, const char *extra, bool upper)
{
	for (; *s; s++) {
		char ch = *s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    (upper && ch >= 'A' && ch <= 'Z') || (extra && strchr(extra, ch)))
			continue;
		return false;
	}
	return true;
}

static bool valid_file_name(const char *s)
{
	size_t l = strlen(s);
	return l > 0 && l <= 255 && all_chars(s, "._-", true) && !streq(s, ".") && !streq(s, "..");
}

static bool valid_agent_name(const char *s)
{
	size_t l = strlen(s);
	return l > 0 && l <= 64 && all_chars(s, "._-", true);
}

/* JWT audiences are free-form strings (often URLs): printable ASCII, no space, no comma (the list
 * separator), at most 255 bytes. */
static bool valid_audience(const char *s)
{
	size_t l = strlen(s);
	if (l == 0 || l > 255)
		return false;
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f || *s == ',')
			return false;
	return true;
}

int volctx_check_volume_id(const char *id, char *err, size_t errlen)
{
	char b[96];

	if (!id || !*id)
		return fail(err, errlen, "volume_id is missing");
	if (strlen(id) > 128)
		return fail(err, errlen, "volume_id is longer than 128 bytes");
	for (const char *p = id; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return fail(err, errlen,
				    "volume_id \"%s\" holds a space or non-printable byte",
				    q(id, b));
	return 0;
}

/* Path components of p as [start, end) slices; "" components (// or trailing /) are errors. */
static int check_path_syntax(const char *what, const char *p, char *err, size_t errlen)
{
	char b[96];

	if (!p || !*p)
		return fail(err, errlen, "%s is missing", what);
	if (p[0] != '/')
		return fail(err, errlen, "%s \"%s\" is not an absolute path", what, q(p, b));
	if (strlen(p) >= 4096)
		return fail(err, errlen, "%s is longer than PATH_MAX", what);
	for (const char *s = p + 1;;) {
		const char *e = strchrnul(s, '/');
		size_t n = (size_t)(e - s);
		if (n == 0)
			return fail(err, errlen,
				    "%s \"%s\" has an empty component (\"//\" or a trailing \"/\")",
				    what, q(p, b));
		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return fail(err, errlen, "%s \"%s\" contains a \".\" or \"..\" component",
				    what, q(p, b));
		for (const char *c = s; c < e; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return fail(err, errlen, "%s holds a control character", what);
		if (!*e)
			break;
		s = e + 1;
	}
	return 0;
}

int volctx_parse_target(const char *kubelet_root, const char *target, char **ret_pod_uid,
			char **ret_volume_name, char *err, size_t errlen)
{
	char b[96], rb[96];
	size_t rl = strlen(kubelet_root);
	int r;

	r = check_path_syntax("target_path", target, err, errlen);
	if (r < 0)
		return r;
	while (rl > 1 && kubelet_root[rl - 1] == '/')
		rl--;
	if (rl == 1)
		rl = 0; /* kubelet root "/" */
	if (strncmp(target, kubelet_root, rl) != 0 || strncmp(target + rl, "/pods/", 6) != 0)
		return fail(err, errlen,
			    "target_path \"%s\" is not under the kubelet pods directory %.*s/pods "
			    "(check --kubelet-root)",
			    q(target, b), (int)rl, q(kubelet_root, rb));
	const char *uid = target + rl + 6;
	const char *se = strchr(uid, '/');
	static const char mid[] = "/volumes/kubernetes.io~csi/";
	if (!se || strncmp(se, mid, sizeof mid - 1) != 0)
		return fail(err, errlen,
			    "target_path \"%s\" does not have kubelet's shape "
			    "<root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount",
			    q(target, b));
	const char *vol = se + sizeof mid - 1;
	const char *ve = strchr(vol, '/');
	if (!ve || ve == vol || !streq(ve, "/mount"))
		return fail(err, errlen,
			    "target_path \"%s\" does not end in kubernetes.io~csi/<volume>/mount",
			    q(target, b));
	_cleanup_free_ char *u = strndup(uid, (size_t)(se - uid));
	_cleanup_free_ char *v = strndup(vol, (size_t)(ve - vol));
	if (!u || !v)
		return -ENOMEM;
	if (!k8s_pod_uid_valid(u))
		return fail(err, errlen, "target_path's pod uid \"%s\" is not a Kubernetes UID",
			    q(u, b));
	if (ret_pod_uid)
		*ret_pod_uid = TAKE_PTR(u);
	if (ret_volume_name)
		*ret_volume_name = TAKE_PTR(v);
	return 0;
}

static const char *ctx_get(const Csi__V1__NodePublishVolumeRequest *req, const char *key)
{
	for (size_t i = 0; i < req->n_volume_context; i++)
		if (req->volume_context[i]->key && streq(req->volume_context[i]->key, key))
			return req->volume_context[i]->value;
	return NULL;
}

static int set_str(char **dst, const char *v)
{
	char *d = strdup(v);
	if (!d)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

/* Splits a comma list, trimming spaces around elements; calls fn for each. Empty elements are
 * errors (a stray comma is a typo an operator wants to hear about). */
typedef int (*ElemFn)(VolCtx *c, const char *attr, const char *elem, char *err, size_t errlen);
static int split_list(VolCtx *c, const char *attr, const char *v, ElemFn fn, char *err,
		      size_t errlen)
{
	char b[96];

	for (const char *s = v;;) {
		const char *e = strchrnul(s, ',');
		const char *a = s, *z = e;
		while (a < z && *a == ' ')
			a++;
		while (z > a && z[-1] == ' ')
			z--;
		if (z == a)
			return fail(err, errlen,
				    "volume attribute %s=\"%s\" has an empty list element", attr,
				    q(v, b));
		_cleanup_free_ char *elem = strndup(a, (size_t)(z - a));
		if (!elem)
			return -ENOMEM;
		int r = fn(c, attr, elem, err, errlen);
		if (r < 0)
			return r;
		if (!*e)
			return 0;
		s = e + 1;
	}
}

static int add_agent(VolCtx *c, const char *attr, const char *a, char *err, size_t errlen)
{
	char b[96];

	if (!valid_agent_name(a))
		return fail(err, errlen,
			    "volume attribute %s: \"%s\" is not an agent name ([A-Za-z0-9._-], "
			    "as in the daemon's configuration)",
			    attr, q(a, b));
	for (size_t i = 0; i < c->n_agents; i++)
		if (streq(c->agents[i], a))
			return fail(err, errlen, "volume attribute %s names agent \"%s\" twice",
				    attr, a);
	if (c->n_agents == MAX_AGENTS)
		return fail(err, errlen, "volume attribute %s lists more than %d agents", attr,
			    MAX_AGENTS);
	if (!(c->agents[c->n_agents] = strdup(a)))
		return -ENOMEM;
	c->n_agents++;
	return 0;
}

static int add_jwt(VolCtx *c, const char *attr, const char *elem, char *err, size_t errlen)
{
	char b[96];
	/* audience=file; file names cannot hold '=', so the last '=' separates. */
	const char *eq = strrchr(elem, '=');

	if (!eq || eq == elem || !eq[1])
		return fail(err, errlen,
			    "volume attribute %s: \"%s\" is not of the form <audience>=<file name>",
			    attr, q(elem, b));
	_cleanup_free_ char *aud = strndup(elem, (size_t)(eq - elem));
	if (!aud)
		return -ENOMEM;
	if (!valid_audience(aud))
		return fail(err, errlen,
			    "volume attribute %s: audience \"%s\" must be 1-255 printable bytes "
			    "without spaces or commas",
			    attr, q(aud, b));
	if (!valid_file_name(eq + 1))
		return fail(err, errlen,
			    "volume attribute %s: \"%s\" is not a file name (one component of "
			    "[A-Za-z0-9._-])",
			    attr, q(eq + 1, b));
	for (size_t i = 0; i < c->n_jwt; i++)
		if (streq(c->jwt[i].file, eq + 1))
			return fail(err, errlen, "volume attribute %s uses file name \"%s\" twice",
				    attr, eq + 1);
	if (c->n_jwt == MAX_JWT_SVIDS)
		return fail(err, errlen, "volume attribute %s lists more than %d JWT-SVIDs", attr,
			    MAX_JWT_SVIDS);
	c->jwt[c->n_jwt].file = strdup(eq + 1);
	c->jwt[c->n_jwt].audience = TAKE_PTR(aud);
	if (!c->jwt[c->n_jwt].file) {
		free(c->jwt[c->n_jwt].audience);
		return -ENOMEM;
	}
	c->n_jwt++;
	return 0;
}

static const char *const file_name_attrs[] = {"svid_file_name", "svid_key_file_name",
					      "svid_bundle_file_name", "jwt_bundle_file_name"};

static char **file_name_slot(VolCtx *c, size_t i)
{
	char **slots[] = {&c->svid_file_name, &c->svid_key_file_name, &c->svid_bundle_file_name,
			  &c->jwt_bundle_file_name};
	return slots[i];
}

#define SUPPORTED_ATTRS                                                                            \
	"layout, agent, svid_file_name, svid_key_file_name, svid_bundle_file_name, "               \
	"jwt_bundle_file_name, jwt_svids, include_federated_domains"

static int apply_attribute(VolCtx *c, const char *key, const char *v, char *err, size_t errlen)
{
	char b[96], kb[96];
	const char *name = key + strlen(VOLCTX_ATTR_PREFIX);

	if (streq(name, "layout")) {
		if (!streq(v, "spiffe") && !streq(v, "spiffe-helper") &&
		    !streq(v, "kubernetes-tls"))
			return fail(err, errlen,
				    "volume attribute %s=\"%s\" is not a layout (spiffe, "
				    "spiffe-helper or kubernetes-tls)",
				    key, q(v, b));
		return set_str(&c->layout, v);
	}
	if (streq(name, "agent"))
		return split_list(c, key, v, add_agent, err, errlen);
	if (streq(name, "jwt_svids"))
		return split_list(c, key, v, add_jwt, err, errlen);
	if (streq(name, "include_federated_domains")) {
		if (!streq(v, "true") && !streq(v, "false"))
			return fail(err, errlen,
				    "volume attribute %s=\"%s\" must be \"true\" or \"false\"", key,
				    q(v, b));
		return set_str(&c->include_federated, v);
	}
	for (size_t i = 0; i < ELEMENTSOF(file_name_attrs); i++)
		if (streq(name, file_name_attrs[i])) {
			if (!valid_file_name(v))
				return fail(err, errlen,
					    "volume attribute %s=\"%s\" is not a file name (one "
					    "component of [A-Za-z0-9._-], not \".\" or \"..\")",
					    key, q(v, b));
			return set_str(file_name_slot(c, i), v);
		}
	return fail(err, errlen,
		    "unknown volume attribute \"%s\"; svidfs.spiffe.io/ supports: " SUPPORTED_ATTRS,
		    q(key, kb));
}

static int check_capability(const Csi__V1__NodePublishVolumeRequest *req, char *err, size_t errlen)
{
	const Csi__V1__VolumeCapability *cap = req->volume_capability;
	char b[96];

	if (!cap)
		return fail(err, errlen, "volume_capability is missing");
	switch (cap->access_type_case) {
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT:
		break;
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK:
		return fail(err, errlen,
			    "block volumes are not supported: svidfs publishes files; use a "
			    "filesystem (mount) volume");
	default:
		return fail(err, errlen, "volume_capability has no access type (expected mount)");
	}
	const Csi__V1__VolumeCapability__MountVolume *m = cap->mount;
	if (m && m->fs_type && *m->fs_type)
		return fail(err, errlen,
			    "fsType \"%s\" is not supported: svidfs is not a block filesystem; "
			    "remove csi.fsType from the pod's volume",
			    q(m->fs_type, b));
	if (m && m->n_mount_flags > 0)
		return fail(err, errlen,
			    "mount flags are not supported (got \"%s\"): the plugin always mounts "
			    "read-only, nosuid, nodev, noexec",
			    q(m->mount_flags[0], b));
	if (!cap->access_mode)
		return fail(err, errlen, "volume_capability.access_mode is missing");
	if (cap->access_mode->mode == CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__UNKNOWN)
		return fail(err, errlen, "volume_capability.access_mode is UNKNOWN");
	if (cap->access_mode->mode ==
	    CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY)
		return fail(err, errlen,
			    "access mode SINGLE_NODE_READER_ONLY is not supported: declare the "
			    "volume as an inline csi volume with readOnly: true");
	return 0;
}

static int parse_gid(const Csi__V1__NodePublishVolumeRequest *req, long *ret, char *err,
		     size_t errlen)
{
	const Csi__V1__VolumeCapability__MountVolume *m = req->volume_capability->mount;
	char b[96], *end;

	*ret = -1;
	if (!m || !m->volume_mount_group || !*m->volume_mount_group)
		return 0;
	errno = 0;
	long g = strtol(m->volume_mount_group, &end, 10);
	if (errno || *end || g < 0 || g > 0x7ffffffe || m->volume_mount_group[0] == '-' ||
	    m->volume_mount_group[0] == '+' || m->volume_mount_group[0] == ' ')
		return fail(
		    err, errlen,
		    "volume_mount_group \"%s\" is not a numeric group id (the pod's fsGroup)",
		    q(m->volume_mount_group, b));
	*ret = g;
	return 0;
}

int volctx_from_publish(const Csi__V1__NodePublishVolumeRequest *req, const char *kubelet_root,
			VolCtx **ret, char *err, size_t errlen)
{
	_cleanup_(volctx_freep) VolCtx *c = NULL;
	char b[96];
	int r;

	r = volctx_check_volume_id(req->volume_id, err, errlen);
	if (r < 0)
		return r;
	if (!req->target_path || !*req->target_path)
		return fail(err, errlen, "target_path is missing");
	r = check_capability(req, err, errlen);
	if (r < 0)
		return r;
	if (!req->readonly)
		return fail(err, errlen,
			    "pod.spec.volumes[].csi.readOnly must be set to true: svidfs volumes "
			    "are read-only");

	const char *eph = ctx_get(req, VOLCTX_KEY_EPHEMERAL);
	if (!eph || !streq(eph, "true"))
		return fail(err, errlen,
			    "only ephemeral inline volumes are supported (volume context %s is "
			    "\"%s\"): use a csi volume in the pod spec and a CSIDriver with "
			    "podInfoOnMount: true and volumeLifecycleModes [Ephemeral]",
			    VOLCTX_KEY_EPHEMERAL, eph ? q(eph, b) : "");

	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	const struct {
		const char *key, *what, *rule;
		char **dst;
		bool (*valid)(const char *);
		bool required;
	} facts[] = {
	    {VOLCTX_KEY_POD_UID, "pod uid", "a lowercase UUID or a static pod's 32 hex digits",
	     &c->pod_uid, k8s_pod_uid_valid, true},
	    {VOLCTX_KEY_POD_NAMESPACE, "pod namespace", "a DNS-1123 label", &c->pod_namespace,
	     k8s_namespace_valid, true},
	    {VOLCTX_KEY_SERVICE_ACCOUNT, "service account", "a DNS-1123 subdomain",
	     &c->service_account, k8s_service_account_valid, true},
	    {VOLCTX_KEY_POD_NAME, "pod name", "a DNS-1123 subdomain", &c->pod_name,
	     k8s_pod_name_valid, false},
	};
	for (size_t i = 0; i < ELEMENTSOF(facts); i++) {
		const char *v = ctx_get(req, facts[i].key);
		if (!v || !*v) {
			if (!facts[i].required) {
				r = set_str(facts[i].dst, "");
				if (r < 0)
					return r;
				continue;
			}
			return fail(err, errlen,
				    "volume context lacks %s (%s): set podInfoOnMount: true in the "
				    "CSIDriver object",
				    facts[i].key, facts[i].what);
		}
		if (!facts[i].valid(v))
			return fail(err, errlen, "volume context %s=\"%s\" is not a valid %s (%s)",
				    facts[i].key, q(v, b), facts[i].what, facts[i].rule);
		r = set_str(facts[i].dst, v);
		if (r < 0)
			return r;
	}

	for (size_t i = 0; i < req->n_volume_context; i++) {
		const char *k = req->volume_context[i]->key, *v = req->volume_context[i]->value;
		if (!k || !v)
			return fail(err, errlen,
				    "volume context has an entry without key or value");
		/* Keys kubelet reserves (pod facts, serviceAccount.tokens, ...). Their values may
		 * be tokens: never echoed. */
		if (strncmp(k, VOLCTX_KUBELET_PREFIX, strlen(VOLCTX_KUBELET_PREFIX)) == 0)
			continue;
		if (strncmp(k, VOLCTX_ATTR_PREFIX, strlen(VOLCTX_ATTR_PREFIX)) != 0)
			return fail(err, errlen,
				    "unknown volume attribute \"%s\": svidfs accepts only "
				    "svidfs.spiffe.io/ attributes (" SUPPORTED_ATTRS ")",
				    q(k, b));
		if (strchr(v, '\n'))
			return fail(err, errlen, "volume attribute %s holds a newline", q(k, b));
		r = apply_attribute(c, k, v, err, errlen);
		if (r < 0)
			return r;
	}

	r = parse_gid(req, &c->gid, err, errlen);
	if (r < 0)
		return r;
	r = volctx_parse_target(kubelet_root, req->target_path, &c->target_uid, &c->volume_name,
				err, errlen);
	if (r < 0)
		return r;
	if (!(c->volume_id = strdup(req->volume_id)) ||
	    !(c->target_path = strdup(req->target_path)))
		return -ENOMEM;
	*ret = TAKE_PTR(c);
	return 0;
}

int volctx_check_pod_matches_target(const VolCtx *c, char *err, size_t errlen)
{
	if (streq(c->pod_uid, c->target_uid))
		return 0;
	return fail(err, errlen,
		    "pod uid %s in the volume context differs from the uid %s in target_path: "
		    "refusing to publish one pod's identity into another pod's directory",
		    c->pod_uid, c->target_uid);
}

int volctx_register_request(const VolCtx *c, KvMsg **ret)
{
	_cleanup_(kv_freep) KvMsg *m = NULL;
	int r;

	r = kv_new(&m);
	if (r < 0)
		return r;
	if ((r = kv_add(m, "op", "register")) < 0 || (r = kv_add(m, "kind", "pod")) < 0 ||
	    (r = kv_add(m, "pod_uid", c->pod_uid)) < 0 ||
	    (r = kv_add(m, "namespace", c->pod_namespace)) < 0 ||
	    (r = kv_add(m, "service_account", c->service_account)) < 0)
		return r;
	if (*c->pod_name && (r = kv_add(m, "pod_name", c->pod_name)) < 0)
		return r;
	for (size_t i = 0; i < c->n_agents; i++)
		if ((r = kv_add(m, "agent", c->agents[i])) < 0)
			return r;
	if (c->layout && (r = kv_add(m, "layout", c->layout)) < 0)
		return r;
	if (c->gid >= 0 && (r = kv_addf(m, "gid", "%ld", c->gid)) < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(file_name_attrs); i++) {
		char *const *slot = file_name_slot((VolCtx *)c, i);
		if (*slot && (r = kv_add(m, file_name_attrs[i], *slot)) < 0)
			return r;
	}
	for (size_t i = 0; i < c->n_jwt; i++)
		if ((r = kv_addf(m, "jwt_svid", "%s %s", c->jwt[i].file, c->jwt[i].audience)) < 0)
			return r;
	if (c->include_federated &&
	    (r = kv_add(m, "include_federated_domains", c->include_federated)) < 0)
		return r;
	/* The target travels with the reference: the daemon refuses another volume id on it. */
	if ((r = kv_add(m, "ref", c->volume_id)) < 0 ||
	    (r = kv_add(m, "target", c->target_path)) < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

const char *volctx_volume_id(const VolCtx *c)
{
	return c->volume_id;
}
const char *volctx_target_path(const VolCtx *c)
{
	return c->target_path;
}
const char *volctx_pod_uid(const VolCtx *c)
{
	return c->pod_uid;
}
const char *volctx_target_pod_uid(const VolCtx *c)
{
	return c->target_uid;
}
const char *volctx_pod_name(const VolCtx *c)
{
	return c->pod_name;
}
const char *volctx_pod_namespace(const VolCtx *c)
{
	return c->pod_namespace;
}
const char *volctx_service_account(const VolCtx *c)
{
	return c->service_account;
}
const char *volctx_layout(const VolCtx *c)
{
	return c->layout;
}
long volctx_gid(const VolCtx *c)
{
	return c->gid;
}
