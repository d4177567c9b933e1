// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "kv.h"

Test(kv, format_then_parse_round_trips)
{
	KvMsg *m = NULL, *p = NULL;
	char *buf = NULL;
	size_t len;

	cr_assert_eq(kv_new(&m), 0);
	cr_assert_eq(kv_add(m, "op", "register"), 0);
	cr_assert_eq(kv_add(m, "selector", "k8s:ns:a"), 0);
	cr_assert_eq(kv_add(m, "selector", "k8s:sa:b"), 0);
	cr_assert_eq(kv_addf(m, "uid", "%d", 1000), 0);
	cr_assert_eq(kv_add(m, "empty", ""), 0);
	cr_assert_eq(kv_format(m, &buf, &len), 0);
	cr_assert_str_eq(buf,
			 "op=register\nselector=k8s:ns:a\nselector=k8s:sa:b\nuid=1000\nempty=\n\n");
	cr_assert_eq(len, strlen(buf));
	cr_assert_eq(kv_parse(buf, len, &p), 0);
	cr_assert_eq(kv_count(p), 5);
	cr_assert_str_eq(kv_get(p, "selector"), "k8s:ns:a", "first value wins");
	cr_assert_str_eq(kv_key(p, 2), "selector");
	cr_assert_str_eq(kv_value(p, 2), "k8s:sa:b");
	cr_assert_str_eq(kv_get(p, "empty"), "");
	cr_assert_null(kv_get(p, "absent"));
	cr_assert_null(kv_key(p, 5));
	free(buf);
	kv_free(m);
	kv_free(p);
}

Test(kv, add_refuses_bad_keys_and_values)
{
	KvMsg *m = NULL;

	cr_assert_eq(kv_new(&m), 0);
	cr_assert_eq(kv_add(m, "Op", "x"), -EINVAL);
	cr_assert_eq(kv_add(m, "", "x"), -EINVAL);
	cr_assert_eq(kv_add(m, "a b", "x"), -EINVAL);
	cr_assert_eq(kv_add(m, "a=b", "x"), -EINVAL);
	cr_assert_eq(kv_add(m, "ok", "two\nlines"), -EINVAL);
	cr_assert_eq(kv_add(m, "ok.key-1_x", "v=w"), 0);
	cr_assert_eq(kv_count(m), 1);
	cr_assert_str_eq(kv_get(m, "ok.key-1_x"), "v=w", "only the first '=' splits");
	kv_free(m);
}

Test(kv, parse_rejects_malformed_lines)
{
	KvMsg *m = NULL;

	cr_assert_eq(kv_parse("noequals\n\n", 10, &m), -EINVAL);
	cr_assert_eq(kv_parse("BAD=1\n\n", 7, &m), -EINVAL);
	cr_assert_eq(kv_parse("a=1\0b\n\n", 7, &m), -EINVAL);
	cr_assert_eq(kv_parse("a=1\nb=2", 7, &m), 0, "final empty line is optional");
	cr_assert_eq(kv_count(m), 2);
	kv_free(m);
	cr_assert_eq(kv_parse("a=1\n\nb=2\n\n", 10, &m), 0);
	cr_assert_eq(kv_count(m), 1, "parsing stops at the empty line");
	kv_free(m);
}

Test(kv, read_fd_reads_one_message_over_a_pipe)
{
	int p[2];
	KvMsg *m = NULL, *r = NULL;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(kv_new(&m), 0);
	cr_assert_eq(kv_add(m, "status", "0"), 0);
	cr_assert_eq(kv_add(m, "workload", "pods/abc"), 0);
	cr_assert_eq(kv_write_fd(p[1], m), 0);
	cr_assert_eq(kv_read_fd(p[0], 4096, 1000, &r), 0);
	cr_assert_str_eq(kv_get(r, "workload"), "pods/abc");
	cr_assert_str_eq(kv_get(r, "status"), "0");
	kv_free(m);
	kv_free(r);
	close(p[0]);
	close(p[1]);
}

Test(kv, read_fd_empty_message)
{
	int p[2];
	KvMsg *r = NULL;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "\n", 1), 1);
	cr_assert_eq(kv_read_fd(p[0], 64, 1000, &r), 0);
	cr_assert_eq(kv_count(r), 0);
	kv_free(r);
	close(p[0]);
	close(p[1]);
}

Test(kv, read_fd_limits_timeout_and_eof)
{
	int p[2];
	KvMsg *r = NULL;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "a=0123456789\n", 13), 13);
	cr_assert_eq(kv_read_fd(p[0], 8, 1000, &r), -EMSGSIZE);
	cr_assert_eq(kv_read_fd(p[0], 64, 50, &r), -ETIMEDOUT, "no message end within the timeout");
	cr_assert_eq(write(p[1], "a=1\n", 4), 4);
	close(p[1]);
	cr_assert_eq(kv_read_fd(p[0], 64, 1000, &r), -ECONNRESET);
	close(p[0]);
}

Test(kv, message_length_finds_the_first_whole_message)
{
	cr_assert_eq(kv_message_length("", 0), 0);
	cr_assert_eq(kv_message_length("\n", 1), 1, "the empty message");
	cr_assert_eq(kv_message_length("op=ping\n", 8), 0, "incomplete");
	cr_assert_eq(kv_message_length("op=ping\n\n", 9), 9);
	cr_assert_eq(kv_message_length("op=ping\n\nop=list\n\n", 18), 9, "the first of two");
	cr_assert_eq(kv_message_length("op=ping\n\nop=li", 14), 9);
}

/* A registration file of any size up to the limit (restore once stopped at 1 MiB). */
Test(kv, read_file_any_size_up_to_max)
{
	char dir[] = "/tmp/svidfs-test.XXXXXX", path[64];
	KvMsg *m = NULL, *r = NULL;
	char *text = NULL, ref[64];
	size_t len;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/big.conf", dir);
	cr_assert_eq(kv_new(&m), 0);
	kv_add(m, "kind", "pod");
	for (int i = 0; i < 40000; i++) { /* about 1.4 MB */
		snprintf(ref, sizeof ref, "volume-%024d", i);
		cr_assert_eq(kv_add(m, "ref", ref), 0);
	}
	cr_assert_eq(kv_format(m, &text, &len), 0);
	cr_assert_gt(len, 1u << 20);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	cr_assert_eq(kv_read_file(path, 16u << 20, &r), 0);
	cr_assert_eq(kv_count(r), 40001);
	cr_assert_str_eq(kv_value(r, 40000), "volume-000000000000000000039999");
	kv_free(r);
	r = NULL;
	cr_assert_eq(kv_read_file(path, len - 1, &r), -EFBIG);
	cr_assert_null(r);
	cr_assert_eq(kv_read_file(dir, 1024, &r), -EINVAL, "not a regular file");
	char missing[96];
	snprintf(missing, sizeof missing, "%s/missing", dir);
	cr_assert_eq(kv_read_file(missing, 1024, &r), -ENOENT);
	unlink(path);
	rmdir(dir);
	free(text);
	kv_free(m);
}
