// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "memscan.h"
#include "secret.h"

static const char *const kind_name[_MEMSCAN_KIND_MAX] = {"der", "pem", "b64", "scalar",
							 "b64frag"};

typedef struct Needle {
	uint8_t *p; /* secure */
	size_t len;
	MemScanKind kind;
	size_t key;
	uint64_t anchor; /* its last 8 bytes */
	uint32_t next;   /* next needle (+1) with the same anchor slot, 0 = none */
} Needle;

/* Open addressing over the needles' last 8 bytes: a needle's start moves with its end. */
#define SLOTS 4096
#define CHUNK (1u << 20)

struct MemScan {
	FILE *out;
	bool verbose;
	Needle *needles; /* secure: the anchors are key bytes */
	size_t n_needles, cap_needles, max_len, n_keys;
	uint32_t slot_first[SLOTS];
	uint8_t pairs[65536 / 8]; /* the first two bytes of each anchor: a cheap prefilter */
	unsigned needles_of_kind[_MEMSCAN_KIND_MAX];
	uint64_t hits[_MEMSCAN_KIND_MAX][2]; /* [kind][unsafe] */
	uint8_t *chunk;                      /* secure: holds copies of what it reads */
};

typedef struct Region {
	uint64_t start, end;
	char perms[5];
	char path[256];
	bool locked, dontdump;
	uint64_t resident_kb; /* Rss + Swap */
} Region;

static uint32_t slot_of(uint64_t a)
{
	return (uint32_t)((a * 0x9e3779b97f4a7c15ull) >> 52);
}

int memscan_new(FILE *out, bool verbose, MemScan **ret)
{
	MemScan *m = OPENSSL_secure_zalloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->out = out;
	m->verbose = verbose;
	*ret = m;
	return 0;
}

MemScan *memscan_free(MemScan *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n_needles; i++)
		OPENSSL_secure_clear_free(m->needles[i].p, m->needles[i].len);
	OPENSSL_secure_clear_free(m->needles, m->cap_needles * sizeof(Needle));
	OPENSSL_secure_clear_free(m->chunk, m->max_len + CHUNK);
	OPENSSL_secure_clear_free(m, sizeof(*m));
	return NULL;
}

