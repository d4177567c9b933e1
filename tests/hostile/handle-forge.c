// SPDX-License-Identifier: Apache-2.0
/* handle-forge: what a process with CAP_DAC_READ_SEARCH in one pod can do with file handles
 * (open_by_handle_at) against the svidfs mount it sees through its own bind mount.
 *
 *   handle-forge show PATH
 *       prints "<nodeid> <generation>" of PATH's FUSE file handle (hex)
 *   handle-forge forge MOUNTDIR OWN_DIR SECRET_FILE KEY_NAME SPAN
 *       MOUNTDIR: a directory of the attacker's own bind mount (the mount fd for
 *       open_by_handle_at); OWN_DIR: the attacker's own workload directory (its handle is the
 *       starting point); SECRET_FILE: the victim's key as the test harness knows it, to recognise
 *       a cross read. Tries every handle a guesser would: the attacker's own node id and
 *       generation with the slot field (bits 63..44, +-4) and the low 32 bits moved by up to
 *       SPAN, node ids 0/1/16.. (directory, status, files) and generations 1 and its own (what
 *       sequential numbers would allow); then SPAN*16 random handles. Prints "attempts N opened M cross K" (opened: any handle that opened
 *       something other than the attacker's own directory; cross: reads of the secret).
 * Exit 0 when the counts could be taken. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUSE_FH_TYPE 0x81 /* nodeid high, nodeid low, generation: three 32-bit words */

typedef struct Fh {
	struct file_handle h;
	uint32_t w[8];
} Fh;

static int handle_of(const char *path, uint64_t *nodeid, uint32_t *gen, int *type)
{
	Fh fh = {.h.handle_bytes = sizeof fh.w};
	int mnt;

	if (name_to_handle_at(AT_FDCWD, path, &fh.h, &mnt, 0) < 0)
		return -errno;
	if (fh.h.handle_bytes < 12)
		return -EPROTO;
	*nodeid = (uint64_t)fh.w[0] << 32 | fh.w[1];
	*gen = fh.w[2];
	*type = fh.h.handle_type;
	return 0;
}

static char *slurp(int fd, size_t *ret_len)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	while (buf && (n = read(fd, buf + len, cap - len)) > 0)
		len += (size_t)n;
	*ret_len = len;
	return buf;
}

typedef struct Ctx {
	int mount_fd;
	ino_t own_ino;
	const char *key_name;
	char *secret;
	size_t secret_len;
	unsigned long attempts, opened, cross;
} Ctx;

static void try_handle(Ctx *c, uint64_t nodeid, uint32_t gen, int type)
{
	Fh fh = {.h.handle_bytes = 12, .h.handle_type = type};
	struct stat st;

	fh.w[0] = (uint32_t)(nodeid >> 32);
	fh.w[1] = (uint32_t)nodeid;
	fh.w[2] = gen;
	c->attempts++;
	int fd = open_by_handle_at(c->mount_fd, &fh.h, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_ino == c->own_ino) {
		close(fd);
		return;
	}
	c->opened++;
	int kfd = S_ISDIR(st.st_mode) ? openat(fd, c->key_name, O_RDONLY | O_CLOEXEC) : dup(fd);
	if (kfd >= 0) {
		size_t len = 0;
		char *b = slurp(kfd, &len);
		if (b && len == c->secret_len && memcmp(b, c->secret, len) == 0)
			c->cross++;
		free(b);
		close(kfd);
	}
	close(fd);
}

static int forge(const char *mountdir, const char *own_dir, const char *secret_file,
		 const char *key_name, long span)
{
	Ctx c = {.key_name = key_name};
	uint64_t own;
	uint32_t own_gen;
	int type, r, sfd;
	struct stat st;

	r = handle_of(own_dir, &own, &own_gen, &type);
	if (r < 0) {
		fprintf(stderr, "name_to_handle_at %s: %s\n", own_dir, strerror(-r));
		return 1;
	}
	c.mount_fd = open(mountdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sfd = open(secret_file, O_RDONLY | O_CLOEXEC);
	if (c.mount_fd < 0 || sfd < 0 || stat(own_dir, &st) < 0) {
		perror("open");
		return 1;
	}
	c.own_ino = st.st_ino;
	c.secret = slurp(sfd, &c.secret_len);
	close(sfd);
	/* Handles work at all (else the counts below would prove nothing). */
	Fh self = {.h.handle_bytes = 12, .h.handle_type = type};
	self.w[0] = (uint32_t)(own >> 32);
	self.w[1] = (uint32_t)own;
	self.w[2] = own_gen;
	int sf = open_by_handle_at(c.mount_fd, &self.h, O_RDONLY | O_CLOEXEC);
	if (sf < 0) {
		fprintf(stderr, "the attacker's own handle does not open: %s\n", strerror(errno));
		return 1;
	}
	close(sf);
	const uint32_t gens[] = {own_gen, 1};
	const uint64_t ids[] = {0, 1, 16, 17, 18};
	uint64_t own_slot = own >> 44, own_low = own & 0xffffffffu;
	for (long ds = -4; ds <= 4; ds++)
		for (size_t k = 0; k < sizeof ids / sizeof *ids; k++)
			for (long dl = -span; dl <= span; dl++)
				for (size_t g = 0; g < 2; g++) {
					uint64_t slot = own_slot + (uint64_t)ds;
					uint64_t n = slot << 44 | ids[k] << 32 |
						     ((own_low + (uint64_t)dl) & 0xffffffffu);
					try_handle(&c, n, gens[g], type);
				}
	for (long i = 0; i < span * 16; i++) {
		uint64_t n;
		uint32_t g;
		if (getrandom(&n, sizeof n, 0) != sizeof n || getrandom(&g, sizeof g, 0) != sizeof g)
			return 1;
		try_handle(&c, n, g, type);
	}
	printf("attempts %lu opened %lu cross %lu\n", c.attempts, c.opened, c.cross);
	free(c.secret);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "show") == 0) {
		uint64_t n;
		uint32_t g;
		int type;
		int r = handle_of(argv[2], &n, &g, &type);
		if (r < 0) {
			fprintf(stderr, "name_to_handle_at %s: %s\n", argv[2], strerror(-r));
			return 1;
		}
		printf("%016" PRIx64 " %08" PRIx32 "\n", n, g);
		return 0;
	}
	if (argc == 7 && strcmp(argv[1], "forge") == 0)
		return forge(argv[2], argv[3], argv[4], argv[5], strtol(argv[6], NULL, 10));
	fprintf(stderr, "usage: handle-forge show PATH | forge MOUNTDIR OWN_DIR SECRET KEY SPAN\n");
	return 2;
}
