// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: /proc/self/mountinfo parsing (common/mountinfo.c), the one parser both svidfs
 * (is its mountpoint already mounted, and by whom) and svidfs-csi (is a target a read-only bind
 * of the svidfs mount) use, with the lookups they make on the result. docs/fuzzing.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "mountinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MountInfo *mi = NULL;

	if (mountinfo_parse((const char *)data, size, &mi) < 0)
		return 0;
	for (size_t i = 0; i < mountinfo_count(mi); i++) {
		const MountEntry *e = mountinfo_entry(mi, i);
		const char *mp = mountinfo_entry_mountpoint(e);
		const MountEntry *top = mountinfo_find_mountpoint(mi, mp);
		/* The topmost mount at mp: e or one listed after it. */
		if (!top || top < e || !streq(mountinfo_entry_mountpoint(top), mp))
			abort();
		if (mountinfo_count_under(mi, mp) < 1)
			abort();
		(void)mountinfo_entry_has_option(e, "ro");
		(void)mountinfo_entry_has_option(e, "");
		(void)strlen(mountinfo_entry_root(e));
		(void)strlen(mountinfo_entry_fstype(e));
		(void)strlen(mountinfo_entry_source(e));
	}
	(void)mountinfo_find_mountpoint(mi, "/run/svidfs");
	(void)mountinfo_count_under(mi, "/var/lib/kubelet");
	(void)mountinfo_count_under(mi, "/");
	mountinfo_free(mi);
	return 0;
}
