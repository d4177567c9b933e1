// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <openssl/evp.h>

#include "delegatedidentity.pb-c.h"
#include "spire_types.pb-c.h"
#include "workload.pb-c.h"

#include "cleanup.h"
#include "jwt.h"
#include "log.h"
#include "macro.h"
#include "secret.h"
#include "server.h"

/* Shorter names for the generated Delegated Identity types. */
typedef Spire__Api__Agent__Delegatedidentity__V1__X509SVIDWithKey DX509SVIDWithKey;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509SVIDsRequest DX509Req;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509SVIDsResponse DX509Resp;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509BundlesResponse DX509BResp;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToX509BundlesResponse__CaCertificatesEntry
	DX509BEntry;
typedef Spire__Api__Agent__Delegatedidentity__V1__FetchJWTSVIDsRequest DJwtReq;
typedef Spire__Api__Agent__Delegatedidentity__V1__FetchJWTSVIDsResponse DJwtResp;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToJWTBundlesResponse DJwtBResp;
typedef Spire__Api__Agent__Delegatedidentity__V1__SubscribeToJWTBundlesResponse__BundlesEntry
	DJwtBEntry;

#define REQUEST_CALLS 8
#define MSG_NO_IDENTITY "no identity issued"

typedef enum Api {
	API_WORKLOAD,
	API_DELEGATED,
	_API_MAX,
} Api;

typedef enum Method {
	M_W_X509,
	M_W_X509_BUNDLES,
	M_W_JWT_SVID,
	M_W_JWT_BUNDLES,
	M_D_X509,
	M_D_X509_BUNDLES,
	M_D_JWT_SVIDS,
	M_D_JWT_BUNDLES,
	_M_MAX,
} Method;

static const struct {
	const char *path;
	Api api;
	bool stream;
	const ProtobufCMessageDescriptor *req;
} methods[_M_MAX] = {
	[M_W_X509] = {"/SpiffeWorkloadAPI/FetchX509SVID", API_WORKLOAD, true,
		      &x509_svidrequest__descriptor},
	[M_W_X509_BUNDLES] = {"/SpiffeWorkloadAPI/FetchX509Bundles", API_WORKLOAD, true,
			      &x509_bundles_request__descriptor},
	[M_W_JWT_SVID] = {"/SpiffeWorkloadAPI/FetchJWTSVID", API_WORKLOAD, false,
			  &jwtsvidrequest__descriptor},
	[M_W_JWT_BUNDLES] = {"/SpiffeWorkloadAPI/FetchJWTBundles", API_WORKLOAD, true,
			     &jwtbundles_request__descriptor},
	[M_D_X509] = {"/spire.api.agent.delegatedidentity.v1.DelegatedIdentity/SubscribeToX509SVIDs",
		      API_DELEGATED, true,
		      &spire__api__agent__delegatedidentity__v1__subscribe_to_x509_svids_request__descriptor},
	[M_D_X509_BUNDLES] = {"/spire.api.agent.delegatedidentity.v1.DelegatedIdentity/SubscribeToX509Bundles",
			      API_DELEGATED, true,
			      &spire__api__agent__delegatedidentity__v1__subscribe_to_x509_bundles_request__descriptor},
	[M_D_JWT_SVIDS] = {"/spire.api.agent.delegatedidentity.v1.DelegatedIdentity/FetchJWTSVIDs",
			   API_DELEGATED, false,
			   &spire__api__agent__delegatedidentity__v1__fetch_jwtsvids_request__descriptor},
	[M_D_JWT_BUNDLES] = {"/spire.api.agent.delegatedidentity.v1.DelegatedIdentity/SubscribeToJWTBundles",
			     API_DELEGATED, true,
			     &spire__api__agent__delegatedidentity__v1__subscribe_to_jwtbundles_request__descriptor},
};

typedef struct Peer {
	bool valid;
	Api api;
	uid_t uid;
	gid_t gid;
	pid_t pid;
} Peer;

typedef struct Instance Instance;
typedef struct Call Call;

typedef enum TagKind {
	TAG_NEW,
	TAG_RECV,
	TAG_SEND,
	TAG_CLOSE,
	TAG_STATUS,
	TAG_SHUTDOWN,
} TagKind;

typedef struct Tag {
	TagKind kind;
	Call *call;
} Tag;

struct Call {
	Server *srv;
	Instance *inst;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	Tag t_new, t_recv, t_send, t_close, t_status;
	unsigned pending;
	int method; /* -1: unknown */
	Peer peer;
	grpc_byte_buffer *recv_bb, *send_bb, *queued_bb, *fault_bb;
	int client_cancelled;
	bool md_sent, first_sent, ended, svid_stream;
	int status_code; /* >= 0: a status waits for the in-flight send */
	char *status_msg;
	char **sel; /* SVID streams: "type:value" */
	size_t n_sel;
	Call *prev, *next; /* open streams */
};

struct Instance {
	grpc_server *server;
	grpc_completion_queue *cq;
	pthread_t thread;
	unsigned live_calls;
	bool shutdown_seen, cq_shutdown;
	Tag t_shutdown;
	Server *srv;
};

typedef struct Listener {
	char *path, *lock_path;
	Api api;
	int fd, lock_fd;
	bool locked; /* only then are the socket and lock file ours to remove */
} Listener;

typedef struct Federation {
	char *td_id; /* "spiffe://td" */
	uint8_t *der;
	size_t len;
	char *jwks;
	EVP_PKEY *jwt_key;
} Federation;

typedef struct EntryState {
	CaLeaf *leaf;
	int64_t mint_due; /* monotonic ms; 0: not demanded */
	int64_t rotate_at;
	uint64_t mints;
} EntryState;

struct Server {
	pthread_mutex_t mu, lifecycle_mu;
	pthread_cond_t cond;        /* timer thread */
	pthread_cond_t stream_cond; /* server_wait_streams */
	char *td, *td_id;
	KeyType key_type;
	uint64_t svid_ttl_ms, jwt_ttl_ms, first_delay_ms, jwt_delay_ms;
	uid_t *auth_uids;
	size_t n_auth_uids;
	bool auto_k8s;
	Ca *ca;
	Registry *reg;
	EVP_PKEY *jwt_key;
	char *jwt_kid, *own_jwks;
	Federation *fed;
	size_t n_fed;

