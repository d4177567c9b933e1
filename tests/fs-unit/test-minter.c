// SPDX-License-Identifier: Apache-2.0
/* minter: JWT-SVIDs minted off the FUSE workers, with bounds (issue 12: a flood of lookups must
 * not occupy the daemon, a slow agent must not hold the callers). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "minter.h"

typedef struct Fake {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
	bool release; /* fetches block until set */
	int result;
} Fake;

static int fake_fetch(void *userdata, const char *name, const char *audience)
{
	Fake *f = userdata;

	pthread_mutex_lock(&f->lock);
	f->calls++;
	pthread_cond_broadcast(&f->cond);
	while (!f->release)
		pthread_cond_wait(&f->cond, &f->lock);
	int r = f->result;
	pthread_mutex_unlock(&f->lock);
	return r;
}

typedef struct Answer {
	int n, r;
} Answer;

static pthread_mutex_t alock = PTHREAD_MUTEX_INITIALIZER;

static void on_done(void *userdata, int r)
{
	Answer *a = userdata;

	pthread_mutex_lock(&alock);
	a->n++;
	a->r = r;
	pthread_mutex_unlock(&alock);
}

static Fake *fake_new(bool release, int result)
{
	Fake *f = calloc(1, sizeof *f);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->release = release;
	f->result = result;
	return f;
}

static void fake_release(Fake *f)
{
	pthread_mutex_lock(&f->lock);
	f->release = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static void wait_calls(Fake *f, int n)
{
	pthread_mutex_lock(&f->lock);
	while (f->calls < n)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

Test(minter, every_submission_is_answered_once, .timeout = 30)
{
	Fake *f = fake_new(true, 0);
	Minter *m = NULL;
	Answer a[10] = {};

	cr_assert_eq(minter_new(fake_fetch, f, NULL, &m), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(minter_submit(m, "pods/a", i % 2 ? "x" : "y", on_done, &a[i]), 0);
	minter_drain(m);
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(a[i].n, 1);
		cr_assert_eq(a[i].r, 0);
	}
	minter_free(m);
}

/* Lookups of one (workload, audience) wait on one queued job: one agent call. */
Test(minter, same_pair_shares_a_queued_job, .timeout = 30)
{
	Fake *f = fake_new(false, 0);
	MinterLimits lim = {.threads = 1};
	Minter *m = NULL;
	Answer first = {}, a[5] = {};

	cr_assert_eq(minter_new(fake_fetch, f, &lim, &m), 0);
	cr_assert_eq(minter_submit(m, "pods/b", "other", on_done, &first), 0);
	wait_calls(f, 1); /* the only thread is busy: the next jobs stay queued */
	for (int i = 0; i < 5; i++)
		cr_assert_eq(minter_submit(m, "pods/a", "aud", on_done, &a[i]), 0);
	cr_assert_eq(minter_pending(m), 2);
	fake_release(f);
	minter_drain(m);
	cr_assert_eq(f->calls, 2);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(a[i].n, 1);
	minter_free(m);
}

/* One workload cannot fill the queue: max_per_name jobs, then -EAGAIN; others still get in. */
Test(minter, one_workload_is_bounded, .timeout = 30)
{
	Fake *f = fake_new(false, 0);
	MinterLimits lim = {.threads = 1, .max_per_name = 3, .max_jobs = 8};
	Minter *m = NULL;
	Answer a[16] = {};
	char aud[16];

	cr_assert_eq(minter_new(fake_fetch, f, &lim, &m), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(aud, sizeof aud, "a%d", i);
		cr_assert_eq(minter_submit(m, "pods/flood", aud, on_done, &a[i]), 0);
	}
	cr_assert_eq(minter_submit(m, "pods/flood", "a99", on_done, &a[3]), -EAGAIN);
	for (int i = 0; i < 5; i++) {
		snprintf(aud, sizeof aud, "o%d", i);
		cr_assert_eq(minter_submit(m, i < 3 ? "pods/x" : "pods/y", aud, on_done, &a[4 + i]),
			     0);
	}
	cr_assert_eq(minter_submit(m, "pods/z", "full", on_done, &a[10]), -EAGAIN);
	fake_release(f);
	minter_drain(m);
	cr_assert_eq(a[3].n, 0);
	cr_assert_eq(a[10].n, 0);
	minter_free(m);
}

/* A slow agent: jobs that waited longer than the queue timeout fail without calling it. */
Test(minter, queued_too_long_times_out, .timeout = 30)
{
	Fake *f = fake_new(false, 0);
	MinterLimits lim = {.threads = 1, .queue_timeout_ms = 50};
	Minter *m = NULL;
	Answer a = {}, b = {};

	cr_assert_eq(minter_new(fake_fetch, f, &lim, &m), 0);
	cr_assert_eq(minter_submit(m, "pods/a", "x", on_done, &a), 0);
	wait_calls(f, 1);
	cr_assert_eq(minter_submit(m, "pods/b", "y", on_done, &b), 0);
	struct timespec ts = {.tv_nsec = 200 * 1000000};
	nanosleep(&ts, NULL); /* the timeout must pass while b is queued: at least this long */
	fake_release(f);
	minter_drain(m);
	cr_assert_eq(f->calls, 1);
	cr_assert_eq(b.n, 1);
	cr_assert_eq(b.r, -ETIMEDOUT);
	minter_free(m);
}

Test(minter, free_answers_queued_jobs, .timeout = 30)
{
	Fake *f = fake_new(false, 0);
	MinterLimits lim = {.threads = 1};
	Minter *m = NULL;
	Answer a = {}, b = {};

	cr_assert_eq(minter_new(fake_fetch, f, &lim, &m), 0);
	cr_assert_eq(minter_submit(m, "pods/a", "x", on_done, &a), 0);
	wait_calls(f, 1);
	cr_assert_eq(minter_submit(m, "pods/b", "y", on_done, &b), 0);
	fake_release(f);
	minter_free(m);
	cr_assert_eq(a.n, 1);
	cr_assert_eq(b.n, 1);
	cr_assert(b.r == 0 || b.r == -ESHUTDOWN);
}
