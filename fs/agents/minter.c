// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "minter.h"

typedef struct Waiter {
	MinterDone done;
	void *userdata;
} Waiter;

typedef struct Job {
	struct Job *next;
	char *name, *audience;
	Waiter *waiters;
	unsigned n_waiters;
	struct timespec queued_at;
	bool running;
} Job;

struct Minter {
	MinterFetch fetch;
	void *userdata;
	MinterLimits lim;
	pthread_mutex_t lock;
	pthread_cond_t work, idle;
	Job *jobs; /* queued and running, oldest first */
	unsigned n_jobs;
	uint64_t submitted, completed; /* jobs */
	bool stop;
	pthread_t *threads;
	unsigned n_threads;
};

static long ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static void job_free(Job *j)
{
	free(j->name);
	free(j->audience);
	free(j->waiters);
	free(j);
}

/* Unlinks j and answers its waiters (lock not held while calling out). */
static void job_complete(Minter *m, Job *j, int r)
{
	for (Job **p = &m->jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	m->n_jobs--;
	pthread_mutex_unlock(&m->lock);
	for (unsigned i = 0; i < j->n_waiters; i++)
		j->waiters[i].done(j->waiters[i].userdata, r);
	job_free(j);
	pthread_mutex_lock(&m->lock);
	m->completed++;
	pthread_cond_broadcast(&m->idle);
}

static void *minter_thread(void *userdata)
{
	Minter *m = userdata;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		Job *j = NULL;
		for (Job *k = m->jobs; k && !j; k = k->next)
			if (!k->running)
				j = k;
		if (!j) {
			if (m->stop)
				break;
			pthread_cond_wait(&m->work, &m->lock);
			continue;
		}
		j->running = true;
		int r;
		if (m->stop)
			r = -ESHUTDOWN;
		else if (ms_since(&j->queued_at) > m->lim.queue_timeout_ms)
			r = -ETIMEDOUT;
		else {
			pthread_mutex_unlock(&m->lock);
			r = m->fetch(m->userdata, j->name, j->audience);
			pthread_mutex_lock(&m->lock);
		}
		job_complete(m, j, r);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int minter_new(MinterFetch fetch, void *userdata, const MinterLimits *limits, Minter **ret)
{
	Minter *m = calloc(1, sizeof *m);
	int r = 0;

	if (!m)
		return -ENOMEM;
	m->fetch = fetch;
	m->userdata = userdata;
	m->lim = limits ? *limits : (MinterLimits){};
	m->lim.threads = m->lim.threads ?: 4;
	m->lim.max_jobs = m->lim.max_jobs ?: 256;
	m->lim.max_per_name = m->lim.max_per_name ?: 4;
	m->lim.max_waiters = m->lim.max_waiters ?: 64;
	m->lim.queue_timeout_ms = m->lim.queue_timeout_ms ?: 5000;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->work, NULL);
	pthread_cond_init(&m->idle, NULL);
	m->threads = calloc(m->lim.threads, sizeof *m->threads);
	if (!m->threads)
		r = -ENOMEM;
	for (unsigned i = 0; r >= 0 && i < m->lim.threads; i++) {
		r = -pthread_create(&m->threads[i], NULL, minter_thread, m);
		if (r >= 0)
			m->n_threads++;
	}
	if (r < 0) {
		minter_free(m);
		return r;
	}
	*ret = m;
	return 0;
}

int minter_submit(Minter *m, const char *name, const char *audience, MinterDone done,
		  void *done_userdata)
{
	unsigned same_name = 0;
	Job *j = NULL;
	int r = 0;

	pthread_mutex_lock(&m->lock);
	if (m->stop) {
		r = -ESHUTDOWN;
		goto out;
	}
	for (Job *k = m->jobs; k; k = k->next) {
		if (!streq(k->name, name))
			continue;
		same_name++;
		/* A running job may have read the store before this caller looked: only a queued
		 * one is sure to fetch after it. */
		if (!k->running && streq(k->audience, audience))
			j = k;
	}
	if (!j) {
		if (m->n_jobs >= m->lim.max_jobs || same_name >= m->lim.max_per_name) {
			r = -EAGAIN;
			goto out;
		}
		j = calloc(1, sizeof *j);
		if (!j || !(j->name = strdup(name)) || !(j->audience = strdup(audience))) {
			if (j)
				job_free(j);
			r = -ENOMEM;
			goto out;
		}
		clock_gettime(CLOCK_MONOTONIC, &j->queued_at);
		Job **p = &m->jobs;
		while (*p)
			p = &(*p)->next;
		*p = j;
		m->n_jobs++;
		m->submitted++;
	}
	if (j->n_waiters >= m->lim.max_waiters) {
		r = -EAGAIN; /* only an existing job can be full */
		goto out;
	}
	Waiter *w = realloc(j->waiters, (j->n_waiters + 1) * sizeof *w);
	if (!w) {
		r = -ENOMEM;
		if (!j->n_waiters)
			job_complete(m, j, r); /* an empty new job: just unlink it */
		goto out;
	}
	j->waiters = w;
	w[j->n_waiters++] = (Waiter){.done = done, .userdata = done_userdata};
	pthread_cond_signal(&m->work);
out:
	pthread_mutex_unlock(&m->lock);
	return r;
}

void minter_drain(Minter *m)
{
	pthread_mutex_lock(&m->lock);
	uint64_t target = m->submitted;
	while (m->completed < target)
		pthread_cond_wait(&m->idle, &m->lock);
	pthread_mutex_unlock(&m->lock);
}

unsigned minter_pending(Minter *m)
{
	pthread_mutex_lock(&m->lock);
	unsigned n = m->n_jobs;
	pthread_mutex_unlock(&m->lock);
	return n;
}

Minter *minter_free(Minter *m)
{
	if (!m)
		return NULL;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_broadcast(&m->work);
	pthread_mutex_unlock(&m->lock);
	for (unsigned i = 0; i < m->n_threads; i++)
		pthread_join(m->threads[i], NULL);
	/* No thread left: complete what is still queued (threads == 0 only on a failed new). */
	pthread_mutex_lock(&m->lock);
	while (m->jobs)
		job_complete(m, m->jobs, -ESHUTDOWN);
	pthread_mutex_unlock(&m->lock);
	free(m->threads);
	pthread_cond_destroy(&m->work);
	pthread_cond_destroy(&m->idle);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return NULL;
}
