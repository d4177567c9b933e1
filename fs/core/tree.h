/* SPDX-License-Identifier: Apache-2.0 */
/* tree.h: the pure name <-> kind mapping of a workload directory for each layout and for
 * spiffe-helper style custom names, and the computed inode numbers (workload slot, node id,
 * generation or serial) packed into 64 bits. A TreeListing is built from one generation's facts
 * and is immutable afterwards; any thread may use it. Never logs, no I/O. */
#pragma once

#include "cleanup.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "render.h"

typedef enum TreeLayout {
	TREE_LAYOUT_SPIFFE,
	TREE_LAYOUT_SPIFFE_HELPER,
	TREE_LAYOUT_KUBERNETES_TLS,
	_TREE_LAYOUT_MAX,
} TreeLayout;

int tree_layout_from_string(const char *s); /* -EINVAL when unknown */
const char *tree_layout_to_string(TreeLayout l);

typedef struct TreeJwtName {
	const char *file_name;
	const char *audience;
} TreeJwtName;

/* How a registration names its files. NULL names take the layout's default. Borrowed. */
typedef struct TreeNames {
	TreeLayout layout;
	const char *svid_file_name, *svid_key_file_name, *svid_bundle_file_name;
	const char *jwt_bundle_file_name; /* NULL: no such file */
	const TreeJwtName *jwt;
	size_t n_jwt;
	bool include_federated;
} TreeNames;

/* One path component of [A-Za-z0-9._-], not "." or "..", at most 255 bytes. */
bool tree_name_valid(const char *name);
/* -EINVAL with a static reason when a name is invalid or two files would clash. */
int tree_names_validate(const TreeNames *n, const char **ret_reason);

/* Facts of one generation of a workload (borrowed). */
typedef struct TreeFacts {
	size_t n_svids;
	const char *const *hints;      /* n_svids entries, "" for none */
	const char *own_trust_domain;  /* of the default SVID; NULL without SVIDs */
	const char *const *bundle_tds; /* trust domains with an X.509 bundle file */
	size_t n_bundle_tds;
	const char *const *jwt_bundle_tds;
	size_t n_jwt_bundle_tds;
} TreeFacts;

typedef enum TreeNodeType {
	TREE_NODE_DIR,
	TREE_NODE_FILE,	  /* rendered by svid_render(kind, svid_index, arg) */
	TREE_NODE_STATUS, /* status.json */
	TREE_NODE_JWT,	  /* a JWT-SVID for `audience`, minted on lookup */
	_TREE_NODE_TYPE_MAX,
} TreeNodeType;

/* Node ids within a workload (12 bits). Fixed ids first, then the listing's files, then JWTs. */
enum {
	TREE_ID_WORKLOAD = 0,
	TREE_ID_STATUS = 1,
	TREE_ID_JWT_DIR = 2,
	TREE_ID_JWT_BUNDLES_DIR = 3,
	TREE_ID_SVIDS_DIR = 4,
	TREE_ID_FIRST_DYNAMIC = 16,
	TREE_ID_FIRST_JWT = 2048, /* + audience index */
	TREE_ID_MAX = 4096,
};

typedef struct TreeNode {
	uint16_t id, parent; /* parent is a node id; TREE_ID_WORKLOAD for the top level */
	TreeNodeType type;
	const char *name;
	SvidFileKind kind; /* TREE_NODE_FILE */
	uint32_t svid_index;
	const char *arg;      /* trust domain for per-domain files, else NULL */
	const char *audience; /* TREE_NODE_JWT (custom jwt_svids names) */
	bool secret;	      /* holds a private key or token: key mode */
} TreeNode;

typedef struct TreeListing TreeListing;

int tree_listing_new(const TreeNames *names, const TreeFacts *facts, TreeListing **ret);
TreeListing *tree_listing_free(TreeListing *l); /* NULL-safe */
DEFINE_CLEANUP_FUNC(TreeListing, tree_listing_free)
size_t tree_listing_size(const TreeListing *l);
const TreeNode *tree_listing_node(const TreeListing *l, size_t i); /* in listing order */
const TreeNode *tree_listing_by_id(const TreeListing *l, uint16_t id);
const TreeNode *tree_listing_find(const TreeListing *l, uint16_t parent, const char *name);

/* Inode numbers: bits 63..44 slot+1 (0 for the static directories), 43..32 node id, 31..0 the
 * low bits of a generation or serial. Generations and serials only grow, so a number is never
 * reused for different bytes within a connection. */
enum {
	TREE_INO_ROOT = 1, /* FUSE_ROOT_ID */
	TREE_INO_PODS = 2,
	TREE_INO_IDENTITIES = 3,
};
#define TREE_SLOT_MAX ((1u << 20) - 2)

uint64_t tree_ino(uint32_t slot, uint16_t id, uint64_t serial);
/* false for the static directories (and anything else without a slot). */
bool tree_ino_decode(uint64_t ino, uint32_t *ret_slot, uint16_t *ret_id, uint32_t *ret_serial);

/* jwt/<audience>: '/' and '%', control bytes, space and non-ASCII are percent-encoded. */
int tree_audience_encode(const char *audience, char **ret);
int tree_audience_decode(const char *name, char **ret); /* -EINVAL on a bad escape */
