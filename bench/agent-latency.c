// SPDX-License-Identifier: Apache-2.0
/* agent-latency: how fast an SVID rotation reaches the agent client's callback over a unix
 * socket, and what an open subscription costs in memory. Runs the development agent in a
 * temporary directory. Run by hand: build/bench/agent-latency [-n ROTATIONS] [-s SUBS]
 * [--devagent PATH].
 *
 * Latency is measured from just before the control request "rotate" is written to the moment
 * the callback runs (both CLOCK_MONOTONIC in this process). It therefore includes one control
 * round trip and the minting of a new P-256 SVID by the agent; the control round trip alone
 * ("ping") is measured too, so the push itself is roughly the difference. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"
#include "delegatedidentity.pb-c.h"
#include "fixtures.h"
#include "harness.h"
#include "stream.h"
#include "log.h"

#define WEB_ID "spiffe://" TD "/bench"

static const AgentSelector sel[] = {{"k8s", "pod-uid:bench"}, {"k8s", "ns:bench"}};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	size_t p99 = (n * 99 + 99) / 100;
	if (p99 > 0)
		p99--;
	printf("%-34s n=%zu  median %8.1f us  p99 %8.1f us  min %8.1f us  max %8.1f us\n", what,
	       n, v[n / 2] / 1e3, v[p99] / 1e3, v[0] / 1e3, v[n - 1] / 1e3);
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	long pages = 0, res = 0;
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &res) != 2)
		res = -1;
	fclose(f);
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The client's own share: decoding and checking one typical Delegated API message (one SVID,
 * leaf + intermediate P-256 chain, PKCS#8 key), without gRPC. */
static void bench_convert(void)
{
	FxBuf leaf = fx_cert("leaf", 0), inter = fx_cert("intermediate", 1), key = fx_key();
	ProtobufCBinaryData chain[2] = {{leaf.n, leaf.p}, {inter.n, inter.p}};
	Spire__Api__Types__SPIFFEID id = SPIRE__API__TYPES__SPIFFEID__INIT;
	Spire__Api__Types__X509SVID svid = SPIRE__API__TYPES__X509_SVID__INIT;
	Spire__Api__Agent__Delegatedidentity__V1__X509SVIDWithKey wk =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__X509_SVIDWITH_KEY__INIT;
	Spire__Api__Agent__Delegatedidentity__V1__X509SVIDWithKey *wkp = &wk;
	Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509SVIDsResponse m =
		SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_SVIDS_RESPONSE__INIT;
	id.trust_domain = (char *)TD;
	id.path = (char *)"/ns/default/sa/web";
	svid.id = &id;
	svid.n_cert_chain = 2;
	svid.cert_chain = chain;
	wk.x509_svid = &svid;
	wk.x509_svid_key = (ProtobufCBinaryData){key.n, key.p};
	m.n_x509_svids = 1;
	m.x509_svids = &wkp;
	uint8_t *buf;
	size_t len;
	char why[256];
	stream_pack(&m.base, &buf, &len);
	enum { N = 20000 };
	uint64_t t0 = now_ns();
	for (int i = 0; i < N; i++) {
		ConvertX509 *x = NULL;
		if (convert_delegated_x509(buf, len, &x, why, sizeof(why)) < 0)
			abort();
		convert_x509_free(x);
	}
	printf("decode + checks of one %zu-byte SVID message: %.1f us\n", len,
	       (now_ns() - t0) / 1e3 / N);
	free(buf);
	free(leaf.p);
	free(inter.p);
	free(key.p);
}

static unsigned *counts;

static void count_cb(void *userdata, const SvidX509Update *u)
{
	(void)u;
	__atomic_add_fetch((unsigned *)userdata, 1, __ATOMIC_RELAXED);
}

static bool all_at_least(size_t n_subs, unsigned n, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited++) {
		size_t i = 0;
		while (i < n_subs && __atomic_load_n(&counts[i], __ATOMIC_RELAXED) >= n)
			i++;
		if (i == n_subs)
			return true;
		usleep(1000);
	}
	return false;
}

