// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <openssl/crypto.h>

#include "log.h"
#include "secret.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool initialized, locked;
static SecretFreeHook free_hook;
static void *free_hook_userdata;

static size_t round_pow2(size_t n)
{
	size_t p = 4096;
	while (p < n)
		p <<= 1;
	return p;
}

int secret_init(size_t heap_bytes)
{
	int r = 0;

	pthread_mutex_lock(&lock);
	if (initialized)
		goto out;
	initialized = true;
	/* Keys must never reach a core file or another process's ptrace. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		log_warning_errno(negative_errno(), "secret: cannot mark the process non-dumpable");
	if (heap_bytes == 0)
		heap_bytes = 4u << 20;
	if (CRYPTO_secure_malloc_init(round_pow2(heap_bytes), 32) == 1) {
		locked = true;
		goto out;
	}
	/* The secure heap needs RLIMIT_MEMLOCK of its size; lock everything instead if allowed. */
	if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) {
		locked = true;
		log_info("secret: secure heap of %zu bytes unavailable, locked all memory instead",
			 heap_bytes);
		goto out;
	}
	r = log_warning_errno(negative_errno(),
			      "secret: cannot lock memory (raise LimitMEMLOCK); keys may be swapped");
out:
	pthread_mutex_unlock(&lock);
	return r;
}

bool secret_is_locked(void)
{
	return locked;
}

void *secret_alloc(size_t n)
{
	return OPENSSL_secure_zalloc(n ? n : 1);
}

void *secret_dup(const void *p, size_t n)
{
	void *d = secret_alloc(n);
	if (d && n)
		memcpy(d, p, n);
	return d;
}

void secret_wipe(void *p, size_t n)
{
	if (p && n)
		OPENSSL_cleanse(p, n);
}

void secret_free(void *p, size_t n)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, n);
	if (free_hook)
		free_hook(p, n, free_hook_userdata);
	OPENSSL_secure_free(p);
}

void secret_set_free_hook(SecretFreeHook hook, void *userdata)
{
	free_hook = hook;
	free_hook_userdata = userdata;
}
