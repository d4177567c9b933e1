// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "macro.h"
#include "tree.h"

static const char *const layout_names[_TREE_LAYOUT_MAX] = {
    [TREE_LAYOUT_SPIFFE] = "spiffe",
    [TREE_LAYOUT_SPIFFE_HELPER] = "spiffe-helper",
    [TREE_LAYOUT_KUBERNETES_TLS] = "kubernetes-tls",
};

/* Names every workload directory has, whatever the layout. */
static const char *const reserved_names[] = {"status.json", "jwt", "jwt-bundles", "svids"};

int tree_layout_from_string(const char *s)
{
	for (size_t i = 0; i < _TREE_LAYOUT_MAX; i++)
		if (s && streq(s, layout_names[i]))
			return (int)i;
	return -EINVAL;
}

const char *tree_layout_to_string(TreeLayout l)
{
	return l < _TREE_LAYOUT_MAX ? layout_names[l] : NULL;
}

bool tree_name_valid(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strlen(name);
	if (n == 0 || n > 255 || streq(name, ".") || streq(name, ".."))
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* The three per-SVID roles of the spiffe-helper and kubernetes-tls layouts. */
static void role_names(const TreeNames *n, const char **cert, const char **key, const char **bundle)
{
	bool k8s = n->layout == TREE_LAYOUT_KUBERNETES_TLS;

	*cert = n->svid_file_name ? n->svid_file_name : k8s ? "tls.crt" : "svid.pem";
	*key = n->svid_key_file_name ? n->svid_key_file_name : k8s ? "tls.key" : "svid_key.pem";
	*bundle = n->svid_bundle_file_name ? n->svid_bundle_file_name
		  : k8s			   ? "ca.crt"
					   : "svid_bundle.pem";
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && streq(s + a - b, suffix);
}

int tree_names_validate(const TreeNames *n, const char **ret_reason)
{
	const char *names[8 + 64];
	size_t k = 0;

	if (n->layout >= _TREE_LAYOUT_MAX) {
		*ret_reason = "unknown layout";
		return -EINVAL;
	}
	if (n->layout == TREE_LAYOUT_SPIFFE &&
	    (n->svid_file_name || n->svid_key_file_name || n->svid_bundle_file_name)) {
		*ret_reason = "svid_file_name, svid_key_file_name and svid_bundle_file_name need "
			      "layout spiffe-helper or kubernetes-tls";
		return -EINVAL;
	}
	if (n->n_jwt > 64) {
		*ret_reason = "too many jwt_svid files (at most 64)";
		return -EINVAL;
	}
	if (n->layout != TREE_LAYOUT_SPIFFE) {
		role_names(n, &names[0], &names[1], &names[2]);
		k = 3;
	} else
		names[k++] = "credential-bundle.private-key.pem";
	if (n->jwt_bundle_file_name)
		names[k++] = n->jwt_bundle_file_name;
	for (size_t i = 0; i < n->n_jwt; i++) {
		if (!n->jwt[i].audience || !*n->jwt[i].audience) {
			*ret_reason = "jwt_svid needs an audience";
			return -EINVAL;
		}
		names[k++] = n->jwt[i].file_name;
	}
	for (size_t i = 0; i < k; i++) {
		if (!tree_name_valid(names[i])) {
			*ret_reason = "file names must be one path component of [A-Za-z0-9._-]";
			return -EINVAL;
		}
		for (size_t j = 0; j < ELEMENTSOF(reserved_names); j++)
			if (streq(names[i], reserved_names[j])) {
				*ret_reason =
				    "file name clashes with status.json, jwt, jwt-bundles "
				    "or svids";
				return -EINVAL;
			}
		if (n->layout == TREE_LAYOUT_SPIFFE && i > 0 &&
		    ends_with(names[i], ".spiffe-trust-bundle.pem")) {
			*ret_reason = "file name clashes with a trust bundle file";
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (streq(names[i], names[j])) {
				*ret_reason = "two files have the same name";
				return -EINVAL;
			}
	}
	return 0;
}

struct TreeListing {
	size_t n, cap;
	TreeNode *nodes;
	size_t n_strings, cap_strings;
	char **strings; /* owned names */
	uint16_t next_id;
};

TreeListing *tree_listing_free(TreeListing *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->n_strings; i++)
		free(l->strings[i]);
	free(l->strings);
	free(l->nodes);
	free(l);
	return NULL;
}


static int listing_own(TreeListing *l, char *s, const char **ret)
{
	if (!s)
		return -ENOMEM;
	if (l->n_strings == l->cap_strings) {
		size_t cap = l->cap_strings ? l->cap_strings * 2 : 8;
		char **p = realloc(l->strings, cap * sizeof *p);
		if (!p) {
			free(s);
			return -ENOMEM;
		}
		l->strings = p;
		l->cap_strings = cap;
	}
	l->strings[l->n_strings++] = s;
	*ret = s;
	return 0;
}

static int listing_add(TreeListing *l, const TreeNode *proto, uint16_t fixed_id, uint16_t *ret_id)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		TreeNode *p = realloc(l->nodes, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		l->nodes = p;
		l->cap = cap;
	}
	TreeNode *n = &l->nodes[l->n];
	*n = *proto;
	if (fixed_id)
		n->id = fixed_id;
	else {
		if (l->next_id >= TREE_ID_FIRST_JWT)
			return -E2BIG;
		n->id = l->next_id++;
	}
	l->n++;
	if (ret_id)
		*ret_id = n->id;
	return 0;
}

