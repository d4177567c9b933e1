// SPDX-License-Identifier: Apache-2.0
/* Readers hammer snapshots while writers rotate: no torn read (every rendered credential bundle
 * parses and its key matches its leaf), no lost or duplicated generation, no leak (ASan lane). */
#include <pthread.h>
#include <errno.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <criterion/criterion.h>

#include "render.h"
#include "store.h"
#include "testpki.h"

#define N_READERS 4
#define N_ROTATIONS 300
#define N_KEYS 4

static TestCa ca;
static TestSvid svids[N_KEYS];
static SvidStore *st;
static int done;
static unsigned long reads, torn, errors;

static void setup(void)
{
	char id[64];
	testpki_ca(&ca, "example.org");
	for (int i = 0; i < N_KEYS; i++) {
		snprintf(id, sizeof id, "spiffe://example.org/w/%d", i);
		testpki_svid(&svids[i], &ca, id, i == N_KEYS - 1, NULL);
	}
	cr_assert_eq(svid_store_new(0, &st), 0);
	cr_assert_eq(svid_store_add(st, "pods/a", NULL), 0);
}

static void teardown(void)
{
	svid_store_unref(st);
	for (int i = 0; i < N_KEYS; i++)
		testpki_svid_done(&svids[i]);
	testpki_ca_done(&ca);
}

TestSuite(concurrency, .init = setup, .fini = teardown, .timeout = 240);

/* Parses one credential bundle: key first, then the leaf; 0 when they belong together. */
static int check_bundle(const SvidBlob *b, const char **ret_id)
{
	BIO *bio = BIO_new_mem_buf(svid_blob_data(b), (int)svid_blob_size(b));
	EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	X509 *inter = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	int r = (k && leaf && inter && EVP_PKEY_eq(X509_get0_pubkey(leaf), k) == 1) ? 0 : -1;
	*ret_id = NULL;
	for (int i = 0; r == 0 && i < N_KEYS; i++)
		if (X509_cmp(leaf, svids[i].leaf) == 0)
			*ret_id = svids[i].spiffe_id;
	EVP_PKEY_free(k);
	X509_free(leaf);
	X509_free(inter);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

static void *reader(void *arg)
{
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		SvidSet *set = NULL;
		SvidBlob *b = NULL, *k = NULL, *c = NULL;
		const char *id;
		if (svid_store_get(st, "pods/a", &set) < 0) {
			__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (svid_set_n_svids(set) == 0) {
			svid_set_unref(set);
			continue;
		}
		if (svid_render(set, 0, SVID_FILE_CREDENTIAL_BUNDLE, NULL, &b) < 0 ||
		    svid_render(set, 0, SVID_FILE_KEY, NULL, &k) < 0 ||
		    svid_render(set, 0, SVID_FILE_CERT_CHAIN, NULL, &c) < 0) {
			__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
		} else if (check_bundle(b, &id) < 0 || !id ||
			   strcmp(id, svid_set_spiffe_id(set, 0)) != 0 ||
			   svid_blob_size(b) != svid_blob_size(k) + svid_blob_size(c) ||
			   memcmp(svid_blob_data(b), svid_blob_data(k), svid_blob_size(k)) != 0) {
			/* the three files of one snapshot must agree with each other */
			__atomic_add_fetch(&torn, 1, __ATOMIC_RELAXED);
		}
		__atomic_add_fetch(&reads, 1, __ATOMIC_RELAXED);
		svid_blob_unref(b);
		svid_blob_unref(k);
		svid_blob_unref(c);
		svid_set_unref(set);
	}
	return NULL;
}

Test(concurrency, readers_never_see_a_torn_rotation)
{
	pthread_t t[N_READERS];
	uint64_t last_gen = 0;

	for (int i = 0; i < N_READERS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, reader, NULL), 0);
	for (int i = 0; i < N_ROTATIONS; i++) {
		SvidX509Input in = testpki_input(&svids[i % N_KEYS], NULL);
		SvidX509Update u = {.svids = &in, .n_svids = 1};
		if (i % 50 == 49) {
			in.key = svids[(i + 1) % N_KEYS].pkcs8; /* a bad update now and then */
			in.key_len = svids[(i + 1) % N_KEYS].pkcs8_len;
			cr_assert_lt(svid_store_update_x509(st, "pods/a", "agent", &u, i), 0);
		} else {
			cr_assert_eq(svid_store_update_x509(st, "pods/a", "agent", &u, i), 0);
		}
		SvidSet *set = NULL;
		cr_assert_eq(svid_store_get(st, "pods/a", &set), 0);
		cr_assert_gt(svid_set_generation(set), last_gen);
		last_gen = svid_set_generation(set);
		svid_set_unref(set);
	}
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < N_READERS; i++)
		pthread_join(t[i], NULL);
	cr_assert_gt(reads, N_READERS, "readers ran (%lu reads)", reads);
	cr_assert_eq(torn, 0, "%lu torn reads of %lu", torn, reads);
	cr_assert_eq(errors, 0);
	cr_assert_eq(last_gen, 1 + N_ROTATIONS);
}

