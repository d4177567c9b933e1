// SPDX-License-Identifier: Apache-2.0
/* pod-start: a pod-start harness modelled on the performance test SPIRE CSI users run. For each
 * replica count it drives svidfs-csi as kubelet would (NodeGetCapabilities, NodePublishVolume,
 * then the pod's files readable through the target), all pods at once or --sequential, against
 * the real daemon and the development agent with a configurable first-SVID delay. Reports per
 * run: total time, time to all pods ready, per-pod publish-to-readable times (avg, min, max,
 * p50, p90, p99, histogram), successful and failed mounts, success rate and errors; prints a
 * console summary and writes perf_test_<timestamp>.json and perf_test_<timestamp>.txt. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kubelet.h"
#include "stack.h"

#define MAX_RUNS 32
#define MAX_ERRORS 10

static Stack *S;

typedef struct {
	KubeletVolume v;
	double start, ready; /* seconds since the run's start */
	bool ok;
	int retries;
	char error[256], retry_error[256];
} Pod;

typedef struct {
	int replicas;
	double total, all_ready, avg, min, max, p50, p90, p99;
	int ok, failed, retries;
	double rate;
	char errors[MAX_ERRORS][300];
	int n_errors;
	int hist[10];
	double hist_width;
} Run;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static double t0_run;

static void pod_start(Pod *p)
{
	Kubelet *k = NULL;
	char msg[512], path[600], buf[4096];

	p->start = now_s() - t0_run;
	kubelet_new(stack_csi_socket(S), &k);
	/* kubelet retries a failed NodePublishVolume (UNAVAILABLE/ABORTED) with backoff; model a
	 * short version of that so a slow first SVID does not count as a failure. */
	int r = -1;
	for (int attempt = 0; attempt < 5; attempt++) {
		r = kubelet_publish(k, &p->v, msg, sizeof msg, 120000);
		if (r != GRPC_STATUS_UNAVAILABLE && r != GRPC_STATUS_ABORTED)
			break;
		p->retries++;
		snprintf(p->retry_error, sizeof p->retry_error, "pod %s (retried): %s: %s",
			 p->v.pod_uid, kubelet_code_name(r), msg);
		usleep(500000u << attempt);
	}
	kubelet_free(k);
	if (r != 0) {
		snprintf(p->error, sizeof p->error, "pod %s: %s: %s", p->v.pod_uid,
			 kubelet_code_name(r), msg);
		return;
	}
	snprintf(path, sizeof path, "%s/status.json", p->v.target_path);
	for (;;) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof buf);
			close(fd);
			if (n > 0)
				break;
		}
		if (now_s() - t0_run - p->start > 120) {
			snprintf(p->error, sizeof p->error,
				 "pod %s: files not readable after 120 s", p->v.pod_uid);
			return;
		}
		usleep(200);
	}
	p->ready = now_s() - t0_run;
	p->ok = true;
}

static void *pod_thread(void *arg)
{
	pod_start(arg);
	return NULL;
}

