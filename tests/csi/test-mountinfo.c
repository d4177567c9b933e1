// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mountinfo.h"

static const char table[] =
    "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
    "30 22 0:45 / /run/svidfs ro,nosuid,nodev,relatime shared:20 - fuse.svidfs svidfs "
    "ro,user_id=0,group_id=0,default_permissions,allow_other\n"
    "31 22 0:45 /pods/1234-ab /var/lib/kubelet/pods/1234-ab/volumes/kubernetes.io~csi/"
    "spiffe/mount ro,nosuid,nodev,noexec,relatime shared:20 - fuse.svidfs svidfs ro\n"
    "32 22 0:46 / /mnt/with\\040space\\011tab\\012nl\\134bs rw - tmpfs tmp\\040fs rw\n"
    "33 22 0:47 / /mnt/stack rw - tmpfs a rw\n"
    "34 33 0:48 / /mnt/stack rw master:3 propagate_from:2 - tmpfs b rw\n";

static MountInfo *parse(const char *s)
{
	MountInfo *mi = NULL;
	cr_assert_eq(mountinfo_parse(s, strlen(s), &mi), 0);
	return mi;
}

Test(mountinfo, parses_fields)
{
	MountInfo *mi = parse(table);
	cr_assert_eq(mountinfo_count(mi), 6);
	const MountEntry *e = mountinfo_entry(mi, 1);
	cr_assert_eq(mountinfo_entry_id(e), 30);
	cr_assert_eq(mountinfo_entry_major(e), 0);
	cr_assert_eq(mountinfo_entry_minor(e), 45);
	cr_assert_str_eq(mountinfo_entry_root(e), "/");
	cr_assert_str_eq(mountinfo_entry_mountpoint(e), "/run/svidfs");
	cr_assert_str_eq(mountinfo_entry_fstype(e), "fuse.svidfs");
	cr_assert_str_eq(mountinfo_entry_source(e), "svidfs");
	cr_assert_str_eq(mountinfo_entry_options(e), "ro,nosuid,nodev,relatime");
	mountinfo_free(mi);
}

Test(mountinfo, bind_root_and_options)
{
	MountInfo *mi = parse(table);
	const MountEntry *e = mountinfo_find_mountpoint(
	    mi, "/var/lib/kubelet/pods/1234-ab/volumes/kubernetes.io~csi/spiffe/mount");
	cr_assert_not_null(e);
	cr_assert_str_eq(mountinfo_entry_root(e), "/pods/1234-ab");
	cr_assert(mountinfo_entry_has_option(e, "ro"));
	cr_assert(mountinfo_entry_has_option(e, "noexec"));
	cr_assert(mountinfo_entry_has_option(e, "relatime"));
	cr_assert_not(mountinfo_entry_has_option(e, "rw"));
	cr_assert_not(mountinfo_entry_has_option(e, "no"));   /* no prefix matches */
	cr_assert_not(mountinfo_entry_has_option(e, "exec")); /* no suffix matches */
	mountinfo_free(mi);
}

Test(mountinfo, octal_escapes_decoded)
{
	MountInfo *mi = parse(table);
	const MountEntry *e = mountinfo_entry(mi, 3);
	cr_assert_str_eq(mountinfo_entry_mountpoint(e), "/mnt/with space\ttab\nnl\\bs");
	cr_assert_str_eq(mountinfo_entry_source(e), "tmp fs");
	cr_assert_not_null(mountinfo_find_mountpoint(mi, "/mnt/with space\ttab\nnl\\bs"));
	cr_assert_null(mountinfo_find_mountpoint(mi, "/mnt/with\\040space\\011tab\\012nl\\134bs"));
	mountinfo_free(mi);
}

Test(mountinfo, topmost_of_stacked_mounts)
{
	MountInfo *mi = parse(table);
	const MountEntry *e = mountinfo_find_mountpoint(mi, "/mnt/stack");
	cr_assert_not_null(e);
	cr_assert_eq(mountinfo_entry_id(e), 34, "optional fields skipped, last entry wins");
	cr_assert_str_eq(mountinfo_entry_source(e), "b");
	mountinfo_free(mi);
}

Test(mountinfo, not_a_mountpoint)
{
	MountInfo *mi = parse(table);
	cr_assert_null(mountinfo_find_mountpoint(mi, "/run"));
	cr_assert_null(mountinfo_find_mountpoint(mi, "/run/svidfs/pods"));
	cr_assert_null(mountinfo_find_mountpoint(mi, "/run/svidfs/"));
	mountinfo_free(mi);
}

