// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: the daemon's configuration files (fs/config.c). The same bytes are read twice:
 * as the daemon's config file, through config_load() exactly as svidfs starts (the file is a
 * memfd named by --config; identities come from no directory), and as one identities.d file,
 * through config_parse_kv_file_text() and the registration checks the daemon applies to it
 * (registration_from_identity_file). docs/fuzzing.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "kv.h"
#include "registration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void daemon_config(const uint8_t *data, size_t size)
{
	int fd = memfd_create("svidfs.conf", MFD_CLOEXEC);
	char path[64], *err = NULL;
	Config c;

	if (fd < 0)
		abort();
	if (write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	char *argv[] = {"svidfs", "--config", path, "--identities-dir=/nonexistent/svidfs-fuzz",
			NULL};
	(void)config_load(4, argv, &c, &err);
	config_done(&c);
	free(err);
	close(fd);
}

static void identity_file(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *err = NULL;
	Registration *reg = NULL;
	KvMsg *m = NULL;
	const char *why;

	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = 0; /* as read_file() hands it over */
	if (config_parse_kv_file_text(text, &m, &err) == 0) {
		/* config_load_identities() names the kind when the file does not. */
		if (kv_get(m, "kind") || kv_add(m, "kind", "identity") == 0)
			if (registration_from_identity_file(m, &reg, &why) == 0)
				registration_free(reg);
		kv_free(m);
	}
	free(err);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	daemon_config(data, size);
	identity_file(data, size);
	return 0;
}
