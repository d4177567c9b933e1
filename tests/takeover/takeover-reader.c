// SPDX-License-Identifier: Apache-2.0
/* takeover-reader: a pod's reader for the takeover tests. Opens, reads whole and closes FILE in
 * a tight loop until SIGTERM, and checks every read is a whole, valid credential bundle (PEM
 * private key then certificates; the key matches the leaf). Content equal to the last checked
 * one is not parsed again (the loop stays tight). Writes to OUT at exit:
 *   reads=N errors=N invalid=N generations=N max_gap_us=N last_error=...
 * and, while running, "started" after the first completed read (scripts wait for it) and one
 * line "gap <start_us> <len_us>" for every pause between two completed reads longer than 20 ms
 * (wall clock), for the bench.
 * ESTALE (the daemon's answer for an inode of a previous daemon whose bytes it cannot vouch
 * for) is counted apart from other errors.
 *   takeover-reader FILE OUT [direct]
 * "direct" opens with O_DIRECT: every read goes to the daemon instead of the page cache. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILE (256 * 1024)

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int open_flags = O_RDONLY | O_CLOEXEC;

static ssize_t read_whole(const char *path, char *buf, size_t cap)
{
	int fd = open(path, open_flags);
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

/* 0 when buf is a whole bundle whose key matches its leaf. */
static int valid(const char *buf, size_t len)
{
	static const char end[] = "-----END CERTIFICATE-----\n";
	BIO *b = BIO_new_mem_buf(buf, (int)len);
	EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	X509 *leaf = key ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int r = leaf && X509_check_private_key(leaf, key) == 1 && len >= sizeof end - 1 &&
			memcmp(buf + len - (sizeof end - 1), end, sizeof end - 1) == 0
		? 0
		: -EBADMSG;
	ERR_clear_error();
	X509_free(leaf);
	EVP_PKEY_free(key);
	BIO_free(b);
	return r;
}

int main(int argc, char **argv)
{
	static char buf[MAX_FILE], last[MAX_FILE];
	size_t last_len = 0;
	uint64_t reads = 0, errors = 0, stale = 0, invalid = 0, gens = 0;
	int64_t prev, max_gap = 0;
	char last_error[128] = "none";
	struct sigaction sa = {.sa_handler = on_term};
	FILE *out;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: takeover-reader FILE OUT [direct]\n");
		return 2;
	}
	if (argc == 4 && strcmp(argv[3], "direct") == 0)
		open_flags |= O_DIRECT;
	out = fopen(argv[2], "we");
	if (!out)
		return 2;
	setvbuf(out, NULL, _IOLBF, 0);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	prev = now_us();
	while (!stop) {
		ssize_t n = read_whole(argv[1], buf, sizeof buf);
		int64_t t = now_us();
		if (n == -ESTALE) {
			stale++;
			continue;
		}
		if (n < 0) {
			errors++;
			snprintf(last_error, sizeof last_error, "%s", strerror((int)-n));
			continue;
		}
		if (reads++ == 0)
			fprintf(out, "started\n");
		if ((size_t)n != last_len || memcmp(buf, last, (size_t)n) != 0) {
			if (valid(buf, (size_t)n) < 0) {
				invalid++;
				continue;
			}
			memcpy(last, buf, (size_t)n);
			last_len = (size_t)n;
			gens++;
		}
		if (t - prev > max_gap)
			max_gap = t - prev;
		if (t - prev > 20000)
			fprintf(out, "gap %lld %lld\n", (long long)prev, (long long)(t - prev));
		prev = t;
	}
	fprintf(out, "reads=%llu errors=%llu estale=%llu invalid=%llu generations=%llu "
		     "max_gap_us=%lld last_error=%s\n",
		(unsigned long long)reads, (unsigned long long)errors, (unsigned long long)stale,
		(unsigned long long)invalid, (unsigned long long)gens, (long long)max_gap,
		last_error);
	fclose(out);
	return errors || stale || invalid || reads == 0 ? 1 : 0;
}
