/* SPDX-License-Identifier: Apache-2.0 */
/* registry.h: the workload directories the kernel can see (pods/<uid>, identities/<name>,
 * self): name -> Workload and slot -> Workload, and what the kernel must be told when one
 * appears, changes or goes: the names of an old generation, the cached listings, the bytes a
 * removed workload's inodes pinned, poll wake-ups. This is where invalidation lives. The agents
 * layer adds and removes workloads and reports changes; the view and the control socket read.
 * Thread-safe (one mutex, never held across a call out of this module); never logs. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "inodes.h"
#include "notify.h"
#include "registration.h"
#include "workload.h"

typedef struct Registry Registry;

/* inodes and notify are borrowed and must outlive the registry. */
int registry_new(InodeTable *inodes, Notify *notify, Registry **ret);
Registry *registry_free(Registry *r); /* NULL-safe; drops every workload reference */

/* Adds w (taking a new reference) and drops its parent directory's cached listing. -EEXIST
 * when the name or the slot is taken. */
int registry_add(Registry *r, Workload *w);
/* Removes name: the bytes its inodes pinned are released (keys wiped with their last
 * reference), its entry and the parent's listing invalidated, its pollers woken. -ENOENT. */
int registry_remove(Registry *r, const char *name);

Workload *registry_get(Registry *r, const char *name);	   /* new ref, or NULL */
Workload *registry_get_by_slot(Registry *r, uint32_t slot); /* new ref, or NULL */
/* Sorted basenames of one kind (pods/, identities/); free each and the array. */
int registry_list(Registry *r, RegistrationKind kind, char ***ret, size_t *ret_n);
/* Every workload name, sorted. */
int registry_list_all(Registry *r, char ***ret, size_t *ret_n);
size_t registry_count(Registry *r);

/* The store swapped in `generation` for name (its bytes are in place): the kernel drops the
 * names it got from older generations and the directory's listing; pollers wake. */
void registry_generation_changed(Registry *r, const char *name, uint64_t generation);
/* What status.json shows of w changed (serving agent, stream state, staleness, an expiry): it
 * gets a new serial (a new inode) and the kernel drops its name. */
void registry_status_changed(Registry *r, Workload *w);
