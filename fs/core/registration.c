// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "k8sname.h"
#include "macro.h"
#include "registration.h"

Registration *registration_free(Registration *r)
{
	if (!r)
		return NULL;
	free(r->name);
	free(r->pod_uid);
	free(r->namespace_);
	free(r->service_account);
	free(r->pod_name);
	for (size_t i = 0; i < r->n_selectors; i++)
		free(r->selectors[i]);
	free(r->selectors);
	for (size_t i = 0; i < r->n_agents; i++)
		free(r->agents[i]);
	free(r->agents);
	free(r->svid_file_name);
	free(r->svid_key_file_name);
	free(r->svid_bundle_file_name);
	free(r->jwt_bundle_file_name);
	for (size_t i = 0; i < r->n_jwt; i++) {
		free(r->jwt[i].file_name);
		free(r->jwt[i].audience);
	}
	free(r->jwt);
	free(r);
	return NULL;
}


static int strv_push(char ***v, size_t *n, const char *s)
{
	char **p = realloc(*v, (*n + 1) * sizeof *p);
	if (!p)
		return -ENOMEM;
	*v = p;
	p[*n] = strdup(s);
	if (!p[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int dup_opt(const KvMsg *m, const char *key, char **ret)
{
	const char *v = kv_get(m, key);
	if (!v || !*v)
		return 0;
	*ret = strdup(v);
	return *ret ? 0 : -ENOMEM;
}

static int parse_id(const char *s, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= (unsigned long)UINT_MAX)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_mode(const char *s, mode_t *ret)
{
	char *end;
	unsigned long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno || *end || v > 0777)
		return -EINVAL;
	*ret = (mode_t)v;
	return 0;
}

static bool parse_bool(const char *s, bool *ret)
{
	if (streq(s, "true") || streq(s, "1") || streq(s, "yes")) {
		*ret = true;
		return true;
	}
	if (streq(s, "false") || streq(s, "0") || streq(s, "no")) {
		*ret = false;
		return true;
	}
	return false;
}

#define FAIL(msg)                                                                                  \
	({                                                                                         \
		*ret_error = (msg);                                                                \
		-EINVAL;                                                                           \
	})

int registration_from_kv(const KvMsg *m, Registration **ret, const char **ret_error)
{
	_cleanup_(registration_freep) Registration *r = calloc(1, sizeof *r);
	const char *kind = kv_get(m, "kind"), *v;
	int k;

	if (!r)
		return -ENOMEM;
	*ret_error = NULL;
	if (!kind || streq(kind, "pod"))
		r->kind = REGISTRATION_POD;
	else if (streq(kind, "identity"))
		r->kind = REGISTRATION_IDENTITY;
	else if (streq(kind, "self"))
		r->kind = REGISTRATION_SELF;
	else
		return FAIL("kind must be pod or identity");

	if (r->kind == REGISTRATION_POD) {
		v = kv_get(m, "pod_uid");
		if (!v)
			return FAIL("pod_uid is required");
		if (!k8s_pod_uid_valid(v))
			return FAIL("pod_uid must be a lowercase UUID or a static pod's 32 hex "
				    "digits");
		if (asprintf(&r->name, "pods/%s", v) < 0)
			return -ENOMEM;
		if (dup_opt(m, "pod_uid", &r->pod_uid) < 0 ||
		    dup_opt(m, "namespace", &r->namespace_) < 0 ||
		    dup_opt(m, "service_account", &r->service_account) < 0 ||
		    dup_opt(m, "pod_name", &r->pod_name) < 0)
			return -ENOMEM;
		if (r->namespace_ && !k8s_namespace_valid(r->namespace_))
			return FAIL("namespace must be a DNS-1123 label ([a-z0-9-], alphanumeric "
				    "at both ends, at most 63 bytes)");
		if (r->service_account && !k8s_service_account_valid(r->service_account))
			return FAIL("service_account must be a DNS-1123 subdomain (labels of "
				    "[a-z0-9-] joined by '.', at most 253 bytes)");
		if (r->pod_name && !k8s_pod_name_valid(r->pod_name))
			return FAIL("pod_name must be a DNS-1123 subdomain (labels of [a-z0-9-] "
				    "joined by '.', at most 253 bytes)");
		/* The facts kubelet vouches for, and nothing else (docs/security.md: who is trusted). */
		char *sel = NULL;
		const struct {
			const char *prefix, *value;
		} facts[] = {{"k8s:pod-uid:", r->pod_uid},
			     {"k8s:ns:", r->namespace_},
			     {"k8s:sa:", r->service_account},
			     {"k8s:pod-name:", r->pod_name}};
		for (size_t i = 0; i < ELEMENTSOF(facts); i++) {
			if (!facts[i].value)
				continue;
			if (asprintf(&sel, "%s%s", facts[i].prefix, facts[i].value) < 0)
				return -ENOMEM;
			k = strv_push(&r->selectors, &r->n_selectors, sel);
			free(sel);
			if (k < 0)
				return k;
		}
		for (size_t i = 0; i < kv_count(m); i++)
			if (streq(kv_key(m, i), "selector"))
				return FAIL("selector is for identities; pods get theirs from pod "
					    "facts");
	} else if (r->kind == REGISTRATION_IDENTITY) {
		v = kv_get(m, "name");
		if (!v || !tree_name_valid(v))
			return FAIL("identities need a name of [A-Za-z0-9._-]");
		if (asprintf(&r->name, "identities/%s", v) < 0)
			return -ENOMEM;
		for (size_t i = 0; i < kv_count(m); i++) {
			if (!streq(kv_key(m, i), "selector"))
				continue;
			const char *s = kv_value(m, i), *c = strchr(s, ':');
			if (!c || c == s || !c[1])
				return FAIL("selector must be <type>:<value>");
			k = strv_push(&r->selectors, &r->n_selectors, s);
			if (k < 0)
				return k;
		}
		if (r->n_selectors == 0)
			return FAIL("identities need at least one selector");
	} else {
		r->name = strdup("self");
		if (!r->name)
			return -ENOMEM;
	}

	for (size_t i = 0; i < kv_count(m); i++) {
		if (!streq(kv_key(m, i), "agent"))
			continue;
		if (!tree_name_valid(kv_value(m, i)))
			return FAIL("agent names are [A-Za-z0-9._-]");
		k = strv_push(&r->agents, &r->n_agents, kv_value(m, i));
		if (k < 0)
			return k;
	}

	v = kv_get(m, "layout");
	bool custom = kv_get(m, "svid_file_name") || kv_get(m, "svid_key_file_name") ||
		      kv_get(m, "svid_bundle_file_name");
	if (v) {
		k = tree_layout_from_string(v);
		if (k < 0)
			return FAIL("layout must be spiffe, spiffe-helper or kubernetes-tls");
		r->layout = (TreeLayout)k;
	} else
		r->layout = custom ? TREE_LAYOUT_SPIFFE_HELPER : TREE_LAYOUT_SPIFFE;

	if (dup_opt(m, "svid_file_name", &r->svid_file_name) < 0 ||
	    dup_opt(m, "svid_key_file_name", &r->svid_key_file_name) < 0 ||
	    dup_opt(m, "svid_bundle_file_name", &r->svid_bundle_file_name) < 0 ||
	    dup_opt(m, "jwt_bundle_file_name", &r->jwt_bundle_file_name) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < kv_count(m); i++) {
		if (!streq(kv_key(m, i), "jwt_svid"))
			continue;
		const char *s = kv_value(m, i), *sp = strchr(s, ' ');
		if (!sp || sp == s || !sp[1])
			return FAIL("jwt_svid must be '<file-name> <audience>'");
		RegistrationJwt *j = realloc(r->jwt, (r->n_jwt + 1) * sizeof *j);
		if (!j)
			return -ENOMEM;
		r->jwt = j;
		j[r->n_jwt].file_name = strndup(s, (size_t)(sp - s));
		j[r->n_jwt].audience = strdup(sp + 1);
		r->n_jwt++;
		if (!j[r->n_jwt - 1].file_name || !j[r->n_jwt - 1].audience)
			return -ENOMEM;
	}
	v = kv_get(m, "include_federated_domains");
	if (v && !parse_bool(v, &r->include_federated))
		return FAIL("include_federated_domains must be true or false");

	unsigned long id = 0;
	bool gid_set = false;
	if ((v = kv_get(m, "uid"))) {
		if (parse_id(v, &id) < 0)
			return FAIL("uid must be a number");
		r->uid = (uid_t)id;
	}
	if ((v = kv_get(m, "gid"))) {
		if (parse_id(v, &id) < 0)
			return FAIL("gid must be a number");
		r->gid = (gid_t)id;
		gid_set = true;
	}
	r->cert_mode = 0444;
	r->key_mode = gid_set ? 0440 : 0400;
	if ((v = kv_get(m, "cert_mode")) && parse_mode(v, &r->cert_mode) < 0)
		return FAIL("cert_mode must be octal, at most 0777");
	if ((v = kv_get(m, "key_mode")) && parse_mode(v, &r->key_mode) < 0)
		return FAIL("key_mode must be octal, at most 0777");
	if (r->key_mode & 0007)
		return FAIL("key_mode must not give any permission to others");
	if (r->key_mode & 0111 || r->cert_mode & 0111)
		return FAIL("file modes must not be executable");
	if (r->cert_mode & 0222 || r->key_mode & 0222)
		return FAIL("file modes must not be writable");

	TreeJwtName jbuf[64];
	TreeNames names;
	if (r->n_jwt > ELEMENTSOF(jbuf))
		return FAIL("too many jwt_svid files (at most 64)");
	registration_tree_names(r, jbuf, &names);
	k = tree_names_validate(&names, ret_error);
	if (k < 0)
		return k;

	*ret = TAKE_PTR(r);
	return 0;
}

int registration_from_identity_file(const KvMsg *m, Registration **ret, const char **ret_error)
{
	_cleanup_(registration_freep) Registration *r = NULL;
	int k = registration_from_kv(m, &r, ret_error);

	if (k < 0)
		return k;
	if (r->kind != REGISTRATION_IDENTITY)
		return FAIL("kind must be identity");
	*ret = TAKE_PTR(r);
	return 0;
}

void registration_tree_names(const Registration *r, TreeJwtName *buf, TreeNames *ret)
{
	size_t n = MIN(r->n_jwt, (size_t)64);

	for (size_t i = 0; i < n; i++)
		buf[i] = (TreeJwtName){r->jwt[i].file_name, r->jwt[i].audience};
	*ret = (TreeNames){
	    .layout = r->layout,
	    .svid_file_name = r->svid_file_name,
	    .svid_key_file_name = r->svid_key_file_name,
	    .svid_bundle_file_name = r->svid_bundle_file_name,
	    .jwt_bundle_file_name = r->jwt_bundle_file_name,
	    .jwt = buf,
	    .n_jwt = n,
	    .include_federated = r->include_federated,
	};
}

int registration_to_kv(const Registration *r, KvMsg *m)
{
	static const char *const kinds[] = {"pod", "identity", "self"};
	int k = kv_add(m, "kind", kinds[r->kind]);

#define ADD(key, val)                                                                              \
	do {                                                                                       \
		if (k >= 0 && (val))                                                               \
			k = kv_add(m, key, val);                                                   \
	} while (0)
	ADD("pod_uid", r->pod_uid);
	ADD("namespace", r->namespace_);
	ADD("service_account", r->service_account);
	ADD("pod_name", r->pod_name);
	if (r->kind == REGISTRATION_IDENTITY) {
		ADD("name", strchr(r->name, '/') + 1);
		for (size_t i = 0; i < r->n_selectors; i++)
			ADD("selector", r->selectors[i]);
	}
	for (size_t i = 0; i < r->n_agents; i++)
		ADD("agent", r->agents[i]);
	ADD("layout", tree_layout_to_string(r->layout));
	ADD("svid_file_name", r->svid_file_name);
	ADD("svid_key_file_name", r->svid_key_file_name);
	ADD("svid_bundle_file_name", r->svid_bundle_file_name);
	ADD("jwt_bundle_file_name", r->jwt_bundle_file_name);
	for (size_t i = 0; i < r->n_jwt && k >= 0; i++)
		k = kv_addf(m, "jwt_svid", "%s %s", r->jwt[i].file_name, r->jwt[i].audience);
	ADD("include_federated_domains", r->include_federated ? "true" : "false");
	if (k >= 0)
		k = kv_addf(m, "uid", "%u", (unsigned)r->uid);
	if (k >= 0)
		k = kv_addf(m, "gid", "%u", (unsigned)r->gid);
	if (k >= 0)
		k = kv_addf(m, "cert_mode", "%04o", (unsigned)r->cert_mode);
	if (k >= 0)
		k = kv_addf(m, "key_mode", "%04o", (unsigned)r->key_mode);
#undef ADD
	return k < 0 ? k : 0;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && streq(a, b));
}

static bool strv_eq(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!streq(a[i], b[i]))
			return false;
	return true;
}

