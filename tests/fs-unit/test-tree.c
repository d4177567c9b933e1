// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"

static const char *const tds[] = {"example.org", "fed.example"};
static const char *const jtds[] = {"example.org"};

static TreeListing *build(const TreeNames *n, size_t n_svids, const char *const *hints)
{
	TreeFacts f = {.n_svids = n_svids,
		       .hints = hints,
		       .own_trust_domain = "example.org",
		       .bundle_tds = tds,
		       .n_bundle_tds = 2,
		       .jwt_bundle_tds = jtds,
		       .n_jwt_bundle_tds = 1};
	TreeListing *l = NULL;
	cr_assert_eq(tree_listing_new(n, &f, &l), 0);
	return l;
}

Test(tree, spiffe_layout_names)
{
	TreeNames n = {.layout = TREE_LAYOUT_SPIFFE};
	const char *hints[] = {""};
	TreeListing *l = build(&n, 1, hints);
	const TreeNode *c =
	    tree_listing_find(l, TREE_ID_WORKLOAD, "credential-bundle.private-key.pem");
	cr_assert_not_null(c);
	cr_assert_eq(c->kind, SVID_FILE_CREDENTIAL_BUNDLE);
	cr_assert(c->secret);
	const TreeNode *b =
	    tree_listing_find(l, TREE_ID_WORKLOAD, "fed.example.spiffe-trust-bundle.pem");
	cr_assert_not_null(b);
	cr_assert_eq(b->kind, SVID_FILE_TRUST_BUNDLE);
	cr_assert_str_eq(b->arg, "fed.example");
	cr_assert_not(b->secret);
	cr_assert_not_null(
	    tree_listing_find(l, TREE_ID_WORKLOAD, "example.org.spiffe-trust-bundle.pem"));
	cr_assert_eq(tree_listing_find(l, TREE_ID_WORKLOAD, "status.json")->id, TREE_ID_STATUS);
	cr_assert_eq(tree_listing_find(l, TREE_ID_WORKLOAD, "jwt")->type, TREE_NODE_DIR);
	const TreeNode *j = tree_listing_find(l, TREE_ID_JWT_BUNDLES_DIR, "example.org.jwks");
	cr_assert_not_null(j);
	cr_assert_eq(j->kind, SVID_FILE_JWT_BUNDLE);
	cr_assert_null(tree_listing_find(l, TREE_ID_WORKLOAD, "svid.pem"));
	tree_listing_free(l);
}

Test(tree, spiffe_helper_and_kubernetes_tls_defaults)
{
	TreeNames n = {.layout = TREE_LAYOUT_SPIFFE_HELPER};
	const char *hints[] = {""};
	TreeListing *l = build(&n, 1, hints);
	cr_assert_eq(tree_listing_find(l, 0, "svid.pem")->kind, SVID_FILE_CERT_CHAIN);
	cr_assert_eq(tree_listing_find(l, 0, "svid_key.pem")->kind, SVID_FILE_KEY);
	cr_assert_eq(tree_listing_find(l, 0, "svid_bundle.pem")->kind, SVID_FILE_BUNDLE);
	tree_listing_free(l);
	n.layout = TREE_LAYOUT_KUBERNETES_TLS;
	n.include_federated = true;
	l = build(&n, 1, hints);
	cr_assert_eq(tree_listing_find(l, 0, "tls.crt")->kind, SVID_FILE_CERT_CHAIN);
	cr_assert(tree_listing_find(l, 0, "tls.key")->secret);
	cr_assert_eq(tree_listing_find(l, 0, "ca.crt")->kind, SVID_FILE_BUNDLE_FEDERATED);
	tree_listing_free(l);
}

Test(tree, custom_names_and_jwt_files)
{
	TreeJwtName jwt[] = {{"token.jwt", "https://api.example/x"}};
	TreeNames n = {.layout = TREE_LAYOUT_SPIFFE_HELPER,
		       .svid_file_name = "tls.crt",
		       .svid_key_file_name = "tls.key",
		       .jwt_bundle_file_name = "jwt.json",
		       .jwt = jwt,
		       .n_jwt = 1};
	const char *reason = NULL;
	cr_assert_eq(tree_names_validate(&n, &reason), 0);
	const char *hints[] = {""};
	TreeListing *l = build(&n, 1, hints);
	cr_assert_not_null(tree_listing_find(l, 0, "tls.crt"));
	cr_assert_not_null(tree_listing_find(l, 0, "svid_bundle.pem"));
	const TreeNode *t = tree_listing_find(l, 0, "token.jwt");
	cr_assert_eq(t->type, TREE_NODE_JWT);
	cr_assert_str_eq(t->audience, "https://api.example/x");
	const TreeNode *jb = tree_listing_find(l, 0, "jwt.json");
	cr_assert_eq(jb->kind, SVID_FILE_JWT_BUNDLE);
	cr_assert_str_eq(jb->arg, "example.org");
	tree_listing_free(l);
}

