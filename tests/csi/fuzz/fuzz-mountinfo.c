// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for the mountinfo parser (see tests/csi/fuzz/README). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mountinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MountInfo *mi = NULL;

	if (mountinfo_parse((const char *)data, size, &mi) < 0)
		return 0;
	for (size_t i = 0; i < mountinfo_count(mi); i++) {
		const MountEntry *e = mountinfo_entry(mi, i);
		(void)mountinfo_find_mountpoint(mi, mountinfo_entry_mountpoint(e));
		(void)mountinfo_entry_has_option(e, "ro");
		(void)strlen(mountinfo_entry_root(e));
	}
	(void)mountinfo_count_under(mi, "/var/lib/kubelet");
	mountinfo_free(mi);
	return 0;
}
