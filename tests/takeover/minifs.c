// SPDX-License-Identifier: Apache-2.0
/* minifs: the smallest filesystem on fs/fuseconn + fs/handover, to test the takeover mechanism
 * apart from the daemon. One file, "data", whose content is fixed per process start. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fuse_lowlevel.h>

#include "cleanup.h"
#include "fuseconn.h"
#include "handover.h"
#include "log.h"

static char content[64];
static const char *keeper;
static FuseConn *conn;

static void st_fill(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	if (ino == 1) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(content);
	}
}

static void mf_init(void *u, struct fuse_conn_info *ci)
{
	const void *init;
	size_t len;
	_cleanup_free_ char *hex = NULL;
	KvMsg *m = NULL, *rep = NULL;
	int fd = fuse_conn_fd(conn);

	if (!keeper || fuse_conn_get_init(conn, &init, &len) < 0)
		return;
	handover_hex_encode(init, len, &hex);
	kv_new(&m);
	kv_add(m, "op", "put");
	kv_add(m, "init", hex);
	if (handover_call(keeper, m, &fd, 1, 2000, &rep, NULL, NULL) < 0)
		log_error("minifs: keeper put failed");
	kv_free(m);
	kv_free(rep);
}

static void mf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = {.attr_timeout = 3600, .entry_timeout = 3600};
	if (parent != 1 || strcmp(name, "data")) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = 2;
	st_fill(2, &e.attr);
	fuse_reply_entry(req, &e);
}

static void mf_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	st_fill(ino, &st);
	fuse_reply_attr(req, &st, 3600);
}

static void mf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ino == 1 ? 0 : ENOSYS);
}

static void mf_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS);
}

static void mf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	size_t len = strlen(content);
	if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, content + off, MIN(size, len - (size_t)off));
}

static const struct fuse_lowlevel_ops ops = {
	.init = mf_init,
	.lookup = mf_lookup,
	.getattr = mf_getattr,
	.open = mf_open,
	.flush = mf_flush,
	.read = mf_read,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	struct fuse_loop_config *cfg;
	KvMsg *req = NULL, *rep = NULL;
	int fds[HANDOVER_MAX_FDS];
	size_t n_fds = 0;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: minifs MOUNTPOINT KEEPER-SOCKET [CONTENT]\n");
		return 2;
	}
	keeper = argv[2];
	snprintf(content, sizeof content, "%s\n", argc > 3 ? argv[3] : "hello");
	fuse_opt_add_arg(&args, "minifs");
	se = fuse_session_new(&args, &ops, sizeof ops, NULL);
	if (!se)
		return 1;
	kv_new(&req);
	kv_add(req, "op", "get");
	r = handover_call(keeper, req, NULL, 0, 2000, &rep, fds, &n_fds);
	if (r == 0 && n_fds == 1 && kv_get(rep, "init")) {
		uint8_t init[FUSE_CONN_INIT_MAX];
		size_t len;
		r = handover_hex_decode(kv_get(rep, "init"), init, sizeof init, &len);
		if (r == 0)
			r = fuse_conn_adopt(fds[0], init, len, &conn);
		if (r < 0)
			return log_error_errno(r, "minifs: adopt failed"), 1;
		log_info("minifs: adopted");
	} else {
		r = fuse_conn_mount(argv[1], "minifs", &conn);
		if (r < 0)
			return log_error_errno(r, "minifs: mount failed"), 1;
	}
	r = fuse_conn_attach(conn, se);
	if (r < 0)
		return 1;
	if (fuse_conn_adopted(conn)) {
		r = fuse_conn_request_resend(conn);
		if (r < 0)
			log_warning_errno(r, "minifs: resend");
	}
	cfg = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	fuse_loop_cfg_set_max_threads(cfg, 4);
	r = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	fuse_session_destroy(se);
	kv_free(req);
	kv_free(rep);
	return r < 0 ? 1 : 0;
}
