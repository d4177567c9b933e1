// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctlclient.h"
#include "log.h"
#include "macro.h"
#include "mountinfo.h"
#include "publish.h"
#include "volctx.h"
#include "util.h"

#define CTL_TIMEOUT_MS 5000 /* one control request (the wait op adds its own timeout) */
#define WAIT_SLICE_MS 1000  /* wait in slices so shutdown and deadlines are noticed */
#define BIND_FLAGS (MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)

struct Publisher {
	char *kubelet_root, *kubelet_root_real, *svidfs_mount, *control_socket;
	int publish_timeout_ms;
	pthread_mutex_t mu;
	char **inflight; /* volume ids and target paths with an operation running */
	size_t n_inflight, cap_inflight;
	volatile int stopping;
};

DEFINE_CLEANUP_FUNC(KvMsg, kv_free)
DEFINE_CLEANUP_FUNC(VolCtx, volctx_free)

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void set_status(CsiStatus *st, grpc_status_code code, const char *fmt, ...) _printf_(3, 4);
static void set_status(CsiStatus *st, grpc_status_code code, const char *fmt, ...)
{
	va_list ap;

	st->code = code;
	va_start(ap, fmt);
	vsnprintf(st->message, sizeof st->message, fmt, ap);
	va_end(ap);
}

/* Formats into a message buffer; truncation of a long path in a message is fine. */
static void errf(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int publisher_new(const PublisherConfig *cfg, Publisher **ret)
{
	Publisher *p = calloc(1, sizeof *p);
	char buf[PATH_MAX];

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	p->publish_timeout_ms = cfg->publish_timeout_ms;
	p->kubelet_root = strdup(cfg->kubelet_root);
	p->svidfs_mount = strdup(cfg->svidfs_mount);
	p->control_socket = strdup(cfg->control_socket);
	/* The symlink-escape check compares resolved parents with the resolved root. A root that
	 * does not exist yet (kubelet not started) resolves at each publish instead. */
	p->kubelet_root_real = strdup(realpath(cfg->kubelet_root, buf) ? buf : cfg->kubelet_root);
	if (!p->kubelet_root || !p->svidfs_mount || !p->control_socket || !p->kubelet_root_real) {
		publisher_free(p);
		return -ENOMEM;
	}
	/* Strip trailing slashes so string prefixes compare cleanly. */
	for (char *s = p->kubelet_root; strlen(s) > 1 && s[strlen(s) - 1] == '/';)
		s[strlen(s) - 1] = 0;
	for (char *s = p->svidfs_mount; strlen(s) > 1 && s[strlen(s) - 1] == '/';)
		s[strlen(s) - 1] = 0;
	*ret = p;
	return 0;
}

Publisher *publisher_free(Publisher *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n_inflight; i++)
		free(p->inflight[i]);
	free(p->inflight);
	pthread_mutex_destroy(&p->mu);
	free(p->kubelet_root);
	free(p->kubelet_root_real);
	free(p->svidfs_mount);
	free(p->control_socket);
	free(p);
	return NULL;
}

void publisher_stop(Publisher *p)
{
	__atomic_store_n(&p->stopping, 1, __ATOMIC_RELEASE);
}

/* ---- the in-flight set: one operation per volume id and per target path ---- */

static bool inflight_has(Publisher *p, const char *key)
{
	for (size_t i = 0; i < p->n_inflight; i++)
		if (streq(p->inflight[i], key))
			return true;
	return false;
}

static int inflight_acquire(Publisher *p, const char *volume_id, const char *target)
{
	int r = 0;

	pthread_mutex_lock(&p->mu);
	if (inflight_has(p, volume_id) || inflight_has(p, target)) {
		r = -EBUSY;
		goto out;
	}
	if (p->n_inflight + 2 > p->cap_inflight) {
		size_t cap = p->cap_inflight ? p->cap_inflight * 2 : 64;
		char **n = realloc(p->inflight, cap * sizeof *n);
		if (!n) {
			r = -ENOMEM;
			goto out;
		}
		p->inflight = n;
		p->cap_inflight = cap;
	}
	char *a = strdup(volume_id), *b = strdup(target);
	if (!a || !b) {
		free(a);
		free(b);
		r = -ENOMEM;
		goto out;
	}
	p->inflight[p->n_inflight++] = a;
	p->inflight[p->n_inflight++] = b;
out:
	pthread_mutex_unlock(&p->mu);
	return r;
}

