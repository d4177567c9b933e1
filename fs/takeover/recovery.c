// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "cleanup.h"
#include "macro.h"
#include "recovery.h"
#include "render.h"
#include "tree.h"

struct Recovery {
	Registry *registry;
	SvidStore *store;
	InodeTable *inodes;
	Notify *notify;
	InoLedger *ledger;
	int64_t started;
	RecoveryCounts rec; /* atomics */
};

int recovery_new(Registry *reg, SvidStore *store, InodeTable *inodes, Notify *notify,
		 InoLedger *ledger, Recovery **ret)
{
	Recovery *rc = calloc(1, sizeof *rc);

	if (!rc)
		return -ENOMEM;
	*rc = (Recovery){.registry = reg,
			 .store = store,
			 .inodes = inodes,
			 .notify = notify,
			 .ledger = ledger,
			 .started = (int64_t)time(NULL)};
	*ret = rc;
	return 0;
}

Recovery *recovery_free(Recovery *rc)
{
	free(rc);
	return NULL;
}

void recovery_set_ledger(Recovery *rc, InoLedger *ledger)
{
	rc->ledger = ledger;
}

void recovery_counts(Recovery *rc, RecoveryCounts *ret)
{
	ret->dirs = __atomic_load_n(&rc->rec.dirs, __ATOMIC_RELAXED);
	ret->served = __atomic_load_n(&rc->rec.served, __ATOMIC_RELAXED);
	ret->stale = __atomic_load_n(&rc->rec.stale, __ATOMIC_RELAXED);
}

int recovery_recover(void *recovery, uint64_t ino)
{
	Recovery *v = recovery;
	_cleanup_(workload_unrefp) Workload *w = NULL;
	_cleanup_(svid_set_unrefp) SvidSet *set = NULL;
	_cleanup_(tree_listing_freep) TreeListing *l = NULL;
	_cleanup_(svid_blob_unrefp) SvidBlob *blob = NULL;
	const char *name_to_drop = NULL;
	uint32_t slot, serial;
	uint16_t id;
	InodeAttr a;
	int r;

	if (!tree_ino_decode(ino, &slot, &id, &serial))
		return -ENOENT;
	w = registry_get_by_slot(v->registry, slot);
	if (!w)
		goto stale;
	const Registration *reg = workload_registration(w);
	if (id == TREE_ID_WORKLOAD) {
		if (serial != (uint32_t)workload_dir_serial(w))
			goto stale;
		InodeAttr attr = {.mode = S_IFDIR | 0555, .uid = reg->uid, .gid = reg->gid,
				  .mtime = workload_changed_at(w), .slot = slot,
				  .owner = workload_dir_serial(w)};
		if (!attr.mtime)
			attr.mtime = v->started;
		r = inode_table_add(v->inodes, ino, &attr, NULL, &a);
		if (r >= 0)
			__atomic_add_fetch(&v->rec.dirs, 1, __ATOMIC_RELAXED);
		return r < 0 ? r : 0;
	}
	if (!v->ledger)
		goto stale;
	r = svid_store_get(v->store, workload_name(w), &set);
	if (r < 0)
		goto stale;
	r = workload_listing(w, set, &l);
	if (r < 0)
		return r;
	const TreeNode *node = tree_listing_by_id(l, id);
	if (node && node->parent == TREE_ID_WORKLOAD)
		/* If stale: the kernel's dentry for this name still leads to the old inode; drop
		 * it so the reader's next open looks the name up and gets the current one. */
		name_to_drop = node->name;
	if (!node || node->type != TREE_NODE_FILE)
		goto stale; /* status.json and JWTs carry times: never the same bytes */
	r = svid_render(set, node->svid_index, node->kind, node->arg, &blob);
	if (r < 0)
		return r;
	if (ino_ledger_check(v->ledger, ino, svid_blob_data(blob), svid_blob_size(blob)) < 0)
		goto stale;
	InodeAttr attr = {.mode = S_IFREG | (node->secret ? reg->key_mode : reg->cert_mode),
			  .uid = reg->uid, .gid = reg->gid, .slot = slot,
			  .owner = workload_dir_serial(w), .generation = svid_set_generation(set),
			  .mtime = workload_changed_at(w)};
	if (!attr.mtime)
		attr.mtime = svid_set_updated_at(set) ? svid_set_updated_at(set) : v->started;
	r = inode_table_add(v->inodes, ino, &attr, blob, &a);
	if (r < 0)
		return r;
	__atomic_add_fetch(&v->rec.served, 1, __ATOMIC_RELAXED);
	return 0;
stale:
	if (name_to_drop)
		notify_inval_entry(v->notify, workload_dir_ino(w), name_to_drop);
	__atomic_add_fetch(&v->rec.stale, 1, __ATOMIC_RELAXED);
	return -ESTALE;
}


int recovery_invalidate_previous(Recovery *v)
{
	char **names = NULL;
	size_t n_names = 0, queued = 0;
	int r = registry_list_all(v->registry, &names, &n_names);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n_names; i++) {
		_cleanup_(workload_unrefp) Workload *w = registry_get(v->registry, names[i]);
		_cleanup_(svid_set_unrefp) SvidSet *set = NULL;
		_cleanup_(tree_listing_freep) TreeListing *l = NULL;
		free(names[i]);
		if (!w || svid_store_get(v->store, workload_name(w), &set) < 0 ||
		    workload_listing(w, set, &l) < 0)
			continue;
		for (size_t k = 0; k < tree_listing_size(l); k++) {
			const TreeNode *node = tree_listing_node(l, k);
			if (node->parent != TREE_ID_WORKLOAD)
				continue;
			notify_inval_entry(v->notify, workload_dir_ino(w), node->name);
			queued++;
		}
	}
	free(names);
	return (int)MIN(queued, (size_t)INT_MAX);
}
