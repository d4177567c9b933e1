/* SPDX-License-Identifier: Apache-2.0 */
/* mountinfo.h: a parsed snapshot of a /proc/<pid>/mountinfo table (proc(5)), with the kernel's
 * octal escapes (\040 \011 \012 \134) decoded. Owns the strings of one snapshot; immutable after
 * parsing, so any thread may read a snapshot it holds. Pure: mountinfo_parse() does no I/O and
 * never logs; mountinfo_read() only reads the file. The one mountinfo parser of svidfs (is its
 * mountpoint mounted, and by whom) and svidfs-csi (is a target a bind of the svidfs mount). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cleanup.h"

typedef struct MountInfo MountInfo;
typedef struct MountEntry MountEntry;

/* Parses a whole table. -EINVAL on a malformed line (missing fields, bad numbers, no " - "
 * separator, a bad escape). An empty buffer is an empty table. */
int mountinfo_parse(const char *buf, size_t len, MountInfo **ret);
/* Reads and parses /proc/self/mountinfo (or path when not NULL). */
int mountinfo_read(const char *path, MountInfo **ret);
MountInfo *mountinfo_free(MountInfo *mi); /* NULL-safe, returns NULL */
DEFINE_CLEANUP_FUNC(MountInfo, mountinfo_free)

size_t mountinfo_count(const MountInfo *mi);
const MountEntry *mountinfo_entry(const MountInfo *mi, size_t i);
/* The mount visible at path: the last (topmost) entry whose mount point equals path exactly,
 * or NULL when path is not a mount point. path must be canonical (no trailing '/'). */
const MountEntry *mountinfo_find_mountpoint(const MountInfo *mi, const char *path);
/* Number of entries whose mount point is path or lies below it. */
size_t mountinfo_count_under(const MountInfo *mi, const char *path);

int mountinfo_entry_id(const MountEntry *e);
unsigned mountinfo_entry_major(const MountEntry *e);
unsigned mountinfo_entry_minor(const MountEntry *e);
const char *mountinfo_entry_root(const MountEntry *e); /* root of the mount in its fs */
const char *mountinfo_entry_mountpoint(const MountEntry *e);
const char *mountinfo_entry_options(const MountEntry *e); /* per-mount options, e.g. ro,nosuid */
const char *mountinfo_entry_fstype(const MountEntry *e);
const char *mountinfo_entry_source(const MountEntry *e);
/* True when the comma-separated per-mount options contain opt exactly (e.g. "ro"). */
bool mountinfo_entry_has_option(const MountEntry *e, const char *opt);

/* Decodes the kernel's mountinfo escapes in place ("\NNN", three octal digits). -EINVAL on a
 * backslash not followed by three octal digits or on a decoded NUL. Exposed for tests. */
int mountinfo_unescape(char *s);
