// SPDX-License-Identifier: Apache-2.0
/* SPIFFE ID syntax (spiffe standards SPIFFE-ID.md §2), as the store enforces it on URI SANs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <criterion/criterion.h>

#include "x509check.h"

static int check(const char *id, bool need_path, const char **why)
{
	*why = NULL;
	return spiffe_id_check(id, strlen(id), need_path, why);
}

static void assert_bad(const char *id, bool need_path, const char *why_part)
{
	const char *why;
	cr_assert_eq(check(id, need_path, &why), -EINVAL, "accepted %s", id);
	cr_assert_not_null(why);
	cr_assert(strstr(why, why_part), "%s: reason '%s' lacks '%s'", id, why, why_part);
}

Test(spiffeid, valid_ids)
{
	const char *ok[] = {
	    "spiffe://example.org/ns/default/sa/web",
	    "spiffe://a/b",
	    "spiffe://td-1.example_x/Path.With-Upper_9",
	    "spiffe://example.org/a/b/c/d/e",
	};
	const char *why;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		cr_assert_eq(check(ok[i], true, &why), 0, "%s: %s", ok[i], why ? why : "");
	cr_assert_eq(check("spiffe://example.org", false, &why), 0, "trust domain ID");
}

Test(spiffeid, scheme_must_be_lowercase_spiffe)
{
	assert_bad("SPIFFE://example.org/x", true, "scheme");
	assert_bad("https://example.org/x", true, "scheme");
	assert_bad("spiffe:/example.org/x", true, "scheme");
	assert_bad("", true, "scheme");
}

Test(spiffeid, trust_domain_charset)
{
	assert_bad("spiffe://Example.org/x", true, "trust domain");
	assert_bad("spiffe://example.org:8080/x", true, "trust domain");
	assert_bad("spiffe://user@example.org/x", true, "trust domain");
	assert_bad("spiffe://exa mple/x", true, "trust domain");
	assert_bad("spiffe:///x", true, "empty trust domain");
	cr_assert(spiffe_td_valid("example.org"));
	cr_assert_not(spiffe_td_valid("spiffe://example.org"));
	cr_assert_not(spiffe_td_valid(""));
	cr_assert_not(spiffe_td_valid(NULL));
	cr_assert_not(spiffe_td_valid("a/b"));
}

Test(spiffeid, trust_domain_length_limit)
{
	char td[300], id[400];
	const char *why;

	memset(td, 'a', 255);
	td[255] = 0;
	cr_assert(spiffe_td_valid(td));
	snprintf(id, sizeof id, "spiffe://%s/x", td);
	cr_assert_eq(check(id, true, &why), 0);
	td[255] = 'a';
	td[256] = 0;
	cr_assert_not(spiffe_td_valid(td));
	snprintf(id, sizeof id, "spiffe://%s/x", td);
	assert_bad(id, true, "longer than 255");
}

Test(spiffeid, path_segments)
{
	assert_bad("spiffe://example.org/a//b", true, "empty segment");
	assert_bad("spiffe://example.org/a/./b", true, "'.'");
	assert_bad("spiffe://example.org/a/../b", true, "'..'");
	assert_bad("spiffe://example.org/..", true, "'..'");
	assert_bad("spiffe://example.org/a/", true, "trailing slash");
	assert_bad("spiffe://example.org/", true, "trailing slash");
	assert_bad("spiffe://example.org/a%20b", true, "percent");
	assert_bad("spiffe://example.org/a b", true, "character");
	assert_bad("spiffe://example.org/a?q=1", true, "character");
	assert_bad("spiffe://example.org/a#f", true, "character");
	const char *why;
	cr_assert_eq(check("spiffe://example.org/...", true, &why), 0, "'...' is a plain name");
}

Test(spiffeid, svids_need_a_path)
{
	assert_bad("spiffe://example.org", true, "no path");
}

Test(spiffeid, whole_id_length_limit)
{
	char id[2100];
	const char *why;
	size_t n = strlen("spiffe://example.org/");

	memcpy(id, "spiffe://example.org/", n);
	memset(id + n, 'p', 2048 - n);
	id[2048] = 0;
	cr_assert_eq(check(id, true, &why), 0, "2048 bytes is allowed");
	id[2048] = 'p';
	id[2049] = 0;
	assert_bad(id, true, "2048");
}

Test(spiffeid, embedded_length_is_respected)
{
	const char *why = NULL;
	/* The length, not a NUL, ends the ID: a SAN "spiffe://td/a\0x" is checked whole. */
	cr_assert_eq(spiffe_id_check("spiffe://td/a\0x", 15, true, &why), -EINVAL);
	cr_assert_eq(spiffe_id_check("spiffe://td/abc", 13, true, &why), 0);
}