	Listener listeners[_API_MAX];
	Instance *inst;
	Peer *peers;
	size_t n_peers;
	Call *streams;
	unsigned n_svid_streams;
	int wake_fd;
	bool stopping, threads_started;
	pthread_t accept_thread, timer_thread;
	int64_t stall_until, refuse_until, relisten_at;
	uint64_t messages_sent, restarts;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void entry_state_free(void *p)
{
	EntryState *st = p;
	if (!st)
		return;
	ca_leaf_free(st->leaf);
	free(st);
}

static EntryState *entry_state(RegEntry *e)
{
	EntryState *st = reg_entry_data(e);
	if (!st) {
		st = calloc(1, sizeof *st);
		if (st)
			reg_entry_set_data(e, st);
	}
	return st;
}

/* ---- protobuf <-> byte buffers ---- */

/* Packs m, optionally followed by an unknown length-delimited field 15 of pad bytes (parsers
 * skip it, so the message stays valid while it grows). */
static grpc_byte_buffer *pack_bb(const ProtobufCMessage *m, size_t pad)
{
	size_t len = protobuf_c_message_get_packed_size(m), extra = 0;
	uint8_t hdr[11];
	if (pad) {
		hdr[0] = (15 << 3) | 2;
		size_t v = pad, i = 1;
		do {
			hdr[i++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
			v >>= 7;
		} while (v);
		extra = i;
	}
	grpc_slice s = grpc_slice_malloc(len + extra + pad);
	uint8_t *p = GRPC_SLICE_START_PTR(s);
	protobuf_c_message_pack(m, p);
	if (pad) {
		memcpy(p + len, hdr, extra);
		memset(p + len + extra, 'x', pad);
	}
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

static grpc_byte_buffer *raw_bb(const void *p, size_t n)
{
	grpc_slice s = grpc_slice_from_copied_buffer(p, n);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

static ProtobufCMessage *unpack_bb(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader r;
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return NULL;
	grpc_slice flat = grpc_byte_buffer_reader_readall(&r);
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(flat),
							GRPC_SLICE_START_PTR(flat));
	grpc_slice_unref(flat);
	grpc_byte_buffer_reader_destroy(&r);
	return m;
}

/* ---- snapshots ---- */

static void ensure_minted(Server *s, RegEntry *e);

static const Federation *find_federation(Server *s, const char *td_id)
{
	for (size_t i = 0; i < s->n_fed; i++)
		if (streq(s->fed[i].td_id, td_id))
			return &s->fed[i];
	return NULL;
}

/* Matching entries for a caller; demands their SVIDs. *ret_waiting tells whether one of them
 * has no SVID yet. */
static int match_for(Server *s, const char *const *sel, size_t n_sel, unsigned flags,
		     RegEntry ***ret, size_t *ret_n, bool *ret_waiting)
{
	RegEntry **m = NULL;
	size_t n = 0;
	bool waiting = false;
	int r = registry_match(s->reg, sel, n_sel, flags, &m, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		ensure_minted(s, m[i]);
		EntryState *st = reg_entry_data(m[i]);
		if (!st || !st->leaf)
			waiting = true;
	}
	*ret = m;
	*ret_n = n;
	if (ret_waiting)
		*ret_waiting = waiting;
	return 0;
}

/* Union of the entries' federates_with (only of minted entries when minted_only), sorted and
 * unique. */
static int federates_with_union(RegEntry **m, size_t n, bool minted_only, char ***ret,
				size_t *ret_n)
{
	char **v = NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		EntryState *st = reg_entry_data(m[i]);
		if (minted_only && (!st || !st->leaf))
			continue;
		for (size_t j = 0; j < reg_entry_n_federates_with(m[i]); j++) {
			const char *f = reg_entry_federates_with(m[i], j);
			bool dup = false;
			for (size_t q = 0; q < k && !dup; q++)
				dup = streq(v[q], f);
			if (dup)
				continue;
			char **p = realloc(v, (k + 1) * sizeof *p);
			if (!p) {
				free(v);
				return -ENOMEM;
			}
			v = p;
			v[k++] = (char *)f;
		}
	}
	/* insertion sort: small */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*ret = v;
	*ret_n = k;
	return 0;
}

static grpc_byte_buffer *build_delegated_x509(Server *s, RegEntry **m, size_t n, size_t pad)
{
	DX509Resp resp = SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_SVIDS_RESPONSE__INIT;
	_cleanup_free_ DX509SVIDWithKey *items = calloc(n ? n : 1, sizeof *items);
	_cleanup_free_ DX509SVIDWithKey **pitems = calloc(n ? n : 1, sizeof *pitems);
	_cleanup_free_ Spire__Api__Types__X509SVID *svids = calloc(n ? n : 1, sizeof *svids);
	_cleanup_free_ Spire__Api__Types__SPIFFEID *ids = calloc(n ? n : 1, sizeof *ids);
	_cleanup_free_ ProtobufCBinaryData *chains = NULL;
	_cleanup_free_ char **fw = NULL;
	size_t n_fw = 0, total_chain = 0, k = 0, c = 0;

	if (!items || !pitems || !svids || !ids)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		EntryState *st = reg_entry_data(m[i]);
		if (st && st->leaf)
			total_chain += ca_leaf_chain_len(st->leaf);
	}
	if (!(chains = calloc(total_chain ? total_chain : 1, sizeof *chains)))
		return NULL;
	if (federates_with_union(m, n, true, &fw, &n_fw) < 0)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		EntryState *st = reg_entry_data(m[i]);
		if (!st || !st->leaf)
			continue;
		spire__api__types__spiffeid__init(&ids[k]);
		ids[k].trust_domain = (char *)reg_entry_trust_domain(m[i]);
		ids[k].path = (char *)reg_entry_path(m[i]);
		spire__api__types__x509_svid__init(&svids[k]);
		svids[k].id = &ids[k];
		svids[k].expires_at = ca_leaf_not_after(st->leaf);
		svids[k].hint = (char *)reg_entry_hint(m[i]);
		svids[k].cert_chain = &chains[c];
		for (size_t j = 0; j < ca_leaf_chain_len(st->leaf); j++) {
			chains[c].data = (uint8_t *)ca_leaf_cert(st->leaf, j, &chains[c].len);
			c++;
			svids[k].n_cert_chain++;
		}
		spire__api__agent__delegatedidentity__v1__x509_svidwith_key__init(&items[k]);
		items[k].x509_svid = &svids[k];
		items[k].x509_svid_key.data = (uint8_t *)ca_leaf_key(st->leaf, &items[k].x509_svid_key.len);
		pitems[k] = &items[k];
		k++;
	}
	resp.n_x509_svids = k;
	resp.x509_svids = pitems;
	resp.n_federates_with = n_fw;
	resp.federates_with = fw;
	return pack_bb(&resp.base, pad);
}

static grpc_byte_buffer *build_workload_x509(Server *s, RegEntry **m, size_t n, size_t pad)
{
	X509SVIDResponse resp = X509_SVIDRESPONSE__INIT;
	_cleanup_free_ X509SVID *items = calloc(n ? n : 1, sizeof *items);
	_cleanup_free_ X509SVID **pitems = calloc(n ? n : 1, sizeof *pitems);
	_cleanup_free_ char **fw = NULL;
	_cleanup_free_ X509SVIDResponse__FederatedBundlesEntry *fb = NULL;
	_cleanup_free_ X509SVIDResponse__FederatedBundlesEntry **pfb = NULL;
	size_t n_fw = 0, k = 0, nb = 0;
	size_t bundle_len;
	const uint8_t *bundle = ca_bundle(s->ca, &bundle_len);
	grpc_byte_buffer *bb = NULL;

	if (!items || !pitems || federates_with_union(m, n, true, &fw, &n_fw) < 0)
		return NULL;
	fb = calloc(n_fw ? n_fw : 1, sizeof *fb);
	pfb = calloc(n_fw ? n_fw : 1, sizeof *pfb);
	if (!fb || !pfb)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		EntryState *st = reg_entry_data(m[i]);
		if (!st || !st->leaf)
			continue;
		x509_svid__init(&items[k]);
		items[k].spiffe_id = (char *)reg_entry_spiffe_id(m[i]);
		items[k].hint = (char *)reg_entry_hint(m[i]);
		/* The Workload API concatenates the chain. */
		size_t total = 0, len;
		for (size_t j = 0; j < ca_leaf_chain_len(st->leaf); j++) {
			ca_leaf_cert(st->leaf, j, &len);
			total += len;
		}
		uint8_t *chain = malloc(total ? total : 1);
		if (!chain)
			goto out;
		items[k].x509_svid.data = chain;
		items[k].x509_svid.len = total;
		for (size_t j = 0, off = 0; j < ca_leaf_chain_len(st->leaf); j++) {
			const uint8_t *p = ca_leaf_cert(st->leaf, j, &len);
			memcpy(chain + off, p, len);
			off += len;
		}
		items[k].x509_svid_key.data = (uint8_t *)ca_leaf_key(st->leaf, &items[k].x509_svid_key.len);
		items[k].bundle.data = (uint8_t *)bundle;
		items[k].bundle.len = bundle_len;
		pitems[k] = &items[k];
		k++;
	}
	for (size_t i = 0; i < n_fw; i++) {
		const Federation *f = find_federation(s, fw[i]);
		if (!f)
			continue;
		x509_svidresponse__federated_bundles_entry__init(&fb[nb]);
		fb[nb].key = f->td_id;
		fb[nb].value.data = f->der;
		fb[nb].value.len = f->len;
		pfb[nb] = &fb[nb];
		nb++;
	}
	resp.n_svids = k;
	resp.svids = pitems;
	resp.n_federated_bundles = nb;
	resp.federated_bundles = pfb;
	bb = pack_bb(&resp.base, pad);
out:
	for (size_t i = 0; i < k + 1 && i < n; i++)
		free(items[i].x509_svid.data);
	return bb;
}

/* Bundle maps: own trust domain first, then the federations: all of them (Delegated API: every
 * bundle the agent holds), or only those in fw (Workload API: SPIRE sends the caller's entries'
 * federated bundles, found by the interop suite). */