bool registration_equal(const Registration *a, const Registration *b)
{
	if (a->kind != b->kind || !streq(a->name, b->name) || !str_eq(a->pod_uid, b->pod_uid) ||
	    !str_eq(a->namespace_, b->namespace_) ||
	    !str_eq(a->service_account, b->service_account) || !str_eq(a->pod_name, b->pod_name) ||
	    !strv_eq(a->selectors, a->n_selectors, b->selectors, b->n_selectors) ||
	    !strv_eq(a->agents, a->n_agents, b->agents, b->n_agents) || a->layout != b->layout ||
	    !str_eq(a->svid_file_name, b->svid_file_name) ||
	    !str_eq(a->svid_key_file_name, b->svid_key_file_name) ||
	    !str_eq(a->svid_bundle_file_name, b->svid_bundle_file_name) ||
	    !str_eq(a->jwt_bundle_file_name, b->jwt_bundle_file_name) || a->n_jwt != b->n_jwt ||
	    a->include_federated != b->include_federated || a->uid != b->uid || a->gid != b->gid ||
	    a->cert_mode != b->cert_mode || a->key_mode != b->key_mode)
		return false;
	for (size_t i = 0; i < a->n_jwt; i++)
		if (!streq(a->jwt[i].file_name, b->jwt[i].file_name) ||
		    !streq(a->jwt[i].audience, b->jwt[i].audience))
			return false;
	return true;
}

int registration_state_file(const Registration *r, char **ret)
{
	char *s = NULL;
	int k;

	switch (r->kind) {
	case REGISTRATION_POD:
		k = asprintf(&s, "pod-%s.conf", r->pod_uid);
		break;
	case REGISTRATION_IDENTITY:
		k = asprintf(&s, "identity-%s.conf", strchr(r->name, '/') + 1);
		break;
	default:
		return -EINVAL;
	}
	if (k < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}
