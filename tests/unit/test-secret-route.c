// SPDX-License-Identifier: Apache-2.0
/* secret_openssl_init() and scopes: OpenSSL's own allocations in the secure heap (issue 12).
 * A plain TAP program, not Criterion: routing must be set up before OpenSSL allocates anything,
 * and Criterion's runner makes it allocate first. Each case runs in its own child process. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "secret.h"

static bool zero;
static size_t seen;

static void hook(const void *p, size_t n, void *ud)
{
	const uint8_t *b = p;
	zero = true;
	for (size_t i = 0; i < n; i++)
		zero = zero && b[i] == 0;
	seen = n;
}

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);                    \
			return false;                                                              \
		}                                                                                  \
	} while (0)

static bool routes_allocations(void)
{
	CHECK(secret_openssl_init() == 0);
	CHECK(secret_init(1u << 20) == 0);
	void *plain = OPENSSL_malloc(100);
	CHECK(plain && CRYPTO_secure_allocated(plain) == 0);
	CHECK(!secret_scope_active());

	unsigned depth = secret_scope_enter();
	CHECK(secret_scope_active());
	uint8_t *p = OPENSSL_malloc(100);
	CHECK(p && CRYPTO_secure_allocated(p) == 1);
	memset(p, 'k', 100);
	p = OPENSSL_realloc(p, 5000);
	CHECK(p && CRYPTO_secure_allocated(p) == 1 && p[99] == 'k');
	plain = OPENSSL_realloc(plain, 200); /* a plain block grown in a scope moves */
	CHECK(plain && CRYPTO_secure_allocated(plain) == 1);
	secret_scope_leave(&depth);
	CHECK(!secret_scope_active());
	OPENSSL_free(p); /* freed outside the scope: recognized and wiped all the same */
	OPENSSL_free(plain);
	CHECK(OPENSSL_malloc(0) == NULL);
	return true;
}

static bool scopes_nest(void)
{
	CHECK(secret_openssl_init() == 0);
	CHECK(secret_init(1u << 20) == 0);
	unsigned a = secret_scope_enter();
	unsigned b = secret_scope_enter();
	CHECK(b == a + 1);
	secret_scope_leave(&b);
	CHECK(secret_scope_active());
	secret_scope_leave(&a);
	CHECK(!secret_scope_active());
	return true;
}

static bool free_wipes(void)
{
	CHECK(secret_openssl_init() == 0);
	CHECK(secret_init(1u << 20) == 0);
	unsigned depth = secret_scope_enter();
	uint8_t *p = OPENSSL_malloc(64);
	CHECK(p);
	memset(p, 'k', 64);
	secret_set_free_hook(hook, NULL);
	OPENSSL_free(p);
	secret_set_free_hook(NULL, NULL);
	secret_scope_leave(&depth);
	CHECK(seen == 64 && zero);
	return true;
}

static bool too_late_is_refused(void)
{
	void *p = OPENSSL_malloc(10);
	CHECK(secret_openssl_init() == -EBUSY);
	OPENSSL_free(p);
	CHECK(secret_init(1u << 20) == 0);
	unsigned depth = secret_scope_enter();
	CHECK(!secret_scope_active()); /* scopes change nothing, and nothing breaks */
	p = OPENSSL_malloc(10);
	CHECK(p && CRYPTO_secure_allocated(p) == 0);
	OPENSSL_free(p);
	secret_scope_leave(&depth);
	return true;
}

/* Without a secure heap (mlockall fallback), scopes allocate from malloc. */
static bool no_secure_heap(void)
{
	CHECK(secret_openssl_init() == 0);
	unsigned depth = secret_scope_enter();
	CHECK(!secret_scope_active());
	void *p = OPENSSL_zalloc(10);
	CHECK(p);
	OPENSSL_free(p);
	secret_scope_leave(&depth);
	return true;
}

static const struct {
	const char *name;
	bool (*fn)(void);
} cases[] = {
	{"a scope puts OpenSSL's allocations in the secure heap; realloc and free follow",
	 routes_allocations},
	{"scopes nest", scopes_nest},
	{"a block freed from a scope is wiped first", free_wipes},
	{"routing after OpenSSL's first allocation is refused (-EBUSY) and harmless",
	 too_late_is_refused},
	{"without a secure heap scopes use malloc", no_secure_heap},
};

int main(void)
{
	int failed = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0)
			_exit(cases[i].fn() ? 0 : 1);
		int st = 0;
		bool ok = pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
			  WEXITSTATUS(st) == 0;
		printf("%s %zu - %s\n", ok ? "ok" : "not ok", i + 1, cases[i].name);
		failed += !ok;
	}
	printf("1..%zu\n", sizeof(cases) / sizeof(cases[0]));
	return failed ? 1 : 0;
}
