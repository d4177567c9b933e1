/* SPDX-License-Identifier: Apache-2.0 */
/* workload.h: one registered workload as the kernel sees it: its registration, slot and
 * directory serial (inode numbers), the current generation, the names handed to the kernel in
 * its directory since the last change (to invalidate them on the next one), pending poll handles,
 * the status.json serial and stream facts, and the JWT audiences looked up. Reference-counted;
 * any thread may call anything (one mutex per workload, never held across a call out). Never
 * logs. Also owns the daemon-wide serial counter used for inode numbers that are not store
 * generations. */
#pragma once

#include "cleanup.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registration.h"
#include "store.h"
#include "tree.h"

struct fuse_pollhandle;

typedef struct Workload Workload;

/* Serials start above `base` (a clock, so they never repeat across restarts). */
void workload_serial_init(uint64_t base);
uint64_t workload_serial_next(void);

int workload_new(Registration *reg, uint32_t slot, Workload **ret); /* takes reg on success */
/* The same with a given directory serial (0: a new one): after a takeover a workload keeps the
 * directory inode number the kernel already holds. */
int workload_new_with_serial(Registration *reg, uint32_t slot, uint64_t dir_serial,
			     Workload **ret);
Workload *workload_ref(Workload *w);
Workload *workload_unref(Workload *w); /* NULL-safe, returns NULL */
DEFINE_CLEANUP_FUNC(Workload, workload_unref)

const char *workload_name(const Workload *w);
const char *workload_basename(const Workload *w); /* the name in pods/ or identities/ */
const Registration *workload_registration(const Workload *w);
uint32_t workload_slot(const Workload *w);
uint64_t workload_dir_serial(const Workload *w);
uint64_t workload_dir_ino(const Workload *w);
void workload_mark_removed(Workload *w);
bool workload_removed(Workload *w);

/* A lookup in the workload's directory answered from `generation` records the name it hands
 * to the kernel. -ESTALE when a newer generation was already announced: look up again. */
int workload_note_name(Workload *w, uint64_t generation, const char *name);
/* The store announced `generation`: returns the names to invalidate and the poll handles to
 * wake (the caller owns both arrays and their elements), and moves status.json to a new
 * serial. Older generations than the current one are ignored (returns 0 names). */
int workload_set_generation(Workload *w, uint64_t generation, int64_t now, char ***ret_names,
			    size_t *ret_n_names, struct fuse_pollhandle ***ret_polls,
			    size_t *ret_n_polls);
uint64_t workload_generation(Workload *w);
int64_t workload_changed_at(Workload *w);

/* poll(): 1 when `generation` is no longer current (the caller answers POLLIN); else stores ph
 * (if not NULL, taking it) for the next change and returns 0. */
int workload_poll(Workload *w, uint64_t generation, struct fuse_pollhandle *ph);

typedef struct WorkloadStream {
	char agent[64];	 /* agent serving the workload ("" none) */
	char state[512]; /* "streaming", "connecting", "backoff: <why>" ...; with the selectors
			  * when the agent answers them with no SVID */
	int64_t last_message_at;
} WorkloadStream;
/* true when agent or state changed (status.json must be re-rendered: a new serial). */
bool workload_set_stream(Workload *w, const WorkloadStream *s);
void workload_get_stream(Workload *w, WorkloadStream *ret);
uint64_t workload_status_serial(Workload *w);
int64_t workload_status_rendered_at(Workload *w);
void workload_status_touch(Workload *w, int64_t now);
uint64_t workload_bump_status(Workload *w); /* a new serial for status.json */

/* JWT audiences: a small index per audience (for inode numbers), and a daemon serial per
 * (audience, store token serial). 1 when the audience is new, 0 when known, with its index. At
 * most SVID_JWT_AUDIENCES_MAX per workload: when full, the least recently looked-up audience is
 * evicted and its index reused; *ret_evicted (left alone otherwise) then gets that audience
 * (free it), whose token and name the caller drops. */
int workload_audience_index(Workload *w, const char *audience, int *ret_index,
			    char **ret_evicted);
int workload_audiences(Workload *w, char ***ret, size_t *ret_n); /* copies */
uint64_t workload_jwt_serial(Workload *w, unsigned index, uint64_t store_serial);

/* The files and directories of w in one generation of its identity (its layout and names, the
 * set's SVIDs and bundles). */
int workload_listing(const Workload *w, const SvidSet *set, TreeListing **ret);
