// SPDX-License-Identifier: Apache-2.0
/* svidfs: mounts the identity filesystem and serves it until SIGTERM. */
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "cleanup.h"
#include "config.h"
#include "control.h"
#include "fsview.h"
#include "fuse_ops.h"
#include "inodes.h"
#include "log.h"
#include "macro.h"
#include "notify.h"
#include "secret.h"
#include "sessions.h"
#include "store.h"
#include "workload.h"
#include "util.h"

/* Decodes the octal escapes of /proc/self/mountinfo fields in place. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else
			*o++ = *s;
	}
	*o = 0;
}

/* Whether `path` is a mount point of fstype fuse.svidfs (1), another filesystem (2), or
 * nothing (0). */
static int mount_kind(const char *path)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int kind = 0;

	if (!f)
		return negative_errno();
	while (fgets(line, sizeof line, f)) {
		char *save = NULL, *field[5] = {}, *sep;
		char *tok = strtok_r(line, " ", &save);
		for (int i = 0; i < 5 && tok; i++, tok = strtok_r(NULL, " ", &save))
			field[i] = tok;
		if (!field[4])
			continue;
		unescape(field[4]);
		if (!streq(field[4], path))
			continue;
		/* After the optional fields: " - <fstype> <source> <options>" */
		sep = tok;
		while (sep && !streq(sep, "-"))
			sep = strtok_r(NULL, " ", &save);
		char *fstype = sep ? strtok_r(NULL, " ", &save) : NULL;
		kind = fstype && streq(fstype, "fuse.svidfs") ? 1 : 2;
	}
	return kind;
}

/* A crashed run leaves the mount answering ENOTCONN: detach it. A live one is refused. statfs()
 * always asks the daemon (a stat of the root may come from the attribute cache). */
static int clean_stale_mount(const char *path)
{
	struct statfs sf;
	struct stat st;

	for (int i = 0; i < 16; i++) {
		int k = mount_kind(path);
		if (k < 0)
			return log_error_errno(k, "cannot read /proc/self/mountinfo");
		bool dead = statfs(path, &sf) < 0 && errno == ENOTCONN;
		if (!dead && stat(path, &st) < 0 && errno == ENOTCONN)
			dead = true;
		if (!dead)
			return k == 1 ? log_error_errno(-EBUSY,
							"%s is already mounted by a running "
							"svidfs",
							path)
				      : 0;
		if (umount2(path, MNT_DETACH) < 0)
			return log_error_errno(negative_errno(),
					       "cannot detach the stale mount at %s", path);
		log_notice("detached a stale svidfs mount at %s (crashed run)", path);
	}
	return log_error_errno(-EBUSY, "%s: too many stale mounts", path);
}

/* Everything about mounting lives here, so that adopting a live /dev/fuse fd later (restart
 * survival) replaces one function. */
