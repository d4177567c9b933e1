// SPDX-License-Identifier: Apache-2.0
/* common/k8sname: the Kubernetes API's name rules, one table per rule. The expected answers are
 * what apimachinery's IsDNS1123Label / IsDNS1123Subdomain return for the same strings. */
#include <stdio.h>
#include <string.h>
#include <criterion/criterion.h>

#include "k8sname.h"

typedef struct {
	const char *s;
	bool ok;
} Case;

static char *rep(char c, size_t n)
{
	static char buf[4][512];
	static int k;
	char *b = buf[k++ % 4];
	memset(b, c, n);
	b[n] = 0;
	return b;
}

Test(k8sname, dns1123_label)
{
	const Case cases[] = {
	    {"a", true},	  {"0", true},	       {"kube-system", true}, {"a-b-c", true},
	    {"a--b", true},	  {"9ns", true},       {"", false},	      {"-a", false},
	    {"a-", false},	  {"A", false},	       {"a.b", false},	      {"..", false},
	    {".", false},	  {"a_b", false},      {"a b", false},	      {"é", false},
	    {"a\nb", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		cr_expect_eq(k8s_dns1123_label(cases[i].s), cases[i].ok, "\"%s\"", cases[i].s);
	cr_expect(k8s_dns1123_label(rep('a', 63)));
	cr_expect_not(k8s_dns1123_label(rep('a', 64)));
	cr_expect_not(k8s_dns1123_label(NULL));
	cr_expect(k8s_namespace_valid("default"));
	cr_expect_not(k8s_namespace_valid(".."), "the issue's namespace=..");
	cr_expect_not(k8s_namespace_valid(rep('n', 64)), "a namespace is a label: 63 at most");
}

Test(k8sname, dns1123_subdomain)
{
	const Case cases[] = {
	    {"a", true},	   {"web-0", true},	 {"a.b", true},	      {"a.b.c-d", true},
	    {"0.0", true},	   {"", false},		 {".a", false},	      {"a.", false},
	    {"a..b", false},	   {"..", false},	 {"a.-b", false},     {"a-.b", false},
	    {"A.b", false},	   {"a_b", false},	 {"a/b", false},      {"a:b", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		cr_expect_eq(k8s_dns1123_subdomain(cases[i].s), cases[i].ok, "\"%s\"",
			     cases[i].s);
	cr_expect(k8s_dns1123_subdomain(rep('a', 253)));
	cr_expect_not(k8s_dns1123_subdomain(rep('a', 254)));
	/* apimachinery limits only the total: one 100-byte label in a subdomain is fine. */
	cr_expect(k8s_dns1123_subdomain(rep('b', 100)));
	char dotted[300];
	snprintf(dotted, sizeof dotted, "%s.%s", rep('c', 126), rep('d', 126));
	cr_expect(k8s_dns1123_subdomain(dotted), "253 bytes with a dot");
	snprintf(dotted, sizeof dotted, "%s.%s", rep('c', 127), rep('d', 126));
	cr_expect_not(k8s_dns1123_subdomain(dotted), "254 bytes with a dot");
	cr_expect(k8s_pod_name_valid("coredns-5d78c9869d-abcde"));
	cr_expect(k8s_service_account_valid("system.thing"));
	cr_expect_not(k8s_service_account_valid("Default"));
	cr_expect_not(k8s_pod_name_valid(NULL));
}

Test(k8sname, pod_uid)
{
	const Case cases[] = {
	    {"6c1f0a2e-7d3b-4c1e-9a51-0d8e2f4b7a10", true}, /* API server UUID */
	    {"0f6e2d1c0b9a88776655443322110000", true},	    /* static pod: md5 hex */
	    {"6C1F0A2E-7D3B-4C1E-9A51-0D8E2F4B7A10", false}, /* kubelet's are lowercase */
	    {"0F6E2D1C0B9A88776655443322110000", false},
	    {"6c1f0a2e7d3b4c1e9a510d8e2f4b7a10abcd", false}, /* 36 without dashes */
	    {"6c1f0a2e-7d3b-4c1e-9a51-0d8e2f4b7a1", false},	 /* 35 */
	    {"6c1f0a2e-7d3b-4c1e-9a51-0d8e2f4b7a100", false},
	    {"6c1f0a2e_7d3b_4c1e_9a51_0d8e2f4b7a10", false}, /* the systemd driver's spelling */
	    {"6c1f0a2e-7d3b-4c1e-9a51-0d8e2f4b7g10", false},
	    {"0f6e2d1c0b9a8877665544332211000", false}, /* 31 hex */
	    {"0f6e2d1c0b9a8877665544332211000g", false},
	    {"..", false},
	    {"", false},
	    {"6c1f0a2e-7d3b-4c1e-9a51-0d8e2f4b7a1/", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		cr_expect_eq(k8s_pod_uid_valid(cases[i].s), cases[i].ok, "\"%s\"", cases[i].s);
	cr_expect_not(k8s_pod_uid_valid(NULL));
}