static char *td_file_name(const char *td, const char *suffix)
{
	char *s = NULL;
	return asprintf(&s, "%s%s", td, suffix) < 0 ? NULL : s;
}

static int add_file(TreeListing *l, uint16_t parent, const char *name, SvidFileKind kind,
		    uint32_t svid, const char *arg, bool secret)
{
	TreeNode n = {.parent = parent,
		      .type = TREE_NODE_FILE,
		      .name = name,
		      .kind = kind,
		      .svid_index = svid,
		      .arg = arg,
		      .secret = secret};
	return listing_add(l, &n, 0, NULL);
}

/* The layout's per-SVID files for SVID `svid` under node `parent`. */
static int add_svid_files(TreeListing *l, const TreeNames *names, const TreeFacts *f,
			  uint16_t parent, uint32_t svid)
{
	int r;

	if (names->layout == TREE_LAYOUT_SPIFFE) {
		r = add_file(l, parent, "credential-bundle.private-key.pem",
			     SVID_FILE_CREDENTIAL_BUNDLE, svid, NULL, true);
		if (r < 0)
			return r;
		for (size_t i = 0; i < f->n_bundle_tds; i++) {
			const char *name;
			r = listing_own(
			    l, td_file_name(f->bundle_tds[i], ".spiffe-trust-bundle.pem"), &name);
			if (r < 0)
				return r;
			r = add_file(l, parent, name, SVID_FILE_TRUST_BUNDLE, svid,
				     f->bundle_tds[i], false);
			if (r < 0)
				return r;
		}
		return 0;
	}
	const char *cert, *key, *bundle;
	role_names(names, &cert, &key, &bundle);
	r = add_file(l, parent, cert, SVID_FILE_CERT_CHAIN, svid, NULL, false);
	if (r >= 0)
		r = add_file(l, parent, key, SVID_FILE_KEY, svid, NULL, true);
	if (r >= 0)
		r = add_file(l, parent, bundle,
			     names->include_federated ? SVID_FILE_BUNDLE_FEDERATED
						      : SVID_FILE_BUNDLE,
			     svid, NULL, false);
	return r;
}

/* svids/<hint-or-index>: the hint when it is a valid, unused name, else the index. */
static int svid_dir_name(TreeListing *l, const TreeFacts *f, size_t i, const char **ret)
{
	const char *hint = f->hints ? f->hints[i] : NULL;
	char *s = NULL;

	if (hint && tree_name_valid(hint) && !tree_listing_find(l, TREE_ID_SVIDS_DIR, hint)) {
		*ret = hint;
		return 0;
	}
	if (asprintf(&s, "%zu", i) < 0)
		return -ENOMEM;
	if (tree_listing_find(l, TREE_ID_SVIDS_DIR, s)) {
		free(s);
		if (asprintf(&s, "svid-%zu", i) < 0)
			return -ENOMEM;
	}
	return listing_own(l, s, ret);
}

