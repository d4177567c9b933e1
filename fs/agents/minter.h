/* SPDX-License-Identifier: Apache-2.0 */
/* minter.h: mints JWT-SVIDs off the FUSE workers. Owns a bounded queue of (workload, audience)
 * jobs and a few threads that run a blocking fetch for each (the agent's round trip, bounded by
 * the fetch's own timeout). Lookups for the same pair wait on one job; a workload may have only
 * a few jobs at once, so one workload (or one slow agent) cannot occupy the queue. A FUSE
 * lookup that needs a token submits a job and returns; the job's completion answers it. Any
 * thread may call these functions. Never logs (the fetch does). */
#pragma once

typedef struct Minter Minter;

/* Blocking: fetch a token for (name, audience) into the store; 0 or -errno. */
typedef int (*MinterFetch)(void *userdata, const char *name, const char *audience);
/* Called exactly once per accepted submission, from a minter thread (or from minter_free). */
typedef void (*MinterDone)(void *done_userdata, int r);

typedef struct MinterLimits {
	unsigned threads;	 /* 0: 4 */
	unsigned max_jobs;	 /* distinct (name, audience) jobs queued or running; 0: 256 */
	unsigned max_per_name;	 /* jobs of one workload; 0: 4 */
	unsigned max_waiters;	 /* lookups waiting on one job; 0: 64 */
	int queue_timeout_ms;	 /* a job that waited longer fails with -ETIMEDOUT; 0: 5000 */
} MinterLimits;

int minter_new(MinterFetch fetch, void *userdata, const MinterLimits *limits, Minter **ret);
/* 0: done(done_userdata, r) will be called. -EAGAIN: a bound is reached (nothing queued);
 * -ESHUTDOWN: the minter is stopping. */
int minter_submit(Minter *m, const char *name, const char *audience, MinterDone done,
		  void *done_userdata);
/* Waits until every job submitted before the call has completed (its waiters answered). */
void minter_drain(Minter *m);
/* Refuses new jobs, completes the queued ones with -ESHUTDOWN, waits for running ones, joins. */
Minter *minter_free(Minter *m); /* NULL-safe */
unsigned minter_pending(Minter *m);
