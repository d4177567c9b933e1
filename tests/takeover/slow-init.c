// SPDX-License-Identifier: Apache-2.0
/* slow-init.so: an LD_PRELOAD shim for t-takeover-race.sh. It makes libfuse slow to process the
 * first request a daemon handles (the INIT: on an adopted connection, the one replayed from the
 * keeper) by sleeping 20 ms in the allocation of that request's struct fuse_req, the first thing
 * libfuse 3.14 does when it processes a request. With the INIT processed by the MT loop, a second
 * worker read a request the kernel had queued during the takeover and libfuse answered it EIO
 * ("not initialised"); the shim turns that rare race into a certain one. It prints one line to
 * stderr when it delays, so the test can check it took effect.
 *
 * The request is recognised by its size (struct fuse_req is 128 bytes on LP64 with libfuse 3.14)
 * and its caller (libfuse3). Allocation goes to the next calloc (libc's, or the sanitizer's). */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUSE_REQ_SIZE 128
#define DELAY_US 20000

typedef void *(*calloc_fn)(size_t, size_t);

static calloc_fn next_calloc;
static int delayed;
/* dlsym may itself call calloc: serve that from a small static pool. */
static char pool[4096] __attribute__((aligned(16)));
static size_t pool_used;
static __thread int resolving;

void *calloc(size_t n, size_t size)
{
	if (!next_calloc) {
		if (resolving) {
			size_t need = (n * size + 15) & ~(size_t)15;
			if (need > sizeof pool - pool_used)
				return NULL;
			void *p = pool + pool_used;
			pool_used += need;
			return p; /* static memory is zero; never freed (dlsym keeps it) */
		}
		resolving = 1;
		next_calloc = (calloc_fn)dlsym(RTLD_NEXT, "calloc");
		resolving = 0;
		if (!next_calloc)
			return NULL;
	}
	void *p = next_calloc(n, size);
	if (n == 1 && size == FUSE_REQ_SIZE && !__atomic_load_n(&delayed, __ATOMIC_RELAXED)) {
		Dl_info info;
		if (dladdr(__builtin_return_address(0), &info) && info.dli_fname &&
		    strstr(info.dli_fname, "libfuse3") &&
		    !__atomic_exchange_n(&delayed, 1, __ATOMIC_RELAXED)) {
			static const char msg[] = "slow-init: delaying libfuse's first request\n";
			if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
			}
			usleep(DELAY_US);
		}
	}
	return p;
}
