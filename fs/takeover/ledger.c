// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "cleanup.h"
#include "ledger.h"
#include "macro.h"

#define LEDGER_MAGIC UINT64_C(0x7376696466736c31) /* "svidfsl1" */
#define EMPTY UINT64_C(0)
#define TOMB UINT64_MAX

typedef struct Entry {
	uint64_t ino; /* written last (release), so a crash never leaves a half entry visible */
	uint64_t size;
	uint8_t digest[SHA256_DIGEST_LENGTH];
} Entry;

typedef struct Header {
	uint64_t magic;
	uint64_t capacity;   /* power of two */
	uint64_t rebuilding; /* non-zero while entries are being moved: contents untrustworthy */
	uint64_t used, tombs;
	uint64_t n_slots;    /* workload slot table after the entries (0 in older ledgers) */
	uint64_t pad[2];
} Header;

/* Which workload a slot held: its name and directory serial (its directory's inode number). */
typedef struct Slot {
	uint64_t dir_serial; /* 0: free; written last on set, first on clear */
	char name[LEDGER_NAME_MAX + 1];
} Slot;

struct InoLedger {
	int fd;
	size_t map_len;
	Header *h;
	Entry *e;
	Slot *slots;
	pthread_mutex_t lock;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	return x;
}

static size_t map_size(size_t capacity, size_t n_slots)
{
	return sizeof(Header) + capacity * sizeof(Entry) + n_slots * sizeof(Slot);
}

static int ledger_map(int fd, size_t capacity, size_t n_slots, bool create, InoLedger **ret)
{
	size_t len = map_size(capacity, n_slots);
	InoLedger *l;
	void *p;

	if (create && ftruncate(fd, (off_t)len) < 0)
		return negative_errno();
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return negative_errno();
	l = calloc(1, sizeof *l);
	if (!l) {
		munmap(p, len);
		return -ENOMEM;
	}
	l->fd = fd;
	l->map_len = len;
	l->h = p;
	l->e = (Entry *)((Header *)p + 1);
	l->slots = (Slot *)(l->e + capacity);
	pthread_mutex_init(&l->lock, NULL);
	*ret = l;
	return 0;
}