static grpc_byte_buffer *build_bundles(Server *s, Method method, size_t pad, bool all,
				       char *const *fw, size_t n_fw)
{
	size_t n = 1, own_len;
	const uint8_t *own = ca_bundle(s->ca, &own_len);
	grpc_byte_buffer *bb = NULL;
	_cleanup_free_ const Federation **fed = calloc(s->n_fed + 1, sizeof *fed);

	if (!fed)
		return NULL;
	for (size_t i = 0; i < s->n_fed; i++) {
		bool in = all;
		for (size_t j = 0; j < n_fw && !in; j++)
			in = streq(fw[j], s->fed[i].td_id);
		if (in)
			fed[n++ - 1] = &s->fed[i]; /* slot n-1: index 0 is the own bundle */
	}

	switch (method) {
	case M_W_X509_BUNDLES: {
		X509BundlesResponse resp = X509_BUNDLES_RESPONSE__INIT;
		_cleanup_free_ X509BundlesResponse__BundlesEntry *e = calloc(n, sizeof *e);
		_cleanup_free_ X509BundlesResponse__BundlesEntry **pe = calloc(n, sizeof *pe);
		if (!e || !pe)
			return NULL;
		for (size_t i = 0; i < n; i++) {
			x509_bundles_response__bundles_entry__init(&e[i]);
			e[i].key = i ? fed[i - 1]->td_id : s->td_id;
			e[i].value.data = i ? fed[i - 1]->der : (uint8_t *)own;
			e[i].value.len = i ? fed[i - 1]->len : own_len;
			pe[i] = &e[i];
		}
		resp.n_bundles = n;
		resp.bundles = pe;
		bb = pack_bb(&resp.base, pad);
		break;
	}
	case M_D_X509_BUNDLES: {
		DX509BResp resp =
			SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_X509_BUNDLES_RESPONSE__INIT;
		_cleanup_free_ DX509BEntry *e = calloc(n, sizeof *e);
		_cleanup_free_ DX509BEntry **pe = calloc(n, sizeof *pe);
		if (!e || !pe)
			return NULL;
		for (size_t i = 0; i < n; i++) {
			spire__api__agent__delegatedidentity__v1__subscribe_to_x509_bundles_response__ca_certificates_entry__init(&e[i]);
			e[i].key = i ? fed[i - 1]->td_id : s->td_id;
			e[i].value.data = i ? fed[i - 1]->der : (uint8_t *)own;
			e[i].value.len = i ? fed[i - 1]->len : own_len;
			pe[i] = &e[i];
		}
		resp.n_ca_certificates = n;
		resp.ca_certificates = pe;
		bb = pack_bb(&resp.base, pad);
		break;
	}
	case M_W_JWT_BUNDLES: {
		JWTBundlesResponse resp = JWTBUNDLES_RESPONSE__INIT;
		_cleanup_free_ JWTBundlesResponse__BundlesEntry *e = calloc(n, sizeof *e);
		_cleanup_free_ JWTBundlesResponse__BundlesEntry **pe = calloc(n, sizeof *pe);
		if (!e || !pe)
			return NULL;
		for (size_t i = 0; i < n; i++) {
			jwtbundles_response__bundles_entry__init(&e[i]);
			e[i].key = i ? fed[i - 1]->td_id : s->td_id;
			const char *j = i ? fed[i - 1]->jwks : s->own_jwks;
			e[i].value.data = (uint8_t *)j;
			e[i].value.len = strlen(j);
			pe[i] = &e[i];
		}
		resp.n_bundles = n;
		resp.bundles = pe;
		bb = pack_bb(&resp.base, pad);
		break;
	}
	case M_D_JWT_BUNDLES: {
		DJwtBResp resp =
			SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__SUBSCRIBE_TO_JWTBUNDLES_RESPONSE__INIT;
		_cleanup_free_ DJwtBEntry *e = calloc(n, sizeof *e);
		_cleanup_free_ DJwtBEntry **pe = calloc(n, sizeof *pe);
		if (!e || !pe)
			return NULL;
		for (size_t i = 0; i < n; i++) {
			spire__api__agent__delegatedidentity__v1__subscribe_to_jwtbundles_response__bundles_entry__init(&e[i]);
			e[i].key = i ? fed[i - 1]->td_id : s->td_id;
			const char *j = i ? fed[i - 1]->jwks : s->own_jwks;
			e[i].value.data = (uint8_t *)j;
			e[i].value.len = strlen(j);
			pe[i] = &e[i];
		}
		resp.n_bundles = n;
		resp.bundles = pe;
		bb = pack_bb(&resp.base, pad);
		break;
	}
	default:
		break;
	}
	return bb;
}

/* The stream's current message. Returns 1 with *ret set, 0 to hold (first SVIDs not minted yet),
 * -EACCES when a Workload API caller has no identity, other -errno on failure. */
static int stream_snapshot(Call *c, size_t pad, grpc_byte_buffer **ret)
{
	Server *s = c->srv;
	_cleanup_free_ RegEntry **m = NULL;
	size_t n = 0;
	bool waiting = false;
	int r;

	if (!c->svid_stream) {
		_cleanup_free_ char **fw = NULL;
		size_t n_fw = 0;
		bool workload_api = c->method == M_W_X509_BUNDLES || c->method == M_W_JWT_BUNDLES;
		if (workload_api &&
		    ((r = registry_match(s->reg, (const char *const *)c->sel, c->n_sel, 0, &m, &n)) < 0 ||
		     (r = federates_with_union(m, n, false, &fw, &n_fw)) < 0))
			return r;
		*ret = build_bundles(s, (Method)c->method, pad, !workload_api, fw, n_fw);
		return *ret ? 1 : -ENOMEM;
	}
	bool workload = c->method == M_W_X509;
	r = match_for(s, (const char *const *)c->sel, c->n_sel,
		      workload ? 0 : REGISTRY_MATCH_DELEGATED, &m, &n, &waiting);
	if (r < 0)
		return r;
	if (workload && n == 0)
		return -EACCES;
	if (waiting && !c->first_sent && !pad)
		return 0;
	if (workload) {
		size_t minted = 0;
		for (size_t i = 0; i < n; i++) {
			EntryState *st = reg_entry_data(m[i]);
			minted += st && st->leaf;
		}
		if (minted == 0 && !pad) /* never send an empty svids list on the Workload API */
			return 0;
	}
	*ret = workload ? build_workload_x509(s, m, n, pad) : build_delegated_x509(s, m, n, pad);
	return *ret ? 1 : -ENOMEM;
}

/* ---- calls ---- */

static void call_start(Call *c, const grpc_op *ops, size_t n, Tag *tag)
{
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
	if (e != GRPC_CALL_OK) {
		log_error("devagent: grpc_call_start_batch(%s) failed: %s",
			  c->method >= 0 ? methods[c->method].path : "?", grpc_call_error_to_string(e));
		return;
	}
	c->pending++;
}

static void stream_unlink(Call *c)
{
	Server *s = c->srv;
	if (!c->prev && s->streams != c)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->streams = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	if (c->svid_stream)
		s->n_svid_streams--;
}

static void stream_link(Call *c)
{
	Server *s = c->srv;
	c->next = s->streams;
	c->prev = NULL;
	if (s->streams)
		s->streams->prev = c;
	s->streams = c;
	if (c->svid_stream) {
		s->n_svid_streams++;
		pthread_cond_broadcast(&s->stream_cond);
	}
}

static void call_send_status_now(Call *c, grpc_status_code code, const char *msg)
{
	grpc_op ops[2];
	size_t n = 0;
	grpc_slice details = grpc_slice_from_copied_string(msg ? msg : "");

	memset(ops, 0, sizeof ops);
	if (!c->md_sent) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
		c->md_sent = true;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n].data.send_status_from_server.status_details = &details;
	n++;
	call_start(c, ops, n, &c->t_status);
	grpc_slice_unref(details);
}

/* Ends the call with a status (after an in-flight message, if any). */
static void call_end(Call *c, grpc_status_code code, const char *msg)
{
	if (c->ended)
		return;
	c->ended = true;
	stream_unlink(c);
	if (c->send_bb) {
		c->status_code = (int)code;
		c->status_msg = strdup(msg ? msg : "");
		return;
	}
	call_send_status_now(c, code, msg);
}

static bool stalled(Server *s)
{
	return s->stall_until && now_ms() < s->stall_until;
}

static void call_flush(Call *c)
{
	Server *s = c->srv;
	grpc_op ops[2];
	size_t n = 0;

	if (c->send_bb || c->client_cancelled)
		return;
	if (c->status_code >= 0) {
		call_send_status_now(c, (grpc_status_code)c->status_code, c->status_msg);
		c->status_code = -1;
		free(c->status_msg);
		c->status_msg = NULL;
		return;
	}
	if (c->ended || stalled(s))
		return;
	grpc_byte_buffer *bb = c->fault_bb ? TAKE_PTR(c->fault_bb) : TAKE_PTR(c->queued_bb);
	if (!bb)
		return;
	memset(ops, 0, sizeof ops);
	if (!c->md_sent) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->md_sent = true;
	}
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = bb;
	n++;
	c->send_bb = bb;
	c->first_sent = true;
	s->messages_sent++;
	call_start(c, ops, n, &c->t_send);
}

static void call_queue(Call *c, grpc_byte_buffer *bb, bool fault)
{
	grpc_byte_buffer **slot = fault ? &c->fault_bb : &c->queued_bb;
	if (c->ended) {
		grpc_byte_buffer_destroy(bb);
		return;
	}
	/* Latest wins: SVID updates are full snapshots. */
	if (*slot)
		grpc_byte_buffer_destroy(*slot);
	*slot = bb;
	call_flush(c);
}

/* Recomputes and sends the stream's snapshot. */
static void stream_update(Call *c)
{
	grpc_byte_buffer *bb = NULL;
	if (c->ended)
		return;
	int r = stream_snapshot(c, 0, &bb);
	if (r == -EACCES) {
		call_end(c, GRPC_STATUS_PERMISSION_DENIED, MSG_NO_IDENTITY);
		return;
	}
	if (r < 0) {
		log_error_errno(r, "devagent: cannot build the message for %s", methods[c->method].path);
		call_end(c, GRPC_STATUS_INTERNAL, "devagent: cannot build the message");
		return;
	}
	if (r > 0)
		call_queue(c, bb, false);
}

