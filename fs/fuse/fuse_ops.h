/* SPDX-License-Identifier: Apache-2.0 */
/* fuse_ops.h: the libfuse low-level operation table. Owns nothing: each handler decodes the
 * request, calls fsview, and replies exactly once. userdata of the session is the FsView. */
#pragma once

#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops svidfs_fuse_ops;