static void run_one(int replicas, bool sequential, Run *out)
{
	Pod *pods = calloc((size_t)replicas, sizeof *pods);
	pthread_t *t = calloc((size_t)replicas, sizeof *t);
	double *times = calloc((size_t)replicas, sizeof(double));
	size_t n = 0;

	memset(out, 0, sizeof *out);
	out->replicas = replicas;
	for (int i = 0; i < replicas; i++) {
		char uid[37], name[32];
		kubelet_random_uid(uid);
		snprintf(name, sizeof name, "perf-%d", i);
		kubelet_pod_init(&pods[i].v, stack_kubelet_root(S), uid, "perf", name, "perf",
				 "spiffe");
	}
	t0_run = now_s();
	if (sequential)
		for (int i = 0; i < replicas; i++)
			pod_start(&pods[i]);
	else {
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 256 * 1024);
		for (int i = 0; i < replicas; i++)
			pthread_create(&t[i], &a, pod_thread, &pods[i]);
		pthread_attr_destroy(&a);
		for (int i = 0; i < replicas; i++)
			pthread_join(t[i], NULL);
	}
	for (int i = 0; i < replicas; i++) {
		out->retries += pods[i].retries;
		if (pods[i].retries && out->n_errors < MAX_ERRORS)
			snprintf(out->errors[out->n_errors++], sizeof out->errors[0], "%s",
				 pods[i].retry_error);
		if (pods[i].ok) {
			out->ok++;
			times[n++] = pods[i].ready - pods[i].start;
			if (pods[i].ready > out->all_ready)
				out->all_ready = pods[i].ready;
		} else {
			out->failed++;
			if (out->n_errors < MAX_ERRORS)
				snprintf(out->errors[out->n_errors++], sizeof out->errors[0], "%s",
					 pods[i].error);
		}
	}
	/* Tear the pods down as kubelet would (part of the total time). */
	Kubelet *k = NULL;
	kubelet_new(stack_csi_socket(S), &k);
	for (int i = 0; i < replicas; i++) {
		char msg[512];
		int r = kubelet_unpublish(k, pods[i].v.volume_id, pods[i].v.target_path, msg,
					  sizeof msg, 60000);
		if (r != 0 && out->n_errors < MAX_ERRORS)
			snprintf(out->errors[out->n_errors++], sizeof out->errors[0],
				 "unpublish %s: %s: %s", pods[i].v.pod_uid, kubelet_code_name(r),
				 msg);
	}
	kubelet_free(k);
	out->total = now_s() - t0_run;

	qsort(times, n, sizeof *times, cmp_double);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += times[i];
	out->avg = n ? sum / (double)n : 0;
	out->min = n ? times[0] : 0;
	out->max = n ? times[n - 1] : 0;
	out->p50 = pct(times, n, 50);
	out->p90 = pct(times, n, 90);
	out->p99 = pct(times, n, 99);
	out->rate = replicas ? 100.0 * out->ok / replicas : 0;
	out->hist_width = out->max > 0 ? out->max / 10 : 1;
	for (size_t i = 0; i < n; i++) {
		int b = (int)(times[i] / out->hist_width);
		out->hist[b > 9 ? 9 : b]++;
	}
	free(times);
	free(t);
	free(pods);
}

static void print_run(FILE *f, const Run *r, bool sequential, int delay_ms)
{
	fprintf(f, "=== %d pods (%s, first-SVID delay %d ms) ===\n", r->replicas,
		sequential ? "sequential" : "all at once", delay_ms);
	fprintf(f, "Total test time:          %.3f s\n", r->total);
	fprintf(f, "All pods running after:   %.3f s\n", r->all_ready);
	fprintf(f, "Pod startup (publish -> files readable):\n");
	fprintf(f, "  avg %.3f s  min %.3f s  max %.3f s\n", r->avg, r->min, r->max);
	fprintf(f, "  p50 %.3f s  p90 %.3f s  p99 %.3f s\n", r->p50, r->p90, r->p99);
	fprintf(f, "  histogram:\n");
	int peak = 1;
	for (int i = 0; i < 10; i++)
		peak = r->hist[i] > peak ? r->hist[i] : peak;
	for (int i = 0; i < 10; i++) {
		char bar[41];
		int w = r->hist[i] * 40 / peak;
		memset(bar, '#', (size_t)w);
		bar[w] = 0;
		fprintf(f, "    %7.3f-%7.3f s %5d %s\n", i * r->hist_width, (i + 1) * r->hist_width,
			r->hist[i], bar);
	}
	fprintf(f, "Successful mounts: %d\nFailed mounts:     %d\nMount success rate: %.1f%%\n",
		r->ok, r->failed, r->rate);
	fprintf(f, "Retried publishes: %d (UNAVAILABLE or ABORTED, retried as kubelet does)\n",
		r->retries);
	fprintf(f, "Errors: %s\n", r->n_errors ? "" : "none");
	for (int i = 0; i < r->n_errors; i++)
		fprintf(f, "  %s\n", r->errors[i]);
	fprintf(f, "\n");
}

