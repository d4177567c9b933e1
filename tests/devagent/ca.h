/* SPDX-License-Identifier: Apache-2.0 */
/* ca.h: the development agent's certificate authority (OpenSSL 3). A Ca is either self-signed
 * (its certificate is the trust bundle) or an intermediate signed by an upstream root, so two
 * agents can share one trust domain and bundle like the two agents of a nested SPIRE deployment.
 * It mints X509-SVID leaves (one URI SAN, cA=false, keyUsage critical digitalSignature
 * [+keyEncipherment for RSA], EKU serverAuth+clientAuth, 127-bit random serial). Private keys
 * leave only as PKCS#8 DER in secret memory. Pure apart from file reads/writes in the *_file
 * functions; never logs. A Ca is immutable after creation: any thread may mint concurrently. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef enum KeyType {
	KEY_TYPE_EC_P256,
	KEY_TYPE_RSA_2048,
	_KEY_TYPE_MAX,
} KeyType;

int key_type_from_string(const char *s); /* "ec-p256" | "rsa-2048"; -EINVAL */
const char *key_type_to_string(KeyType t);

typedef struct Ca Ca;
typedef struct CaLeaf CaLeaf;

int ca_new_self_signed(const char *trust_domain, Ca **ret);
/* The upstream cert file's first certificate signs; further non-self-signed certs join the SVID
 * chains, self-signed ones form the bundle. -EINVAL when the key does not match the cert or no
 * root is present; -errno from reading. */
int ca_new_intermediate(const char *trust_domain, const char *upstream_cert_file,
			const char *upstream_key_file, Ca **ret);
Ca *ca_free(Ca *ca); /* NULL-safe, returns NULL */
const char *ca_trust_domain(const Ca *ca);
const uint8_t *ca_bundle(const Ca *ca, size_t *ret_len); /* concatenated DER roots */
size_t ca_bundle_count(const Ca *ca);
/* The CA's own certificate (self-signed root or the intermediate), DER. */
const uint8_t *ca_cert(const Ca *ca, size_t *ret_len);

/* Mints a leaf for spiffe_id valid from now-10s for ttl_ms (rounded up to whole seconds). */
int ca_mint(Ca *ca, const char *spiffe_id, KeyType kt, uint64_t ttl_ms, CaLeaf **ret);
CaLeaf *ca_leaf_free(CaLeaf *l); /* NULL-safe, returns NULL; wipes the key */
size_t ca_leaf_chain_len(const CaLeaf *l);                        /* leaf + intermediates */
const uint8_t *ca_leaf_cert(const CaLeaf *l, size_t i, size_t *ret_len); /* DER, 0 = leaf */
const uint8_t *ca_leaf_key(const CaLeaf *l, size_t *ret_len);     /* PKCS#8 DER (secret) */
int64_t ca_leaf_not_after(const CaLeaf *l);                       /* Unix seconds */
const char *ca_leaf_serial(const CaLeaf *l);                      /* lowercase hex */

/* gen-root: a self-signed root for trust_domain (10 years), written as PEM; key mode 0600. */
int ca_gen_root_files(const char *trust_domain, const char *out_cert, const char *out_key);
/* Every certificate of a PEM file, DER-concatenated (federated bundles). -EINVAL if none. */
int bundle_load_pem_file(const char *path, uint8_t **ret, size_t *ret_len, size_t *ret_count);
