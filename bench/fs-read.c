// SPDX-License-Identifier: Apache-2.0
/* fs-read: open+read+close and stat of the same small file on several paths, side by side in
 * one run (single thread: median and p99 per operation; two threads: aggregate rate), printed
 * with ratios against the first path (tmpfs).
 *
 *   fs-read [-n ITERATIONS] LABEL=PATH LABEL=PATH ...
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_PATHS 8

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int read_once(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap);
	close(fd);
	return n < 0 ? -errno : (int)n;
}

typedef struct Result {
	double read_med, read_p99, stat_med, stat_p99, rate2;
	int size;
} Result;

static void percentiles(int64_t *v, long n, double *med, double *p99)
{
	qsort(v, (size_t)n, sizeof *v, cmp_i64);
	*med = (double)v[n / 2] / 1000.0;
	*p99 = (double)v[(n * 99) / 100] / 1000.0;
}

typedef struct Thr {
	const char *path;
	long n;
	int err;
} Thr;

static void *thr(void *arg)
{
	Thr *t = arg;
	char buf[4096];
	for (long i = 0; i < t->n; i++)
		if (read_once(t->path, buf, sizeof buf) < 0)
			t->err++;
	return NULL;
}

static int measure(const char *path, long n, Result *r)
{
	char buf[4096];
	int64_t *v = malloc((size_t)n * sizeof *v);
	struct stat st;

	if (!v)
		return -ENOMEM;
	/* Warm up: the first open looks the file up and fills the page cache. */
	for (int i = 0; i < 1000; i++)
		if ((r->size = read_once(path, buf, sizeof buf)) < 0)
			return r->size;
	for (long i = 0; i < n; i++) {
		int64_t t0 = now_ns();
		read_once(path, buf, sizeof buf);
		v[i] = now_ns() - t0;
	}
	percentiles(v, n, &r->read_med, &r->read_p99);
	for (long i = 0; i < n; i++) {
		int64_t t0 = now_ns();
		stat(path, &st);
		v[i] = now_ns() - t0;
	}
	percentiles(v, n, &r->stat_med, &r->stat_p99);
	free(v);

	Thr t[2] = {{path, n, 0}, {path, n, 0}};
	pthread_t th[2];
	int64_t t0 = now_ns();
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, thr, &t[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	r->rate2 = (double)(2 * n) / ((double)(now_ns() - t0) / 1e9);
	return t[0].err + t[1].err ? -EIO : 0;
}

int main(int argc, char **argv)
{
	long n = 100000;
	int first = 1;
	Result res[MAX_PATHS];
	char *label[MAX_PATHS], *path[MAX_PATHS];
	int k = 0;

	if (argc > 2 && strcmp(argv[1], "-n") == 0) {
		n = atol(argv[2]);
		first = 3;
	}
	for (int i = first; i < argc && k < MAX_PATHS; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq) {
			fprintf(stderr, "usage: %s [-n N] LABEL=PATH...\n", argv[0]);
			return 2;
		}
		*eq = 0;
		label[k] = argv[i];
		path[k] = eq + 1;
		k++;
	}
	if (k == 0 || n < 100) {
		fprintf(stderr, "usage: %s [-n N>=100] LABEL=PATH...\n", argv[0]);
		return 2;
	}
	/* Interleave the setups twice and keep the better run of each, so that a noisy neighbour
	 * on the shared machine hurts all of them alike. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < k; i++) {
			Result r;
			int e = measure(path[i], n, &r);
			if (e < 0) {
				fprintf(stderr, "%s (%s): %s\n", label[i], path[i], strerror(-e));
				return 1;
			}
			if (pass == 0 || r.read_med < res[i].read_med)
				res[i] = r;
		}
	printf("%-12s %6s %12s %10s %10s %10s %14s %8s %8s\n", "setup", "bytes", "open+read+close",
	       "p99", "stat", "stat p99", "2 threads/s", "ratio", "stat");
	for (int i = 0; i < k; i++)
		printf("%-12s %6d %12.2fus %8.2fus %8.2fus %8.2fus %14.0f %7.2fx %7.2fx\n",
		       label[i], res[i].size, res[i].read_med, res[i].read_p99, res[i].stat_med,
		       res[i].stat_p99, res[i].rate2, res[i].read_med / res[0].read_med,
		       res[i].stat_med / res[0].stat_med);
	for (int i = 1; i < k; i++)
		printf("ratio %s/%s: open+read+close %.2fx, stat %.2fx, 2-thread rate %.2fx\n",
		       label[i], label[0], res[i].read_med / res[0].read_med,
		       res[i].stat_med / res[0].stat_med, res[0].rate2 / res[i].rate2);
	return 0;
}
