/* SPDX-License-Identifier: Apache-2.0 */
/* memscan.h: searches a process's memory, or a core file, for private keys (tests only). Owns
 * its needles, which live in OpenSSL's secure heap (locked, not dumped) when the process has one,
 * so that a process searching itself does not find its own needles. One MemScan per thread.
 *
 * A key given as PKCS#8 DER yields these needles:
 *   der      the DER itself, as the agent sends it
 *   pem      the PEM base64 body as svidfs serves it (64-column lines with their newlines)
 *   b64      the same base64 without newlines
 *   scalar   each half of the raw EC private scalar (EC keys): a buffer freed unwiped loses its
 *            first 16 or 32 bytes to malloc's free-list pointers, so whole-key needles alone
 *            would miss it
 *   b64frag  the base64 characters that encode nothing but scalar bytes, cut where the PEM text
 *            breaks its lines (EC keys): pieces of a PEM text freed unwiped
 * der, pem and b64 tell which form a copy had; scalar and b64frag also catch partial copies.
 * A hit is "safe" when its mapping is locked (VmFlags "lo") and excluded from core dumps
 * ("dd", as the secure heap is): gcore and the kernel's core dumper skip exactly the "dd"
 * mappings. Everything else is "unsafe". Skipped, as they hold nothing: mappings without read
 * permission (reserved arena space, guard pages) or without a resident or swapped page, and
 * mappings over 1 TiB (a sanitizer's shadow memory). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

typedef enum MemScanKind {
	MEMSCAN_DER,
	MEMSCAN_PEM,
	MEMSCAN_B64,
	MEMSCAN_SCALAR,
	MEMSCAN_B64FRAG,
	_MEMSCAN_KIND_MAX,
} MemScanKind;

typedef struct MemScan MemScan;

/* verbose: memscan_pid/file print one "# hit ..." line per hit to out. */
int memscan_new(FILE *out, bool verbose, MemScan **ret);
MemScan *memscan_free(MemScan *m); /* NULL-safe, returns NULL */

/* Adds the needles of one PKCS#8 DER key (copied). Returns the key's index. */
int memscan_add_key(MemScan *m, const uint8_t *der, size_t len);
/* Adds every "PRIVATE KEY" PEM block of a file (a credential bundle or a key file). */
int memscan_add_pem_file(MemScan *m, const char *path);
size_t memscan_n_keys(const MemScan *m);

/* Searches every mapping of pid (0: this process, whose safe mappings are skipped: the
 * needles live there). -errno when /proc cannot be read. */
int memscan_pid(MemScan *m, pid_t pid);
/* Searches a flat file (a core file): every hit is unsafe. */
int memscan_file(MemScan *m, const char *path);

uint64_t memscan_hits(const MemScan *m, MemScanKind kind, bool unsafe);
uint64_t memscan_unsafe_total(const MemScan *m);
void memscan_reset(MemScan *m); /* zeroes the hit counters */
/* One line per kind, "der needles=N safe=N unsafe=N", then "unsafe_total=N". */
void memscan_report(const MemScan *m, FILE *out, const char *prefix);
