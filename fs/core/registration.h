/* SPDX-License-Identifier: Apache-2.0 */
/* registration.h: one workload registration as the control socket, the state directory and the
 * identities.d files carry it (docs/control-protocol.md, register). Owns its strings; a value
 * object (a plain struct, since every field is read by the daemon). Pure: parses, validates,
 * formats, compares; never logs. Not shared between threads while being built. */
#pragma once

#include "cleanup.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kv.h"
#include "tree.h"

typedef enum RegistrationKind {
	REGISTRATION_POD,
	REGISTRATION_IDENTITY,
	REGISTRATION_SELF,
	_REGISTRATION_KIND_MAX,
} RegistrationKind;

typedef struct RegistrationJwt {
	char *file_name, *audience;
} RegistrationJwt;

typedef struct Registration {
	RegistrationKind kind;
	char *name; /* "pods/<uid>", "identities/<name>", "self" */
	char *pod_uid, *namespace_, *service_account, *pod_name;
	char **selectors; /* "<type>:<value>" (pods: derived from the facts) */
	size_t n_selectors;
	char **agents; /* ordered failover list; empty: every configured agent */
	size_t n_agents;
	TreeLayout layout;
	char *svid_file_name, *svid_key_file_name, *svid_bundle_file_name, *jwt_bundle_file_name;
	RegistrationJwt *jwt;
	size_t n_jwt;
	bool include_federated;
	uid_t uid;
	gid_t gid;
	mode_t cert_mode, key_mode;
} Registration;

/* From a register request or a persisted/identities.d file (op= and ref= are ignored). On
 * -EINVAL, *ret_error says why (static string). */
int registration_from_kv(const KvMsg *m, Registration **ret, const char **ret_error);
/* From an identities.d file (config_load_identities names kind=identity when the file does
 * not): as registration_from_kv, but any other kind is refused (-EINVAL). */
int registration_from_identity_file(const KvMsg *m, Registration **ret, const char **ret_error);
/* The registration's own keys (no op=, no ref=), in the format registration_from_kv reads. */
int registration_to_kv(const Registration *r, KvMsg *m);
Registration *registration_free(Registration *r); /* NULL-safe */
DEFINE_CLEANUP_FUNC(Registration, registration_free)
bool registration_equal(const Registration *a, const Registration *b);
/* Borrowed view for tree_listing_new(); jwt points into storage that `buf` provides. */
void registration_tree_names(const Registration *r, TreeJwtName *buf, TreeNames *ret);
/* File name for the persisted registration: "pod-<uid>.conf" or "identity-<name>.conf". */
int registration_state_file(const Registration *r, char **ret);
