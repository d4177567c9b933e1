// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "fsview.h"
#include "fuse_ops.h"
#include "log.h"
#include "macro.h"

static FsView *view(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Immutable inodes: nothing for the kernel to revalidate by mtime, nothing to write. */
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want &= ~(unsigned)FUSE_CAP_EXPORT_SUPPORT;
	log_debug("FUSE connection: protocol %u.%u, capable %#x, want %#x", conn->proto_major,
		  conn->proto_minor, conn->capable, conn->want);
}

static void reply_entry(fuse_req_t req, int r, const FsEntry *e)
{
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct fuse_entry_param p = {.ino = e->ino, .generation = e->generation, .attr = e->st,
				     .attr_timeout = e->attr_timeout,
				     .entry_timeout = e->entry_timeout};
	if (fuse_reply_entry(req, &p) < 0)
		/* The kernel never got the reference (interrupted): give it back. */
		fsview_forget(view(req), e->ino, 1);
}

/* The answer to a lookup, now or from the minter's thread (a JWT-SVID was minted). */
static void lookup_done(void *userdata, int r, const FsEntry *e)
{
	fuse_req_t req = userdata;

	/* ENOENT is an answer, EACCES was logged once by the access check; the rest are faults. */
	if (r < 0 && r != -ENOENT && r != -EACCES)
		log_warning_errno(r, "lookup failed");
	reply_entry(req, r, e);
}

static int req_groups(void *userdata, gid_t *ret, int max)
{
	int n = fuse_req_getgroups(userdata, max, ret);

	return n < 0 ? n : MIN(n, max);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	FsCaller c = {.tid = ctx->pid, .uid = ctx->uid, .gid = ctx->gid, .groups = req_groups,
		      .userdata = req};
	FsEntry e;
	int r = fsview_lookup(view(req), parent, name, &c, lookup_done, req, &e);

	if (r == -EINPROGRESS)
		return;
	if (r < 0 && r != -ENOENT && r != -EACCES)
		log_warning_errno(r, "lookup of %s in directory %#llx failed", name,
				  (unsigned long long)parent);
	reply_entry(req, r, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fsview_forget(view(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		fsview_forget(view(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	double timeout;
	int r = fsview_getattr(view(req), ino, &st, &timeout);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, timeout);
}

/* No open: the kernel then opens files without asking and never sends RELEASE, so steady-state
 * reads are page-cache hits (docs/design.md). Same for flush and directories. */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	SvidBlob *b = NULL;
	size_t o = 0, n = 0;
	int r = fsview_read(view(req), ino, size, off, &b, &o, &n);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, (const char *)svid_blob_data(b) + o, n);
	svid_blob_unref(b);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	FsDirent *d = NULL;
	size_t n = 0, used = 0;
	int r = fsview_readdir(view(req), ino, &d, &n);
	char *buf = r >= 0 ? malloc(size) : NULL;

	if (r >= 0 && !buf)
		r = -ENOMEM;
	/* off is the position of the last entry the kernel took (fsview: positions are stable). */
	for (size_t i = 0; r >= 0 && i < n; i++) {
		if (d[i].off <= off)
			continue;
		struct stat st = {.st_ino = d[i].ino, .st_mode = d[i].type};
		size_t need =
		    fuse_add_direntry(req, buf + used, size - used, d[i].name, &st, d[i].off);
		if (need > size - used)
			break;
		used += need;
	}
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
	fsview_dirents_free(d, n);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fuse_pollhandle *ph)
{
	int r = fsview_poll(view(req), ino, ph);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_poll(req, r > 0 ? POLLIN | POLLRDNORM : 0);
}

const struct fuse_lowlevel_ops svidfs_fuse_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .open = op_open,
    .flush = op_flush,
    .read = op_read,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .poll = op_poll,
};