static int parse_replicas(const char *s, int *out, int max)
{
	int n = 0;
	char *copy = strdup(s), *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		long v = strtol(tok, &end, 10);
		if (*end || v <= 0 || v > 5000 || n == max) {
			free(copy);
			return -EINVAL;
		}
		out[n++] = (int)v;
	}
	free(copy);
	return n;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"replicas", required_argument, NULL, 'r'},
	    {"sequential", no_argument, NULL, 's'},
	    {"first-svid-delay-ms", required_argument, NULL, 'd'},
	    {"output-dir", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {},
	};
	int replicas[MAX_RUNS], n_runs, delay_ms = 0, c;
	bool sequential = false;
	const char *outdir = ".";

	n_runs = parse_replicas("50,100,150,200", replicas, MAX_RUNS);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (c) {
		case 'r':
			n_runs = parse_replicas(optarg, replicas, MAX_RUNS);
			if (n_runs <= 0) {
				fprintf(stderr, "--replicas: expected a comma list of 1-5000\n");
				return 2;
			}
			break;
		case 's':
			sequential = true;
			break;
		case 'd':
			delay_ms = atoi(optarg);
			break;
		case 'o':
			outdir = optarg;
			break;
		case 'h':
			printf("usage: pod-start [--replicas 50,100,150,200] [--sequential]\n"
			       "                 [--first-svid-delay-ms MS] [--output-dir DIR]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (getuid() != 0) {
		fprintf(stderr, "pod-start: needs root (mounts)\n");
		return 77;
	}
	grpc_init();
	if (stack_enter_private_mount_ns() < 0)
		return 1;
	StackOptions o = {.first_svid_delay_ms = delay_ms, .publish_timeout_s = 60};
	if (stack_start(&o, &S) < 0)
		return 1;

	Run runs[MAX_RUNS];
	for (int i = 0; i < n_runs; i++) {
		run_one(replicas[i], sequential, &runs[i]);
		print_run(stdout, &runs[i], sequential, delay_ms);
		fflush(stdout);
	}
	stack_free(S);

	char stamp[32], jpath[512], tpath[512];
	time_t now = time(NULL);
	strftime(stamp, sizeof stamp, "%Y%m%d_%H%M%S", localtime(&now));
	snprintf(jpath, sizeof jpath, "%s/perf_test_%s.json", outdir, stamp);
	snprintf(tpath, sizeof tpath, "%s/perf_test_%s.txt", outdir, stamp);
	FILE *j = fopen(jpath, "w"), *t = fopen(tpath, "w");
	if (!j || !t) {
		fprintf(stderr, "pod-start: cannot write %s: %s\n", jpath, strerror(errno));
		return 1;
	}
	fprintf(j, "[\n");
	for (int i = 0; i < n_runs; i++) {
		const Run *r = &runs[i];
		fprintf(j,
			"  {\"replicas\": %d, \"total_test_time_seconds\": %.3f, "
			"\"all_pods_running_time_seconds\": %.3f, \"avg_startup_time\": %.3f, "
			"\"min_startup_time\": %.3f, \"max_startup_time\": %.3f, "
			"\"p50_startup_time\": %.3f, \"p90_startup_time\": %.3f, "
			"\"p99_startup_time\": %.3f, \"successful_mounts\": %d, "
			"\"failed_mounts\": %d, \"mount_success_rate\": %.1f}%s\n",
			r->replicas, r->total, r->all_ready, r->avg, r->min, r->max, r->p50, r->p90,
			r->p99, r->ok, r->failed, r->rate, i + 1 < n_runs ? "," : "");
	}
	fprintf(j, "]\n");
	fprintf(t, "svidfs-csi pod-start performance test, %s\n\n", stamp);
	for (int i = 0; i < n_runs; i++)
		print_run(t, &runs[i], sequential, delay_ms);
	fclose(j);
	fclose(t);
	printf("Results written to %s and %s\n", jpath, tpath);
	grpc_shutdown();
	int failed = 0;
	for (int i = 0; i < n_runs; i++)
		failed += runs[i].failed;
	return failed ? 1 : 0;
}
