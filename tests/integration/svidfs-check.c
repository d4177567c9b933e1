// SPDX-License-Identifier: Apache-2.0
/* svidfs-check: reads svidfs files the way workloads do and checks what they see.
 *
 *   svidfs-check serial FILE
 *       leaf serial (lowercase hex) of the first certificate in FILE
 *   svidfs-check keymatch CERTFILE [KEYFILE]
 *       the key (in KEYFILE, or in CERTFILE itself: credential bundle) matches the leaf
 *   svidfs-check hold FILE
 *       opens FILE, reads it, prints "held <serial>", waits for a line on stdin, then reads the
 *       same fd again (offset 0 and the tail) and checks the bytes are identical and whole
 *   svidfs-check poll FILE TIMEOUT_MS [READY]
 *       opens FILE and waits for POLLIN; exit 0 when woken, 1 on timeout. With READY (a path):
 *       creates it once FILE is open (a change after that wakes the poll)
 *   svidfs-check rotate FILE N READERS -- COMMAND...
 *       N times: run COMMAND (forces a rotation), then open+read FILE until the serial changes;
 *       meanwhile READERS threads open+read+close FILE in a loop and check every read is whole
 *       (key matches the leaf, PEM complete) and never older than a rotation that was already
 *       visible when the read started. Prints "reads=… torn=… stale=… errors=…" and the
 *       rotation latency (median, p99) in microseconds. Exit 0 only without torn/stale/errors.
 *   svidfs-check churn FILE N -- COMMAND...
 *       like rotate without readers, for memory checks: N rotations, nothing held open.
 *   svidfs-check readers FILE THREADS MS [READY STOP]
 *       THREADS threads open+read+close FILE for MS milliseconds and check every read is whole;
 *       prints "reads=… torn=… errors=… serials=…" (distinct serials seen). Exit 0 only
 *       without torn reads or errors. With READY and STOP (paths): creates READY once a read
 *       went through, and stops early once STOP exists (MS is then the bound), so a script
 *       waits for conditions rather than for fixed times.
 *   COMMAND may be "ctl:<path>": a rotate request on the development agent's control socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILE (256 * 1024)

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* open + read whole + close, as a workload does. Returns length or -errno. */
static ssize_t read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, len = 0;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf + len, cap - 1 - (size_t)len)) > 0)
		len += n;
	int e = n < 0 ? -errno : 0;
	close(fd);
	if (e < 0)
		return e;
	buf[len] = 0;
	return len;
}

/* Leaf serial of PEM text; key match check when the text (or keytext) holds a key. Returns 0,
 * -EBADMSG when incomplete or mismatched. */
static int inspect(const char *text, size_t len, const char *keytext, size_t keylen, char *serial,
		   size_t serial_len)
{
	BIO *b = BIO_new_mem_buf(text, (int)len);
	X509 *leaf = NULL;
	EVP_PKEY *key = NULL;
	int r = -EBADMSG;

	if (!b)
		return -ENOMEM;
	/* The credential bundle starts with the key; certificate files start with the leaf. */
	if (strncmp(text, "-----BEGIN PRIVATE KEY-----", 27) == 0)
		key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!leaf)
		goto out;
	if (keytext) {
		BIO *kb = BIO_new_mem_buf(keytext, (int)keylen);
		key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
		BIO_free(kb);
		if (!key)
			goto out;
	}
	if (key && X509_check_private_key(leaf, key) != 1)
		goto out;
	/* A whole file ends with a complete PEM block. */
	static const char end[] = "-----END CERTIFICATE-----\n";
	if (len < sizeof end - 1 || memcmp(text + len - (sizeof end - 1), end, sizeof end - 1) != 0)
		goto out;
	if (serial) {
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
		char *hex = bn ? BN_bn2hex(bn) : NULL;
		if (!hex) {
			BN_free(bn);
			goto out;
		}
		snprintf(serial, serial_len, "%s", hex);
		for (char *p = serial; *p; p++)
			if (*p >= 'A' && *p <= 'F')
				*p = (char)(*p - 'A' + 'a');
		OPENSSL_free(hex);
		BN_free(bn);
	}
	r = 0;
out:
	ERR_clear_error();
	X509_free(leaf);
	EVP_PKEY_free(key);
	return r;
}