int ino_ledger_new(size_t capacity, InoLedger **ret)
{
	size_t cap = 1024;
	int fd, r;

	if (capacity == 0)
		capacity = 65536;
	while (cap < capacity)
		cap <<= 1;
	fd = memfd_create("svidfs-ledger", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return negative_errno();
	r = ledger_map(fd, cap, LEDGER_SLOTS, true, ret);
	if (r < 0) {
		close(fd);
		return r;
	}
	(*ret)->h->capacity = cap;
	(*ret)->h->n_slots = LEDGER_SLOTS;
	__atomic_store_n(&(*ret)->h->magic, LEDGER_MAGIC, __ATOMIC_RELEASE);
	/* Only grows by replacement: forbid shrinking under a reader's mapping. */
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
	return 0;
}

int ino_ledger_adopt(int fd, InoLedger **ret)
{
	struct stat st;
	Header h;
	int r;

	if (fstat(fd, &st) < 0)
		return negative_errno();
	if ((size_t)st.st_size < sizeof h || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
		return -EINVAL;
	if (h.magic != LEDGER_MAGIC || h.capacity == 0 || (h.capacity & (h.capacity - 1)) ||
	    h.n_slots > 1u << 20 || map_size(h.capacity, h.n_slots) != (size_t)st.st_size)
		return -EINVAL;
	r = ledger_map(fd, h.capacity, h.n_slots, false, ret);
	if (r < 0)
		return r;
	if ((*ret)->h->rebuilding) {
		/* A crash mid-rebuild: forget everything rather than trust a half-moved table. */
		memset((*ret)->e, 0, h.capacity * sizeof(Entry));
		(*ret)->h->used = (*ret)->h->tombs = 0;
		(*ret)->h->rebuilding = 0;
	}
	return 0;
}

InoLedger *ino_ledger_free(InoLedger *l)
{
	if (!l)
		return NULL;
	munmap(l->h, l->map_len);
	close(l->fd);
	pthread_mutex_destroy(&l->lock);
	free(l);
	return NULL;
}

int ino_ledger_fd(const InoLedger *l)
{
	return l->fd;
}

/* Index of ino's entry, or of the first free slot for it (*found = false). -ENOSPC if neither. */
static long find(InoLedger *l, uint64_t ino, bool *found)
{
	uint64_t mask = l->h->capacity - 1;
	long free_slot = -1;

	for (uint64_t i = 0, k = mix(ino) & mask; i <= mask; i++, k = (k + 1) & mask) {
		uint64_t cur = __atomic_load_n(&l->e[k].ino, __ATOMIC_ACQUIRE);
		if (cur == ino) {
			*found = true;
			return (long)k;
		}
		if (cur == TOMB && free_slot < 0)
			free_slot = (long)k;
		if (cur == EMPTY) {
			*found = false;
			return free_slot >= 0 ? free_slot : (long)k;
		}
	}
	*found = false;
	return free_slot >= 0 ? free_slot : -ENOSPC;
}

static void put(InoLedger *l, long k, uint64_t ino, uint64_t size, const uint8_t *digest)
{
	l->e[k].size = size;
	memcpy(l->e[k].digest, digest, SHA256_DIGEST_LENGTH);
	__atomic_store_n(&l->e[k].ino, ino, __ATOMIC_RELEASE);
}

/* Reinserts every live entry so tombstones stop lengthening probes. */
static int rebuild(InoLedger *l)
{
	size_t cap = l->h->capacity;
	_cleanup_free_ Entry *copy = malloc(cap * sizeof(Entry));

	if (!copy)
		return -ENOMEM;
	memcpy(copy, l->e, cap * sizeof(Entry));
	__atomic_store_n(&l->h->rebuilding, 1, __ATOMIC_RELEASE);
	memset(l->e, 0, cap * sizeof(Entry));
	l->h->used = l->h->tombs = 0;
	for (size_t i = 0; i < cap; i++) {
		bool found;
		if (copy[i].ino == EMPTY || copy[i].ino == TOMB)
			continue;
		long k = find(l, copy[i].ino, &found);
		put(l, k, copy[i].ino, copy[i].size, copy[i].digest);
		l->h->used++;
	}
	__atomic_store_n(&l->h->rebuilding, 0, __ATOMIC_RELEASE);
	return 0;
}

int ino_ledger_record(InoLedger *l, uint64_t ino, const void *data, size_t len)
{
	uint8_t d[SHA256_DIGEST_LENGTH];
	bool found;
	long k;
	int r = 0;

	if (ino == EMPTY || ino == TOMB)
		return -EINVAL;
	SHA256(data, len, d);
	pthread_mutex_lock(&l->lock);
	if (l->h->tombs > l->h->capacity / 4)
		rebuild(l);
	if (l->h->used + l->h->tombs >= l->h->capacity - l->h->capacity / 8) {
		r = -ENOSPC; /* keep probes short and one slot free */
		goto out;
	}
	k = find(l, ino, &found);
	if (k < 0) {
		r = (int)k;
		goto out;
	}
	if (!found) {
		if (l->e[k].ino == TOMB)
			l->h->tombs--;
		l->h->used++;
	}
	put(l, k, ino, len, d);
out:
	pthread_mutex_unlock(&l->lock);
	return r;
}

int ino_ledger_forget(InoLedger *l, uint64_t ino)
{
	bool found;
	long k;
	int r = -ENOENT;

	pthread_mutex_lock(&l->lock);
	k = find(l, ino, &found);
	if (k >= 0 && found) {
		__atomic_store_n(&l->e[k].ino, TOMB, __ATOMIC_RELEASE);
		l->h->used--;
		l->h->tombs++;
		r = 0;
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

int ino_ledger_check(InoLedger *l, uint64_t ino, const void *data, size_t len)
{
	uint8_t d[SHA256_DIGEST_LENGTH];
	bool found;
	long k;
	int r = -ENOENT;

	SHA256(data, len, d);
	pthread_mutex_lock(&l->lock);
	k = find(l, ino, &found);
	if (k >= 0 && found)
		r = (l->e[k].size == len && CRYPTO_memcmp(l->e[k].digest, d, sizeof d) == 0)
			    ? 0
			    : -ESTALE;
	pthread_mutex_unlock(&l->lock);
	OPENSSL_cleanse(d, sizeof d);
	return r;
}

size_t ino_ledger_count(InoLedger *l)
{
	size_t n;
	pthread_mutex_lock(&l->lock);
	n = l->h->used;
	pthread_mutex_unlock(&l->lock);
	return n;
}

int ino_ledger_set_workload(InoLedger *l, uint32_t slot, uint64_t dir_serial, const char *name)
{
	if (slot >= l->h->n_slots)
		return -ENOSPC;
	if (name && (strlen(name) > LEDGER_NAME_MAX || dir_serial == 0))
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	Slot *s = &l->slots[slot];
	/* A crash between the two stores leaves the slot free, never half-named. */
	__atomic_store_n(&s->dir_serial, 0, __ATOMIC_RELEASE);
	if (name) {
		memset(s->name, 0, sizeof s->name);
		memcpy(s->name, name, strlen(name));
		__atomic_store_n(&s->dir_serial, dir_serial, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&l->lock);
	return 0;
}

int ino_ledger_find_workload(InoLedger *l, const char *name, uint32_t *ret_slot,
			     uint64_t *ret_dir_serial)
{
	int r = -ENOENT;

	pthread_mutex_lock(&l->lock);
	for (uint64_t i = 0; i < l->h->n_slots; i++) {
		Slot *s = &l->slots[i];
		uint64_t serial = __atomic_load_n(&s->dir_serial, __ATOMIC_ACQUIRE);
		if (serial == 0 || strncmp(s->name, name, sizeof s->name) != 0)
			continue;
		*ret_slot = (uint32_t)i;
		*ret_dir_serial = serial;
		r = 0;
		break;
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}
