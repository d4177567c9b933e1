/* SPDX-License-Identifier: Apache-2.0 */
/* inokey.h: the secret that keeps inode numbers and FUSE generations unguessable. Inside the
 * daemon an inode number is "plain": computed from (workload slot, node id, generation) by
 * tree.h. The kernel sees a "wire" number, a keyed permutation of the plain one, and a keyed
 * 32-bit generation. A file handle (name_to_handle_at) is (wire number, generation), so a
 * process that holds no handle cannot forge one for another workload's file: it would have to
 * guess 96 bits. The key is random per FUSE connection and travels with the connection across
 * takeovers (the numbers the kernel holds must keep their meaning). Immutable after creation;
 * any thread. Never logs. */
#pragma once

#include <stdint.h>

#define INO_KEY_SIZE 16

typedef struct InoKey InoKey;

/* key NULL: a fresh random key (getrandom). -EINVAL for an all-zero key. */
int ino_key_new(const uint8_t *key, InoKey **ret);
InoKey *ino_key_free(InoKey *k); /* NULL-safe; wipes the key */
void ino_key_export(const InoKey *k, uint8_t ret[INO_KEY_SIZE]);

/* A permutation of the numbers other than 0 and 1 (1 is FUSE's root and maps to itself; 0 is
 * not an inode). */
uint64_t ino_key_wrap(const InoKey *k, uint64_t plain);
uint64_t ino_key_unwrap(const InoKey *k, uint64_t wire);
/* The FUSE generation for a plain inode number: a keyed hash of (plain, epoch). epoch 0 for
 * numbers that must keep their generation across processes (directories). */
uint64_t ino_key_generation(const InoKey *k, uint64_t plain, uint64_t epoch);