int tree_listing_new(const TreeNames *names, const TreeFacts *f, TreeListing **ret)
{
	_cleanup_(tree_listing_freep) TreeListing *l = calloc(1, sizeof *l);
	int r;

	if (!l)
		return -ENOMEM;
	l->next_id = TREE_ID_FIRST_DYNAMIC;
	if (f->n_svids > 0) {
		r = add_svid_files(l, names, f, TREE_ID_WORKLOAD, 0);
		if (r < 0)
			return r;
		if (names->jwt_bundle_file_name && f->own_trust_domain) {
			for (size_t i = 0; i < f->n_jwt_bundle_tds; i++)
				if (streq(f->jwt_bundle_tds[i], f->own_trust_domain)) {
					r = add_file(
					    l, TREE_ID_WORKLOAD, names->jwt_bundle_file_name,
					    SVID_FILE_JWT_BUNDLE, 0, f->jwt_bundle_tds[i], false);
					if (r < 0)
						return r;
				}
		}
	} else if (names->layout == TREE_LAYOUT_SPIFFE) {
		/* Bundles are useful before the first SVID (a verifier-only workload). */
		for (size_t i = 0; i < f->n_bundle_tds; i++) {
			const char *name;
			r = listing_own(
			    l, td_file_name(f->bundle_tds[i], ".spiffe-trust-bundle.pem"), &name);
			if (r >= 0)
				r = add_file(l, TREE_ID_WORKLOAD, name, SVID_FILE_TRUST_BUNDLE, 0,
					     f->bundle_tds[i], false);
			if (r < 0)
				return r;
		}
	}
	for (size_t i = 0; i < names->n_jwt; i++) {
		TreeNode n = {.parent = TREE_ID_WORKLOAD,
			      .type = TREE_NODE_JWT,
			      .name = names->jwt[i].file_name,
			      .audience = names->jwt[i].audience,
			      .secret = true};
		r = listing_add(l, &n, 0, NULL);
		if (r < 0)
			return r;
	}

	static const struct {
		uint16_t id;
		const char *name;
		TreeNodeType type;
	} fixed[] = {
	    {TREE_ID_STATUS, "status.json", TREE_NODE_STATUS},
	    {TREE_ID_JWT_DIR, "jwt", TREE_NODE_DIR},
	    {TREE_ID_JWT_BUNDLES_DIR, "jwt-bundles", TREE_NODE_DIR},
	    {TREE_ID_SVIDS_DIR, "svids", TREE_NODE_DIR},
	};
	for (size_t i = 0; i < ELEMENTSOF(fixed); i++) {
		TreeNode n = {
		    .parent = TREE_ID_WORKLOAD, .type = fixed[i].type, .name = fixed[i].name};
		r = listing_add(l, &n, fixed[i].id, NULL);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < f->n_jwt_bundle_tds; i++) {
		const char *name;
		r = listing_own(l, td_file_name(f->jwt_bundle_tds[i], ".jwks"), &name);
		if (r >= 0)
			r = add_file(l, TREE_ID_JWT_BUNDLES_DIR, name, SVID_FILE_JWT_BUNDLE, 0,
				     f->jwt_bundle_tds[i], false);
		if (r < 0)
			return r;
	}
	for (size_t i = 1; i < f->n_svids; i++) {
		const char *name;
		uint16_t dir;
		r = svid_dir_name(l, f, i, &name);
		if (r < 0)
			return r;
		TreeNode n = {.parent = TREE_ID_SVIDS_DIR,
			      .type = TREE_NODE_DIR,
			      .name = name,
			      .svid_index = (uint32_t)i};
		r = listing_add(l, &n, 0, &dir);
		if (r >= 0)
			r = add_svid_files(l, names, f, dir, (uint32_t)i);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

size_t tree_listing_size(const TreeListing *l)
{
	return l->n;
}

const TreeNode *tree_listing_node(const TreeListing *l, size_t i)
{
	return i < l->n ? &l->nodes[i] : NULL;
}

const TreeNode *tree_listing_by_id(const TreeListing *l, uint16_t id)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->nodes[i].id == id)
			return &l->nodes[i];
	return NULL;
}

const TreeNode *tree_listing_find(const TreeListing *l, uint16_t parent, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->nodes[i].parent == parent && streq(l->nodes[i].name, name))
			return &l->nodes[i];
	return NULL;
}

uint64_t tree_ino(uint32_t slot, uint16_t id, uint64_t serial)
{
	return ((uint64_t)(slot + 1) << 44) | ((uint64_t)(id & 0xfff) << 32) |
	       (serial & 0xffffffffu);
}

bool tree_ino_decode(uint64_t ino, uint32_t *ret_slot, uint16_t *ret_id, uint32_t *ret_serial)
{
	uint64_t s = ino >> 44;

	if (s == 0)
		return false;
	*ret_slot = (uint32_t)(s - 1);
	*ret_id = (uint16_t)((ino >> 32) & 0xfff);
	*ret_serial = (uint32_t)ino;
	return true;
}

static bool audience_plain(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '/' && c != '%';
}

int tree_audience_encode(const char *aud, char **ret)
{
	size_t n = 0;
	char *s, *p;

	for (const unsigned char *a = (const unsigned char *)aud; *a; a++)
		n += audience_plain(*a) ? 1 : 3;
	if (n == 0 || n > 255)
		return -EINVAL;
	s = p = malloc(n + 1);
	if (!s)
		return -ENOMEM;
	for (const unsigned char *a = (const unsigned char *)aud; *a; a++) {
		if (audience_plain(*a))
			*p++ = (char)*a;
		else
			p += sprintf(p, "%%%02X", *a);
	}
	*p = 0;
	if (streq(s, ".") || streq(s, "..")) {
		free(s);
		return -EINVAL;
	}
	*ret = s;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int tree_audience_decode(const char *name, char **ret)
{
	size_t n = strlen(name);
	char *s, *p;

	if (n == 0)
		return -EINVAL;
	s = p = malloc(n + 1);
	if (!s)
		return -ENOMEM;
	for (const char *c = name; *c; c++) {
		if (*c != '%') {
			*p++ = *c;
			continue;
		}
		int hi = hexval(c[1]), lo = hi < 0 ? -1 : hexval(c[2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(s);
			return -EINVAL;
		}
		*p++ = (char)(hi << 4 | lo);
		c += 2;
	}
	*p = 0;
	*ret = s;
	return 0;
}
