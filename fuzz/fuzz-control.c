// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: one control-socket request, as fs/control.c handles it: kv_read_fd() framing
 * from the socket (here a pipe), kv_parse(), the op, and for op=register the registration
 * checks (fs/registration.c) that run before the daemon touches any state. Also checks the
 * round trips the daemon relies on: a parsed message formats back to the same message, an
 * accepted registration persisted (registration_to_kv, as the state directory keeps it) reads
 * back equal, and the directory built for it (fs/tree.c) has no two files of one name.
 * docs/fuzzing.md. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv.h"
#include "macro.h"
#include "registration.h"
#include "tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQUEST (64 * 1024) /* fs/control.c */

static bool kv_equal(const KvMsg *a, const KvMsg *b)
{
	if (kv_count(a) != kv_count(b))
		return false;
	for (size_t i = 0; i < kv_count(a); i++)
		if (!streq(kv_key(a, i), kv_key(b, i)) || !streq(kv_value(a, i), kv_value(b, i)))
			return false;
	return true;
}

/* The socket path: the request's bytes, then EOF. */
static void read_framed(const uint8_t *data, size_t size)
{
	int p[2];
	KvMsg *m = NULL;

	if (size > 60000 || pipe2(p, O_CLOEXEC) < 0) /* stays within the pipe buffer */
		return;
	if (write(p[1], data, size) != (ssize_t)size)
		abort();
	close(p[1]);
	if (kv_read_fd(p[0], MAX_REQUEST, -1, &m) == 0)
		kv_free(m);
	close(p[0]);
}

/* The directory the daemon builds for it (fs/tree.c) once SVIDs arrive: a lookup finds a node
 * by (parent, name), so no two nodes may share both. And a JWT audience must come back whole
 * from its jwt/<audience> file name. */
static void check_tree(const Registration *reg)
{
	static const char *const hints[] = {"", "db"}, *const tds[] = {"example.org", "x.org"};
	const TreeFacts facts = {.n_svids = 2,
				 .hints = hints,
				 .own_trust_domain = tds[0],
				 .bundle_tds = tds,
				 .n_bundle_tds = 2,
				 .jwt_bundle_tds = tds,
				 .n_jwt_bundle_tds = 2};
	TreeJwtName jbuf[64];
	TreeListing *l = NULL;
	TreeNames names;

	registration_tree_names(reg, jbuf, &names);
	if (tree_listing_new(&names, &facts, &l) < 0)
		abort();
	for (size_t i = 0; i < tree_listing_size(l); i++) {
		const TreeNode *n = tree_listing_node(l, i);
		if (tree_listing_find(l, n->parent, n->name) != n)
			abort();
	}
	tree_listing_free(l);
	for (size_t i = 0; i < reg->n_jwt; i++) {
		char *enc = NULL, *dec = NULL;
		if (tree_audience_encode(reg->jwt[i].audience, &enc) < 0)
			continue; /* too long for a file name: only the registered name serves it */
		if (tree_audience_decode(enc, &dec) < 0 || !streq(dec, reg->jwt[i].audience))
			abort();
		free(enc);
		free(dec);
	}
}

static void check_persisted(const Registration *reg)
{
	Registration *back = NULL;
	KvMsg *m = NULL, *parsed = NULL;
	const char *why;
	char *s = NULL, *file = NULL;
	size_t len;

	if (kv_new(&m) < 0 || registration_to_kv(reg, m) < 0 || kv_format(m, &s, &len) < 0)
		abort();
	if (kv_parse(s, len, &parsed) < 0 || !kv_equal(m, parsed))
		abort(); /* the daemon could not read its own state file */
	if (registration_from_kv(parsed, &back, &why) < 0 || !registration_equal(reg, back))
		abort(); /* a restart would serve a different registration */
	if (reg->kind != REGISTRATION_SELF) {
		if (registration_state_file(reg, &file) < 0 || strchr(file, '/'))
			abort();
		free(file);
	}
	registration_free(back);
	kv_free(parsed);
	kv_free(m);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	KvMsg *m = NULL, *again = NULL;
	Registration *reg = NULL;
	const char *why = NULL, *op;
	char *s = NULL;
	size_t len;

	read_framed(data, size);
	if (kv_parse((const char *)data, size, &m) < 0)
		return 0;
	if (kv_format(m, &s, &len) < 0 || kv_parse(s, len, &again) < 0 || !kv_equal(m, again))
		abort();
	op = kv_get(m, "op");
	if (op && streq(op, "register") && registration_from_kv(m, &reg, &why) == 0) {
		check_persisted(reg);
		check_tree(reg);
		registration_free(reg);
	}
	kv_free(again);
	kv_free(m);
	free(s);
	return 0;
}