static int fuse_mount_start(const Config *cfg, FsView *view, struct fuse_session **ret)
{
	char *argv[] = {"svidfs", "-o",
			"ro,allow_other,default_permissions,fsname=svidfs,subtype=svidfs",
			cfg->fuse_debug ? "-d" : NULL, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(cfg->fuse_debug ? 4 : 3, argv);
	struct fuse_session *se;
	int r;

	r = clean_stale_mount(cfg->mountpoint);
	if (r < 0)
		return r;
	r = mkdir_p(cfg->mountpoint, 0755, 0755);
	if (r < 0)
		return log_error_errno(r, "cannot create the mountpoint %s", cfg->mountpoint);
	se = fuse_session_new(&args, &svidfs_fuse_ops, sizeof svidfs_fuse_ops, view);
	fuse_opt_free_args(&args);
	if (!se)
		return log_error_errno(-EINVAL, "cannot create the FUSE session");
	if (fuse_session_mount(se, cfg->mountpoint) != 0) {
		fuse_session_destroy(se);
		return log_error_errno(-EIO, "cannot mount svidfs on %s", cfg->mountpoint);
	}
	*ret = se;
	return 0;
}

typedef struct ReadyCtx {
	const char *mountpoint;
	Control *control;
	Sessions *sessions;
	struct fuse_session *se;
} ReadyCtx;

/* READY=1 once the mount answers (a stat goes through the FUSE loop). */
static void *ready_thread(void *userdata)
{
	ReadyCtx *c = userdata;
	struct stat st;

	for (int i = 0; i < 600 && !fuse_session_exited(c->se); i++) {
		if (stat(c->mountpoint, &st) == 0 && st.st_ino == TREE_INO_ROOT) {
			size_t pods, ids, ready;
			sessions_count(c->sessions, &pods, &ids, &ready);
			control_set_mounted_at(c->control, (int64_t)time(NULL));
			sd_notifyf(0, "READY=1\nSTATUS=%zu pod(s), %zu identit%s", pods, ids,
				   ids == 1 ? "y" : "ies");
			log_info("svidfs %s serving %s", SVIDFS_VERSION, c->mountpoint);
			return NULL;
		}
		usleep(50 * 1000);
	}
	log_error("the mount at %s did not answer", c->mountpoint);
	return NULL;
}

static void access_policy_freep_(AccessPolicy **p)
{
	access_policy_free(*p);
}

static int run(Config *cfg)
{
	_cleanup_(access_policy_freep_) AccessPolicy *policy = NULL;
	SvidStore *store = NULL;
	InodeTable *inodes = NULL;
	Notify *notify = NULL;
	Sessions *sessions = NULL;
	FsView *view = NULL;
	Control *control = NULL;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *loop = NULL;
	pthread_t ready;
	bool ready_started = false;
	struct timespec ts;
	int r;

	r = access_policy_new(cfg->cgroup_root, cfg->pod_pattern, &policy);
	if (r < 0)
		return log_error_errno(r, "bad cgroup_root or pod_pattern");
	{
		char own[ACCESS_UID_MAX];
		if (access_policy_trust_own_pod(policy, NULL, own) > 0)
			log_info("running in pod %s: its containers (the CSI plugin) may enter every "
				 "pod directory; other pods only their own",
				 own);
	}
	/* Generations and serials start above any earlier run's: microseconds of wall clock. */
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t base = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	workload_serial_init(base);
	r = svid_store_new(base, &store);
	if (r >= 0)
		r = inode_table_new(&inodes);
	if (r >= 0)
		r = notify_new(&notify);
	if (r >= 0)
		r = sessions_new(cfg, store, inodes, notify, &sessions);
	if (r >= 0)
		r = fsview_new(sessions, store, inodes, policy, notify, &view);
	if (r >= 0) {
		ControlContext cc = {.cfg = cfg,
				     .sessions = sessions,
				     .store = store,
				     .inodes = inodes,
				     .started_at = (int64_t)ts.tv_sec};
		r = control_new(&cc, &control);
	}
	if (r < 0) {
		log_error_errno(r, "cannot set up the daemon");
		goto out;
	}
	r = fuse_mount_start(cfg, view, &se);
	if (r < 0)
		goto out;
	r = notify_start(notify, se);
	if (r >= 0)
		r = sessions_start(sessions);
	if (r >= 0)
		r = control_start(control);
	if (r >= 0 && fuse_set_signal_handlers(se) != 0)
		r = log_error_errno(-EIO, "cannot install signal handlers");
	if (r < 0)
		goto unmount;

	ReadyCtx rc = {cfg->mountpoint, control, sessions, se};
	if (pthread_create(&ready, NULL, ready_thread, &rc) == 0)
		ready_started = true;
	loop = fuse_loop_cfg_create();
	if (!loop) {
		r = log_error_errno(-ENOMEM, "cannot create the loop config");
		goto unmount;
	}
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_idle_threads(loop, cfg->threads);
	/* 0, a negative errno, or the number of the signal that ended it. */
	r = fuse_session_loop_mt(se, loop);
	if (r < 0)
		log_error_errno(r, "the FUSE loop failed");
	else if (r > 0)
		log_info("received signal %d", r);
	r = MIN(r, 0);
	sd_notify(0, "STOPPING=1");
	log_info("shutting down");

unmount:
	fuse_session_exit(se);
	fuse_remove_signal_handlers(se);
	control = control_free(control);
	notify_stop(notify);
	/* Unmounting closes the connection, which also fails a stat the ready thread may have
	 * pending, so join it only afterwards. */
	fuse_session_unmount(se);
	if (ready_started)
		pthread_join(ready, NULL);
out:
	control_free(control);
	sessions_free(sessions);
	notify_free(notify);
	fsview_free(view);
	if (se)
		fuse_session_destroy(se);
	if (loop)
		fuse_loop_cfg_destroy(loop);
	inode_table_free(inodes);
	svid_store_unref(store);
	return r;
}

int main(int argc, char **argv)
{
	Config cfg;
	char *error = NULL;
	int r;

	log_set_ident("svidfs");
	r = config_load(argc, argv, &cfg, &error);
	if (r != 0) {
		if (r < 0)
			log_error_errno(r, "%s", error ? error : "bad configuration");
		free(error);
		config_done(&cfg);
		return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	log_set_max_level(cfg.log_level);
	signal(SIGPIPE, SIG_IGN);
	r = secret_init(cfg.secure_heap);
	if (r < 0)
		log_warning_errno(r, "key memory could not be locked (RLIMIT_MEMLOCK?); "
				     "keys are still wiped on release");
	log_info("agents: %zu, mountpoint %s, state %s, control %s", cfg.n_agents, cfg.mountpoint,
		 cfg.state_dir, cfg.control_socket);
	r = run(&cfg);
	config_done(&cfg);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