static void push_entry(Server *s, RegEntry *e)
{
	for (Call *c = s->streams, *next; c; c = next) {
		next = c->next;
		if (c->svid_stream && reg_entry_matches(e, (const char *const *)c->sel, c->n_sel))
			stream_update(c);
	}
}

static int mint_entry(Server *s, RegEntry *e)
{
	EntryState *st = entry_state(e);
	CaLeaf *leaf = NULL;
	if (!st)
		return log_error_errno(-ENOMEM, "devagent: out of memory");
	int r = ca_mint(s->ca, reg_entry_spiffe_id(e), s->key_type, s->svid_ttl_ms, &leaf);
	if (r < 0)
		return log_error_errno(r, "devagent: cannot mint an SVID for %s", reg_entry_spiffe_id(e));
	ca_leaf_free(st->leaf);
	st->leaf = leaf;
	st->mints++;
	st->mint_due = 0;
	st->rotate_at = now_ms() + (int64_t)(s->svid_ttl_ms / 2);
	log_debug("devagent: minted %s serial %s not_after %" PRId64, reg_entry_spiffe_id(e),
		  ca_leaf_serial(leaf), ca_leaf_not_after(leaf));
	pthread_cond_signal(&s->cond);
	return 0;
}

/* Demands an SVID for e: minted at once without a first-SVID delay, else scheduled. */
static void ensure_minted(Server *s, RegEntry *e)
{
	EntryState *st = entry_state(e);
	if (!st || st->leaf || st->mint_due)
		return;
	if (s->first_delay_ms == 0) {
		(void)mint_entry(s, e);
		return;
	}
	st->mint_due = now_ms() + (int64_t)s->first_delay_ms;
	pthread_cond_signal(&s->cond);
}

static void call_free(Call *c)
{
	Instance *inst = c->inst;
	stream_unlink(c);
	if (c->recv_bb)
		grpc_byte_buffer_destroy(c->recv_bb);
	if (c->send_bb)
		grpc_byte_buffer_destroy(c->send_bb);
	if (c->queued_bb)
		grpc_byte_buffer_destroy(c->queued_bb);
	if (c->fault_bb)
		grpc_byte_buffer_destroy(c->fault_bb);
	if (c->call)
		grpc_call_unref(c->call);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md);
	strv_free(c->sel, c->n_sel);
	free(c->status_msg);
	free(c);
	inst->live_calls--;
}

static int request_call(Instance *inst)
{
	Call *c = calloc(1, sizeof *c);
	if (!c)
		return log_error_errno(-ENOMEM, "devagent: out of memory");
	c->srv = inst->srv;
	c->inst = inst;
	c->method = -1;
	c->status_code = -1;
	c->t_new = (Tag){TAG_NEW, c};
	c->t_recv = (Tag){TAG_RECV, c};
	c->t_send = (Tag){TAG_SEND, c};
	c->t_close = (Tag){TAG_CLOSE, c};
	c->t_status = (Tag){TAG_STATUS, c};
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md);
	inst->live_calls++;
	grpc_call_error e = grpc_server_request_call(inst->server, &c->call, &c->details, &c->md,
						     inst->cq, inst->cq, &c->t_new);
	if (e != GRPC_CALL_OK) {
		call_free(c);
		return log_error_errno(-EIO, "devagent: grpc_server_request_call: %s",
				       grpc_call_error_to_string(e));
	}
	c->pending = 1;
	return 0;
}

static bool header_ok(const grpc_metadata_array *md)
{
	unsigned found = 0;
	bool ok = false;
	for (size_t i = 0; i < md->count; i++)
		if (!grpc_slice_str_cmp(md->metadata[i].key, "workload.spiffe.io")) {
			found++;
			ok = !grpc_slice_str_cmp(md->metadata[i].value, "true");
		}
	return found == 1 && ok;
}

static bool uid_authorized(Server *s, uid_t uid)
{
	if (s->n_auth_uids == 0)
		return uid == geteuid();
	for (size_t i = 0; i < s->n_auth_uids; i++)
		if (s->auth_uids[i] == uid)
			return true;
	return false;
}

static void lookup_peer(Server *s, Call *c)
{
	char *peer = grpc_call_get_peer(c->call);
	unsigned long fd;
	char end;
	if (peer && sscanf(peer, "fd:%lu%c", &fd, &end) == 1 && fd < s->n_peers &&
	    s->peers[fd].valid)
		c->peer = s->peers[fd];
	gpr_free(peer);
}

static void on_new_call(Server *s, Call *c)
{
	grpc_op op;

	if (c->inst == s->inst && !s->stopping)
		(void)request_call(c->inst);
	for (int i = 0; i < _M_MAX; i++)
		if (!grpc_slice_str_cmp(c->details.method, methods[i].path))
			c->method = i;
	lookup_peer(s, c);

	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->client_cancelled;
	call_start(c, &op, 1, &c->t_close);

	if (c->method < 0 || !c->peer.valid || methods[c->method].api != c->peer.api) {
		call_end(c, GRPC_STATUS_UNIMPLEMENTED, "unknown service or method");
		return;
	}
	if (methods[c->method].api == API_WORKLOAD && !header_ok(&c->md)) {
		call_end(c, GRPC_STATUS_INVALID_ARGUMENT, "security header missing from request");
		return;
	}
	if (methods[c->method].api == API_DELEGATED && !uid_authorized(s, c->peer.uid)) {
		log_info("devagent: uid %u is not an authorized delegate", (unsigned)c->peer.uid);
		call_end(c, GRPC_STATUS_PERMISSION_DENIED,
			 "caller not configured as an authorized delegate");
		return;
	}
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->recv_bb;
	call_start(c, &op, 1, &c->t_recv);
}

/* "unix:uid:N", "unix:gid:N", "unix:pid:N" for a process. */
static int unix_selectors(uid_t uid, gid_t gid, pid_t pid, char ***ret, size_t *ret_n)
{
	char **v = calloc(3, sizeof *v);
	if (!v)
		return -ENOMEM;
	if (asprintf(&v[0], "unix:uid:%u", (unsigned)uid) < 0 ||
	    asprintf(&v[1], "unix:gid:%u", (unsigned)gid) < 0 ||
	    asprintf(&v[2], "unix:pid:%d", (int)pid) < 0) {
		strv_free(v, 3); /* asprintf leaves undefined pointers only on failure; calloc'd */
		return -ENOMEM;
	}
	*ret = v;
	*ret_n = 3;
	return 0;
}

/* Attests a pid like SPIRE's unix attestor (real uid/gid from /proc). */
static int attest_pid(pid_t pid, char ***ret, size_t *ret_n)
{
	char path[64], line[256];
	unsigned uid = 0, gid = 0;
	bool have_uid = false, have_gid = false;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return negative_errno();
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "Uid: %u", &uid) == 1)
			have_uid = true;
		else if (sscanf(line, "Gid: %u", &gid) == 1)
			have_gid = true;
	}
	if (!have_uid || !have_gid)
		return -EIO;
	return unix_selectors(uid, gid, pid, ret, ret_n);
}

