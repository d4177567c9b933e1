// SPDX-License-Identifier: Apache-2.0
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <openssl/crypto.h>

#include "log.h"
#include "macro.h"
#include "secret.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool initialized, locked;
static SecretFreeHook free_hook;
static void *free_hook_userdata;
static bool openssl_routed;
static _Thread_local unsigned scope_depth;

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

/* Zeroes the vector registers, which still hold whatever memcpy and OpenSSL last moved through
 * them: a later lazy symbol binding (gRPC's libraries are not linked -z now) saves all of them
 * on the stack. x86-64 only (glibc's memcpy uses xmm/ymm0-15 and, with AVX-512, ymm16-31). */
static void clear_vector_registers(void)
{
#if defined(__x86_64__)
#define Z(n) "vpxord %%zmm" #n ", %%zmm" #n ", %%zmm" #n "\n\t"
#define X(n) "pxor %%xmm" #n ", %%xmm" #n "\n\t"
	if (__builtin_cpu_supports("avx512f"))
		__asm__ volatile(Z(16) Z(17) Z(18) Z(19) Z(20) Z(21) Z(22) Z(23)
				 Z(24) Z(25) Z(26) Z(27) Z(28) Z(29) Z(30) Z(31) ::: "memory");
	if (__builtin_cpu_supports("avx"))
		__asm__ volatile("vzeroall" ::: "memory");
	else
		__asm__ volatile(X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
				 X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) ::: "memory");
#undef Z
#undef X
#endif
}

#define SCRUB_BYTES (32 * 1024)

/* The frames the caller's callees left are below the caller's stack pointer. On x86-64 they are
 * wiped from below this function's own stack pointer (this function has no locals, so nothing
 * of its own lives there, not even in the red zone): a local array would leave its own frame's
 * top (saved registers, canary, sanitizer redzones) unwiped, and callees' locals sat there. */
__attribute__((noinline)) void secret_scrub_stack(void)
{
#if defined(__x86_64__)
	__asm__ volatile("lea -%c0(%%rsp), %%rdi\n\t"
			 "mov $%c0, %%ecx\n\t"
			 "xor %%eax, %%eax\n\t"
			 "cld\n\t"
			 "rep stosb"
			 : : "i"(SCRUB_BYTES) : "rdi", "rcx", "rax", "memory", "cc");
#else
	uint8_t stack[SCRUB_BYTES];
	OPENSSL_cleanse(stack, sizeof(stack));
	__asm__ volatile("" : : "r"(stack) : "memory");
#endif
	clear_vector_registers();
}

/* ---- sized secure blocks (protobuf-c, OpenSSL) ---- */

/* In front of every block handed out below: its size and where it came from. 16 bytes keeps the
 * block as aligned as malloc's. */
typedef struct BlockHeader {
	size_t size;
	uint32_t magic;
	uint32_t secure;
} BlockHeader;
_Static_assert(sizeof(BlockHeader) == 16, "header keeps 16-byte alignment");
#define BLOCK_MAGIC 0x5ec7b10cu

static void *block_alloc(size_t n, bool secure)
{
	if (n > SIZE_MAX - sizeof(BlockHeader))
		return NULL;
	/* No file/line: a failed secure allocation then records no OpenSSL error, whose state
	 * would be allocated through here again. */
	BlockHeader *h = secure ? CRYPTO_secure_malloc(sizeof(*h) + n, NULL, 0)
				: malloc(sizeof(*h) + n);
	if (!h)
		return NULL;
	*h = (BlockHeader){.size = n, .magic = BLOCK_MAGIC, .secure = secure};
	return h + 1;
}

static BlockHeader *block_header(void *p)
{
	BlockHeader *h = (BlockHeader *)p - 1;
	assert(h->magic == BLOCK_MAGIC);
	return h;
}

static void block_free(void *p)
{
	if (!p)
		return;
	BlockHeader *h = block_header(p);
	if (h->secure) {
		if (free_hook) {
			OPENSSL_cleanse(p, h->size);
			free_hook(p, h->size, free_hook_userdata);
		}
		CRYPTO_secure_clear_free(h, sizeof(*h) + h->size, NULL, 0);
	} else
		free(h);
}

void *secret_pb_alloc(void *allocator_data, size_t n)
{
	(void)allocator_data;
	return block_alloc(n, true);
}

void secret_pb_free(void *allocator_data, void *p)
{
	(void)allocator_data;
	block_free(p);
}

/* ---- OpenSSL's own allocations ---- */

static bool scope_secure(void)
{
	return scope_depth > 0 && CRYPTO_secure_malloc_initialized();
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	(void)file, (void)line;
	return n ? block_alloc(n, scope_secure()) : NULL; /* CRYPTO_malloc(0) is NULL too */
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file, (void)line;
	block_free(p);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	if (!p)
		return ossl_malloc(n, file, line);
	if (n == 0) {
		block_free(p);
		return NULL;
	}
	BlockHeader *h = block_header(p);
	bool secure = h->secure || scope_secure();
	if (!secure) {
		BlockHeader *nh = realloc(h, sizeof(*h) + n);
		if (!nh)
			return NULL;
		nh->size = n;
		return nh + 1;
	}
	/* Secure blocks move (the secure heap has no realloc); the old one is wiped. */
	void *q = block_alloc(n, true);
	if (!q)
		return NULL;
	memcpy(q, p, MIN(n, h->size));
	block_free(p);
	return q;
}

int secret_openssl_init(void)
{
	pthread_mutex_lock(&lock);
	if (!openssl_routed)
		openssl_routed = CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) == 1;
	bool ok = openssl_routed;
	pthread_mutex_unlock(&lock);
	return ok ? 0 : -EBUSY;
}

unsigned secret_scope_enter(void)
{
	return ++scope_depth;
}

void secret_scope_leave(unsigned *depth)
{
	assert(scope_depth > 0 && *depth == scope_depth);
	scope_depth--;
}

bool secret_scope_active(void)
{
	return openssl_routed && scope_secure();
}
