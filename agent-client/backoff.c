// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>

#include "backoff.h"

struct Backoff {
	unsigned initial_ms, max_ms;
	unsigned attempts;
	uint64_t rng;
};

int backoff_new(unsigned initial_ms, unsigned max_ms, uint64_t seed, Backoff **ret)
{
	Backoff *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->initial_ms = initial_ms ? initial_ms : 1;
	b->max_ms = max_ms < b->initial_ms ? b->initial_ms : max_ms;
	/* xorshift64* must not start at 0. */
	b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
	*ret = b;
	return 0;
}

Backoff *backoff_free(Backoff *b)
{
	free(b);
	return NULL;
}

static uint64_t rng_next(Backoff *b)
{
	uint64_t x = b->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	b->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

unsigned backoff_next(Backoff *b)
{
	uint64_t d = b->initial_ms;

	/* Double without overflowing: stop as soon as the cap is reached. */
	for (unsigned i = 0; i < b->attempts && d < b->max_ms; i++)
		d <<= 1;
	if (d > b->max_ms)
		d = b->max_ms;
	if (b->attempts < UINT32_MAX)
		b->attempts++;

	uint64_t half = d / 2;
	uint64_t span = d - half; /* result in [d - span, d] = [ceil-ish d/2, d] */
	uint64_t r = d - rng_next(b) % (span + 1);
	return r ? (unsigned)r : 1;
}

void backoff_reset(Backoff *b)
{
	b->attempts = 0;
}

unsigned backoff_attempts(const Backoff *b)
{
	return b->attempts;
}
