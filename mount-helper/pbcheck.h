/* SPDX-License-Identifier: Apache-2.0 */
/* pbcheck.h: a check of a protobuf message's wire bytes before protobuf-c unpacks them. protobuf-c
 * copies a string field's bytes and appends a NUL, so a NUL inside the field would cut the C
 * string short: "<target>\0/../x" would read as "<target>" and the request would be accepted for
 * something it does not say. A protobuf string carries its length; this walks the message (every
 * depth, map entries included) and refuses a string whose length runs past a NUL. Owns nothing.
 * Pure: no I/O, no logging; any thread; fuzzed. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

/* 0 when every string field of the message (of type desc) is free of NUL bytes; -EINVAL with the
 * path of the first that is not in field (e.g. "volume_context.value"); -EBADMSG when the bytes
 * are not a well-formed message (let the caller refuse it as undecodable). */
int pbcheck_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
		    char *field, size_t fieldlen);
