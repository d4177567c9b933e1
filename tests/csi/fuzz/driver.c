// SPDX-License-Identifier: Apache-2.0
/* Runs a libFuzzer target without libFuzzer: every file named on the command line once (the
 * seed corpus as a regression test), printing TAP. Built by meson for `meson test`; the real
 * fuzzing build uses clang -fsanitize=fuzzer instead (tests/csi/fuzz/README). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	printf("1..%d\n", argc - 1);
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t *buf = malloc(1 << 20);
		size_t n = f ? fread(buf, 1, 1 << 20, f) : 0;
		if (f)
			fclose(f);
		if (f)
			LLVMFuzzerTestOneInput(buf, n);
		free(buf);
		const char *base = strrchr(argv[i], '/');
		printf("%sok %d - %s\n", f ? "" : "not ", i, base ? base + 1 : argv[i]);
	}
	return 0;
}