Test(tree, name_validation)
{
	const char *reason = NULL;
	cr_assert(tree_name_valid("svid.pem"));
	cr_assert_not(tree_name_valid(".."));
	cr_assert_not(tree_name_valid("a/b"));
	cr_assert_not(tree_name_valid(""));
	cr_assert_not(tree_name_valid("a b"));
	TreeNames clash = {.layout = TREE_LAYOUT_SPIFFE_HELPER,
			   .svid_file_name = "x.pem",
			   .svid_key_file_name = "x.pem"};
	cr_assert_eq(tree_names_validate(&clash, &reason), -EINVAL);
	cr_assert_not_null(reason);
	TreeNames reserved = {.layout = TREE_LAYOUT_SPIFFE_HELPER, .svid_file_name = "status.json"};
	cr_assert_eq(tree_names_validate(&reserved, &reason), -EINVAL);
	TreeNames slash = {.layout = TREE_LAYOUT_KUBERNETES_TLS, .svid_bundle_file_name = "../ca"};
	cr_assert_eq(tree_names_validate(&slash, &reason), -EINVAL);
	TreeNames spiffe_rename = {.layout = TREE_LAYOUT_SPIFFE, .svid_file_name = "a.pem"};
	cr_assert_eq(tree_names_validate(&spiffe_rename, &reason), -EINVAL);
	TreeJwtName jwt[] = {{"ca.crt", "aud"}};
	TreeNames jclash = {.layout = TREE_LAYOUT_KUBERNETES_TLS, .jwt = jwt, .n_jwt = 1};
	cr_assert_eq(tree_names_validate(&jclash, &reason), -EINVAL);
}

Test(tree, extra_svids_by_hint_or_index)
{
	TreeNames n = {.layout = TREE_LAYOUT_SPIFFE_HELPER};
	const char *hints[] = {"main", "db", "", "bad/hint", "db"};
	TreeListing *l = build(&n, 5, hints);
	const TreeNode *db = tree_listing_find(l, TREE_ID_SVIDS_DIR, "db");
	cr_assert_not_null(db);
	cr_assert_eq(db->svid_index, 1);
	cr_assert_eq(tree_listing_find(l, TREE_ID_SVIDS_DIR, "2")->svid_index, 2);
	cr_assert_eq(tree_listing_find(l, TREE_ID_SVIDS_DIR, "3")->svid_index, 3);
	cr_assert_eq(tree_listing_find(l, TREE_ID_SVIDS_DIR, "4")->svid_index, 4);
	cr_assert_null(tree_listing_find(l, TREE_ID_SVIDS_DIR, "main"));
	const TreeNode *k = tree_listing_find(l, db->id, "svid_key.pem");
	cr_assert_not_null(k);
	cr_assert_eq(k->svid_index, 1);
	cr_assert_eq(tree_listing_find(l, 0, "svid.pem")->svid_index, 0);
	/* ids are unique */
	for (size_t i = 0; i < tree_listing_size(l); i++)
		for (size_t j = i + 1; j < tree_listing_size(l); j++)
			cr_assert_neq(tree_listing_node(l, i)->id, tree_listing_node(l, j)->id);
	tree_listing_free(l);
}

Test(tree, no_svids_yet)
{
	TreeNames n = {.layout = TREE_LAYOUT_KUBERNETES_TLS};
	TreeListing *l = build(&n, 0, NULL);
	cr_assert_null(tree_listing_find(l, 0, "tls.crt"));
	cr_assert_not_null(tree_listing_find(l, 0, "status.json"));
	tree_listing_free(l);
}

Test(tree, inode_numbers_round_trip)
{
	uint32_t slot, serial;
	uint16_t id;
	uint64_t a = tree_ino(7, 17, 0x123456789abcULL);
	cr_assert(tree_ino_decode(a, &slot, &id, &serial));
	cr_assert_eq(slot, 7);
	cr_assert_eq(id, 17);
	cr_assert_eq(serial, 0x56789abc);
	cr_assert_neq(tree_ino(7, 17, 1), tree_ino(7, 17, 2));
	cr_assert_neq(tree_ino(7, 17, 1), tree_ino(8, 17, 1));
	cr_assert_neq(tree_ino(7, 17, 1), tree_ino(7, 18, 1));
	cr_assert_not(tree_ino_decode(TREE_INO_ROOT, &slot, &id, &serial));
	cr_assert_not(tree_ino_decode(TREE_INO_PODS, &slot, &id, &serial));
	cr_assert(tree_ino_decode(tree_ino(TREE_SLOT_MAX, 4095, 0), &slot, &id, &serial));
	cr_assert_eq(slot, TREE_SLOT_MAX);
}

Test(tree, audience_percent_encoding)
{
	char *e = NULL, *d = NULL;
	cr_assert_eq(tree_audience_encode("https://api.example/v1 x%", &e), 0);
	cr_assert_str_eq(e, "https:%2F%2Fapi.example%2Fv1%20x%25");
	cr_assert_eq(tree_audience_decode(e, &d), 0);
	cr_assert_str_eq(d, "https://api.example/v1 x%");
	free(e);
	free(d);
	cr_assert_eq(tree_audience_decode("bad%2", &d), -EINVAL);
	cr_assert_eq(tree_audience_decode("nul%00", &d), -EINVAL);
	cr_assert_eq(tree_audience_encode("..", &e), -EINVAL);
}
