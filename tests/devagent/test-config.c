// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

Test(config, durations)
{
	uint64_t ms;
	struct {
		const char *s;
		uint64_t ms;
	} good[] = {{"1h", 3600000}, {"30s", 30000}, {"250ms", 250}, {"5m", 300000},
		    {"1m30s", 90000}, {"2d", 172800000}, {"90", 90000}, {"0", 0}, {"1h1ms", 3600001}};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		cr_assert_eq(config_parse_duration(good[i].s, &ms), 0, "%s", good[i].s);
		cr_expect_eq(ms, good[i].ms, "%s", good[i].s);
	}
	const char *bad[] = {"", "h", "1x", "1 h", "-1s", "1m30", "1.5s", "s1", "1hh"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		cr_expect_eq(config_parse_duration(bad[i], &ms), -EINVAL, "%s", bad[i]);
	cr_assert_eq(config_parse_duration("99999999999999999999s", &ms), -ERANGE);
}

Test(config, sizes_and_uints)
{
	uint64_t v;
	cr_assert_eq(config_parse_size("4096", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(config_parse_size("16k", &v), 0);
	cr_assert_eq(v, 16384);
	cr_assert_eq(config_parse_size("2M", &v), 0);
	cr_assert_eq(v, 2 << 20);
	cr_assert_eq(config_parse_size("M", &v), -EINVAL);
	cr_assert_eq(config_parse_size("1T", &v), -EINVAL);
	cr_assert_eq(config_parse_uint("65534", UINT32_MAX, &v), 0);
	cr_assert_eq(v, 65534);
	cr_assert_eq(config_parse_uint("4294967296", UINT32_MAX, &v), -ERANGE);
	cr_assert_eq(config_parse_uint("12a", UINT32_MAX, &v), -EINVAL);
}

Test(config, split_line)
{
	char *k, *v;
	cr_assert_eq(config_split_line("  # comment\n", &k, &v), 0);
	cr_assert_null(k);
	cr_assert_eq(config_split_line("\t\n", &k, &v), 0);
	cr_assert_null(k);
	cr_assert_eq(config_split_line("  entry spiffe://td/a  selectors=x:1 \n", &k, &v), 0);
	cr_assert_str_eq(k, "entry");
	cr_assert_str_eq(v, "spiffe://td/a  selectors=x:1");
	free(k);
	free(v);
	cr_assert_eq(config_split_line("auto-k8s", &k, &v), 0);
	cr_assert_str_eq(k, "auto-k8s");
	cr_assert_str_eq(v, "");
	free(k);
	free(v);
}

static int collect(const char *key, const char *value, void *userdata)
{
	char *buf = userdata;
	if (strcmp(key, "fail") == 0)
		return -EINVAL;
	strcat(buf, key);
	strcat(buf, "=");
	strcat(buf, value);
	strcat(buf, ";");
	return 0;
}

Test(config, file)
{
	char path[] = "/tmp/svidfs-test-config.XXXXXX", buf[256] = "";
	unsigned line;
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	FILE *f = fdopen(fd, "w");
	fputs("# devagent\ntrust-domain example.org\n\nentry spiffe://example.org/a selectors=x:1\n"
	      "auto-k8s\nfail now\nnever reached\n",
	      f);
	fclose(f);
	cr_assert_eq(config_parse_file(path, collect, buf, &line), -EINVAL);
	cr_assert_eq(line, 6);
	cr_assert_str_eq(buf, "trust-domain=example.org;entry=spiffe://example.org/a selectors=x:1;auto-k8s=;");
	unlink(path);
	cr_assert_eq(config_parse_file(path, collect, buf, &line), -ENOENT);
	cr_assert_eq(line, 0);
}