Test(mountinfo, count_under)
{
	MountInfo *mi = parse(table);
	cr_assert_eq(mountinfo_count_under(mi, "/var/lib/kubelet"), 1);
	cr_assert_eq(mountinfo_count_under(mi, "/var/lib/kubelet/"), 1);
	cr_assert_eq(mountinfo_count_under(mi, "/mnt"), 3);
	cr_assert_eq(mountinfo_count_under(mi, "/mn"), 0, "component boundary respected");
	cr_assert_eq(mountinfo_count_under(mi, "/"), 6);
	mountinfo_free(mi);
}

Test(mountinfo, unescape_rules)
{
	char a[] = "a\\040b", b[] = "\\04", c[] = "\\000", d[] = "x\\777", e[] = "\\08x",
	     f[] = "plain";
	cr_assert_eq(mountinfo_unescape(a), 0);
	cr_assert_str_eq(a, "a b");
	cr_assert_eq(mountinfo_unescape(b), -EINVAL, "short escape");
	cr_assert_eq(mountinfo_unescape(c), -EINVAL, "NUL");
	cr_assert_eq(mountinfo_unescape(d), -EINVAL, "beyond a byte");
	cr_assert_eq(mountinfo_unescape(e), -EINVAL, "non-octal digit");
	cr_assert_eq(mountinfo_unescape(f), 0);
	cr_assert_str_eq(f, "plain");
}

Test(mountinfo, malformed_lines_rejected)
{
	static const char *const bad[] = {
	    "22 1 0:21 / /\n",				     /* truncated */
	    "22 1 0:21 / / rw shared:1 ext4 /dev/vda1 rw\n", /* no separator */
	    "x 1 0:21 / / rw - ext4 /dev/vda1 rw\n",	     /* bad id */
	    "22 1 021 / / rw - ext4 /dev/vda1 rw\n",	     /* bad dev */
	    "22 1 0:21 / / rw -\n",			     /* no fstype */
	    "22 1 0:21 / /a\\9 rw - ext4 x rw\n",	     /* bad escape */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		MountInfo *mi = NULL;
		cr_assert_eq(mountinfo_parse(bad[i], strlen(bad[i]), &mi), -EINVAL, "line %zu", i);
		cr_assert_null(mi);
	}
	char nul[] = "22 1 0:21 / / rw - ext4 x rw\n";
	nul[5] = 0;
	MountInfo *mi = NULL;
	cr_assert_eq(mountinfo_parse(nul, sizeof nul - 1, &mi), -EINVAL, "embedded NUL");
}

Test(mountinfo, empty_and_unterminated)
{
	MountInfo *mi = NULL;
	cr_assert_eq(mountinfo_parse("", 0, &mi), 0);
	cr_assert_eq(mountinfo_count(mi), 0);
	mountinfo_free(mi);
	const char *s = "22 1 0:21 / / rw - ext4 /dev/vda1 rw"; /* no final newline */
	cr_assert_eq(mountinfo_parse(s, strlen(s), &mi), 0);
	cr_assert_eq(mountinfo_count(mi), 1);
	mountinfo_free(mi);
}

Test(mountinfo, reads_own_table)
{
	MountInfo *mi = NULL;
	cr_assert_eq(mountinfo_read(NULL, &mi), 0);
	cr_assert_gt(mountinfo_count(mi), 0);
	mountinfo_free(mi);
}

/* Random mutations of a valid table never crash the parser or leak (run under ASan). */
Test(mountinfo, fuzz_mutations)
{
	unsigned seed = 12345;
	size_t n = strlen(table);
	char *buf = malloc(n);
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(buf, table, n);
		int muts = 1 + rand_r(&seed) % 8;
		for (int m = 0; m < muts; m++) {
			static const char pick[] = " \n\\-:0123456789/\t";
			size_t at = (size_t)rand_r(&seed) % n;
			buf[at] = (rand_r(&seed) & 1) ? pick[rand_r(&seed) % (sizeof pick - 1)]
						      : (char)rand_r(&seed);
		}
		size_t len = (size_t)rand_r(&seed) % (n + 1);
		MountInfo *mi = NULL;
		if (mountinfo_parse(buf, len, &mi) == 0) {
			for (size_t i = 0; i < mountinfo_count(mi); i++)
				(void)strlen(mountinfo_entry_mountpoint(mountinfo_entry(mi, i)));
			mountinfo_free(mi);
		}
	}
	free(buf);
}
