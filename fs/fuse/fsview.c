// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <limits.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "fsview.h"
#include "inokey.h"
#include "log.h"
#include "macro.h"
#include "render.h"
#include "tree.h"
#include "workload.h"

#define DENIAL_LOG_MAX 4096


struct FsView {
	Registry *registry;
	SvidStore *store;
	InodeTable *inodes;
	const AccessPolicy *policy;
	Notify *notify;
	int64_t started;
	pthread_mutex_t denial_lock;
	char **denials; /* "<target>|<caller>" already logged */
	size_t n_denials;
	const InoKey *key;   /* kernel-visible numbers; NULL: plain */
	uint64_t epoch;      /* input to file generations: differs per process */
	FsMintFn mint;
	void *mint_userdata;
	FsRecoverFn recover; /* a previous daemon's inodes (takeover); NULL: none */
	void *recover_userdata;
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* The kernel's numbers <-> the daemon's (inokey.h). Only the public functions convert. */
static uint64_t to_plain(const FsView *v, uint64_t wire)
{
	return v->key ? ino_key_unwrap(v->key, wire) : wire;
}

static uint64_t to_wire(const FsView *v, uint64_t plain)
{
	return v->key ? ino_key_wrap(v->key, plain) : plain;
}

int fsview_new(Registry *reg, SvidStore *store, InodeTable *inodes, const AccessPolicy *policy,
	       Notify *notify, FsView **ret)
{
	FsView *v = calloc(1, sizeof *v);

	if (!v)
		return -ENOMEM;
	v->registry = reg;
	v->store = store;
	v->inodes = inodes;
	v->policy = policy;
	v->notify = notify;
	v->started = now_s();
	v->epoch = 1;
	pthread_mutex_init(&v->denial_lock, NULL);
	*ret = v;
	return 0;
}

FsView *fsview_free(FsView *v)
{
	if (!v)
		return NULL;
	for (size_t i = 0; i < v->n_denials; i++)
		free(v->denials[i]);
	free(v->denials);
	pthread_mutex_destroy(&v->denial_lock);
	free(v);
	return NULL;
}

static void fill_stat(uint64_t ino, const InodeAttr *a, struct stat *st)
{
	*st = (struct stat){
	    .st_ino = ino,
	    .st_mode = a->mode,
	    .st_nlink = S_ISDIR(a->mode) ? 2 : 1,
	    .st_uid = a->uid,
	    .st_gid = a->gid,
	    .st_size = (off_t)a->size,
	    .st_blksize = 4096,
	    .st_blocks = (blkcnt_t)((a->size + 511) / 512),
	};
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = a->mtime;
}

static bool static_dir(uint64_t ino)
{
	return ino == TREE_INO_ROOT || ino == TREE_INO_PODS || ino == TREE_INO_IDENTITIES;
}

/* The root is open to all; pods/ and identities/ only to root (a process with
 * CAP_DAC_READ_SEARCH): a host user whose groups include a pod's fsGroup must not reach that
 * pod's key from the host. Pods and services enter through a bind mount of their own directory,
 * which never walks through these two. */
static void static_stat(FsView *v, uint64_t ino, struct stat *st)
{
	InodeAttr a = {.mode = S_IFDIR | (ino == TREE_INO_ROOT ? 0555 : 0500),
		       .mtime = v->started};
	fill_stat(ino, &a, st);
}

/* Logs a denial once per (target, caller pod or pid). */
static void log_denial(FsView *v, const char *target, const AccessCaller *c, const char *why)
{
	_cleanup_free_ char *key = NULL;
	bool seen = false;

	if (asprintf(&key, "%s|%s", target, c->in_pod ? c->pod_uid : "") < 0)
		return;
	if (!c->in_pod) {
		free(key);
		key = NULL;
		if (asprintf(&key, "%s|pid:%d", target, (int)c->tid) < 0)
			return;
	}
	pthread_mutex_lock(&v->denial_lock);
	for (size_t i = 0; i < v->n_denials && !seen; i++)
		seen = streq(v->denials[i], key);
	if (!seen) {
		if (v->n_denials >= DENIAL_LOG_MAX) {
			for (size_t i = 0; i < v->n_denials; i++)
				free(v->denials[i]);
			v->n_denials = 0;
		}
		char **p = realloc(v->denials, (v->n_denials + 1) * sizeof *p);
		if (p) {
			v->denials = p;
			p[v->n_denials++] = TAKE_PTR(key);
		}
	}
	pthread_mutex_unlock(&v->denial_lock);
	if (!seen)
		log_warning("denied %s to tid %d%s%s: %s", target, (int)c->tid,
			    c->in_pod ? " in pod " : "", c->in_pod ? c->pod_uid : "", why);
}

/* The workload directory entry (pods/<uid>, identities/<name>, self): entry timeout 0 so every
 * walk from above asks again, and the access rule. */
static int lookup_workload_dir(FsView *v, const char *wname, AccessTarget target, const char *base,
			       const FsCaller *c, FsEntry *ret)
{
	_cleanup_(workload_unrefp) Workload *w = registry_get(v->registry, wname);
	AccessCaller caller;
	const char *why = NULL;
	InodeAttr a;
	int r;

	if (!w)
		return -ENOENT;
	access_caller_from_proc(v->policy, NULL, c->tid, &caller);
	r = access_check(&caller, target, base, &why);
	if (r < 0) {
		log_denial(v, wname, &caller, why);
		return r;
	}
	const Registration *reg = workload_registration(w);
	InodeAttr attr = {.mode = S_IFDIR | 0555,
			  .uid = reg->uid,
			  .gid = reg->gid,
			  .mtime = workload_changed_at(w),
			  .slot = workload_slot(w),
			  .owner = workload_dir_serial(w)};
	if (!attr.mtime)
		attr.mtime = v->started;
	uint64_t ino = workload_dir_ino(w);
	r = inode_table_add(v->inodes, ino, &attr, NULL, &a);
	if (r < 0)
		return r;
	*ret = (FsEntry){.ino = ino, .entry_timeout = 0, .attr_timeout = 1.0};
	fill_stat(ino, &a, &ret->st);
	return 0;
}

static int lookup_root(FsView *v, uint64_t parent, const char *name, const FsCaller *c,
		       FsEntry *ret)
{
	_cleanup_free_ char *wname = NULL;

	if (parent == TREE_INO_ROOT) {
		uint64_t ino = streq(name, "pods")	   ? TREE_INO_PODS
			       : streq(name, "identities") ? TREE_INO_IDENTITIES
							   : 0;
		if (ino) {
			*ret = (FsEntry){.ino = ino,
					 .entry_timeout = FSVIEW_TIMEOUT,
					 .attr_timeout = FSVIEW_TIMEOUT};
			static_stat(v, ino, &ret->st);
			return 0;
		}
		if (streq(name, "self"))
			return lookup_workload_dir(v, "self", ACCESS_TARGET_SELF, NULL, c, ret);
		return -ENOENT;
	}
	if (!tree_name_valid(name))
		return -ENOENT;
	bool pods = parent == TREE_INO_PODS;
	if (asprintf(&wname, "%s/%s", pods ? "pods" : "identities", name) < 0)
		return -ENOMEM;
	return lookup_workload_dir(v, wname, pods ? ACCESS_TARGET_POD : ACCESS_TARGET_IDENTITY,
				   name, c, ret);
}

static int render_status(FsView *v, Workload *w, const SvidSet *set, SvidBlob **ret)
{
	WorkloadStream ws;

	workload_get_stream(w, &ws);
	SvidStatusExtra extra = {.agent = ws.agent[0] ? ws.agent : NULL,
				 .stream_state = ws.state[0] ? ws.state : NULL,
				 .last_message_at = ws.last_message_at,
				 .now = now_s()};
	workload_status_touch(w, extra.now);
	return svid_render_status(set, &extra, ret);
}

/* Rule 6 of docs/security.md: only a caller that may read the workload's key may make the
 * daemon mint (and hold) a JWT-SVID for it: the key's mode bits against the caller's uid and
 * groups (root passes), and never a process of another pod. */
static int may_read_key(FsView *v, Workload *w, const FsCaller *c)
{
	static const AccessTarget targets[_REGISTRATION_KIND_MAX] = {
	    [REGISTRATION_POD] = ACCESS_TARGET_POD,
	    [REGISTRATION_IDENTITY] = ACCESS_TARGET_IDENTITY,
	    [REGISTRATION_SELF] = ACCESS_TARGET_SELF,
	};
	const Registration *reg = workload_registration(w);
	const char *why;
	AccessCaller ac;
	gid_t groups[256];

	/* The rule of the walk into the workload's directory, again: a handle or an fd passed
	 * from elsewhere does not walk. */
	access_caller_from_proc(v->policy, NULL, c->tid, &ac);
	if (access_check(&ac, targets[reg->kind], workload_basename(w), &why) < 0)
		return -EACCES;
	if (c->uid == 0 || (c->uid == reg->uid && (reg->key_mode & 0400)) ||
	    (reg->key_mode & 0004))
		return 0;
	if (!(reg->key_mode & 0040))
		return -EACCES;
	if (c->gid == reg->gid)
		return 0;
	int n = c->groups ? c->groups(c->userdata, groups, (int)ELEMENTSOF(groups)) : 0;
	for (int i = 0; i < n; i++)
		if (groups[i] == reg->gid)
			return 0;
	return -EACCES;
}

/* The audience's index in the workload (its node id), evicting the least recently used one
 * when the workload has too many: its token goes and its name is invalidated. */
static int audience_index(FsView *v, Workload *w, const char *audience, uint64_t jwt_dir)
{
	_cleanup_free_ char *evicted = NULL, *enc = NULL;
	int idx = -1;
	int r = workload_audience_index(w, audience, &idx, &evicted);

	if (r < 0)
		return r;
	if (evicted) {
		svid_store_drop_jwt(v->store, workload_name(w), evicted);
		if (jwt_dir && tree_audience_encode(evicted, &enc) >= 0)
			notify_inval_entry(v->notify, jwt_dir, enc);
	}
	/* A new audience changes jwt/'s listing, which the kernel caches (no opendir). */
	if (r > 0 && jwt_dir)
		notify_inval_inode(v->notify, jwt_dir);
	return idx;
}

/* The entry of a cached, fresh token; -ENOENT when there is none. */
static int jwt_entry(FsView *v, Workload *w, const char *audience, int idx, FsEntry *ret)
{
	_cleanup_(svid_blob_unrefp) SvidBlob *tok = NULL;
	int64_t fresh_until = 0, now = now_s();
	uint64_t serial = 0;
	InodeAttr a;
	int r;

	r = svid_store_get_jwt(v->store, workload_name(w), audience, now, &tok, &fresh_until,
			       &serial);
	if (r < 0)
		return r;
	const Registration *reg = workload_registration(w);
	uint64_t ino = tree_ino(workload_slot(w), (uint16_t)(TREE_ID_FIRST_JWT + idx),
				workload_jwt_serial(w, (unsigned)idx, serial));
	InodeAttr attr = {.mode = S_IFREG | reg->key_mode,
			  .uid = reg->uid,
			  .gid = reg->gid,
			  .mtime = now,
			  .slot = workload_slot(w),
			  .owner = workload_dir_serial(w),
			  .generation = workload_generation(w)};
	r = inode_table_add(v->inodes, ino, &attr, tok, &a);
	if (r < 0)
		return r;
	double t = fresh_until > now ? (double)(fresh_until - now) : 1.0;
	*ret = (FsEntry){.ino = ino, .entry_timeout = t, .attr_timeout = t};
	fill_stat(ino, &a, &ret->st);
	return 0;
}

static void entry_publish(FsView *v, FsEntry *e);

typedef struct JwtMint {
	FsView *v;
	Workload *w;
	char *audience;
	uint64_t jwt_dir;
	FsLookupDone done;
	void *req;
} JwtMint;

static void jwt_minted(void *userdata, int r)
{
	JwtMint *m = userdata;
	FsEntry e = {};

	if (r >= 0) {
		int idx = audience_index(m->v, m->w, m->audience, m->jwt_dir);
		r = idx < 0 ? idx : jwt_entry(m->v, m->w, m->audience, idx, &e);
		if (r == -ENOENT) /* minted already stale, or dropped meanwhile */
			r = -EAGAIN;
	} else if (r == -EACCES) /* the agent has no JWT-SVID for this workload */
		r = -ENOENT;
	else if (r == -ETIMEDOUT || r == -ESHUTDOWN)
		r = -EAGAIN;
	if (r >= 0)
		entry_publish(m->v, &e);
	m->done(m->req, r, &e);
	workload_unref(m->w);
	free(m->audience);
	free(m);
}

/* jwt/<audience> and custom jwt_svid files: a token fresh until half its lifetime, minted off
 * the FUSE worker when none is cached. */
static int lookup_jwt(FsView *v, Workload *w, const char *audience, uint64_t jwt_dir,
		      const FsCaller *c, FsLookupDone done, void *req, FsEntry *ret)
{
	int r = may_read_key(v, w, c);

	if (r < 0)
		return r;
	int idx = audience_index(v, w, audience, jwt_dir);
	if (idx < 0)
		return idx;
	r = jwt_entry(v, w, audience, idx, ret);
	if (r != -ENOENT)
		return r;
	if (!v->mint || !done)
		return -EAGAIN;
	JwtMint *m = calloc(1, sizeof *m);
	if (!m || !(m->audience = strdup(audience))) {
		free(m);
		return -ENOMEM;
	}
	m->v = v;
	m->w = workload_ref(w);
	m->jwt_dir = jwt_dir;
	m->done = done;
	m->req = req;
	r = v->mint(v->mint_userdata, workload_name(w), audience, jwt_minted, m);
	if (r < 0) {
		workload_unref(m->w);
		free(m->audience);
		free(m);
		return r;
	}
	return -EINPROGRESS;
}

/* One attempt of a lookup inside a workload; -ESTALE asks the caller to retry. */
static int lookup_in_workload(FsView *v, Workload *w, uint16_t parent_id, uint32_t parent_serial,
			      const char *name, const FsCaller *c, FsLookupDone done, void *req,
			      FsEntry *ret)
{
	_cleanup_(svid_set_unrefp) SvidSet *set = NULL;
	_cleanup_(tree_listing_freep) TreeListing *l = NULL;
	_cleanup_(svid_blob_unrefp) SvidBlob *blob = NULL;
	const Registration *reg = workload_registration(w);
	uint32_t slot = workload_slot(w);
	InodeAttr a;
	int r;

	r = svid_store_get(v->store, workload_name(w), &set);
	if (r < 0)
		return r;
	uint64_t gen = svid_set_generation(set);

	if (parent_id == TREE_ID_JWT_DIR) {
		_cleanup_free_ char *aud = NULL;
		if (tree_audience_decode(name, &aud) < 0)
			return -ENOENT;
		return lookup_jwt(v, w, aud, tree_ino(slot, TREE_ID_JWT_DIR, parent_serial), c, done,
				  req, ret);
	}
	/* A dynamic directory (svids/<x>) from an older generation may mean another node now. */
	if (parent_id >= TREE_ID_FIRST_DYNAMIC && parent_serial != (uint32_t)gen)
		return -ENOENT;
	r = workload_listing(w, set, &l);
	if (r < 0)
		return r;
	const TreeNode *node = tree_listing_find(l, parent_id, name);
	if (!node)
		return -ENOENT;

	uint64_t ino;
	InodeAttr attr = {.uid = reg->uid,
			  .gid = reg->gid,
			  .slot = slot,
			  .owner = workload_dir_serial(w),
			  .generation = gen,
			  .mtime = workload_changed_at(w)};
	if (!attr.mtime)
		attr.mtime = svid_set_updated_at(set) ? svid_set_updated_at(set) : v->started;
	switch (node->type) {
	case TREE_NODE_JWT:
		return lookup_jwt(v, w, node->audience, 0, c, done, req, ret);
	case TREE_NODE_DIR:
		ino = tree_ino(slot, node->id, gen);
		attr.mode = S_IFDIR | 0555;
		break;
	case TREE_NODE_STATUS:
		ino = tree_ino(slot, TREE_ID_STATUS, workload_status_serial(w));
		attr.mode = S_IFREG | reg->cert_mode;
		break;
	case TREE_NODE_FILE:
		ino = tree_ino(slot, node->id, gen);
		attr.mode = S_IFREG | (node->secret ? reg->key_mode : reg->cert_mode);
		break;
	default:
		return -EIO;
	}
	/* Record the name before answering: a change announced from now on invalidates it
	 * (the kernel orders that invalidation after this lookup: it holds the directory). */
	if (parent_id == TREE_ID_WORKLOAD) {
		r = workload_note_name(w, gen, name);
		if (r < 0)
			return r;
	}
	r = inode_table_ref_existing(v->inodes, ino, &a);
	if (r < 0) {
		if (node->type == TREE_NODE_STATUS)
			r = render_status(v, w, set, &blob);
		else if (node->type == TREE_NODE_FILE)
			r = svid_render(set, node->svid_index, node->kind, node->arg, &blob);
		else
			r = 0;
		if (r < 0)
			return r;
		r = inode_table_add(v->inodes, ino, &attr, blob, &a);
		if (r < 0)
			return r;
	}
	*ret =
	    (FsEntry){.ino = ino, .entry_timeout = FSVIEW_TIMEOUT, .attr_timeout = FSVIEW_TIMEOUT};
	fill_stat(ino, &a, &ret->st);
	return 0;
}

/* The workload that owns a directory inode, checked against slot reuse. */
static int parent_workload(FsView *v, uint64_t parent, Workload **ret, uint16_t *ret_id,
			   uint32_t *ret_serial)
{
	uint32_t slot, serial;
	uint16_t id;
	InodeAttr a;

	if (!tree_ino_decode(parent, &slot, &id, &serial))
		return -ENOENT;
	Workload *w = registry_get_by_slot(v->registry, slot);
	if (!w)
		return -ENOENT;
	bool ok = id == TREE_ID_WORKLOAD ? serial == (uint32_t)workload_dir_serial(w)
					 : inode_table_get(v->inodes, parent, &a, NULL) >= 0 &&
					       a.owner == workload_dir_serial(w);
	if (!ok) {
		workload_unref(w);
		return -ENOENT;
	}
	*ret = w;
	*ret_id = id;
	*ret_serial = serial;
	return 0;
}

static int lookup(FsView *v, uint64_t parent, const char *name, const FsCaller *c,
		  FsLookupDone done, void *req, FsEntry *ret);

/* What the kernel gets: its number and generation (inokey.h). */
static void entry_publish(FsView *v, FsEntry *e)
{
	/* Directories keep one generation forever (a pod's bind mount holds its directory's
	 * inode across takeovers); a file's changes with the process, so that an inode number a
	 * new process happens to reuse is a new inode to the kernel, never old cached bytes. */
	bool dir = S_ISDIR(e->st.st_mode);
	if (v->key)
		e->generation = ino_key_generation(v->key, e->ino, dir ? 0 : v->epoch);
	else
		e->generation = dir ? 1 : v->epoch;
	e->ino = e->st.st_ino = to_wire(v, e->ino);
}

int fsview_lookup(FsView *v, uint64_t parent, const char *name, const FsCaller *c,
		  FsLookupDone done, void *req, FsEntry *ret)
{
	int r = lookup(v, to_plain(v, parent), name, c, done, req, ret);

	if (r >= 0)
		entry_publish(v, ret);
	return r;
}

static int lookup(FsView *v, uint64_t parent, const char *name, const FsCaller *c,
		  FsLookupDone done, void *req, FsEntry *ret)
{
	_cleanup_(workload_unrefp) Workload *w = NULL;
	uint32_t serial;
	uint16_t id;
	int r;

	if (static_dir(parent))
		return lookup_root(v, parent, name, c, ret);
	r = parent_workload(v, parent, &w, &id, &serial);
	if (r < 0)
		return r;
	/* -ESTALE: a newer generation arrived between reading the set and recording the name.
	 * Bounded: each retry means another rotation landed in between. */
	for (int tries = 0; tries < 100; tries++) {
		r = lookup_in_workload(v, w, id, serial, name, c, done, req, ret);
		if (r != -ESTALE)
			return r;
	}
	return -EAGAIN;
}

void fsview_set_minter(FsView *v, FsMintFn mint, void *userdata)
{
	v->mint = mint;
	v->mint_userdata = userdata;
}

void fsview_set_connection(FsView *v, const InoKey *key, uint64_t epoch)
{
	v->key = key;
	v->epoch = epoch;
}

void fsview_set_recovery(FsView *v, FsRecoverFn recover, void *userdata)
{
	v->recover = recover;
	v->recover_userdata = userdata;
}

/* inode_table_get, recovering a previous daemon's inode on a miss. */
static int get_inode(FsView *v, uint64_t ino, InodeAttr *ret_attr, SvidBlob **ret_blob)
{
	int r = inode_table_get(v->inodes, ino, ret_attr, ret_blob);
	if (r != -ENOENT)
		return r;
	r = v->recover ? v->recover(v->recover_userdata, ino) : -ENOENT;
	if (r < 0)
		return r;
	return inode_table_get(v->inodes, ino, ret_attr, ret_blob);
}

int fsview_getattr(FsView *v, uint64_t wire, struct stat *ret, double *ret_timeout)
{
	uint64_t ino = to_plain(v, wire);
	InodeAttr a;
	int r;

	if (static_dir(ino)) {
		static_stat(v, ino, ret);
		ret->st_ino = wire;
		*ret_timeout = FSVIEW_TIMEOUT;
		return 0;
	}
	r = get_inode(v, ino, &a, NULL);
	if (r < 0)
		return r;
	fill_stat(wire, &a, ret);
	uint32_t slot, serial;
	uint16_t id;
	bool dir = tree_ino_decode(ino, &slot, &id, &serial) && id == TREE_ID_WORKLOAD;
	*ret_timeout = dir ? 1.0 : FSVIEW_TIMEOUT;
	return 0;
}

int fsview_read(FsView *v, uint64_t wire, size_t size, off_t off, SvidBlob **ret_blob,
		size_t *ret_off, size_t *ret_len)
{
	SvidBlob *b = NULL;
	InodeAttr a;

	int r = get_inode(v, to_plain(v, wire), &a, &b);
	if (r < 0)
		return r;
	if (S_ISDIR(a.mode)) {
		svid_blob_unref(b);
		return -EISDIR;
	}
	if (!b)
		return -ESTALE; /* the workload was unregistered */
	size_t n = svid_blob_size(b);
	size_t o = off < 0 ? 0 : MIN((size_t)off, n);
	*ret_blob = b;
	*ret_off = o;
	*ret_len = MIN(size, n - o);
	return 0;
}

void fsview_forget(FsView *v, uint64_t wire, uint64_t nlookup)
{
	uint64_t ino = to_plain(v, wire);

	if (!static_dir(ino))
		inode_table_forget(v->inodes, ino, nlookup);
}

void fsview_dirents_free(FsDirent *d, size_t n)
{
	for (size_t i = 0; d && i < n; i++)
		free(d[i].name);
	free(d);
}

typedef struct Dirents {
	FsDirent *d;
	size_t n, cap;
} Dirents;

/* Positions: "." 1, ".." 2, then 3 + a key that never changes while the entry exists. */
#define DIRENT_OFF(key) ((off_t)(key) + 3)

static int dirents_add(Dirents *x, const char *name, uint64_t ino, mode_t type, off_t off)
{
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 16;
		FsDirent *p = realloc(x->d, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		x->d = p;
		x->cap = cap;
	}
	x->d[x->n] = (FsDirent){.name = strdup(name), .ino = ino, .type = type, .off = off};
	if (!x->d[x->n].name)
		return -ENOMEM;
	x->n++;
	return 0;
}

static int readdir_static(FsView *v, uint64_t ino, Dirents *x)
{
	char **names = NULL;
	size_t n = 0;
	int r = 0;

	if (ino == TREE_INO_ROOT) {
		_cleanup_(workload_unrefp) Workload *self = registry_get(v->registry, "self");
		r = dirents_add(x, "pods", TREE_INO_PODS, S_IFDIR, DIRENT_OFF(0));
		if (r >= 0)
			r = dirents_add(x, "identities", TREE_INO_IDENTITIES, S_IFDIR, DIRENT_OFF(1));
		if (r >= 0 && self)
			r = dirents_add(x, "self", workload_dir_ino(self), S_IFDIR, DIRENT_OFF(2));
		return r;
	}
	r = registry_list(v->registry,
			  ino == TREE_INO_PODS ? REGISTRATION_POD : REGISTRATION_IDENTITY, &names,
			  &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (r >= 0) {
			_cleanup_free_ char *wname = NULL;
			if (asprintf(&wname, "%s/%s", ino == TREE_INO_PODS ? "pods" : "identities",
				     names[i]) < 0)
				r = -ENOMEM;
			_cleanup_(workload_unrefp) Workload *w =
			    r >= 0 ? registry_get(v->registry, wname) : NULL;
			if (w)
				r = dirents_add(x, names[i], workload_dir_ino(w), S_IFDIR,
						DIRENT_OFF(workload_slot(w)));
		}
		free(names[i]);
	}
	free(names);
	return r;
}

static int dirent_cmp(const void *a, const void *b)
{
	off_t x = ((const FsDirent *)a)->off, y = ((const FsDirent *)b)->off;

	return (x > y) - (x < y);
}

int fsview_readdir(FsView *v, uint64_t wire, FsDirent **ret, size_t *ret_n)
{
	uint64_t ino = to_plain(v, wire);
	Dirents x = {};
	int r;

	r = dirents_add(&x, ".", ino, S_IFDIR, 1);
	if (r >= 0)
		r = dirents_add(&x, "..", TREE_INO_ROOT, S_IFDIR, 2);
	if (r >= 0 && static_dir(ino))
		r = readdir_static(v, ino, &x);
	else if (r >= 0) {
		_cleanup_(workload_unrefp) Workload *w = NULL;
		_cleanup_(svid_set_unrefp) SvidSet *set = NULL;
		_cleanup_(tree_listing_freep) TreeListing *l = NULL;
		uint32_t serial;
		uint16_t id;
		r = parent_workload(v, ino, &w, &id, &serial);
		if (r >= 0)
			r = svid_store_get(v->store, workload_name(w), &set);
		if (r >= 0 && id == TREE_ID_JWT_DIR) {
			char **aud = NULL;
			size_t n = 0;
			r = workload_audiences(w, &aud, &n);
			for (size_t i = 0; r >= 0 && i < n; i++) {
				_cleanup_free_ char *enc = NULL;
				if (tree_audience_encode(aud[i], &enc) >= 0)
					r = dirents_add(&x, enc,
							tree_ino(workload_slot(w),
								 (uint16_t)(TREE_ID_FIRST_JWT + i),
								 0),
							S_IFREG, DIRENT_OFF(TREE_ID_FIRST_JWT + i));
			}
			for (size_t i = 0; i < n; i++)
				free(aud[i]);
			free(aud);
		} else if (r >= 0) {
			uint64_t gen = svid_set_generation(set);
			r = workload_listing(w, set, &l);
			for (size_t i = 0; r >= 0 && i < tree_listing_size(l); i++) {
				const TreeNode *n = tree_listing_node(l, i);
				if (n->parent != id)
					continue;
				uint64_t cino = n->type == TREE_NODE_STATUS
						    ? tree_ino(workload_slot(w), n->id,
							       workload_status_serial(w))
						    : tree_ino(workload_slot(w), n->id, gen);
				r = dirents_add(&x, n->name, cino,
						n->type == TREE_NODE_DIR ? S_IFDIR : S_IFREG,
						DIRENT_OFF(n->id));
			}
		}
	}
	if (r < 0) {
		fsview_dirents_free(x.d, x.n);
		return r;
	}
	for (size_t i = 0; i < x.n; i++)
		x.d[i].ino = to_wire(v, x.d[i].ino);
	qsort(x.d, x.n, sizeof *x.d, dirent_cmp);
	*ret = x.d;
	*ret_n = x.n;
	return 0;
}

int fsview_poll(FsView *v, uint64_t wire, struct fuse_pollhandle *ph)
{
	uint64_t ino = to_plain(v, wire);
	InodeAttr a;
	uint32_t slot, serial;
	uint16_t id;

	if (!tree_ino_decode(ino, &slot, &id, &serial) ||
	    inode_table_get(v->inodes, ino, &a, NULL) < 0) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		return 1; /* unknown or static: nothing to wait for */
	}
	_cleanup_(workload_unrefp) Workload *w = registry_get_by_slot(v->registry, slot);
	if (!w || workload_dir_serial(w) != a.owner) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		return 1;
	}
	return workload_poll(w, a.generation, ph);
}
