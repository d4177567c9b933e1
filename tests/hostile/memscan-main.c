// SPDX-License-Identifier: Apache-2.0
/* memscan: searches a process's memory, or a core file, for the private keys of key files.
 *
 *   memscan [-v] pid PID KEYFILE...     every mapping of /proc/PID/smaps, through /proc/PID/mem
 *   memscan [-v] file FILE KEYFILE...   a flat file (a core file written by gcore)
 *
 * Each KEYFILE is a credential bundle or key file as svidfs serves it; every "PRIVATE KEY" block
 * counts. The needles and the safe/unsafe rule are described in memscan.h. Prints one line per
 * needle kind ("der needles=N safe=N unsafe=N"), then "unsafe_total=N"; -v also prints each hit
 * with its mapping. Exit 0 when unsafe_total is 0, 1 when not, 2 on errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memscan.h"

int main(int argc, char **argv)
{
	MemScan *m = NULL;
	bool verbose = false;
	int a = 1, r;

	if (a < argc && strcmp(argv[a], "-v") == 0) {
		verbose = true;
		a++;
	}
	if (argc - a < 3 || (strcmp(argv[a], "pid") != 0 && strcmp(argv[a], "file") != 0)) {
		fprintf(stderr, "usage: memscan [-v] pid PID|file FILE KEYFILE...\n");
		return 2;
	}
	if (memscan_new(stdout, verbose, &m) < 0)
		return 2;
	for (int i = a + 2; i < argc; i++) {
		r = memscan_add_pem_file(m, argv[i]);
		if (r < 0) {
			fprintf(stderr, "memscan: %s: cannot read keys\n", argv[i]);
			return 2;
		}
	}
	if (memscan_n_keys(m) == 0) {
		fprintf(stderr, "memscan: no private key in the key files\n");
		return 2;
	}
	if (strcmp(argv[a], "pid") == 0) {
		char *end;
		long pid = strtol(argv[a + 1], &end, 10);
		if (*end || pid <= 0) {
			fprintf(stderr, "memscan: bad pid %s\n", argv[a + 1]);
			return 2;
		}
		r = memscan_pid(m, (pid_t)pid);
	} else
		r = memscan_file(m, argv[a + 1]);
	if (r < 0) {
		fprintf(stderr, "memscan: %s: %s\n", argv[a + 1], strerror(-r));
		return 2;
	}
	memscan_report(m, stdout, "");
	r = memscan_unsafe_total(m) ? 1 : 0;
	memscan_free(m);
	return r;
}