static uint64_t gens[1024];
static size_t n_gens;
static pthread_mutex_t gens_lock = PTHREAD_MUTEX_INITIALIZER;

static void record(void *ud, const char *name, uint32_t slot, uint64_t gen, bool removed)
{
	pthread_mutex_lock(&gens_lock);
	if (n_gens < 1024)
		gens[n_gens++] = gen;
	pthread_mutex_unlock(&gens_lock);
}

static void *writer(void *arg)
{
	const TestSvid *s = arg;
	for (int i = 0; i < 100; i++) {
		SvidX509Input in = testpki_input(s, NULL);
		SvidX509Update u = {.svids = &in, .n_svids = 1};
		if (svid_store_update_x509(st, "pods/a", "agent", &u, i) < 0)
			__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

Test(concurrency, concurrent_writers_lose_no_generation)
{
	pthread_t a, b;
	svid_store_set_change_callback(st, record, NULL);
	cr_assert_eq(pthread_create(&a, NULL, writer, &svids[0]), 0);
	cr_assert_eq(pthread_create(&b, NULL, writer, &svids[1]), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	cr_assert_eq(errors, 0);
	cr_assert_eq(n_gens, 200, "one callback per accepted update");
	for (size_t i = 0; i < n_gens; i++)
		for (size_t j = i + 1; j < n_gens; j++)
			cr_assert_neq(gens[i], gens[j], "generation %lu given twice",
				      (unsigned long)gens[i]);
	SvidSet *set = NULL;
	cr_assert_eq(svid_store_get(st, "pods/a", &set), 0);
	cr_assert_eq(svid_set_generation(set), 201);
	svid_set_unref(set);
}

static void *churn_reader(void *arg)
{
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		SvidSet **v = NULL, *s = NULL;
		size_t n = 0;
		if (svid_store_list(st, &v, &n) == 0) {
			for (size_t i = 0; i < n; i++) {
				SvidBlob *b = NULL;
				if (svid_set_n_svids(v[i]) &&
				    svid_render(v[i], 0, SVID_FILE_CERT_CHAIN, NULL, &b) < 0)
					__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
				svid_blob_unref(b);
				svid_set_unref(v[i]);
			}
			free(v);
		}
		for (uint32_t slot = 1; slot <= 8; slot++)
			if (svid_store_get_by_slot(st, slot, &s) == 0) {
				if (svid_set_slot(s) != slot)
					__atomic_add_fetch(&torn, 1, __ATOMIC_RELAXED);
				s = svid_set_unref(s);
			}
		__atomic_add_fetch(&reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

Test(concurrency, add_remove_churn_with_readers)
{
	pthread_t t[2];
	char name[32];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, churn_reader, NULL), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof name, "pods/%d", i % 6);
		if (i % 3 == 2) {
			int r = svid_store_remove(st, name);
			cr_assert(r == 0 || r == -ENOENT);
		} else {
			SvidX509Input in = testpki_input(&svids[i % 2], NULL);
			SvidX509Update u = {.svids = &in, .n_svids = 1};
			cr_assert_eq(svid_store_add(st, name, NULL), 0);
			cr_assert_eq(svid_store_update_x509(st, name, "agent", &u, i), 0);
		}
	}
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(errors, 0);
	cr_assert_eq(torn, 0);
	cr_assert_gt(reads, 0);
	cr_assert_leq(svid_store_count(st), 7);
}