static void inflight_release_one(Publisher *p, const char *key)
{
	for (size_t i = 0; i < p->n_inflight; i++)
		if (streq(p->inflight[i], key)) {
			free(p->inflight[i]);
			p->inflight[i] = p->inflight[--p->n_inflight];
			return;
		}
}

static void inflight_release(Publisher *p, const char *volume_id, const char *target)
{
	pthread_mutex_lock(&p->mu);
	inflight_release_one(p, volume_id);
	inflight_release_one(p, target);
	pthread_mutex_unlock(&p->mu);
}

/* ---- control socket helpers ---- */

/* Sends one request; returns the transport error, or the reply's status. The reply is returned
 * whenever one arrived. */
static int ctl_request(Publisher *p, KvMsg *req, int timeout_ms, KvMsg **ret_reply)
{
	KvMsg *reply = NULL;
	int r = ctl_call(p->control_socket, req, timeout_ms, &reply);

	if (r < 0)
		return r;
	*ret_reply = reply;
	return 0;
}

static int ctl_simple(Publisher *p, const char *op, const char *workload, const char *ref,
		      KvMsg **ret_reply)
{
	_cleanup_(kv_freep) KvMsg *req = NULL;
	int r = kv_new(&req);

	if (r < 0)
		return r;
	if ((r = kv_add(req, "op", op)) < 0)
		return r;
	if (workload && (r = kv_add(req, "workload", workload)) < 0)
		return r;
	if (ref && (r = kv_add(req, "ref", ref)) < 0)
		return r;
	return ctl_request(p, req, CTL_TIMEOUT_MS, ret_reply);
}

/* Drops our reference; the daemon removes the workload with its last one. -ENOENT (already
 * gone) is success. Returns the transport error or the daemon's status. */
static int unregister_ref(Publisher *p, const char *workload, const char *ref, char *err,
			  size_t errlen)
{
	_cleanup_(kv_freep) KvMsg *reply = NULL;
	int r = ctl_simple(p, "unregister", workload, ref, &reply);

	if (r < 0) {
		errf(err, errlen, "svidfs daemon not reachable at %s: %s", p->control_socket,
		     strerror(-r));
		return r;
	}
	r = ctl_reply_status(reply);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		errf(err, errlen, "svidfs daemon refused to unregister %s: %s", workload,
		     ctl_reply_error(reply));
	return r;
}

/* ---- mount helpers ---- */

static bool svidfs_bind_of(Publisher *p, const MountInfo *mi, const MountEntry *e,
			   const char *pod_uid)
{
	char want[128];
	const MountEntry *fs = mountinfo_find_mountpoint(mi, p->svidfs_mount);

	snprintf(want, sizeof want, "/pods/%s", pod_uid);
	if (!streq(mountinfo_entry_root(e), want))
		return false;
	if (fs)
		return mountinfo_entry_major(fs) == mountinfo_entry_major(e) &&
		       mountinfo_entry_minor(fs) == mountinfo_entry_minor(e);
	/* The daemon's mount is gone (crash): recognise our binds by their fs type. */
	return strncmp(mountinfo_entry_fstype(e), "fuse", 4) == 0;
}

static bool has_bind_flags(const MountEntry *e)
{
	return mountinfo_entry_has_option(e, "ro") && mountinfo_entry_has_option(e, "nosuid") &&
	       mountinfo_entry_has_option(e, "nodev") && mountinfo_entry_has_option(e, "noexec");
}

/* Whether path is the root of a mount: 1 yes, 0 no (also when it does not exist), -errno when
 * statx cannot tell (e.g. ENOTCONN from a dead FUSE mount): then ask mountinfo. Cheap, unlike
 * parsing a mountinfo table of thousands of binds on every call. AT_STATX_DONT_SYNC keeps a FUSE
 * mount's daemon out of it. */
static int is_mount_root(const char *path)
{
	struct statx sx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_DONT_SYNC, 0,
		  &sx) < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : negative_errno();
	if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return -EOPNOTSUPP;
	return !!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* Remounts the mount whose root fd refers to: read-only, nosuid, nodev, noexec. The bind's flags
 * are per mount, and a bind does not inherit read-only: remount it explicitly. */
static int remount_ro_fd(int fd)
{
	char path[64];

	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	if (mount(NULL, path, NULL, BIND_FLAGS, NULL) < 0)
		return negative_errno();
	return 0;
}

