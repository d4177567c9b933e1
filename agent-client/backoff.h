/* SPDX-License-Identifier: Apache-2.0 */
/* backoff.h: the retry schedule of one agent stream: capped exponential delay with jitter, reset
 * after a message arrives. Owns only its counters and PRNG state. Pure (no I/O, no clock, no
 * logging); not thread-safe: the owner (one AgentSub, under its connection's lock) serialises it. */
#pragma once

#include <stdint.h>

typedef struct Backoff Backoff;

/* initial_ms: the first delay (0 is raised to 1); max_ms: the cap (raised to initial_ms when
 * lower). seed makes the jitter reproducible (tests); any value works. */
int backoff_new(unsigned initial_ms, unsigned max_ms, uint64_t seed, Backoff **ret);
Backoff *backoff_free(Backoff *b); /* NULL-safe, returns NULL */

/* The delay before the next attempt, then advances the schedule. Attempt k (from 0) waits a
 * uniformly random time in [d/2, d] where d = min(max, initial * 2^k): never 0, never above the
 * cap, and spread so that many streams failing together do not retry in lockstep. */
unsigned backoff_next(Backoff *b);
void backoff_reset(Backoff *b);               /* after a message: the next delay is short again */
unsigned backoff_attempts(const Backoff *b); /* backoff_next() calls since the last reset */