static int add_needle(MemScan *m, const uint8_t *p, size_t len, MemScanKind kind, size_t key)
{
	if (len < 8)
		return 0;
	if (m->chunk)
		return -EBUSY; /* needles are added before the first search */
	if (m->n_needles == m->cap_needles) {
		size_t cap = m->cap_needles ? 2 * m->cap_needles : 64;
		Needle *v = OPENSSL_secure_zalloc(cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		if (m->needles)
			memcpy(v, m->needles, m->n_needles * sizeof(*v));
		OPENSSL_secure_clear_free(m->needles, m->cap_needles * sizeof(*v));
		m->needles = v;
		m->cap_needles = cap;
	}
	Needle *n = &m->needles[m->n_needles];
	n->p = OPENSSL_secure_malloc(len);
	if (!n->p)
		return -ENOMEM;
	memcpy(n->p, p, len);
	n->len = len;
	n->kind = kind;
	n->key = key;
	memcpy(&n->anchor, p + len - 8, 8);
	uint16_t pair;
	memcpy(&pair, p + len - 8, 2);
	m->pairs[pair / 8] |= (uint8_t)(1u << (pair % 8));
	uint32_t s = slot_of(n->anchor);
	n->next = m->slot_first[s];
	m->slot_first[s] = (uint32_t)++m->n_needles;
	if (len > m->max_len)
		m->max_len = len;
	m->needles_of_kind[kind]++;
	return 0;
}

/* ECPrivateKey inside PKCS#8 (RFC 5915): version INTEGER 1, then privateKey OCTET STRING. Read
 * structurally: parsing with OpenSSL would leave copies of its own in this process. */
static const uint8_t *ec_scalar(const uint8_t *der, size_t len, size_t *ret_len)
{
	static const uint8_t ec_oid[] = {0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
	static const uint8_t v1_octets[] = {0x02, 0x01, 0x01, 0x04};

	if (!memmem(der, len, ec_oid, sizeof(ec_oid)))
		return NULL;
	const uint8_t *p = memmem(der, len, v1_octets, sizeof(v1_octets));
	if (!p || (size_t)(p - der) + 5 > len)
		return NULL;
	size_t n = p[4];
	if (n < 16 || n > 0x7f || (size_t)(p - der) + 5 + n > len)
		return NULL;
	*ret_len = n;
	return p + 5;
}

int memscan_add_key(MemScan *m, const uint8_t *der, size_t len)
{
	if (!der || len == 0 || len > 16384)
		return -EINVAL;
	size_t key = m->n_keys++;
	size_t b64_len = (len + 2) / 3 * 4;
	size_t pem_len = b64_len + (b64_len + 63) / 64;
	uint8_t *b64 = OPENSSL_secure_malloc(b64_len + 1);
	uint8_t *pem = OPENSSL_secure_malloc(pem_len);
	int r = b64 && pem ? 0 : -ENOMEM;

	if (r == 0)
		r = add_needle(m, der, len, MEMSCAN_DER, key);
	if (r == 0) {
		EVP_EncodeBlock(b64, der, (int)len);
		size_t o = 0;
		for (size_t c = 0; c < b64_len; c += 64) {
			size_t n = b64_len - c < 64 ? b64_len - c : 64;
			memcpy(pem + o, b64 + c, n);
			o += n;
			pem[o++] = '\n';
		}
		r = add_needle(m, pem, pem_len, MEMSCAN_PEM, key);
	}
	if (r == 0)
		r = add_needle(m, b64, b64_len, MEMSCAN_B64, key);
	size_t sl;
	const uint8_t *sc = r == 0 ? ec_scalar(der, len, &sl) : NULL;
	if (sc) {
		r = add_needle(m, sc, sl / 2, MEMSCAN_SCALAR, key);
		if (r == 0)
			r = add_needle(m, sc + sl / 2, sl - sl / 2, MEMSCAN_SCALAR, key);
		/* Whole 3-byte groups inside the scalar, cut at the 64-column line breaks. */
		size_t off = (size_t)(sc - der);
		size_t c0 = (off + 2) / 3 * 4, c1 = (off + sl) / 3 * 4;
		for (size_t c = c0; r == 0 && c < c1;) {
			size_t e = (c / 64 + 1) * 64 < c1 ? (c / 64 + 1) * 64 : c1;
			r = add_needle(m, b64 + c, e - c, MEMSCAN_B64FRAG, key);
			c = e;
		}
	}
	OPENSSL_secure_clear_free(b64, b64_len + 1);
	OPENSSL_secure_clear_free(pem, pem_len);
	/* Searching this very process: leave no copy in registers or on the stack. */
	secret_scrub_stack();
	return r < 0 ? r : (int)key;
}

int memscan_add_pem_file(MemScan *m, const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	int r = 0, found = 0;

	if (!bio)
		return -ENOENT;
	for (;;) {
		char *name = NULL, *header = NULL;
		unsigned char *der = NULL;
		long der_len = 0;
		if (PEM_read_bio(bio, &name, &header, &der, &der_len) != 1)
			break;
		if (strcmp(name, "PRIVATE KEY") == 0) {
			r = memscan_add_key(m, der, (size_t)der_len);
			found++;
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_clear_free(der, (size_t)der_len);
		if (r < 0)
			break;
	}
	BIO_free(bio);
	return r < 0 ? r : found;
}

size_t memscan_n_keys(const MemScan *m)
{
	return m->n_keys;
}

/* Searches buf (addresses base..base+len); matches that end within the first `old` bytes were
 * counted with the previous chunk. */
static void search(MemScan *m, const uint8_t *buf, size_t len, size_t old, uint64_t base,
		   const Region *rg, bool unsafe)
{
	for (size_t a = old >= 7 ? old - 7 : 0; a + 8 <= len; a++) {
		uint16_t pair;
		memcpy(&pair, buf + a, 2);
		if (!(m->pairs[pair / 8] & (1u << (pair % 8))))
			continue;
		uint64_t v;
		memcpy(&v, buf + a, 8);
		for (uint32_t i = m->slot_first[slot_of(v)]; i; i = m->needles[i - 1].next) {
			const Needle *n = &m->needles[i - 1];
			if (n->anchor != v || a + 8 < n->len)
				continue;
			size_t s = a + 8 - n->len;
			if (memcmp(buf + s, n->p, n->len) != 0)
				continue;
			m->hits[n->kind][unsafe]++;
			if (m->verbose)
				fprintf(m->out,
					"# hit key %zu %s at 0x%" PRIx64 " in %s %" PRIx64 "-%" PRIx64
					" %s lo=%d dd=%d %s\n",
					n->key, kind_name[n->kind], base + s, rg ? "mapping" : "file",
					rg ? rg->start : 0, rg ? rg->end : 0, rg ? rg->perms : "-",
					rg ? rg->locked : 0, rg ? rg->dontdump : 0, rg ? rg->path : "");
		}
	}
}

/* Reads [start, end) of fd at offset = address (or file offset), chunk by chunk, keeping the
 * last max_len - 1 bytes so that a needle across two chunks is found. */
static int scan_range(MemScan *m, int fd, uint64_t start, uint64_t end, const Region *rg,
		      bool unsafe)
{
	size_t keep = m->max_len - 1, have = 0;
	uint64_t off = start;

	while (off < end) {
		size_t want = end - off < CHUNK ? (size_t)(end - off) : CHUNK;
		ssize_t n = pread(fd, m->chunk + have, want, (off_t)off);
		if (n <= 0) {
			/* A page that cannot be read (a guard page): skip it. */
			if (n < 0 && rg && (errno == EIO || errno == EFAULT)) {
				have = 0;
				off = (off | 4095) + 1;
				continue;
			}
			return n < 0 ? -errno : 0;
		}
		size_t total = have + (size_t)n;
		search(m, m->chunk, total, have, off - have, rg, unsafe);
		size_t k = total < keep ? total : keep;
		memmove(m->chunk, m->chunk + total - k, k);
		have = k;
		off += (uint64_t)n;
	}
	return 0;
}

static int prepare(MemScan *m)
{
	if (m->n_needles == 0)
		return -EINVAL;
	if (!m->chunk)
		m->chunk = OPENSSL_secure_malloc(m->max_len + CHUNK);
	return m->chunk ? 0 : -ENOMEM;
}

/* Every mapping of /proc/<pid>/smaps, read whole first: the target keeps running. */
static int read_regions(const char *pid, Region **ret, size_t *ret_n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/smaps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	Region *v = NULL;
	size_t n = 0, cap = 0;
	char line[1024];
	while (fgets(line, sizeof(line), f)) {
		uint64_t s, e;
		char perms[5];
		int used = 0;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %*s %*s %*s%n", &s, &e, perms,
			   &used) == 3 &&
		    used > 0) {
			if (n == cap) {
				cap = cap ? 2 * cap : 256;
				Region *nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					free(v);
					fclose(f);
					return -ENOMEM;
				}
				v = nv;
			}
			Region *rg = &v[n++];
			*rg = (Region){.start = s, .end = e};
			memcpy(rg->perms, perms, sizeof(perms));
			const char *p = line + used;
			p += strspn(p, " ");
			snprintf(rg->path, sizeof(rg->path), "%.*s", (int)strcspn(p, "\n"), p);
		} else if (n > 0 && (strncmp(line, "Rss:", 4) == 0 || strncmp(line, "Swap:", 5) == 0)) {
			v[n - 1].resident_kb += strtoull(strchr(line, ':') + 1, NULL, 10);
		} else if (n > 0 && strncmp(line, "VmFlags:", 8) == 0) {
			v[n - 1].locked = strstr(line, " lo") != NULL;
			v[n - 1].dontdump = strstr(line, " dd") != NULL;
		}
	}
	fclose(f);
	*ret = v;
	*ret_n = n;
	return 0;
}