int main(int argc, char **argv)
{
	const char *devagent = DEVAGENT_PATH;
	unsigned rotations = 300;
	size_t n_subs = 1000;
	static const struct option opts[] = {{"devagent", required_argument, NULL, 'd'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	int c;
	while ((c = getopt_long(argc, argv, "n:s:h", opts, NULL)) >= 0) {
		switch (c) {
		case 'n':
			rotations = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			n_subs = strtoul(optarg, NULL, 10);
			break;
		case 'd':
			devagent = optarg;
			break;
		default:
			printf("usage: %s [-n ROTATIONS] [-s SUBSCRIPTIONS] [--devagent PATH]\n",
			       argv[0]);
			return c == 'h' ? 0 : 2;
		}
	}
	if (rotations < 2 || n_subs < 1) {
		fprintf(stderr, "need at least 2 rotations and 1 subscription\n");
		return 2;
	}
	log_set_max_level(LOG_WARNING);
	bench_convert();

	DevAgent da;
	const char *extra[] = {"--entry", WEB_ID " selectors=k8s:pod-uid:bench,k8s:ns:bench",
			       NULL};
	int r = da_init(&da, devagent);
	if (r >= 0)
		r = da_start(&da, extra);
	if (r < 0) {
		fprintf(stderr, "cannot start %s: %s\n", devagent, strerror(-r));
		da_done(&da);
		return 1;
	}
	char *uri = da_uri(da.admin);
	AgentConnConfig cfg = {.address = uri, .api = AGENT_API_DELEGATED, .name = "bench"};
	AgentConn *conn = NULL;
	if (agent_conn_new(&cfg, &conn) < 0) {
		da_done(&da);
		return 1;
	}

	/* 1. Control round trip alone. */
	uint64_t *v = calloc(rotations, sizeof(*v));
	for (unsigned i = 0; i < rotations; i++) {
		uint64_t t0 = now_ns();
		da_ctl(&da, NULL, "ping", NULL);
		v[i] = now_ns() - t0;
	}
	report("control round trip (ping)", v, rotations);
	uint64_t ping_med;
	qsort(v, rotations, sizeof(*v), cmp_u64);
	ping_med = v[rotations / 2];

	/* Mint the entry's first SVID through one short subscription. */
	Recorder warm;
	AgentSub *ws = NULL;
	rec_init(&warm);
	agent_subscribe_x509(conn, sel, ELEMENTSOF(sel), 0, rec_x509, &warm, &ws);
	if (!rec_wait(&warm, 1, 10000)) {
		fprintf(stderr, "no first message\n");
		return 1;
	}
	agent_sub_cancel(ws);
	rec_done(&warm);
	usleep(100000); /* settle before measuring (not a wait for a condition) */

	/* 2a. Rotation with no stream open (the entry has an SVID, so it is re-minted): control
	 * round trip plus minting, no push. */
	for (unsigned i = 0; i < rotations; i++) {
		uint64_t t0 = now_ns();
		da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL);
		v[i] = now_ns() - t0;
	}
	report("rotate, no stream (ctl + mint)", v, rotations);
	qsort(v, rotations, sizeof(*v), cmp_u64);
	uint64_t mint_med = v[rotations / 2];

	/* 2b. Rotation to callback, one subscription. */
	Recorder rec;
	AgentSub *s = NULL;
	rec_init(&rec);
	agent_subscribe_x509(conn, sel, ELEMENTSOF(sel), 0, rec_x509, &rec, &s);
	if (!rec_wait(&rec, 1, 10000)) {
		fprintf(stderr, "no first message\n");
		return 1;
	}
	size_t n = 0;
	for (unsigned i = 0; i < rotations; i++) {
		unsigned before = rec_updates(&rec);
		uint64_t t0 = now_ns();
		if (da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL) < 0 ||
		    !rec_wait(&rec, before + 1, 5000)) {
			fprintf(stderr, "rotation %u lost\n", i);
			continue;
		}
		v[n++] = rec.last_ns - t0;
		usleep(2000); /* let the machine settle: idle wakeups are part of the real case */
	}
	report("rotate -> callback (1 stream)", v, n);
	qsort(v, n, sizeof(*v), cmp_u64);
	/* rotate->callback = send + mint + push; rotate-without-stream = send + mint + reply. */
	printf("estimated push -> callback (median): %.1f us  (= %.1f - %.1f + %.1f/2)\n",
	       ((double)v[n / 2] - (double)mint_med + (double)ping_med / 2) / 1e3, v[n / 2] / 1e3,
	       mint_med / 1e3, ping_med / 1e3);
	agent_sub_cancel(s);
	rec_done(&rec);

	/* 3. Memory per open subscription, and fan-out of one rotation to all of them. */
	counts = calloc(n_subs, sizeof(*counts));
	AgentSub **subs = calloc(n_subs, sizeof(*subs));
	usleep(200000); /* settle before measuring RSS */
	long before = rss_kib();
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < n_subs; i++)
		agent_subscribe_x509(conn, sel, ELEMENTSOF(sel), 0, count_cb, &counts[i], &subs[i]);
	bool ok = all_at_least(n_subs, 1, 60000);
	uint64_t t_open = now_ns() - t0;
	usleep(200000); /* settle before measuring RSS */
	long after = rss_kib();
	printf("%zu subscriptions open%s in %.0f ms; RSS %ld -> %ld KiB: %.2f KiB per subscription\n",
	       n_subs, ok ? "" : " (NOT ALL GOT A MESSAGE)", t_open / 1e6, before, after,
	       (double)(after - before) / (double)n_subs);
	unsigned fan = 5;
	for (unsigned k = 0; k < fan; k++) {
		t0 = now_ns();
		da_ctl(&da, NULL, "rotate", "target", WEB_ID, NULL);
		ok = all_at_least(n_subs, 2 + k, 30000);
		v[k] = now_ns() - t0;
	}
	report("rotate -> all callbacks (fan-out)", v, fan);
	printf("(fan-out: one rotation pushed to all %zu streams, until the last callback)\n",
	       n_subs);
	for (size_t i = 0; i < n_subs; i++)
		agent_sub_cancel(subs[i]);

	agent_conn_free(conn);
	da_done(&da);
	free(subs);
	free(counts);
	free(v);
	free(uri);
	return 0;
}
