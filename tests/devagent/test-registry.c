// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

static Registry *reg;

static void setup(void)
{
	cr_assert_eq(registry_new(free, &reg), 0);
}

static void teardown(void)
{
	reg = registry_free(reg);
}

TestSuite(registry, .init = setup, .fini = teardown);

Test(registry, spiffe_id_rules)
{
	char *td, *path;
	cr_assert_eq(spiffe_id_parse("spiffe://example.org/ns/a/sa/b", &td, &path), 0);
	cr_assert_str_eq(td, "example.org");
	cr_assert_str_eq(path, "/ns/a/sa/b");
	free(td);
	free(path);
	const char *bad[] = {"spiffe://example.org", "spiffe://example.org/", "http://x.org/a",
			     "spiffe://Example.org/a", "spiffe://example.org/a/", "spiffe://example.org//a",
			     "spiffe://example.org/a/../b", "spiffe://example.org/./a", "spiffe:///a",
			     "spiffe://example.org/a%20b", "spiffe://ex:80/a"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		cr_expect_eq(spiffe_id_parse(bad[i], &td, &path), -EINVAL, "%s", bad[i]);
}

Test(registry, selector_syntax)
{
	cr_assert(selector_valid("k8s:ns:default"));
	cr_assert(selector_valid("unix:uid:0"));
	cr_assert(!selector_valid("k8s"));
	cr_assert(!selector_valid(":x"));
	cr_assert(!selector_valid("k8s:"));
}

Test(registry, spec_parsing)
{
	RegEntry *e;
	cr_assert_eq(registry_add_spec(reg, "spiffe://example.org/web selectors=k8s:sa:web,k8s:ns:default "
					    "hint=web federates_with=z.org,spiffe://a.org admin=true",
				       &e), 0);
	cr_assert_str_eq(reg_entry_id(e), "entry-1");
	cr_assert_str_eq(reg_entry_spiffe_id(e), "spiffe://example.org/web");
	cr_assert_str_eq(reg_entry_trust_domain(e), "example.org");
	cr_assert_str_eq(reg_entry_path(e), "/web");
	cr_assert_str_eq(reg_entry_hint(e), "web");
	cr_assert(reg_entry_admin(e));
	cr_assert_eq(reg_entry_n_selectors(e), 2);
	cr_assert_str_eq(reg_entry_selector(e, 0), "k8s:ns:default"); /* sorted */
	cr_assert_eq(reg_entry_n_federates_with(e), 2);
	cr_assert_str_eq(reg_entry_federates_with(e, 0), "spiffe://a.org");
	cr_assert_str_eq(reg_entry_federates_with(e, 1), "spiffe://z.org");

	cr_assert_eq(registry_add_spec(reg, "spiffe://example.org/db selector=unix:uid:0 "
					    "selector=unix:gid:0 id=db",
				       &e), 0);
	cr_assert_str_eq(reg_entry_id(e), "db");
	cr_assert_str_eq(reg_entry_hint(e), "");
	cr_assert_eq(reg_entry_n_selectors(e), 2);
	cr_assert_eq(registry_count(reg), 2);
}

Test(registry, spec_errors)
{
	cr_assert_eq(registry_add_spec(reg, "spiffe://example.org/x", NULL), -EINVAL);
	cr_assert_eq(registry_add_spec(reg, "spiffe://example.org/x selectors=nocolon", NULL), -EINVAL);
	cr_assert_eq(registry_add_spec(reg, "spiffe://example.org selectors=a:b", NULL), -EINVAL);
	cr_assert_eq(registry_add_spec(reg, "spiffe://example.org/x selectors=a:b color=red", NULL), -EINVAL);
	cr_assert_eq(registry_add_spec(reg, "spiffe://example.org/x selectors=a:b admin=maybe", NULL), -EINVAL);
	cr_assert_eq(registry_add_spec(reg, "spiffe://example.org/x selectors=a:b federates_with=Bad", NULL), -EINVAL);
	cr_assert_eq(registry_add_spec(reg, "", NULL), -EINVAL);
	cr_assert_eq(registry_add_spec(reg, "spiffe://example.org/x selectors=a:b id=x", NULL), 0);
	cr_assert_eq(registry_add_spec(reg, "spiffe://example.org/y selectors=a:b id=x", NULL), -EEXIST);
	cr_assert_eq(registry_count(reg), 1);
}

Test(registry, matching_is_subset)
{
	RegEntry **m;
	size_t n;
	cr_assert_eq(registry_add_spec(reg, "spiffe://td/web selectors=k8s:ns:a,k8s:sa:web", NULL), 0);
	cr_assert_eq(registry_add_spec(reg, "spiffe://td/ns selectors=k8s:ns:a", NULL), 0);
	cr_assert_eq(registry_add_spec(reg, "spiffe://td/adm selectors=k8s:ns:a admin=true", NULL), 0);

	const char *full[] = {"k8s:pod-uid:1", "k8s:sa:web", "k8s:ns:a"};
	cr_assert_eq(registry_match(reg, full, 3, 0, &m, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(reg_entry_spiffe_id(m[0]), "spiffe://td/web"); /* entry-1: smallest id */
	free(m);
	cr_assert_eq(registry_match(reg, full, 3, REGISTRY_MATCH_DELEGATED, &m, &n), 0);
	cr_assert_eq(n, 2, "admin entries are not served over the Delegated API");
	free(m);

	const char *partial[] = {"k8s:sa:web"};
	cr_assert_eq(registry_match(reg, partial, 1, 0, &m, &n), 0);
	cr_assert_eq(n, 0, "an entry needs ALL its selectors");
	free(m);
	cr_assert_eq(registry_match(reg, NULL, 0, 0, &m, &n), 0);
	cr_assert_eq(n, 0);
	free(m);
}

/* SPIRE orders a workload's SVIDs by entry id, not by creation: the default SVID is the entry
 * with the smallest id (found by the interop suite: two entries for one pod). */
Test(registry, match_order_is_entry_id_order)
{
	RegEntry **m;
	size_t n;
	cr_assert_eq(registry_add_spec(reg, "spiffe://td/web selectors=k8s:ns:a id=b-web", NULL), 0);
	cr_assert_eq(registry_add_spec(reg, "spiffe://td/metrics selectors=k8s:ns:a id=a-metrics",
				       NULL), 0);
	const char *sel[] = {"k8s:ns:a"};
	cr_assert_eq(registry_match(reg, sel, 1, 0, &m, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(reg_entry_spiffe_id(m[0]), "spiffe://td/metrics");
	cr_assert_str_eq(reg_entry_spiffe_id(m[1]), "spiffe://td/web");
	free(m);
}

Test(registry, remove_by_id_or_spiffe_id)
{
	cr_assert_eq(registry_add_spec(reg, "spiffe://td/a selectors=x:1 id=one", NULL), 0);
	cr_assert_eq(registry_add_spec(reg, "spiffe://td/a selectors=x:2", NULL), 0);
	cr_assert_eq(registry_add_spec(reg, "spiffe://td/b selectors=x:3", NULL), 0);
	cr_assert_eq(registry_remove(reg, "one"), 1);
	cr_assert_eq(registry_remove(reg, "spiffe://td/a"), 1);
	cr_assert_eq(registry_remove(reg, "spiffe://td/a"), -ENOENT);
	cr_assert_eq(registry_count(reg), 1);
	cr_assert_str_eq(reg_entry_spiffe_id(registry_at(reg, 0)), "spiffe://td/b");
}

Test(registry, entry_data_is_freed)
{
	RegEntry *e;
	cr_assert_eq(registry_add_spec(reg, "spiffe://td/a selectors=x:1", &e), 0);
	reg_entry_set_data(e, strdup("one"));
	reg_entry_set_data(e, strdup("two")); /* frees "one"; LeakSanitizer checks */
	cr_assert_str_eq(reg_entry_data(e), "two");
}

Test(registry, auto_k8s)
{
	RegEntry *e = NULL;
	const char *sel[] = {"k8s:ns:shop", "k8s:sa:cart", "k8s:pod-uid:1234-5678", "k8s:pod-name:cart-0"};
	cr_assert_eq(registry_auto_k8s(reg, "example.org", sel, 4, &e), 1);
	cr_assert_str_eq(reg_entry_id(e), "auto-1234-5678");
	cr_assert_str_eq(reg_entry_spiffe_id(e), "spiffe://example.org/ns/shop/sa/cart");
	cr_assert_eq(reg_entry_n_selectors(e), 3);
	cr_assert_eq(registry_auto_k8s(reg, "example.org", sel, 4, NULL), 0, "once per pod uid");
	cr_assert_eq(registry_auto_k8s(reg, "example.org", sel, 2, NULL), 0, "needs pod-uid");
	const char *bad[] = {"k8s:ns:a/b", "k8s:sa:x", "k8s:pod-uid:9"};
	cr_assert_eq(registry_auto_k8s(reg, "example.org", bad, 3, NULL), -EINVAL);
	cr_assert_eq(registry_count(reg), 1);
}