int memscan_pid(MemScan *m, pid_t pid)
{
	char id[32], path[64];
	Region *rgs = NULL;
	size_t n = 0;
	int r = prepare(m);

	if (r < 0)
		return r;
	if (pid == 0)
		snprintf(id, sizeof(id), "self");
	else
		snprintf(id, sizeof(id), "%d", (int)pid);
	r = read_regions(id, &rgs, &n);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/proc/%s/mem", id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(rgs);
		return -errno;
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		const Region *rg = &rgs[i];
		bool safe = rg->locked && rg->dontdump;
		/* Mappings nobody can read (reserved arena space, guard pages) or with no page
		 * resident or swapped hold nothing: /proc/PID/mem would read them as zeros. A
		 * mapping over 1 TiB is a sanitizer's shadow memory. */
		if (rg->perms[0] != 'r' || rg->resident_kb == 0 || rg->end - rg->start > (1ull << 40) ||
		    strcmp(rg->path, "[vvar]") == 0 || strcmp(rg->path, "[vsyscall]") == 0 ||
		    (pid == 0 && safe))
			continue;
		r = scan_range(m, fd, rg->start, rg->end, rg, !safe);
	}
	close(fd);
	free(rgs);
	return r;
}

int memscan_file(MemScan *m, const char *path)
{
	int r = prepare(m);
	if (r < 0)
		return r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	off_t size = lseek(fd, 0, SEEK_END);
	r = size < 0 ? -errno : scan_range(m, fd, 0, (uint64_t)size, NULL, true);
	close(fd);
	return r;
}

uint64_t memscan_hits(const MemScan *m, MemScanKind kind, bool unsafe)
{
	return m->hits[kind][unsafe];
}

uint64_t memscan_unsafe_total(const MemScan *m)
{
	uint64_t t = 0;
	for (int k = 0; k < _MEMSCAN_KIND_MAX; k++)
		t += m->hits[k][1];
	return t;
}

void memscan_reset(MemScan *m)
{
	memset(m->hits, 0, sizeof(m->hits));
}

void memscan_report(const MemScan *m, FILE *out, const char *prefix)
{
	for (int k = 0; k < _MEMSCAN_KIND_MAX; k++)
		fprintf(out, "%s%s needles=%u safe=%" PRIu64 " unsafe=%" PRIu64 "\n", prefix,
			kind_name[k], m->needles_of_kind[k], m->hits[k][0], m->hits[k][1]);
	fprintf(out, "%sunsafe_total=%" PRIu64 "\n", prefix, memscan_unsafe_total(m));
}