/* COMMAND "ctl:<socket>" sends "op=rotate" on one kept-open connection to the development
 * agent's control socket (common/kv.h framing) instead of running a process per rotation. */
static int ctl_fd = -1;

static int ctl_rotate(const char *path)
{
	static const char req[] = "op=rotate\n\n";
	char buf[512];
	size_t len = 0;

	if (ctl_fd < 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
		ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (ctl_fd < 0 || connect(ctl_fd, (struct sockaddr *)&sa, sizeof sa) < 0)
			return -errno;
	}
	if (write(ctl_fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
		return -EIO;
	/* The reply ends with an empty line. */
	while (len < sizeof buf - 1) {
		ssize_t n = read(ctl_fd, buf + len, sizeof buf - 1 - len);
		if (n <= 0)
			return -EIO;
		len += (size_t)n;
		buf[len] = 0;
		if (len >= 2 && strcmp(buf + len - 2, "\n\n") == 0)
			break;
	}
	return strncmp(buf, "status=0\n", 9) == 0 || strstr(buf, "\nstatus=0\n") ? 0 : -EIO;
}

static int run_command(char **argv)
{
	if (strncmp(argv[0], "ctl:", 4) == 0)
		return ctl_rotate(argv[0] + 4);
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (devnull >= 0)
			dup2(devnull, STDOUT_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* ---- rotate ---- */

typedef struct Rotation {
	char serial[128];
	int64_t visible_at;
} Rotation;

static struct {
	const char *file;
	Rotation *rot;
	size_t n_rot; /* published count (atomic) */
	bool stop;
	bool any_read; /* a whole read went through (atomic) */
	uint64_t reads, torn, stale, errors;
	char last_error[256];
} R;

static ssize_t rotation_index(const char *serial, size_t upto)
{
	for (size_t i = upto; i-- > 0;)
		if (strcmp(R.rot[i].serial, serial) == 0)
			return (ssize_t)i;
	return -1;
}

static char seen[64][128];
static size_t n_seen;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_serial(const char *serial)
{
	pthread_mutex_lock(&seen_lock);
	size_t i;
	for (i = 0; i < n_seen; i++)
		if (strcmp(seen[i], serial) == 0)
			break;
	if (i == n_seen && n_seen < 64)
		snprintf(seen[n_seen++], sizeof seen[0], "%s", serial);
	pthread_mutex_unlock(&seen_lock);
}

static void *reader(void *arg)
{
	char *buf = malloc(MAX_FILE), serial[128];
	uint64_t reads = 0, torn = 0, stale = 0, errors = 0;

	while (!__atomic_load_n(&R.stop, __ATOMIC_ACQUIRE)) {
		size_t known = __atomic_load_n(&R.n_rot, __ATOMIC_ACQUIRE);
		ssize_t n = read_file(R.file, buf, MAX_FILE);
		reads++;
		if (n < 0) {
			errors++;
			snprintf(R.last_error, sizeof R.last_error, "read: %s", strerror((int)-n));
			continue;
		}
		if (inspect(buf, (size_t)n, NULL, 0, serial, sizeof serial) < 0) {
			torn++;
			continue;
		}
		__atomic_store_n(&R.any_read, true, __ATOMIC_RELEASE);
		if (known == 0) {
			note_serial(serial);
			continue;
		}
		/* Rotation known-1 was visible before this read began: nothing older may come. */
		size_t now_known = __atomic_load_n(&R.n_rot, __ATOMIC_ACQUIRE);
		ssize_t idx = rotation_index(serial, now_known);
		if (known > 0 && (idx < 0 || (size_t)idx < known - 1)) {
			/* idx < 0: a serial the rotator never saw; allowed only if newer than every
			 * known one, which the rotator will record right after. */
			if (idx >= 0)
				stale++;
		}
	}
	__atomic_add_fetch(&R.reads, reads, __ATOMIC_RELAXED);
	__atomic_add_fetch(&R.torn, torn, __ATOMIC_RELAXED);
	__atomic_add_fetch(&R.stale, stale, __ATOMIC_RELAXED);
	__atomic_add_fetch(&R.errors, errors, __ATOMIC_RELAXED);
	free(buf);
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmd_rotate(const char *file, long n, long readers, char **command)
{
	char *buf = malloc(MAX_FILE);
	pthread_t *t = calloc((size_t)readers + 1, sizeof *t);
	int64_t *lat = calloc((size_t)n + 1, sizeof *lat);
	/* From the agent's reply (it has pushed the new SVID on the stream) to the next open
	 * that returns it: the daemon's part of the latency. */
	int64_t *lat_daemon = calloc((size_t)n + 1, sizeof *lat_daemon);
	int rc = 0;

	R.file = file;
	R.rot = calloc((size_t)n + 1, sizeof *R.rot);
	ssize_t len = read_file(file, buf, MAX_FILE);
	if (len < 0 ||
	    inspect(buf, (size_t)len, NULL, 0, R.rot[0].serial, sizeof R.rot[0].serial) < 0) {
		fprintf(stderr, "cannot read %s\n", file);
		return 2;
	}
	R.rot[0].visible_at = now_us();
	__atomic_store_n(&R.n_rot, 1, __ATOMIC_RELEASE);
	for (long i = 0; i < readers; i++)
		pthread_create(&t[i], NULL, reader, NULL);

	for (long i = 1; i <= n; i++) {
		int64_t start = now_us();
		if (run_command(command) < 0) {
			fprintf(stderr, "rotation command failed at %ld\n", i);
			rc = 1;
			break;
		}
		int64_t sent = now_us();
		char serial[128] = "";
		for (;;) {
			len = read_file(file, buf, MAX_FILE);
			if (len >= 0 &&
			    inspect(buf, (size_t)len, NULL, 0, serial, sizeof serial) == 0 &&
			    strcmp(serial, R.rot[i - 1].serial) != 0)
				break;
			if (now_us() - start > 10 * 1000000) {
				fprintf(stderr, "rotation %ld not visible after 10 s\n", i);
				rc = 1;
				goto done;
			}
		}
		lat[i - 1] = now_us() - start;
		lat_daemon[i - 1] = now_us() - sent;
		snprintf(R.rot[i].serial, sizeof R.rot[i].serial, "%s", serial);
		R.rot[i].visible_at = now_us();
		__atomic_store_n(&R.n_rot, (size_t)i + 1, __ATOMIC_RELEASE);
	}
done:
	__atomic_store_n(&R.stop, true, __ATOMIC_RELEASE);
	for (long i = 0; i < readers; i++)
		pthread_join(t[i], NULL);
	size_t done_n = __atomic_load_n(&R.n_rot, __ATOMIC_ACQUIRE) - 1;
	qsort(lat, done_n, sizeof *lat, cmp_i64);
	printf("rotations=%zu reads=%llu torn=%llu stale=%llu errors=%llu\n", done_n,
	       (unsigned long long)R.reads, (unsigned long long)R.torn, (unsigned long long)R.stale,
	       (unsigned long long)R.errors);
	if (done_n) {
		qsort(lat_daemon, done_n, sizeof *lat_daemon, cmp_i64);
		printf("latency_us median=%lld p99=%lld max=%lld\n", (long long)lat[done_n / 2],
		       (long long)lat[(done_n * 99) / 100], (long long)lat[done_n - 1]);
		printf("sent_to_open_us median=%lld p99=%lld max=%lld\n",
		       (long long)lat_daemon[done_n / 2],
		       (long long)lat_daemon[(done_n * 99) / 100],
		       (long long)lat_daemon[done_n - 1]);
	}
	if (R.errors)
		printf("last_error=%s\n", R.last_error);
	if (R.torn || R.stale || R.errors || done_n != (size_t)n)
		rc = 1;
	free(buf);
	free(t);
	free(lat);
	free(lat_daemon);
	free(R.rot);
	return rc;
}

static char buf[MAX_FILE], kbuf[MAX_FILE], hold_a[MAX_FILE], hold_b[MAX_FILE];

static int cmd_hold(const char *file)
{
	char *a = hold_a, *b = hold_b, serial[128], line[64];
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	ssize_t n = 0, k, m = 0;

	if (fd < 0)
		return 2;
	while ((k = read(fd, a + n, MAX_FILE - 1 - (size_t)n)) > 0)
		n += k;
	a[n] = 0;
	if (inspect(a, (size_t)n, NULL, 0, serial, sizeof serial) < 0)
		return 2;
	printf("held %s\n", serial);
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return 2;
	/* The tail first (a fresh page-cache miss would go to the daemon), then the whole. */
	char tail[64];
	ssize_t tl = pread(fd, tail, sizeof tail, n > 64 ? n - 64 : 0);
	if (tl != (n > 64 ? 64 : n) || memcmp(tail, a + (n > 64 ? n - 64 : 0), (size_t)tl) != 0) {
		printf("tail differs\n");
		return 1;
	}
	while ((k = pread(fd, b + m, MAX_FILE - 1 - (size_t)m, m)) > 0)
		m += k;
	close(fd);
	if (m != n || memcmp(a, b, (size_t)n) != 0) {
		printf("content differs (%zd vs %zd bytes)\n", m, n);
		return 1;
	}
	printf("same %s\n", serial);
	return 0;
}

static int cmd_poll(const char *file, int timeout_ms, const char *ready)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (fd < 0)
		return 2;
	/* The open pins the generation: a rotation from here on wakes the poll below. */
	if (ready) {
		int rfd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (rfd >= 0)
			close(rfd);
	}
	/* The first poll registers interest; svidfs answers POLLIN only after a change. */
	int r = poll(&p, 1, timeout_ms);
	close(fd);
	if (r > 0 && (p.revents & POLLIN)) {
		printf("woken\n");
		return 0;
	}
	printf("timeout\n");
	return 1;
}

static int cmd_readers(const char *file, long threads, long ms, const char *ready,
		       const char *stop)
{
	pthread_t *t = calloc((size_t)threads, sizeof *t);
	bool said = false;

	R.file = file;
	for (long i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, reader, NULL);
	for (long waited = 0; waited < ms; waited += 10) { /* polls the two files */
		if (ready && !said && __atomic_load_n(&R.any_read, __ATOMIC_ACQUIRE)) {
			int fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
			if (fd >= 0)
				close(fd);
			said = true;
		}
		if (stop && access(stop, F_OK) == 0)
			break;
		usleep(10 * 1000);
	}
	__atomic_store_n(&R.stop, true, __ATOMIC_RELEASE);
	for (long i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	printf("reads=%llu torn=%llu errors=%llu serials=%zu\n", (unsigned long long)R.reads,
	       (unsigned long long)R.torn, (unsigned long long)R.errors, n_seen);
	if (R.errors)
		printf("last_error=%s\n", R.last_error);
	free(t);
	return R.torn || R.errors || R.reads == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	char serial[128];
	ssize_t n, kn = 0;

	if (argc >= 3 && strcmp(argv[1], "serial") == 0) {
		n = read_file(argv[2], buf, MAX_FILE);
		if (n < 0 || inspect(buf, (size_t)n, NULL, 0, serial, sizeof serial) < 0)
			return 1;
		printf("%s\n", serial);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "keymatch") == 0) {
		n = read_file(argv[2], buf, MAX_FILE);
		if (argc >= 4)
			kn = read_file(argv[3], kbuf, MAX_FILE);
		if (n < 0 || kn < 0 ||
		    inspect(buf, (size_t)n, argc >= 4 ? kbuf : NULL, (size_t)kn, NULL, 0) < 0) {
			printf("mismatch\n");
			return 1;
		}
		printf("match\n");
		return 0;
	}
	if ((argc == 5 || argc == 7) && strcmp(argv[1], "readers") == 0)
		return cmd_readers(argv[2], atol(argv[3]), atol(argv[4]), argc == 7 ? argv[5] : NULL,
				   argc == 7 ? argv[6] : NULL);
	if (argc == 3 && strcmp(argv[1], "hold") == 0)
		return cmd_hold(argv[2]);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "poll") == 0)
		return cmd_poll(argv[2], atoi(argv[3]), argc == 5 ? argv[4] : NULL);
	if (argc >= 7 && strcmp(argv[1], "rotate") == 0 && strcmp(argv[5], "--") == 0)
		return cmd_rotate(argv[2], atol(argv[3]), atol(argv[4]), argv + 6);
	if (argc >= 6 && strcmp(argv[1], "churn") == 0 && strcmp(argv[4], "--") == 0)
		return cmd_rotate(argv[2], atol(argv[3]), 0, argv + 5);
	fprintf(stderr, "usage: see the comment at the top of svidfs-check.c\n");
	return 2;
}