/* The parent of target must exist and resolve to itself below the resolved kubelet root: no
 * symlink anywhere between the kubelet root and the target may redirect the mount. */
static int check_parent(Publisher *p, const char *target, char *err, size_t errlen)
{
	char parent[PATH_MAX], real[PATH_MAX], root_real[PATH_MAX];
	const char *slash = strrchr(target, '/');
	size_t rl = strlen(p->kubelet_root);

	if (!slash || (size_t)(slash - target) >= sizeof parent)
		return -EINVAL;
	memcpy(parent, target, (size_t)(slash - target));
	parent[slash - target] = 0;
	if (!realpath(p->kubelet_root, root_real))
		snprintf(root_real, sizeof root_real, "%s", p->kubelet_root_real);
	if (!realpath(parent, real)) {
		int r = negative_errno();
		if (r == -ENOENT)
			errf(err, errlen,
			     "the parent directory of target_path (%s) does not exist; kubelet "
			     "creates it before publishing",
			     parent);
		else
			errf(err, errlen, "cannot resolve the parent of target_path (%s): %s",
			     parent, strerror(-r));
		return r;
	}
	/* parent = <kubelet_root><rest>; its resolution must be <root_real><rest>. */
	char expect[PATH_MAX];
	if ((size_t)snprintf(expect, sizeof expect, "%s%s", streq(root_real, "/") ? "" : root_real,
			     parent + (rl == 1 ? 0 : rl)) >= sizeof expect)
		return -ENAMETOOLONG;
	if (!streq(expect, real)) {
		errf(err, errlen,
		     "target_path's parent %s resolves to %s through a symlink: refusing to "
		     "mount outside the kubelet directory",
		     parent, real);
		return -ELOOP;
	}
	return 0;
}

/* The target must be a directory or not exist yet (then it is created): a symlink could redirect
 * the bind mount, a file cannot take one. The mount itself goes through an O_NOFOLLOW fd. */
static int check_target(const char *target, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(target, &st) < 0)
		return errno == ENOENT ? 0 : negative_errno();
	if (S_ISDIR(st.st_mode))
		return 0;
	errf(err, errlen, "target_path %s exists and is %s, not a directory", target,
	     S_ISLNK(st.st_mode)   ? "a symlink"
	     : S_ISREG(st.st_mode) ? "a regular file"
				   : "a special file");
	return -EINVAL;
}

/* ---- publish ---- */

typedef struct {
	Publisher *p;
	const VolCtx *vc;
	char workload[96];
	bool registered, created_dir, mounted;
	double t_register, t_wait, t_mount; /* ms per phase, for the log line */
} PublishOp;

static void rollback(PublishOp *op)
{
	const char *target = volctx_target_path(op->vc);
	char err[256];

	if (op->mounted && umount2(target, UMOUNT_NOFOLLOW | MNT_DETACH) < 0)
		log_warning_errno(negative_errno(), "rollback: cannot unmount %s", target);
	if (op->created_dir && rmdir(target) < 0 && errno != ENOENT)
		log_warning_errno(negative_errno(), "rollback: cannot remove %s", target);
	if (op->registered &&
	    unregister_ref(op->p, op->workload, volctx_volume_id(op->vc), err, sizeof err) < 0)
		log_warning("rollback: %s (volume %s stays registered until unpublish)", err,
			    volctx_volume_id(op->vc));
}

static grpc_status_code map_register_error(int r)
{
	switch (r) {
	case -EEXIST:
		return GRPC_STATUS_ALREADY_EXISTS;
	case -ENOSPC: /* the daemon's reference or workload limit */
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	case -EINVAL:
	case -ENAMETOOLONG:
		return GRPC_STATUS_INVALID_ARGUMENT;
	case -EAGAIN:
	case -EBUSY:
	case -ENOTCONN:
	case -ETIMEDOUT:
		return GRPC_STATUS_UNAVAILABLE;
	default:
		return GRPC_STATUS_INTERNAL;
	}
}

