/* SPDX-License-Identifier: Apache-2.0 */
/* kv.h: the control-socket and registration-file message format (docs/control-protocol.md):
 * "key=value\n" lines ended by an empty line. Owns one message's strings. Not thread-safe per
 * message. Keys are [a-z0-9_.-]+; values hold no '\n' and no NUL. */
#pragma once

#include <stddef.h>
#include "macro.h"

typedef struct KvMsg KvMsg;

int kv_new(KvMsg **ret);
KvMsg *kv_free(KvMsg *m); /* NULL-safe, returns NULL */
int kv_add(KvMsg *m, const char *key, const char *value); /* -EINVAL on a bad key or value */
int kv_addf(KvMsg *m, const char *key, const char *fmt, ...) _printf_(3, 4);
const char *kv_get(const KvMsg *m, const char *key); /* first value for key, or NULL */
size_t kv_count(const KvMsg *m);
const char *kv_key(const KvMsg *m, size_t i);
const char *kv_value(const KvMsg *m, size_t i);

int kv_format(const KvMsg *m, char **ret, size_t *ret_len); /* includes the final empty line */
/* Parses one message from buf (the final empty line is optional). -EINVAL on a malformed line. */
int kv_parse(const char *buf, size_t len, KvMsg **ret);

int kv_write_fd(int fd, const KvMsg *m);
/* Reads until the empty line that ends a message; -EMSGSIZE beyond max bytes, -ECONNRESET on EOF
 * before a whole message, -ETIMEDOUT after timeout_ms (-1 waits forever). */
int kv_read_fd(int fd, size_t max, int timeout_ms, KvMsg **ret);
/* Reads a whole file holding one message, whatever its size up to max (-EFBIG beyond). */
int kv_read_file(const char *path, size_t max, KvMsg **ret);
/* The length of the first whole message at buf (through its empty line), or 0 while it is
 * incomplete: for readers that buffer a stream themselves. */
size_t kv_message_length(const char *buf, size_t len);
