// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "macro.h"
#include "mountinfo.h"

struct MountEntry {
	int id, parent;
	unsigned major, minor;
	char *root, *mountpoint, *options, *fstype, *source;
};

struct MountInfo {
	size_t n, cap;
	MountEntry *e;
};

MountInfo *mountinfo_free(MountInfo *mi)
{
	if (!mi)
		return NULL;
	for (size_t i = 0; i < mi->n; i++) {
		free(mi->e[i].root);
		free(mi->e[i].mountpoint);
		free(mi->e[i].options);
		free(mi->e[i].fstype);
		free(mi->e[i].source);
	}
	free(mi->e);
	free(mi);
	return NULL;
}

static int is_octal(char c)
{
	return c >= '0' && c <= '7';
}

int mountinfo_unescape(char *s)
{
	char *w = s;

	for (const char *r = s; *r;) {
		if (*r != '\\') {
			*w++ = *r++;
			continue;
		}
		if (!is_octal(r[1]) || !is_octal(r[2]) || !is_octal(r[3]))
			return -EINVAL;
		int v = (r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0');
		if (v == 0 || v > 255)
			return -EINVAL;
		*w++ = (char)v;
		r += 4;
	}
	*w = 0;
	return 0;
}

/* Splits the next space-separated field off *p (within end); NULL when none is left. */
static char *next_field(char **p, char *end)
{
	char *s = *p;

	while (s < end && *s == ' ')
		s++;
	if (s >= end)
		return NULL;
	char *e = s;
	while (e < end && *e != ' ')
		e++;
	*e = 0;
	*p = e < end ? e + 1 : end;
	return s;
}

static int parse_int(const char *s, int *ret)
{
	char *end;
	long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > 0x7fffffff)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

static int dup_field(const char *s, char **ret)
{
	_cleanup_free_ char *d = strdup(s);
	int r;

	if (!d)
		return -ENOMEM;
	r = mountinfo_unescape(d);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(d);
	return 0;
}

static void entry_done(MountEntry *e)
{
	free(e->root);
	free(e->mountpoint);
	free(e->options);
	free(e->fstype);
	free(e->source);
}

/* One line: id parent major:minor root mountpoint options [optional...] - fstype source super */
static int parse_line(char *line, char *end, MountEntry *ret)
{
	MountEntry e = {0};
	char *p = line, *f[5];
	int r;

	for (size_t i = 0; i < ELEMENTSOF(f); i++)
		if (!(f[i] = next_field(&p, end)))
			return -EINVAL;
	if (parse_int(f[0], &e.id) < 0 || parse_int(f[1], &e.parent) < 0)
		return -EINVAL;
	char *colon = strchr(f[2], ':');
	if (!colon)
		return -EINVAL;
	*colon = 0;
	int maj, min;
	if (parse_int(f[2], &maj) < 0 || parse_int(colon + 1, &min) < 0)
		return -EINVAL;
	e.major = (unsigned)maj;
	e.minor = (unsigned)min;
	char *opts = next_field(&p, end);
	if (!opts)
		return -EINVAL;
	/* Optional fields (shared:N, master:N, ...) up to the lone "-" separator. */
	char *s;
	for (;;) {
		s = next_field(&p, end);
		if (!s)
			return -EINVAL;
		if (streq(s, "-"))
			break;
	}
	char *fstype = next_field(&p, end), *source = next_field(&p, end);
	if (!fstype || !source)
		return -EINVAL;
	/* Super options may be absent on some kernels' odd entries: not needed here. */

	if ((r = dup_field(f[3], &e.root)) < 0 || (r = dup_field(f[4], &e.mountpoint)) < 0 ||
	    (r = dup_field(opts, &e.options)) < 0 || (r = dup_field(fstype, &e.fstype)) < 0 ||
	    (r = dup_field(source, &e.source)) < 0) {
		entry_done(&e);
		return r;
	}
	*ret = e;
	return 0;
}

int mountinfo_parse(const char *buf, size_t len, MountInfo **ret)
{
	_cleanup_(mountinfo_freep) MountInfo *mi = calloc(1, sizeof *mi);
	_cleanup_free_ char *copy = malloc(len + 1);
	int r;

	if (!mi || !copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	copy[len] = 0;
	if (memchr(copy, 0, len))
		return -EINVAL;

	char *p = copy, *end = copy + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		if (le > p) {
			if (mi->n == mi->cap) {
				size_t cap = mi->cap ? mi->cap * 2 : 64;
				MountEntry *ne = realloc(mi->e, cap * sizeof *ne);
				if (!ne)
					return -ENOMEM;
				mi->e = ne;
				mi->cap = cap;
			}
			*le = 0;
			r = parse_line(p, le, &mi->e[mi->n]);
			if (r < 0)
				return r;
			mi->n++;
		}
		p = nl ? nl + 1 : end;
	}
	*ret = TAKE_PTR(mi);
	return 0;
}

int mountinfo_read(const char *path, MountInfo **ret)
{
	_cleanup_close_ int fd = open(path ? path : "/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;

	if (fd < 0)
		return negative_errno();
	/* procfs serves the table in page-sized reads: read to EOF. */
	for (;;) {
		if (cap - len < 4096) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *nb = realloc(buf, ncap);
			if (!nb)
				return -ENOMEM;
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return mountinfo_parse(buf ? buf : "", len, ret);
}

size_t mountinfo_count(const MountInfo *mi)
{
	return mi->n;
}

const MountEntry *mountinfo_entry(const MountInfo *mi, size_t i)
{
	return i < mi->n ? &mi->e[i] : NULL;
}

const MountEntry *mountinfo_find_mountpoint(const MountInfo *mi, const char *path)
{
	for (size_t i = mi->n; i > 0; i--)
		if (streq(mi->e[i - 1].mountpoint, path))
			return &mi->e[i - 1];
	return NULL;
}

size_t mountinfo_count_under(const MountInfo *mi, const char *path)
{
	size_t n = 0, l = strlen(path);

	while (l > 1 && path[l - 1] == '/')
		l--;
	for (size_t i = 0; i < mi->n; i++) {
		const char *m = mi->e[i].mountpoint;
		if (strncmp(m, path, l) == 0 && (m[l] == 0 || m[l] == '/' || l == 1))
			n++;
	}
	return n;
}

int mountinfo_entry_id(const MountEntry *e)
{
	return e->id;
}
unsigned mountinfo_entry_major(const MountEntry *e)
{
	return e->major;
}
unsigned mountinfo_entry_minor(const MountEntry *e)
{
	return e->minor;
}
const char *mountinfo_entry_root(const MountEntry *e)
{
	return e->root;
}
const char *mountinfo_entry_mountpoint(const MountEntry *e)
{
	return e->mountpoint;
}
const char *mountinfo_entry_options(const MountEntry *e)
{
	return e->options;
}
const char *mountinfo_entry_fstype(const MountEntry *e)
{
	return e->fstype;
}
const char *mountinfo_entry_source(const MountEntry *e)
{
	return e->source;
}

bool mountinfo_entry_has_option(const MountEntry *e, const char *opt)
{
	size_t l = strlen(opt);

	for (const char *p = e->options; p && *p;) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		if (n == l && strncmp(p, opt, l) == 0)
			return true;
		p = c ? c + 1 : NULL;
	}
	return false;
}
