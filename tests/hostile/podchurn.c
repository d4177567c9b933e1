// SPDX-License-Identifier: Apache-2.0
/* podchurn: registers or unregisters many pods over one control connection, as a node's CSI
 * plugin does when pods come and go (tests and memory measurements).
 *
 *   podchurn register SOCKET N SEED [MOUNTPOINT]
 *       registers pods SEED..SEED+N-1 (pod UID derived from the number, namespace ns1, service
 *       account sa1), then waits until each has its first SVID; with MOUNTPOINT, then reads
 *       each pod's credential bundle once, as the pod's process would
 *   podchurn unregister SOCKET N SEED
 *       releases the same pods
 * Prints "<op> n=N seconds=S"; exit 0 when every request succeeded. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctlclient.h"
#include "kv.h"

#define TIMEOUT_MS 30000

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pod_uid(unsigned long n, char *buf, size_t len)
{
	snprintf(buf, len, "c0ffee00-0000-4000-8000-%012lx", n);
}

/* One request; 0 when the reply's status is 0. */
static int call(CtlClient *c, KvMsg *req, const char *what, const char *uid)
{
	KvMsg *reply = NULL;
	int r = ctl_client_call(c, req, TIMEOUT_MS, &reply);
	if (r >= 0)
		r = ctl_reply_status(reply);
	if (r < 0)
		fprintf(stderr, "podchurn: %s %s: %s\n", what, uid,
			reply ? ctl_reply_error(reply) : strerror(-r));
	kv_free(reply);
	kv_free(req);
	return r;
}

static int do_one(CtlClient *c, const char *op, unsigned long n)
{
	char uid[64], workload[80], ref[80];
	KvMsg *req = NULL;

	pod_uid(n, uid, sizeof(uid));
	snprintf(workload, sizeof(workload), "pods/%s", uid);
	snprintf(ref, sizeof(ref), "vol-%s", uid);
	if (kv_new(&req) < 0 || kv_add(req, "op", op) < 0)
		return -ENOMEM;
	if (strcmp(op, "register") == 0) {
		kv_add(req, "pod_uid", uid);
		kv_add(req, "namespace", "ns1");
		kv_add(req, "service_account", "sa1");
		kv_add(req, "pod_name", "pod-1");
		kv_add(req, "ref", ref);
	} else if (strcmp(op, "wait") == 0) {
		kv_add(req, "workload", workload);
		kv_addf(req, "timeout_ms", "%d", TIMEOUT_MS);
	} else {
		kv_add(req, "workload", workload);
		kv_add(req, "ref", ref);
	}
	return call(c, req, op, uid);
}

static int read_bundle(const char *mnt, unsigned long n)
{
	char uid[64], path[512], buf[16384];
	pod_uid(n, uid, sizeof(uid));
	snprintf(path, sizeof(path), "%s/pods/%s/credential-bundle.private-key.pem", mnt, uid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0) {
		fprintf(stderr, "podchurn: read %s: %m\n", path);
		return -EIO;
	}
	return 0;
}

int main(int argc, char **argv)
{
	CtlClient *c = NULL;
	char *end;
	int failed = 0;

	if (argc < 5 || argc > 6 ||
	    (strcmp(argv[1], "register") != 0 && strcmp(argv[1], "unregister") != 0)) {
		fprintf(stderr, "usage: podchurn register|unregister SOCKET N SEED [MOUNTPOINT]\n");
		return 2;
	}
	unsigned long n = strtoul(argv[3], &end, 10);
	unsigned long seed = *end ? 0 : strtoul(argv[4], &end, 10);
	if (*end || n == 0) {
		fprintf(stderr, "podchurn: bad N or SEED\n");
		return 2;
	}
	int r = ctl_client_connect(argv[2], TIMEOUT_MS, &c);
	if (r < 0) {
		fprintf(stderr, "podchurn: %s: %s\n", argv[2], strerror(-r));
		return 1;
	}
	double t0 = now_s();
	bool reg = strcmp(argv[1], "register") == 0;
	for (unsigned long i = 0; i < n; i++)
		failed += do_one(c, reg ? "register" : "unregister", seed + i) < 0;
	for (unsigned long i = 0; reg && i < n; i++)
		failed += do_one(c, "wait", seed + i) < 0;
	for (unsigned long i = 0; reg && argc == 6 && i < n; i++)
		failed += read_bundle(argv[5], seed + i) < 0;
	printf("%s n=%lu seconds=%.2f failed=%d\n", argv[1], n, now_s() - t0, failed);
	ctl_client_free(c);
	return failed ? 1 : 0;
}