static void do_register(PublishOp *op, CsiStatus *st)
{
	Publisher *p = op->p;
	_cleanup_(kv_freep) KvMsg *req = NULL, *reply = NULL;
	int r;

	r = volctx_register_request(op->vc, &req);
	if (r < 0)
		return set_status(st, GRPC_STATUS_INTERNAL, "cannot build the register request: %s",
				  strerror(-r));
	r = ctl_request(p, req, CTL_TIMEOUT_MS, &reply);
	if (r < 0)
		return set_status(st, GRPC_STATUS_UNAVAILABLE,
				  "svidfs daemon not reachable at %s: %s", p->control_socket,
				  strerror(-r));
	r = ctl_reply_status(reply);
	if (r < 0)
		return set_status(st, map_register_error(r),
				  "svidfs daemon refused to register pod %s: %s",
				  volctx_pod_uid(op->vc), ctl_reply_error(reply));
	const char *w = kv_get(reply, "workload");
	char want[96];
	snprintf(want, sizeof want, "pods/%s", volctx_pod_uid(op->vc));
	if (w && !streq(w, want)) {
		/* Should never happen; an unexpected directory must not be bound into a pod. */
		snprintf(op->workload, sizeof op->workload, "%s", want);
		op->registered = true;
		return set_status(st, GRPC_STATUS_INTERNAL,
				  "svidfs daemon registered pod %s as %s, expected %s",
				  volctx_pod_uid(op->vc), w, want);
	}
	snprintf(op->workload, sizeof op->workload, "%s", want);
	op->registered = true;
}

/* The publish timed out: say why, in the daemon's words (its stream state says what the agent
 * answered: an empty SVID list for these selectors, PERMISSION_DENIED, unreachable ...). */
static void wait_timed_out(PublishOp *op, long long limit, CsiStatus *st)
{
	_cleanup_(kv_freep) KvMsg *reply = NULL;
	const char *agent = NULL, *stream = NULL;

	if (ctl_simple(op->p, "status", op->workload, NULL, &reply) >= 0 &&
	    ctl_reply_status(reply) == 0) {
		agent = kv_get(reply, "agent");
		stream = kv_get(reply, "stream");
	}
	if (stream && !streq(stream, "streaming") && !streq(stream, "connecting"))
		return set_status(st, GRPC_STATUS_UNAVAILABLE,
				  "no SVID for pod %s/%s (uid %s) within %.1f s: agent %s: %s; "
				  "kubelet will retry",
				  volctx_pod_namespace(op->vc), volctx_pod_name(op->vc),
				  volctx_pod_uid(op->vc), (double)limit / 1000, agent ?: "-", stream);
	set_status(st, GRPC_STATUS_UNAVAILABLE,
		   "no SVID for pod %s/%s (uid %s, service account %s) within %.1f s: "
		   "check that a registration entry matches its selectors and that "
		   "the SPIRE agent is synced; kubelet will retry",
		   volctx_pod_namespace(op->vc), volctx_pod_name(op->vc), volctx_pod_uid(op->vc),
		   volctx_service_account(op->vc), (double)limit / 1000);
}

/* Waits until the workload has its first SVID. */
static void do_wait(PublishOp *op, int rpc_timeout_ms, CsiStatus *st)
{
	Publisher *p = op->p;
	long long start = now_ms();
	long long limit = p->publish_timeout_ms;
	int r;

	if (rpc_timeout_ms >= 0 && rpc_timeout_ms < limit)
		limit = rpc_timeout_ms;
	for (;;) {
		_cleanup_(kv_freep) KvMsg *req = NULL, *reply = NULL;
		long long left = limit - (now_ms() - start);
		int slice = (int)MAX(0, MIN(left, WAIT_SLICE_MS));

		if ((r = kv_new(&req)) < 0 || (r = kv_add(req, "op", "wait")) < 0 ||
		    (r = kv_add(req, "workload", op->workload)) < 0 ||
		    (r = kv_addf(req, "timeout_ms", "%d", slice)) < 0)
			return set_status(st, GRPC_STATUS_INTERNAL, "cannot build a request: %s",
					  strerror(-r));
		r = ctl_request(p, req, CTL_TIMEOUT_MS + slice, &reply);
		if (r < 0)
			return set_status(st, GRPC_STATUS_UNAVAILABLE,
					  "svidfs daemon not reachable at %s while waiting for the "
					  "first SVID: %s",
					  p->control_socket, strerror(-r));
		r = ctl_reply_status(reply);
		if (r == 0) {
			const char *n = kv_get(reply, "svids");
			if (n && atoi(n) > 0)
				return;
		} else if (r != -ETIMEDOUT)
			return set_status(st, map_register_error(r),
					  "svidfs daemon cannot wait for pod %s: %s",
					  volctx_pod_uid(op->vc), ctl_reply_error(reply));
		if (__atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE))
			return set_status(st, GRPC_STATUS_UNAVAILABLE,
					  "svidfs-csi is shutting down; retry");
		if (now_ms() - start >= limit)
			return wait_timed_out(op, limit, st);
	}
}

