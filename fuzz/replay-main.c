// SPDX-License-Identifier: Apache-2.0
/* replay-main: runs a libFuzzer target without libFuzzer, for compilers that have none (gcc in
 * CI). Each argument is a corpus directory (every regular file in it, sorted by name) or a single
 * file; each input is copied into a buffer of exactly its size, so AddressSanitizer sees a read
 * one byte past the end as libFuzzer would. Prints one TAP line per argument. A crash or a
 * sanitizer report ends the process, which meson counts as a failure (docs/fuzzing.md). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (16u << 20)

/* Runs the target on one file; -errno when it cannot be read. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *buf;
	size_t n;

	if (!f)
		return -errno;
	if (fstat(fileno(f), &st) < 0 || st.st_size < 0 || (size_t)st.st_size > REPLAY_MAX_INPUT) {
		fclose(f);
		return -EFBIG;
	}
	/* malloc(0) may return NULL: keep one byte, but hand the target the exact size. */
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
	fclose(f);
	if (!buf || n != (size_t)st.st_size) {
		free(buf);
		return -EIO;
	}
	fprintf(stderr, "replay: %s\n", path);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int skip_dots(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Replays a directory (sorted) or one file; returns the number of inputs or -errno. */
static long replay(const char *path)
{
	struct dirent **names;
	struct stat st;
	long done = 0;
	int n, r = 0;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		r = replay_file(path);
		return r < 0 ? r : 1;
	}
	n = scandir(path, &names, skip_dots, alphasort);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		char *p = NULL;
		if (r >= 0 && asprintf(&p, "%s/%s", path, names[i]->d_name) < 0)
			r = -ENOMEM;
		if (r >= 0 && stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			r = replay_file(p);
			done++;
		}
		free(p);
		free(names[i]);
	}
	free(names);
	return r < 0 ? r : done;
}

int main(int argc, char **argv)
{
	int failed = 0;

	printf("1..%d\n", argc - 1);
	for (int i = 1; i < argc; i++) {
		long n = replay(argv[i]);
		if (n < 0) {
			printf("not ok %d - %s: %s\n", i, argv[i], strerror((int)-n));
			failed = 1;
		} else if (n == 0) {
			printf("not ok %d - %s: no input\n", i, argv[i]);
			failed = 1;
		} else {
			printf("ok %d - %s: %ld inputs replayed\n", i, argv[i], n);
		}
		fflush(stdout);
	}
	return failed;
}
