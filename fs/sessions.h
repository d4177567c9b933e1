/* SPDX-License-Identifier: Apache-2.0 */
/* sessions.h: which agent serves which workload. Owns the agent connections (one per configured
 * agent, plus the Workload API one for self/), their bundle subscriptions, one SVID subscription
 * per workload (to the first healthy agent of its failover list), the registry of workloads with
 * their references, and the registrations persisted in the state directory. A ticker thread
 * moves workloads between agents, refreshes stream state for status.json and pings the systemd
 * watchdog. Any thread may call the public functions; agent callbacks run on the connections'
 * threads. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "inodes.h"
#include "notify.h"
#include "registration.h"
#include "store.h"
#include "workload.h"

typedef struct Sessions Sessions;

int sessions_new(const Config *cfg, SvidStore *store, InodeTable *inodes, Notify *notify,
		 Sessions **ret);
/* Connects the agents, re-registers persisted workloads, config identities and self/, and
 * starts the ticker. */
int sessions_start(Sessions *s);
void sessions_stop(Sessions *s); /* cancels every stream; the registry stays */
Sessions *sessions_free(Sessions *s);

/* Idempotent per ref; -EEXIST when the live workload has other settings; -EINVAL with
 * *ret_error for an unknown agent. Takes reg. persist=false for config identities. */
int sessions_register(Sessions *s, Registration *reg, const char *ref, bool persist,
		      char **ret_name, unsigned *ret_refs, const char **ret_error);
/* ref NULL drops every reference. */
int sessions_unregister(Sessions *s, const char *name, const char *ref, unsigned *ret_refs,
			bool *ret_removed);
/* Waits until the workload has at least one SVID: 0 with the count, or -ETIMEDOUT. */
int sessions_wait(Sessions *s, const char *name, int timeout_ms, size_t *ret_svids);
int sessions_resubscribe(Sessions *s, const char *name);

Workload *sessions_get(Sessions *s, const char *name);	    /* new ref, or NULL */
Workload *sessions_get_by_slot(Sessions *s, uint32_t slot); /* new ref, or NULL */
/* Sorted basenames of one kind (pods/ or identities/); free each and the array. */
int sessions_list(Sessions *s, RegistrationKind kind, char ***ret, size_t *ret_n);
/* Every workload name, sorted. */
int sessions_list_all(Sessions *s, char ***ret, size_t *ret_n);
unsigned sessions_refs(Sessions *s, const char *name);
void sessions_count(Sessions *s, size_t *ret_pods, size_t *ret_identities, size_t *ret_ready);

/* Mints a JWT-SVID for audience from the serving agent and caches it in the store. */
int sessions_fetch_jwt(Sessions *s, const char *name, const char *audience);
/* Before sessions_start: registrations take the slot and directory serial a previous daemon
 * recorded in l (takeover), and record theirs for the next one. Borrowed. */
struct InoLedger;
void sessions_set_ledger(Sessions *s, struct InoLedger *l);
size_t sessions_slots_restored(Sessions *s); /* workloads that got their old slot back */
