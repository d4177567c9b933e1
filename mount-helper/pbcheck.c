// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pbcheck.h"

#define MAX_DEPTH 32 /* CSI requests nest 4 deep; protobuf-c allows far more */

static int varint(const uint8_t *buf, size_t len, size_t *off, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*off >= len)
			return -EBADMSG;
		uint8_t b = buf[(*off)++];
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -EBADMSG;
}

/* path: the fields above this message, "a.b." (its buffer holds pathlen bytes). */
static int walk(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
		unsigned depth, char *path, size_t pathlen)
{
	size_t plen = strlen(path);

	size_t off = 0;
	uint64_t key, n;
	int r;

	if (depth > MAX_DEPTH)
		return -EBADMSG;
	while (off < len) {
		r = varint(buf, len, &off, &key);
		if (r < 0)
			return r;
		if (key >> 3 == 0 || key >> 3 > UINT32_MAX)
			return -EBADMSG;
		switch (key & 7) {
		case 0: /* varint */
			r = varint(buf, len, &off, &n);
			if (r < 0)
				return r;
			break;
		case 1: /* 64-bit */
		case 5: /* 32-bit */
			n = (key & 7) == 1 ? 8 : 4;
			if (len - off < n)
				return -EBADMSG;
			off += n;
			break;
		case 2: { /* length-delimited: string, bytes, message, packed */
			r = varint(buf, len, &off, &n);
			if (r < 0)
				return r;
			if (n > len - off)
				return -EBADMSG;
			const ProtobufCFieldDescriptor *f =
			    protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3));
			if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(buf + off, 0, n)) {
				snprintf(path + plen, pathlen - plen, "%s", f->name);
				return -EINVAL;
			}
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				snprintf(path + plen, pathlen - plen, "%s.", f->name);
				r = walk(f->descriptor, buf + off, n, depth + 1, path, pathlen);
				if (r < 0)
					return r;
				path[plen] = 0;
			}
			off += n;
			break;
		}
		default: /* groups (3, 4) are not proto3; 6 and 7 do not exist */
			return -EBADMSG;
		}
	}
	return 0;
}

int pbcheck_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
		    char *field, size_t fieldlen)
{
	if (!fieldlen)
		return -EINVAL;
	field[0] = 0;
	return walk(desc, buf, len, 0, field, fieldlen);
}
