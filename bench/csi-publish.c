// SPDX-License-Identifier: Apache-2.0
/* csi-publish: NodePublishVolume latency from the RPC to readable files, with 1, 100 and 1,000
 * pods already published, sequentially and 8 in parallel, plus NodeUnpublishVolume latency.
 * Drives the real svidfs-csi, daemon and development agent (first-SVID delay 0, so the numbers
 * are the plugin's and the daemon's own cost). Needs root and /dev/fuse. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kubelet.h"
#include "stack.h"

static Stack *S;

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

static double pct(double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* Publishes and waits until status.json is readable through the target (what a pod sees). */
static int publish_readable(Kubelet *k, const KubeletVolume *v, double *ret_s)
{
	char msg[512], p[600], buf[4096];
	double t0 = now_s();
	int r = kubelet_publish(k, v, msg, sizeof msg, 60000);

	if (r != 0) {
		fprintf(stderr, "publish %s: %s %s\n", v->pod_uid, kubelet_code_name(r), msg);
		return -EIO;
	}
	snprintf(p, sizeof p, "%s/status.json", v->target_path);
	for (;;) {
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof buf);
			close(fd);
			if (n > 0)
				break;
		}
		if (now_s() - t0 > 30)
			return -ETIMEDOUT;
		usleep(100);
	}
	*ret_s = now_s() - t0;
	return 0;
}

static int unpublish_timed(Kubelet *k, const KubeletVolume *v, double *ret_s)
{
	char msg[512];
	double t0 = now_s();
	int r = kubelet_unpublish(k, v->volume_id, v->target_path, msg, sizeof msg, 60000);
	if (r != 0) {
		fprintf(stderr, "unpublish %s: %s %s\n", v->pod_uid, kubelet_code_name(r), msg);
		return -EIO;
	}
	*ret_s = now_s() - t0;
	return 0;
}

static KubeletVolume *make_pods(size_t n, const char *ns)
{
	KubeletVolume *v = calloc(n, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		char uid[37], name[32];
		kubelet_random_uid(uid);
		snprintf(name, sizeof name, "p%zu", i);
		kubelet_pod_init(&v[i], stack_kubelet_root(S), uid, ns, name, "default", "spiffe");
	}
	return v;
}

typedef struct {
	KubeletVolume *v;
	size_t from, to;
	double *pub, *unpub;
	bool do_unpub;
	int errors;
} Job;

static void *job_main(void *arg)
{
	Job *j = arg;
	Kubelet *k = NULL;
	kubelet_new(stack_csi_socket(S), &k);
	for (size_t i = j->from; i < j->to; i++) {
		if (j->do_unpub) {
			if (unpublish_timed(k, &j->v[i], &j->unpub[i]) < 0)
				j->errors++;
		} else if (publish_readable(k, &j->v[i], &j->pub[i]) < 0)
			j->errors++;
	}
	kubelet_free(k);
	return NULL;
}

/* Runs publishes (or unpublishes) of v[0..n) over `threads` threads. */
static int run(KubeletVolume *v, size_t n, unsigned threads, bool unpub, double *pub, double *up)
{
	pthread_t t[64];
	Job j[64];
	int errors = 0;

	for (unsigned i = 0; i < threads; i++) {
		j[i] = (Job){.v = v,
			     .from = n * i / threads,
			     .to = n * (i + 1) / threads,
			     .pub = pub,
			     .unpub = up,
			     .do_unpub = unpub};
		pthread_create(&t[i], NULL, job_main, &j[i]);
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		errors += j[i].errors;
	}
	return errors;
}

static void report(const char *what, size_t background, unsigned par, double *v, size_t n,
		   int errors)
{
	qsort(v, n, sizeof *v, cmp_double);
	printf("%-10s %6zu pods %2u-way  n=%-4zu median %8.2f ms  p99 %8.2f ms  max %8.2f ms%s\n",
	       what, background, par, n, pct(v, n, 50) * 1e3, pct(v, n, 99) * 1e3,
	       n ? v[n - 1] * 1e3 : 0, errors ? "  (errors!)" : "");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	size_t samples = 200;
	static const size_t backgrounds[] = {1, 100, 1000};
	int c;

	while ((c = getopt(argc, argv, "n:h")) >= 0) {
		if (c == 'n')
			samples = (size_t)atoi(optarg);
		else {
			printf("usage: csi-publish [-n samples per cell (default 200)]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (getuid() != 0) {
		fprintf(stderr, "csi-publish: needs root (mounts)\n");
		return 77;
	}
	grpc_init();
	if (stack_enter_private_mount_ns() < 0)
		return 1;
	StackOptions o = {.first_svid_delay_ms = 0};
	if (stack_start(&o, &S) < 0)
		return 1;

	printf("# svidfs-csi publish latency: NodeGetCapabilities + NodePublishVolume until "
	       "status.json is readable through the target; unpublish: NodeUnpublishVolume\n");
	KubeletVolume *bg = make_pods(backgrounds[2], "background");
	double *scratch = calloc(backgrounds[2], sizeof(double));
	size_t have = 0;
	int errors = 0;
	for (size_t b = 0; b < 3; b++) {
		/* Fill up to the background count (excluded from the numbers). */
		errors += run(bg + have, backgrounds[b] - have, 8, false, scratch, NULL);
		have = backgrounds[b];
		for (unsigned par = 1; par <= 8; par += 7) {
			KubeletVolume *v = make_pods(samples, "measured");
			double *pub = calloc(samples, sizeof(double)),
			       *up = calloc(samples, sizeof(double));
			int e1 = run(v, samples, par, false, pub, up);
			int e2 = run(v, samples, par, true, pub, up);
			report("publish", have, par, pub, samples, e1);
			report("unpublish", have, par, up, samples, e2);
			errors += e1 + e2;
			free(pub);
			free(up);
			free(v);
		}
	}
	errors += run(bg, have, 8, true, scratch, scratch);
	free(scratch);
	free(bg);
	stack_free(S);
	grpc_shutdown();
	return errors ? 1 : 0;
}