static void do_mount(PublishOp *op, CsiStatus *st)
{
	Publisher *p = op->p;
	const char *target = volctx_target_path(op->vc);
	char src[PATH_MAX], sfdp[64], tfdp[64];
	_cleanup_close_ int sfd = -1, tfd = -1, mfd = -1;

	if (mkdir(target, 0750) == 0)
		op->created_dir = true;
	else if (errno != EEXIST)
		return set_status(st, GRPC_STATUS_INTERNAL, "cannot create target_path %s: %s",
				  target, strerror(errno));
	/* O_NOFOLLOW|O_DIRECTORY: the target must be a real directory, not a symlink planted
	 * after the parent check; mounting onto the fd closes the check-to-use race. */
	tfd = open(target, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0) /* replaced by a symlink or a file since check_target */
		return set_status(st,
				  errno == ELOOP || errno == ENOTDIR ? GRPC_STATUS_INVALID_ARGUMENT
								     : GRPC_STATUS_INTERNAL,
				  "target_path %s is not a plain directory: %s", target,
				  strerror(errno));
	snprintf(src, sizeof src, "%s/%s", p->svidfs_mount, op->workload);
	sfd = open(src, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return set_status(
		    st, errno == ENOTCONN ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_INTERNAL,
		    "cannot open the pod's svidfs directory %s: %s", src, strerror(errno));
	snprintf(sfdp, sizeof sfdp, "/proc/self/fd/%d", sfd);
	snprintf(tfdp, sizeof tfdp, "/proc/self/fd/%d", tfd);
	if (mount(sfdp, tfdp, NULL, MS_BIND, NULL) < 0)
		return set_status(st, GRPC_STATUS_INTERNAL, "cannot bind %s onto %s: %s", src,
				  target, strerror(errno));
	op->mounted = true;
	/* Reopen: the path now leads to the new mount's root, which is what we remount. */
	mfd = open(target, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
	int r = mfd < 0 ? negative_errno() : remount_ro_fd(mfd);
	if (r < 0)
		return set_status(st, GRPC_STATUS_INTERNAL,
				  "cannot remount %s read-only,nosuid,nodev,noexec: %s", target,
				  strerror(-r));
}

/* The target is already a mount point: OK when it is this pod's read-only bind and the daemon
 * accepts the same registration again; ALREADY_EXISTS otherwise. */
static void publish_existing(PublishOp *op, const MountInfo *mi, const MountEntry *e, CsiStatus *st)
{
	const char *target = volctx_target_path(op->vc);

	if (!svidfs_bind_of(op->p, mi, e, volctx_pod_uid(op->vc)))
		return set_status(
		    st, GRPC_STATUS_ALREADY_EXISTS,
		    "target_path %s is already a mount (%s %s, root %s), not pod %s's "
		    "svidfs directory",
		    target, mountinfo_entry_fstype(e), mountinfo_entry_source(e),
		    mountinfo_entry_root(e), volctx_pod_uid(op->vc));
	/* Same registration again is idempotent in the daemon; different settings are -EEXIST. */
	do_register(op, st);
	op->registered = false; /* never roll back a registration an earlier publish made */
	if (st->code != GRPC_STATUS_OK)
		return;
	if (!has_bind_flags(e)) {
		_cleanup_close_ int fd =
		    open(target, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
		int r = fd < 0 ? negative_errno() : remount_ro_fd(fd);
		if (r < 0)
			return set_status(st, GRPC_STATUS_INTERNAL,
					  "cannot remount %s read-only: %s", target, strerror(-r));
	}
}

static void log_outcome_detail(const char *what, const char *ns, const char *name, const char *uid,
			       const char *volume, const char *target, double t0,
			       const CsiStatus *st, const char *detail)
{
	double ms = (now_us() - t0) / 1000;

	if (st->code == GRPC_STATUS_OK)
		log_info("%s pod=%s/%s uid=%s volume=%s target=%s: OK in %.1f ms%s", what, ns, name,
			 uid, volume, target, ms, detail ? detail : "");
	else
		log_warning("%s pod=%s/%s uid=%s volume=%s target=%s: %s: %s (%.1f ms)", what, ns,
			    name, uid, volume, target, grpc_status_name(st->code), st->message, ms);
}

static void log_outcome(const char *what, const char *ns, const char *name, const char *uid,
			const char *volume, const char *target, double t0, const CsiStatus *st)
{
	log_outcome_detail(what, ns, name, uid, volume, target, t0, st, NULL);
}

/* A volume context value fit for a log line (a plain token), or "?". */
static const char *log_token(const Csi__V1__NodePublishVolumeRequest *req, const char *key)
{
	for (size_t i = 0; i < req->n_volume_context; i++) {
		const char *k = req->volume_context[i]->key, *v = req->volume_context[i]->value;
		if (!k || !v || !streq(k, key))
			continue;
		size_t n = strlen(v);
		if (n == 0 || n > 253)
			return "?";
		for (const char *c = v; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '-' || *c == '.' || *c == '_'))
				return "?";
		return v;
	}
	return "-";
}

void publisher_publish(Publisher *p, const Csi__V1__NodePublishVolumeRequest *req,
		       int rpc_timeout_ms, CsiStatus *st)
{
	_cleanup_(volctx_freep) VolCtx *vc = NULL;
	_cleanup_(mountinfo_freep) MountInfo *mi = NULL;
	double t0 = now_us();
	char err[VOLCTX_ERR_MAX];
	int r;

	st->code = GRPC_STATUS_OK;
	st->message[0] = 0;
	r = volctx_from_publish(req, p->kubelet_root, &vc, err, sizeof err);
	if (r < 0) {
		set_status(st, r == -EINVAL ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_INTERNAL,
			   "%s", r == -EINVAL ? err : strerror(-r));
		/* Invalid input: log what identifies the request, with untrusted values only when
		 * they are plain tokens. */
		log_outcome("publish", log_token(req, VOLCTX_KEY_POD_NAMESPACE),
			    log_token(req, VOLCTX_KEY_POD_NAME), log_token(req, VOLCTX_KEY_POD_UID),
			    volctx_check_volume_id(req->volume_id, NULL, 0) == 0 ? req->volume_id
										 : "?",
			    "-", t0, st);
		return;
	}
	const char *ns = volctx_pod_namespace(vc), *name = volctx_pod_name(vc);
	const char *uid = volctx_pod_uid(vc), *vol = volctx_volume_id(vc);
	const char *target = volctx_target_path(vc);

	r = inflight_acquire(p, vol, target);
	if (r < 0) {
		set_status(st, r == -EBUSY ? GRPC_STATUS_ABORTED : GRPC_STATUS_INTERNAL,
			   r == -EBUSY ? "an operation on volume %s or its target_path is already "
					 "in progress; retry later"
				       : "%s",
			   r == -EBUSY ? vol : strerror(-r));
		return log_outcome("publish", ns, name, uid, vol, target, t0, st);
	}

	PublishOp op = {.p = p, .vc = vc};
	/* Already published (kubelet's retry, requiresRepublish)? */
	if (is_mount_root(target) != 0) {
		r = mountinfo_read(NULL, &mi);
		if (r < 0) {
			set_status(st, GRPC_STATUS_INTERNAL, "cannot read /proc/self/mountinfo: %s",
				   strerror(-r));
			goto out;
		}
		const MountEntry *e = mountinfo_find_mountpoint(mi, target);
		if (e) {
			publish_existing(&op, mi, e, st);
			goto out;
		}
	}
	if (volctx_check_pod_matches_target(vc, err, sizeof err) < 0 ||
	    check_parent(p, target, err, sizeof err) < 0) {
		set_status(st, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
		goto out;
	}
	r = check_target(target, err, sizeof err);
	if (r < 0) {
		set_status(st, r == -EINVAL ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_INTERNAL,
			   "%s", r == -EINVAL ? err : strerror(-r));
		goto out;
	}
	double t = now_us();
	do_register(&op, st);
	op.t_register = (now_us() - t) / 1000;
	if (st->code == GRPC_STATUS_OK) {
		t = now_us();
		do_wait(&op,
			rpc_timeout_ms < 0 ? -1
					   : MAX(0, rpc_timeout_ms - (int)((now_us() - t0) / 1000)),
			st);
		op.t_wait = (now_us() - t) / 1000;
	}
	if (st->code == GRPC_STATUS_OK) {
		t = now_us();
		do_mount(&op, st);
		op.t_mount = (now_us() - t) / 1000;
	}
	if (st->code != GRPC_STATUS_OK)
		rollback(&op);
out:
	inflight_release(p, vol, target);
	char detail[128] = "";
	if (op.t_register > 0)
		snprintf(detail, sizeof detail, " (register %.1f, first SVID %.1f, mount %.1f ms)",
			 op.t_register, op.t_wait, op.t_mount);
	log_outcome_detail("publish", ns, name, uid, vol, target, t0, st, detail);
}

/* ---- unpublish ---- */

void publisher_unpublish(Publisher *p, const Csi__V1__NodeUnpublishVolumeRequest *req,
			 CsiStatus *st)
{
	_cleanup_free_ char *uid = NULL;
	char err[VOLCTX_ERR_MAX], workload[96], detail[96] = "";
	double t0 = now_us();
	int r;

	st->code = GRPC_STATUS_OK;
	st->message[0] = 0;
	if (volctx_check_volume_id(req->volume_id, err, sizeof err) < 0 ||
	    volctx_parse_target(p->kubelet_root, req->target_path, &uid, NULL, err, sizeof err) <
		0) {
		set_status(st, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
		log_warning("unpublish volume=%s: %s: %s",
			    volctx_check_volume_id(req->volume_id, NULL, 0) == 0 ? req->volume_id
										 : "?",
			    grpc_status_name(st->code), st->message);
		return;
	}
	const char *vol = req->volume_id, *target = req->target_path;
	r = inflight_acquire(p, vol, target);
	if (r < 0) {
		set_status(st, r == -EBUSY ? GRPC_STATUS_ABORTED : GRPC_STATUS_INTERNAL,
			   "an operation on volume %s or its target_path is already in progress; "
			   "retry later",
			   vol);
		return log_outcome("unpublish", "-", "-", uid, vol, target, t0, st);
	}
	snprintf(workload, sizeof workload, "pods/%s", uid);

	/* Unmount every mount stacked on the target (normally exactly one). */
	double t = now_us();
	if (is_mount_root(target) != 0) {
		_cleanup_(mountinfo_freep) MountInfo *mi = NULL;
		r = mountinfo_read(NULL, &mi);
		if (r < 0) {
			set_status(st, GRPC_STATUS_INTERNAL, "cannot read /proc/self/mountinfo: %s",
				   strerror(-r));
			goto out;
		}
		/* The mount's own root names the workload it shows, whatever the path says. */
		const MountEntry *e = mountinfo_find_mountpoint(mi, target);
		const char *root = e ? mountinfo_entry_root(e) : "";
		if (strncmp(root, "/pods/", 6) == 0 && strlen(root + 1) < sizeof workload &&
		    !strchr(root + 6, '/') && svidfs_bind_of(p, mi, e, root + 6))
			snprintf(workload, sizeof workload, "%s", root + 1);
		for (int i = 0; e && i < 16; i++)
			if (umount2(target, UMOUNT_NOFOLLOW) < 0) {
				if (errno == EINVAL || errno == ENOENT)
					break; /* no (more) mount there */
				set_status(st,
					   errno == EBUSY ? GRPC_STATUS_UNAVAILABLE
							  : GRPC_STATUS_INTERNAL,
					   "cannot unmount %s: %s", target, strerror(errno));
				goto out;
			}
	}
	double t_umount = (now_us() - t) / 1000;
	if (rmdir(target) < 0 && errno != ENOENT) {
		set_status(st, GRPC_STATUS_INTERNAL, "cannot remove target_path %s: %s", target,
			   strerror(errno));
		goto out;
	}
	t = now_us();
	r = unregister_ref(p, workload, vol, err, sizeof err);
	if (r < 0)
		set_status(st, r == -EINVAL ? GRPC_STATUS_INTERNAL : GRPC_STATUS_UNAVAILABLE, "%s",
			   err);
	snprintf(detail, sizeof detail, " (unmount %.1f, unregister %.1f ms)", t_umount,
		 (now_us() - t) / 1000);
out:
	inflight_release(p, vol, target);
	log_outcome_detail("unpublish", "-", "-", uid, vol, target, t0, st, detail);
}

/* ---- volume stats and probe ---- */

static void stats_condition(Publisher *p, const char *path, const char *workload, VolumeStats *ret)
{
	_cleanup_(mountinfo_freep) MountInfo *mi = NULL;
	_cleanup_(kv_freep) KvMsg *reply = NULL;
	struct statvfs sv;
	int r;

	r = is_mount_root(path);
	if (r < 0) { /* statx cannot tell (dead FUSE mount): the mount table can */
		r = mountinfo_read(NULL, &mi);
		if (r < 0) {
			ret->abnormal = true;
			errf(ret->message, sizeof ret->message, "cannot read mountinfo: %s",
			     strerror(-r));
			return;
		}
		r = mountinfo_find_mountpoint(mi, path) != NULL;
	}
	if (r == 0) {
		ret->abnormal = true;
		errf(ret->message, sizeof ret->message,
		     "volume_path is not mounted: the svidfs bind mount is gone");
		return;
	}
	if (statvfs(path, &sv) < 0) {
		ret->abnormal = true;
		errf(ret->message, sizeof ret->message,
		     "the svidfs mount does not answer (%s): is the daemon running?",
		     strerror(errno));
		return;
	}
	ret->bytes_total = (int64_t)(sv.f_blocks * sv.f_frsize);
	ret->bytes_available = (int64_t)(sv.f_bavail * sv.f_frsize);
	ret->bytes_used = (int64_t)((sv.f_blocks - sv.f_bfree) * sv.f_frsize);
	ret->inodes_total = (int64_t)sv.f_files;
	ret->inodes_available = (int64_t)sv.f_favail;
	ret->inodes_used = (int64_t)(sv.f_files - sv.f_ffree);

	r = ctl_simple(p, "status", workload, NULL, &reply);
	if (r < 0) {
		ret->abnormal = true;
		errf(ret->message, sizeof ret->message, "svidfs daemon not reachable at %s: %s",
		     p->control_socket, strerror(-r));
		return;
	}
	r = ctl_reply_status(reply);
	if (r < 0) {
		ret->abnormal = true;
		errf(ret->message, sizeof ret->message, "svidfs daemon has no %s: %s", workload,
		     ctl_reply_error(reply));
		return;
	}
	const char *svids = kv_get(reply, "svids"), *expired = kv_get(reply, "expired");
	const char *not_after = kv_get(reply, "not_after"), *id = kv_get(reply, "spiffe_id");
	if (!svids || atoi(svids) <= 0) {
		ret->abnormal = true;
		errf(ret->message, sizeof ret->message, "no SVID for %s yet (stream %s)", workload,
		     kv_get(reply, "stream") ?: "?");
		return;
	}
	if (expired && streq(expired, "true")) {
		ret->abnormal = true;
		errf(ret->message, sizeof ret->message,
		     "the SVID %s expired at %s (Unix time); the agent stopped rotating it",
		     id ?: "?", not_after ?: "?");
		return;
	}
	errf(ret->message, sizeof ret->message, "serving %s, valid until %s (Unix time)", id ?: "?",
	     not_after ?: "?");
}

void publisher_volume_stats(Publisher *p, const Csi__V1__NodeGetVolumeStatsRequest *req,
			    VolumeStats *ret, CsiStatus *st)
{
	_cleanup_free_ char *uid = NULL;
	char err[VOLCTX_ERR_MAX], workload[96];

	*ret = (VolumeStats){0};
	st->code = GRPC_STATUS_OK;
	st->message[0] = 0;
	if (volctx_check_volume_id(req->volume_id, err, sizeof err) < 0)
		return set_status(st, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
	if (!req->volume_path || !*req->volume_path)
		return set_status(st, GRPC_STATUS_INVALID_ARGUMENT, "volume_path is missing");
	/* A path that cannot be one of our targets holds no volume of ours: NOT_FOUND, as the CSI
	 * spec says for a volume_id that does not exist on volume_path (csi-sanity checks it). */
	if (volctx_parse_target(p->kubelet_root, req->volume_path, &uid, NULL, err, sizeof err) < 0)
		return set_status(st, GRPC_STATUS_NOT_FOUND, "no volume %s at volume_path: %s",
				  req->volume_id, err);
	snprintf(workload, sizeof workload, "pods/%s", uid);
	stats_condition(p, req->volume_path, workload, ret);
}

bool publisher_probe(Publisher *p)
{
	_cleanup_(kv_freep) KvMsg *reply = NULL;
	int r = ctl_simple(p, "ping", NULL, NULL, &reply);

	return r == 0 && ctl_reply_status(reply) == 0;
}
