// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: one control-socket request, as fs/control.c handles it: kv_read_fd() framing
 * from the socket (here a pipe), kv_parse(), the op, and for op=register the registration
 * checks (fs/registration.c) that run before the daemon touches any state. Also checks the
 * round trips the daemon relies on: a parsed message formats back to the same message, and an
 * accepted registration persisted (registration_to_kv, as the state directory keeps it) reads
 * back equal. docs/fuzzing.md. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv.h"
#include "macro.h"
#include "registration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQUEST (64 * 1024) /* fs/control.c */

static bool kv_equal(const KvMsg *a, const KvMsg *b)
{
	if (kv_count(a) != kv_count(b))
		return false;
	for (size_t i = 0; i < kv_count(a); i++)
		if (!streq(kv_key(a, i), kv_key(b, i)) || !streq(kv_value(a, i), kv_value(b, i)))
			return false;
	return true;
}

/* The socket path: the request's bytes, then EOF. */
static void read_framed(const uint8_t *data, size_t size)
{
	int p[2];
	KvMsg *m = NULL;

	if (size > 60000 || pipe2(p, O_CLOEXEC) < 0) /* stays within the pipe buffer */
		return;
	if (write(p[1], data, size) != (ssize_t)size)
		abort();
	close(p[1]);
	if (kv_read_fd(p[0], MAX_REQUEST, -1, &m) == 0)
		kv_free(m);
	close(p[0]);
}

static void check_persisted(const Registration *reg)
{
	Registration *back = NULL;
	KvMsg *m = NULL, *parsed = NULL;
	const char *why;
	char *s = NULL, *file = NULL;
	size_t len;

	if (kv_new(&m) < 0 || registration_to_kv(reg, m) < 0 || kv_format(m, &s, &len) < 0)
		abort();
	if (kv_parse(s, len, &parsed) < 0 || !kv_equal(m, parsed))
		abort(); /* the daemon could not read its own state file */
	if (registration_from_kv(parsed, &back, &why) < 0 || !registration_equal(reg, back))
		abort(); /* a restart would serve a different registration */
	if (reg->kind != REGISTRATION_SELF) {
		if (registration_state_file(reg, &file) < 0 || strchr(file, '/'))
			abort();
		free(file);
	}
	registration_free(back);
	kv_free(parsed);
	kv_free(m);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	KvMsg *m = NULL, *again = NULL;
	Registration *reg = NULL;
	const char *why = NULL, *op;
	char *s = NULL;
	size_t len;

	read_framed(data, size);
	if (kv_parse((const char *)data, size, &m) < 0)
		return 0;
	if (kv_format(m, &s, &len) < 0 || kv_parse(s, len, &again) < 0 || !kv_equal(m, again))
		abort();
	op = kv_get(m, "op");
	if (op && streq(op, "register") && registration_from_kv(m, &reg, &why) == 0) {
		check_persisted(reg);
		registration_free(reg);
	}
	kv_free(again);
	kv_free(m);
	free(s);
	return 0;
}