/* Converts request selectors; -EINVAL as SPIRE's SelectorsFromProto. */
static int selectors_from_proto(Spire__Api__Types__Selector **in, size_t n, char ***ret,
				size_t *ret_n)
{
	char **v = calloc(n ? n : 1, sizeof *v);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *t = in[i]->type, *val = in[i]->value;
		if (!t || !*t || strchr(t, ':') || !val || !*val || strchr(t, '\n') ||
		    strchr(val, '\n')) {
			strv_free(v, n);
			return -EINVAL;
		}
		if (asprintf(&v[i], "%s:%s", t, val) < 0) {
			v[i] = NULL;
			strv_free(v, n);
			return -ENOMEM;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Selectors for a Delegated API request; on failure ends the call. */
static int delegated_selectors(Call *c, Spire__Api__Types__Selector **sel, size_t n, int32_t pid,
			       char ***ret, size_t *ret_n)
{
	if ((n > 0) == (pid != 0)) {
		call_end(c, GRPC_STATUS_INVALID_ARGUMENT,
			 "must provide either selectors or non-zero PID, but not both");
		return -EINVAL;
	}
	if (n > 0) {
		int r = selectors_from_proto(sel, n, ret, ret_n);
		if (r == -EINVAL)
			call_end(c, GRPC_STATUS_INVALID_ARGUMENT, "could not parse provided selectors");
		else if (r < 0)
			call_end(c, GRPC_STATUS_INTERNAL, "out of memory");
		return r;
	}
	int r = pid < 0 ? -ESRCH : attest_pid(pid, ret, ret_n);
	if (r < 0) {
		log_info_errno(r, "devagent: cannot attest pid %d", (int)pid);
		call_end(c, GRPC_STATUS_UNAVAILABLE, "workload attestation failed");
	}
	return r;
}

static void reply_unary(Call *c, const ProtobufCMessage *m)
{
	grpc_op ops[3];
	memset(ops, 0, sizeof ops);
	grpc_byte_buffer *bb = pack_bb(m, 0);
	grpc_slice details = grpc_slice_from_static_string("");
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
	ops[2].data.send_status_from_server.status_details = &details;
	c->md_sent = true;
	c->ended = true;
	c->send_bb = bb; /* destroyed when the status tag returns */
	call_start(c, ops, 3, &c->t_status);
}

/* Mints one JWT-SVID per entry; tokens stay in secret memory until sent. */
static void handle_jwt(Call *c, RegEntry **m, size_t n, char **aud, size_t n_aud)
{
	Server *s = c->srv;
	uint64_t delay = __atomic_load_n(&s->jwt_delay_ms, __ATOMIC_RELAXED);
	if (delay) {
		/* The fault: the whole server is held, as an overloaded agent would be. */
		struct timespec ts = {.tv_sec = (time_t)(delay / 1000),
				      .tv_nsec = (long)(delay % 1000) * 1000000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	int64_t iat = (int64_t)time(NULL), exp = iat + (int64_t)((s->jwt_ttl_ms + 999) / 1000);
	char **tokens = calloc(n ? n : 1, sizeof *tokens);
	int r = tokens ? 0 : -ENOMEM;

	for (size_t i = 0; i < n && r >= 0; i++)
		r = jwt_sign_es256(s->jwt_key, s->jwt_kid, reg_entry_spiffe_id(m[i]),
				   (const char *const *)aud, n_aud, iat, exp, &tokens[i]);
	if (r < 0) {
		log_error_errno(r, "devagent: cannot sign a JWT-SVID");
		call_end(c, GRPC_STATUS_INTERNAL, "cannot sign JWT-SVID");
		goto out;
	}
	if (c->method == M_W_JWT_SVID) {
		JWTSVIDResponse resp = JWTSVIDRESPONSE__INIT;
		_cleanup_free_ JWTSVID *items = calloc(n, sizeof *items);
		_cleanup_free_ JWTSVID **p = calloc(n, sizeof *p);
		if (!items || !p) {
			call_end(c, GRPC_STATUS_INTERNAL, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			jwtsvid__init(&items[i]);
			items[i].spiffe_id = (char *)reg_entry_spiffe_id(m[i]);
			items[i].svid = tokens[i];
			items[i].hint = (char *)reg_entry_hint(m[i]);
			p[i] = &items[i];
		}
		resp.n_svids = n;
		resp.svids = p;
		reply_unary(c, &resp.base);
	} else {
		DJwtResp resp = SPIRE__API__AGENT__DELEGATEDIDENTITY__V1__FETCH_JWTSVIDS_RESPONSE__INIT;
		_cleanup_free_ Spire__Api__Types__JWTSVID *items = calloc(n, sizeof *items);
		_cleanup_free_ Spire__Api__Types__JWTSVID **p = calloc(n, sizeof *p);
		_cleanup_free_ Spire__Api__Types__SPIFFEID *ids = calloc(n, sizeof *ids);
		if (!items || !p || !ids) {
			call_end(c, GRPC_STATUS_INTERNAL, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			spire__api__types__spiffeid__init(&ids[i]);
			ids[i].trust_domain = (char *)reg_entry_trust_domain(m[i]);
			ids[i].path = (char *)reg_entry_path(m[i]);
			spire__api__types__jwtsvid__init(&items[i]);
			items[i].token = tokens[i];
			items[i].id = &ids[i];
			items[i].expires_at = exp;
			items[i].issued_at = iat;
			items[i].hint = (char *)reg_entry_hint(m[i]);
			p[i] = &items[i];
		}
		resp.n_svids = n;
		resp.svids = p;
		reply_unary(c, &resp.base);
	}
out:
	for (size_t i = 0; tokens && i < n; i++)
		jwt_token_free(tokens[i]);
	free(tokens);
}

static void on_request(Server *s, Call *c, ProtobufCMessage *req)
{
	_cleanup_free_ RegEntry **m = NULL;
	size_t n = 0;
	int r;

	switch ((Method)c->method) {
	case M_W_X509:
	case M_W_X509_BUNDLES:
	case M_W_JWT_BUNDLES:
		if ((r = unix_selectors(c->peer.uid, c->peer.gid, c->peer.pid, &c->sel, &c->n_sel)) < 0)
			break;
		if (c->method != M_W_X509) {
			/* SPIRE serves bundles only to callers with an identity. */
			if ((r = registry_match(s->reg, (const char *const *)c->sel, c->n_sel, 0, &m,
						&n)) < 0)
				break;
			if (n == 0) {
				call_end(c, GRPC_STATUS_PERMISSION_DENIED, MSG_NO_IDENTITY);
				return;
			}
		}
		c->svid_stream = c->method == M_W_X509;
		stream_link(c);
		stream_update(c);
		return;
	case M_D_X509: {
		DX509Req *q = (DX509Req *)req;
		if (delegated_selectors(c, q->selectors, q->n_selectors, q->pid, &c->sel, &c->n_sel) < 0)
			return;
		if (s->auto_k8s) {
			r = registry_auto_k8s(s->reg, s->td, (const char *const *)c->sel, c->n_sel, NULL);
			if (r < 0)
				log_warning_errno(r, "devagent: --auto-k8s cannot make an entry for these selectors");
		}
		c->svid_stream = true;
		stream_link(c);
		stream_update(c);
		return;
	}
	case M_D_X509_BUNDLES:
	case M_D_JWT_BUNDLES:
		stream_link(c);
		stream_update(c);
		return;
	case M_W_JWT_SVID: {
		JWTSVIDRequest *q = (JWTSVIDRequest *)req;
		if (q->n_audience == 0) {
			call_end(c, GRPC_STATUS_INVALID_ARGUMENT, "audience must be specified");
			return;
		}
		if ((r = unix_selectors(c->peer.uid, c->peer.gid, c->peer.pid, &c->sel, &c->n_sel)) < 0 ||
		    (r = registry_match(s->reg, (const char *const *)c->sel, c->n_sel, 0, &m, &n)) < 0)
			break;
		if (q->spiffe_id && *q->spiffe_id) {
			size_t k = 0;
			for (size_t i = 0; i < n; i++)
				if (streq(reg_entry_spiffe_id(m[i]), q->spiffe_id))
					m[k++] = m[i];
			n = k;
		}
		if (n == 0) {
			call_end(c, GRPC_STATUS_PERMISSION_DENIED, MSG_NO_IDENTITY);
			return;
		}
		handle_jwt(c, m, n, q->audience, q->n_audience);
		return;
	}
	case M_D_JWT_SVIDS: {
		DJwtReq *q = (DJwtReq *)req;
		if (q->n_audience == 0) {
			call_end(c, GRPC_STATUS_INVALID_ARGUMENT, "audience must be specified");
			return;
		}
		if (delegated_selectors(c, q->selectors, q->n_selectors, q->pid, &c->sel, &c->n_sel) < 0)
			return;
		if ((r = registry_match(s->reg, (const char *const *)c->sel, c->n_sel,
					REGISTRY_MATCH_DELEGATED, &m, &n)) < 0)
			break;
		if (n == 0) {
			call_end(c, GRPC_STATUS_PERMISSION_DENIED, MSG_NO_IDENTITY);
			return;
		}
		handle_jwt(c, m, n, q->audience, q->n_audience);
		return;
	}
	default:
		r = -EINVAL;
		break;
	}
	log_error_errno(r, "devagent: cannot serve %s", methods[c->method].path);
	call_end(c, GRPC_STATUS_INTERNAL, "devagent internal error");
}

static void on_recv(Server *s, Call *c, bool ok)
{
	grpc_byte_buffer *bb = TAKE_PTR(c->recv_bb);
	if (!ok || !bb) {
		if (bb)
			grpc_byte_buffer_destroy(bb);
		call_end(c, GRPC_STATUS_INVALID_ARGUMENT, "missing request message");
		return;
	}
	ProtobufCMessage *req = unpack_bb(methods[c->method].req, bb);
	grpc_byte_buffer_destroy(bb);
	if (!req) {
		call_end(c, GRPC_STATUS_INVALID_ARGUMENT, "cannot decode the request");
		return;
	}
	on_request(s, c, req);
	protobuf_c_message_free_unpacked(req, NULL);
}

static void handle_tag(Server *s, Tag *t, bool ok)
{
	Call *c = t->call;
	c->pending--;
	switch (t->kind) {
	case TAG_NEW:
		if (!ok) {
			/* Server shutting down: the request was never matched. */
			c->call = NULL;
			break;
		}
		on_new_call(s, c);
		break;
	case TAG_RECV:
		on_recv(s, c, ok);
		break;
	case TAG_SEND:
		if (c->send_bb)
			grpc_byte_buffer_destroy(c->send_bb);
		c->send_bb = NULL;
		if (!ok) {
			c->ended = true;
			stream_unlink(c);
		}
		call_flush(c);
		break;
	case TAG_STATUS:
		if (c->send_bb) {
			grpc_byte_buffer_destroy(c->send_bb);
			c->send_bb = NULL;
		}
		break;
	case TAG_CLOSE:
		/* The call is over (status sent, or the client went away). */
		c->ended = true;
		stream_unlink(c);
		break;
	case TAG_SHUTDOWN:
		break;
	}
	if (c->pending == 0)
		call_free(c);
}

static void *cq_thread(void *arg)
{
	Instance *inst = arg;
	Server *s = inst->srv;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(inst->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		Tag *t = ev.tag;
		pthread_mutex_lock(&s->mu);
		if (t->kind == TAG_SHUTDOWN)
			inst->shutdown_seen = true;
		else
			handle_tag(s, t, ev.success != 0);
		if (inst->shutdown_seen && inst->live_calls == 0 && !inst->cq_shutdown) {
			inst->cq_shutdown = true;
			grpc_completion_queue_shutdown(inst->cq);
		}
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

/* ---- listeners ---- */

static int listener_lock(Listener *l)
{
	if (asprintf(&l->lock_path, "%s.lock", l->path) < 0)
		return log_error_errno(-ENOMEM, "devagent: out of memory");
	l->lock_fd = open(l->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (l->lock_fd < 0)
		return log_error_errno(negative_errno(), "devagent: cannot open lock file %s",
				       l->lock_path);
	if (flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int r = negative_errno();
		return log_error_errno(r, "devagent: %s is in use by another process (lock %s)",
				       l->path, l->lock_path);
	}
	l->locked = true;
	return 0;
}

static int listener_bind(Listener *l)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(l->path) >= sizeof sa.sun_path)
		return log_error_errno(-ENAMETOOLONG, "devagent: socket path too long: %s", l->path);
	strcpy(sa.sun_path, l->path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(negative_errno(), "devagent: socket()");
	/* We hold the lock, so whatever is at the path is stale. */
	(void)unlink(l->path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return log_error_errno(negative_errno(), "devagent: cannot bind %s", l->path);
	/* Workloads of any uid may connect to the Workload API; the admin socket is 0770 as
	 * SPIRE's. */
	if (chmod(l->path, l->api == API_WORKLOAD ? 0777 : 0770) < 0)
		return log_error_errno(negative_errno(), "devagent: cannot chmod %s", l->path);
	if (listen(fd, 512) < 0)
		return log_error_errno(negative_errno(), "devagent: cannot listen on %s", l->path);
	l->fd = TAKE_FD(fd);
	return 0;
}

static void listener_close(Listener *l)
{
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
		(void)unlink(l->path);
	}
}

static void wake_accept(Server *s)
{
	uint64_t one = 1;
	if (write(s->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_warning_errno(negative_errno(), "devagent: cannot wake the accept thread");
}

static void accept_one(Server *s, Listener *l)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			log_warning_errno(negative_errno(), "devagent: accept on %s", l->path);
		return;
	}
	if (!s->inst || (s->refuse_until && now_ms() < s->refuse_until)) {
		close(fd); /* refused (fault injection) or restarting */
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warning_errno(negative_errno(), "devagent: SO_PEERCRED on %s", l->path);
		close(fd);
		return;
	}
	if ((size_t)fd >= s->n_peers) {
		size_t n = (size_t)fd * 2 + 16;
		Peer *p = realloc(s->peers, n * sizeof *p);
		if (!p) {
			log_error_errno(-ENOMEM, "devagent: out of memory");
			close(fd);
			return;
		}
		memset(p + s->n_peers, 0, (n - s->n_peers) * sizeof *p);
		s->peers = p;
		s->n_peers = n;
	}
	/* fd numbers are reused after close: always overwrite. */
	s->peers[fd] = (Peer){true, l->api, cred.uid, cred.gid, cred.pid};
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	grpc_server_add_channel_from_fd(s->inst->server, fd, creds);
	grpc_server_credentials_release(creds);
}

static void *accept_thread(void *arg)
{
	Server *s = arg;
	for (;;) {
		struct pollfd p[1 + _API_MAX];
		size_t n = 0;
		pthread_mutex_lock(&s->mu);
		bool stop = s->stopping;
		p[n++] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
		for (int i = 0; i < _API_MAX; i++)
			if (s->listeners[i].fd >= 0)
				p[n++] = (struct pollfd){.fd = s->listeners[i].fd, .events = POLLIN};
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;
		if (poll(p, n, 1000) < 0 && errno != EINTR) {
			log_error_errno(negative_errno(), "devagent: poll");
			break;
		}
		if (p[0].revents & POLLIN) {
			uint64_t v;
			(void)!read(s->wake_fd, &v, sizeof v);
		}
		pthread_mutex_lock(&s->mu);
		for (size_t k = 1; k < n; k++) {
			if (!(p[k].revents & POLLIN))
				continue;
			for (int i = 0; i < _API_MAX; i++)
				if (s->listeners[i].fd == p[k].fd)
					accept_one(s, &s->listeners[i]);
		}
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

/* ---- lifecycle ---- */

static void instance_free(Instance *inst)
{
	if (!inst)
		return;
	if (inst->server)
		grpc_server_destroy(inst->server);
	if (inst->cq)
		grpc_completion_queue_destroy(inst->cq);
	free(inst);
}

/* Starts a gRPC server instance and binds the listeners. lifecycle_mu held. */
static int server_up(Server *s)
{
	Instance *inst = calloc(1, sizeof *inst);
	grpc_arg args[2];
	int r;

	if (!inst)
		return log_error_errno(-ENOMEM, "devagent: out of memory");
	inst->srv = s;
	inst->t_shutdown = (Tag){TAG_SHUTDOWN, NULL};
	/* Oversize fault messages and big bundles: no send or receive limit of our own. */
	args[0] = (grpc_arg){.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
			     .value.integer = -1};
	args[1] = (grpc_arg){.type = GRPC_ARG_INTEGER,
			     .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
			     .value.integer = 16 << 20};
	grpc_channel_args ch_args = {.num_args = ELEMENTSOF(args), .args = args};
	inst->cq = grpc_completion_queue_create_for_next(NULL);
	inst->server = grpc_server_create(&ch_args, NULL);
	if (!inst->cq || !inst->server) {
		instance_free(inst);
		return log_error_errno(-EIO, "devagent: cannot create the gRPC server");
	}
	grpc_server_register_completion_queue(inst->server, inst->cq, NULL);
	grpc_server_start(inst->server);

	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < _API_MAX; i++)
		if (s->listeners[i].path && (r = listener_bind(&s->listeners[i])) < 0)
			goto fail;
	for (int i = 0; i < REQUEST_CALLS; i++)
		if ((r = request_call(inst)) < 0)
			goto fail;
	s->inst = inst;
	if ((r = -pthread_create(&inst->thread, NULL, cq_thread, inst)) < 0) {
		s->inst = NULL;
		log_error_errno(r, "devagent: cannot start the completion-queue thread");
		goto fail;
	}
	pthread_mutex_unlock(&s->mu);
	wake_accept(s);
	return 0;
fail:
	for (int i = 0; i < _API_MAX; i++)
		listener_close(&s->listeners[i]);
	/* Drain the outstanding request_call tags before destroying. */
	grpc_server_shutdown_and_notify(inst->server, inst->cq, &inst->t_shutdown);
	grpc_server_cancel_all_calls(inst->server);
	pthread_mutex_unlock(&s->mu);
	cq_thread(inst);
	instance_free(inst);
	return r;
}

/* Closes the listeners, ends every call with UNAVAILABLE and destroys the instance. */
static void server_down(Server *s, const char *why)
{
	pthread_mutex_lock(&s->mu);
	Instance *inst = TAKE_PTR(s->inst);
	for (int i = 0; i < _API_MAX; i++)
		listener_close(&s->listeners[i]);
	memset(s->peers, 0, s->n_peers * sizeof *s->peers);
	if (!inst) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	for (Call *c = s->streams, *next; c; c = next) {
		next = c->next;
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE, why, NULL);
		c->ended = true;
		stream_unlink(c);
	}
	grpc_server_shutdown_and_notify(inst->server, inst->cq, &inst->t_shutdown);
	grpc_server_cancel_all_calls(inst->server);
	pthread_mutex_unlock(&s->mu);
	wake_accept(s);
	pthread_join(inst->thread, NULL);
	instance_free(inst);
}

/* ---- timer thread: first-SVID delay, rotation, stall end, restart ---- */

static void *timer_thread(void *arg)
{
	Server *s = arg;
	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		int64_t now = now_ms(), next = INT64_MAX;
		for (size_t i = 0; i < registry_count(s->reg); i++) {
			RegEntry *e = registry_at(s->reg, i);
			EntryState *st = reg_entry_data(e);
			if (!st)
				continue;
			int64_t due = st->leaf ? st->rotate_at : st->mint_due;
			if (!due)
				continue;
			if (due <= now) {
				if (mint_entry(s, e) >= 0)
					push_entry(s, e);
				else if (st->leaf) /* retry later rather than spin */
					st->rotate_at = now + 1000;
				else
					st->mint_due = now + 1000;
				due = st->leaf ? st->rotate_at : st->mint_due;
			}
			next = MIN(next, due);
		}
		if (s->stall_until) {
			if (s->stall_until <= now) {
				s->stall_until = 0;
				for (Call *c = s->streams; c; c = c->next)
					call_flush(c);
			} else
				next = MIN(next, s->stall_until);
		}
		if (s->relisten_at) {
			if (s->relisten_at <= now) {
				s->relisten_at = 0;
				pthread_mutex_unlock(&s->mu);
				pthread_mutex_lock(&s->lifecycle_mu);
				int r = s->inst || s->stopping ? 0 : server_up(s);
				pthread_mutex_unlock(&s->lifecycle_mu);
				if (r < 0)
					log_error_errno(r, "devagent: restart failed; not listening");
				else
					log_info("devagent: listening again after restart");
				pthread_mutex_lock(&s->mu);
				continue;
			}
			next = MIN(next, s->relisten_at);
		}
		if (s->refuse_until && s->refuse_until <= now)
			s->refuse_until = 0;
		if (next == INT64_MAX) {
			pthread_cond_wait(&s->cond, &s->mu);
		} else {
			struct timespec ts = {.tv_sec = next / 1000, .tv_nsec = (next % 1000) * 1000000};
			pthread_cond_timedwait(&s->cond, &s->mu, &ts);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- public ---- */

static Federation *fed_free_contents(Federation *f)
{
	free(f->td_id);
	free(f->der);
	free(f->jwks);
	EVP_PKEY_free(f->jwt_key);
	return NULL;
}

int server_new(const ServerConfig *cfg, Ca *ca, Registry *reg, Server **ret)
{
	Server *s = calloc(1, sizeof *s);
	pthread_condattr_t ca_attr;
	int r;

	if (!s) {
		ca_free(ca);
		registry_free(reg);
		return log_error_errno(-ENOMEM, "devagent: out of memory");
	}
	s->ca = ca;
	s->reg = reg;
	registry_set_free_data(reg, entry_state_free);
	s->wake_fd = -1;
	for (int i = 0; i < _API_MAX; i++)
		s->listeners[i] = (Listener){.api = (Api)i, .fd = -1, .lock_fd = -1};
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->lifecycle_mu, NULL);
	pthread_condattr_init(&ca_attr);
	pthread_condattr_setclock(&ca_attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca_attr);
	pthread_cond_init(&s->stream_cond, &ca_attr);
	pthread_condattr_destroy(&ca_attr);

	r = -ENOMEM;
	if (!(s->td = strdup(cfg->trust_domain)) || asprintf(&s->td_id, "spiffe://%s", s->td) < 0 ||
	    (cfg->workload_socket && !(s->listeners[API_WORKLOAD].path = strdup(cfg->workload_socket))) ||
	    (cfg->admin_socket && !(s->listeners[API_DELEGATED].path = strdup(cfg->admin_socket))))
		goto fail;
	s->key_type = cfg->key_type;
	s->svid_ttl_ms = cfg->svid_ttl_ms;
	s->jwt_ttl_ms = cfg->jwt_ttl_ms;
	s->first_delay_ms = cfg->first_svid_delay_ms;
	s->auto_k8s = cfg->auto_k8s;
	if (cfg->n_authorized_uids) {
		if (!(s->auth_uids = calloc(cfg->n_authorized_uids, sizeof *s->auth_uids)))
			goto fail;
		memcpy(s->auth_uids, cfg->authorized_uids, cfg->n_authorized_uids * sizeof(uid_t));
		s->n_auth_uids = cfg->n_authorized_uids;
	}
	if ((r = jwt_key_generate(&s->jwt_key)) < 0 ||
	    (r = jwt_key_thumbprint(s->jwt_key, &s->jwt_kid)) < 0) {
		log_error_errno(r, "devagent: cannot generate the JWT signing key");
		goto fail;
	}
	{
		EVP_PKEY *keys[] = {s->jwt_key};
		const char *kids[] = {s->jwt_kid};
		if ((r = jwks_json(keys, kids, 1, &s->own_jwks)) < 0)
			goto fail;
	}
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		r = log_error_errno(negative_errno(), "devagent: eventfd");
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	if (r == -ENOMEM)
		log_error_errno(r, "devagent: out of memory");
	server_free(s);
	return r;
}

int server_add_federation(Server *s, const char *trust_domain, const uint8_t *der, size_t len,
			  bool gen_jwt_key)
{
	Federation f = {0};
	int r = -ENOMEM;

	if (asprintf(&f.td_id, "spiffe://%s", trust_domain) < 0) {
		f.td_id = NULL;
		goto fail;
	}
	if (streq(trust_domain, s->td) || find_federation(s, f.td_id)) {
		r = log_error_errno(-EEXIST, "devagent: trust domain %s is given twice", trust_domain);
		goto fail;
	}
	if (!(f.der = malloc(len ? len : 1)))
		goto fail;
	memcpy(f.der, der, len);
	f.len = len;
	if (gen_jwt_key) {
		_cleanup_free_ char *kid = NULL;
		if ((r = jwt_key_generate(&f.jwt_key)) < 0 || (r = jwt_key_thumbprint(f.jwt_key, &kid)) < 0)
			goto fail;
		EVP_PKEY *keys[] = {f.jwt_key};
		const char *kids[] = {kid};
		if ((r = jwks_json(keys, kids, 1, &f.jwks)) < 0)
			goto fail;
	} else if ((r = jwks_json(NULL, NULL, 0, &f.jwks)) < 0)
		goto fail;
	Federation *p = realloc(s->fed, (s->n_fed + 1) * sizeof *p);
	if (!p) {
		r = -ENOMEM;
		goto fail;
	}
	s->fed = p;
	s->fed[s->n_fed++] = f;
	return 0;
fail:
	fed_free_contents(&f);
	return r == -EEXIST ? r : log_error_errno(r, "devagent: cannot add federation %s", trust_domain);
}

int server_start(Server *s)
{
	int r;
	if (!s->listeners[API_WORKLOAD].path && !s->listeners[API_DELEGATED].path)
		return log_error_errno(-EINVAL, "devagent: neither --socket nor --admin-socket given");
	for (int i = 0; i < _API_MAX; i++)
		if (s->listeners[i].path && (r = listener_lock(&s->listeners[i])) < 0)
			return r;
	pthread_mutex_lock(&s->lifecycle_mu);
	r = server_up(s);
	pthread_mutex_unlock(&s->lifecycle_mu);
	if (r < 0)
		return r;
	if ((r = -pthread_create(&s->accept_thread, NULL, accept_thread, s)) < 0) {
		log_error_errno(r, "devagent: cannot start the accept thread");
		return r;
	}
	if ((r = -pthread_create(&s->timer_thread, NULL, timer_thread, s)) < 0) {
		pthread_mutex_lock(&s->mu);
		s->stopping = true;
		pthread_mutex_unlock(&s->mu);
		wake_accept(s);
		pthread_join(s->accept_thread, NULL);
		return log_error_errno(r, "devagent: cannot start the timer thread");
	}
	s->threads_started = true;
	return 0;
}

Server *server_free(Server *s)
{
	if (!s)
		return NULL;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	if (s->threads_started) {
		wake_accept(s);
		pthread_join(s->accept_thread, NULL);
		pthread_join(s->timer_thread, NULL);
	}
	pthread_mutex_lock(&s->lifecycle_mu);
	server_down(s, "devagent shutting down");
	pthread_mutex_unlock(&s->lifecycle_mu);
	for (int i = 0; i < _API_MAX; i++) {
		Listener *l = &s->listeners[i];
		listener_close(l);
		if (l->lock_fd >= 0) {
			if (l->locked)
				(void)unlink(l->lock_path);
			close(l->lock_fd);
		}
		free(l->path);
		free(l->lock_path);
	}
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	for (size_t i = 0; i < s->n_fed; i++)
		fed_free_contents(&s->fed[i]);
	free(s->fed);
	free(s->peers);
	free(s->auth_uids);
	free(s->td);
	free(s->td_id);
	free(s->jwt_kid);
	free(s->own_jwks);
	EVP_PKEY_free(s->jwt_key);
	registry_free(s->reg);
	ca_free(s->ca);
	pthread_cond_destroy(&s->cond);
	pthread_cond_destroy(&s->stream_cond);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->lifecycle_mu);
	free(s);
	return NULL;
}

static bool entry_selected(RegEntry *e, const char *key)
{
	return !key || streq(reg_entry_id(e), key) || streq(reg_entry_spiffe_id(e), key);
}

int server_rotate(Server *s, const char *key)
{
	int n = 0, r = 0;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < registry_count(s->reg); i++) {
		RegEntry *e = registry_at(s->reg, i);
		if (!entry_selected(e, key))
			continue;
		EntryState *st = reg_entry_data(e);
		/* Entries nobody asked for yet have nothing to rotate. */
		if (!st || !st->leaf)
			continue;
		if ((r = mint_entry(s, e)) < 0)
			break;
		push_entry(s, e);
		n++;
	}
	if (r >= 0 && n == 0 && key && !registry_find(s->reg, key)) {
		bool any = false;
		for (size_t i = 0; i < registry_count(s->reg) && !any; i++)
			any = entry_selected(registry_at(s->reg, i), key);
		if (!any)
			r = -ENOENT;
	}
	pthread_mutex_unlock(&s->mu);
	return r < 0 ? r : n;
}

int server_add_entry(Server *s, const char *spec, KvMsg *reply)
{
	RegEntry *e = NULL;
	pthread_mutex_lock(&s->mu);
	int r = registry_add_spec(s->reg, spec, &e);
	if (r >= 0) {
		if ((r = kv_add(reply, "id", reg_entry_id(e))) >= 0)
			r = kv_add(reply, "spiffe_id", reg_entry_spiffe_id(e));
		/* Subscribers that match get it (after the first-SVID delay, if any). */
		bool matched = false;
		for (Call *c = s->streams; c && !matched; c = c->next)
			matched = c->svid_stream &&
				  reg_entry_matches(e, (const char *const *)c->sel, c->n_sel);
		if (matched) {
			ensure_minted(s, e);
			EntryState *st = reg_entry_data(e);
			if (st && st->leaf)
				push_entry(s, e);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

int server_remove_entry(Server *s, const char *key)
{
	Call **affected = NULL;
	size_t n_aff = 0;
	int r;

	pthread_mutex_lock(&s->mu);
	for (Call *c = s->streams; c; c = c->next) {
		if (!c->svid_stream)
			continue;
		bool hit = false;
		for (size_t i = 0; i < registry_count(s->reg) && !hit; i++) {
			RegEntry *e = registry_at(s->reg, i);
			hit = entry_selected(e, key) &&
			      reg_entry_matches(e, (const char *const *)c->sel, c->n_sel);
		}
		if (!hit)
			continue;
		Call **p = realloc(affected, (n_aff + 1) * sizeof *p);
		if (!p) {
			r = -ENOMEM;
			goto out;
		}
		affected = p;
		affected[n_aff++] = c;
	}
	r = registry_remove(s->reg, key);
	if (r > 0)
		for (size_t i = 0; i < n_aff; i++)
			stream_update(affected[i]);
out:
	pthread_mutex_unlock(&s->mu);
	free(affected);
	return r;
}

int server_list(Server *s, KvMsg *reply)
{
	int r = 0;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < registry_count(s->reg) && r >= 0; i++) {
		RegEntry *e = registry_at(s->reg, i);
		EntryState *st = reg_entry_data(e);
		_cleanup_free_ char *sel = NULL;
		size_t len = 0;
		for (size_t j = 0; j < reg_entry_n_selectors(e); j++)
			len += strlen(reg_entry_selector(e, j)) + 1;
		if (!(sel = calloc(1, len + 1))) {
			r = -ENOMEM;
			break;
		}
		for (size_t j = 0; j < reg_entry_n_selectors(e); j++) {
			if (j)
				strcat(sel, ",");
			strcat(sel, reg_entry_selector(e, j));
		}
		r = kv_addf(reply, "entry", "%s %s %s %s %" PRId64 " %" PRIu64, reg_entry_id(e),
			    reg_entry_spiffe_id(e), sel,
			    st && st->leaf ? ca_leaf_serial(st->leaf) : "-",
			    st && st->leaf ? ca_leaf_not_after(st->leaf) : (int64_t)0,
			    st ? st->mints : 0);
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

int server_info(Server *s, KvMsg *reply)
{
	unsigned streams = 0;
	int r;
	pthread_mutex_lock(&s->mu);
	for (Call *c = s->streams; c; c = c->next)
		streams++;
	if ((r = kv_add(reply, "version", SVIDFS_VERSION)) >= 0 &&
	    (r = kv_add(reply, "trust_domain", s->td)) >= 0 &&
	    (r = kv_addf(reply, "entries", "%zu", registry_count(s->reg))) >= 0 &&
	    (r = kv_addf(reply, "streams", "%u", streams)) >= 0 &&
	    (r = kv_addf(reply, "svid_streams", "%u", s->n_svid_streams)) >= 0 &&
	    (r = kv_addf(reply, "messages_sent", "%" PRIu64, s->messages_sent)) >= 0 &&
	    (r = kv_addf(reply, "restarts", "%" PRIu64, s->restarts)) >= 0 &&
	    (r = kv_add(reply, "listening", s->inst ? "true" : "false")) >= 0 &&
	    (r = kv_add(reply, "jwt_kid", s->jwt_kid)) >= 0)
		r = kv_addf(reply, "first_svid_delay_ms", "%" PRIu64, s->first_delay_ms);
	pthread_mutex_unlock(&s->mu);
	return r;
}

int server_close_streams(Server *s)
{
	int n = 0;
	pthread_mutex_lock(&s->mu);
	for (Call *c = s->streams, *next; c; c = next) {
		next = c->next;
		grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE,
					     "stream closed by devagent (fault injection)", NULL);
		c->ended = true;
		stream_unlink(c);
		n++;
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

int server_stall(Server *s, uint64_t ms)
{
	pthread_mutex_lock(&s->mu);
	s->stall_until = ms ? now_ms() + (int64_t)ms : 0;
	if (!ms)
		for (Call *c = s->streams; c; c = c->next)
			call_flush(c);
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int server_refuse(Server *s, uint64_t ms)
{
	pthread_mutex_lock(&s->mu);
	s->refuse_until = ms ? now_ms() + (int64_t)ms : 0;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int server_send_malformed(Server *s)
{
	/* Field 1, length-delimited, claiming 2^28 bytes that never come: no protobuf parser
	 * accepts it. */
	static const uint8_t junk[] = {0x0a, 0x80, 0x80, 0x80, 0x80, 0x01, 0xff, 0xff};
	int n = 0;
	pthread_mutex_lock(&s->mu);
	for (Call *c = s->streams; c; c = c->next)
		if (c->svid_stream && !c->ended) {
			call_queue(c, raw_bb(junk, sizeof junk), true);
			n++;
		}
	pthread_mutex_unlock(&s->mu);
	return n;
}

int server_send_oversize(Server *s, uint64_t bytes)
{
	int n = 0, r = 0;
	if (bytes > (1ull << 30))
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	for (Call *c = s->streams; c; c = c->next) {
		grpc_byte_buffer *bb = NULL;
		if (!c->svid_stream || c->ended)
			continue;
		r = stream_snapshot(c, (size_t)bytes + 1, &bb);
		if (r == -EACCES)
			continue;
		if (r < 0)
			break;
		call_queue(c, bb, true);
		n++;
	}
	pthread_mutex_unlock(&s->mu);
	return r < 0 && r != -EACCES ? r : n;
}

int server_restart(Server *s, uint64_t ms)
{
	pthread_mutex_lock(&s->lifecycle_mu);
	server_down(s, "devagent restarting (fault injection)");
	pthread_mutex_lock(&s->mu);
	s->restarts++;
	s->relisten_at = now_ms() + (int64_t)ms;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&s->lifecycle_mu);
	return 0;
}

int server_set_jwt_delay(Server *s, uint64_t ms)
{
	__atomic_store_n(&s->jwt_delay_ms, ms, __ATOMIC_RELAXED);
	return 0;
}

int server_set_delay(Server *s, uint64_t ms)
{
	pthread_mutex_lock(&s->mu);
	s->first_delay_ms = ms;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int server_wait_streams(Server *s, unsigned n, uint64_t timeout_ms)
{
	int64_t deadline = now_ms() + (int64_t)timeout_ms;
	int r = 0;
	pthread_mutex_lock(&s->mu);
	while (s->n_svid_streams < n) {
		if (now_ms() >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
		pthread_cond_timedwait(&s->stream_cond, &s->mu, &ts);
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}
