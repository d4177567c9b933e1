/* SPDX-License-Identifier: Apache-2.0 */
/* server.h: the development agent's gRPC server (C core, unix sockets): the SPIFFE Workload API
 * on one socket and the SPIRE Delegated Identity API on another, backed by a Ca, a Registry and
 * a JWT key. Owns the listeners (each guarded by a flock'ed "<socket>.lock"), one accept thread
 * (SO_PEERCRED -> grpc_server_add_channel_from_fd), one completion-queue thread, one timer
 * thread (first-SVID delay, rotation at half the TTL, fault-injection timers), every open
 * stream, and every minted SVID. The control functions (server_rotate(), ...) may be called from
 * any thread; they take the server lock and push snapshots directly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ca.h"
#include "kv.h"
#include "registry.h"

typedef struct Server Server;

typedef struct ServerConfig {
	const char *trust_domain;
	const char *workload_socket; /* path, or NULL for no Workload API */
	const char *admin_socket;    /* path, or NULL for no Delegated Identity API */
	KeyType key_type;
	uint64_t svid_ttl_ms, jwt_ttl_ms, first_svid_delay_ms;
	const uid_t *authorized_uids; /* Delegated API callers; n == 0: only our own uid */
	size_t n_authorized_uids;
	bool auto_k8s;
} ServerConfig;

/* Takes ownership of ca and reg (also on failure). Generates the JWT signing key. */
int server_new(const ServerConfig *cfg, Ca *ca, Registry *reg, Server **ret);
/* A federated trust domain: its X.509 bundle (DER, concatenated) and, when gen_jwt_key, a
 * generated JWT key published in its JWKS (otherwise its JWKS has no keys). Before start. */
int server_add_federation(Server *s, const char *trust_domain, const uint8_t *der, size_t len,
			  bool gen_jwt_key);
/* Locks and binds the sockets and starts the threads. */
int server_start(Server *s);
/* Stops everything, removes the sockets and lock files. NULL-safe. */
Server *server_free(Server *s);

/* Control operations. `key` is an entry id or a SPIFFE ID (all entries with it); NULL = all. */
int server_rotate(Server *s, const char *key);                 /* count rotated, -ENOENT */
int server_add_entry(Server *s, const char *spec, KvMsg *reply); /* adds id=, spiffe_id= */
int server_remove_entry(Server *s, const char *key);           /* count removed, -ENOENT */
int server_list(Server *s, KvMsg *reply);
int server_info(Server *s, KvMsg *reply);
int server_close_streams(Server *s);                           /* count closed */
int server_stall(Server *s, uint64_t ms);
int server_refuse(Server *s, uint64_t ms);
int server_send_malformed(Server *s);                          /* count of streams */
int server_send_oversize(Server *s, uint64_t bytes);           /* count of streams */
int server_restart(Server *s, uint64_t ms);
int server_set_delay(Server *s, uint64_t ms);
/* A slow agent: every JWT-SVID request holds the server for ms before it is answered. */
int server_set_jwt_delay(Server *s, uint64_t ms);
/* Waits until at least n SVID streams are open (or timeout_ms passes: -ETIMEDOUT). */
int server_wait_streams(Server *s, unsigned n, uint64_t timeout_ms);
