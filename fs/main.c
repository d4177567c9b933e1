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
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "cleanup.h"
#include "config.h"
#include "control.h"
#include "fsview.h"
#include "recovery.h"
#include "registry.h"
#include "fuse_ops.h"
#include "fuseconn.h"
#include "handover.h"
#include "inokey.h"
#include "ledger.h"
#include "inodes.h"
#include "log.h"
#include "macro.h"
#include "minter.h"
#include "mountinfo.h"
#include "notify.h"
#include "secret.h"
#include "sessions.h"
#include "store.h"
#include "workload.h"
#include "util.h"

DEFINE_CLEANUP_FUNC(KvMsg, kv_free)

/* Whether `path` is a mount point of fstype fuse.svidfs (1), another filesystem (2), or
 * nothing (0): the topmost mount there decides. */
static int mount_kind(const char *path)
{
	_cleanup_(mountinfo_freep) MountInfo *mi = NULL;
	const MountEntry *e;
	int r = mountinfo_read(NULL, &mi);

	if (r < 0)
		return r;
	e = mountinfo_find_mountpoint(mi, path);
	if (!e)
		return 0;
	return streq(mountinfo_entry_fstype(e), "fuse.svidfs") ? 1 : 2;
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

/* ---- takeover: the FUSE connection outlives the daemon (docs/takeover.md) ---- */

typedef enum StopMode {
	STOP_NONE,
	STOP_UNMOUNT,  /* a real stop: unmount, the keeper forgets the connection */
	STOP_KEEP,     /* restart: leave the connection with the keeper */
	STOP_HANDOVER, /* planned upgrade: the connection goes to a successor */
} StopMode;

typedef struct Daemon {
	Config *cfg;
	HandoverKeeper keeper;
	char *keeper_path;
	char *handover_path;
	char *lock_path;
	int lock_fd; /* daemon.lock: held while this process may serve the connection */
	FuseConn *conn;
	InoLedger *ledger;
	InoKey *ino_key; /* travels with the connection: the kernel's inode numbers depend on it */
	struct fuse_session *se;
	Control *control;
	Sessions *sessions;
	SessionsAgent *agents; /* the config's, as sessions takes them */
	Registry *registry;
	Recovery *recovery;
	FsView *view;
	Notify *notify;
	Minter *minter; /* JWT-SVIDs for lookups, off the FUSE workers */
	uint64_t epoch;
	int64_t mounted_at;
	unsigned takeovers;
	bool adopted;
	uint64_t prev_last_reply_us; /* the predecessor's last reply (planned handover) */
	int pred_fd;  /* connection to the predecessor: hangs up when it exited */
	int succ_fd;  /* connection to the successor: open until we exit */
	int stop_mode; /* StopMode, atomic */
	int stop_signal;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool loop_done, handover_done, handed_over;

	int ho_listen, ho_stop;
	pthread_t ho_thread;
	bool ho_running;
	bool late_ok;
} Daemon;

static Daemon *the_daemon; /* for the signal handler */

static void request_stop(Daemon *d, StopMode mode)
{
	int none = STOP_NONE;
	__atomic_compare_exchange_n(&d->stop_mode, &none, (int)mode, false, __ATOMIC_SEQ_CST,
				    __ATOMIC_SEQ_CST);
	if (d->conn)
		fuse_conn_drain(d->conn);
}

/* Async-signal-safe: an atomic and an eventfd write. */
static void on_signal(int sig)
{
	Daemon *d = the_daemon;
	if (!d)
		return;
	__atomic_store_n(&d->stop_signal, sig, __ATOMIC_SEQ_CST);
	/* systemd empties its fd store when the unit stops and cannot tell us whether this is a
	 * stop or a restart: unmount cleanly. A crash (or a watchdog abort) is what it adopts. A
	 * socket keeper outlives us (a container restart): leave the connection to it. */
	request_stop(d, d->keeper.type == HANDOVER_KEEPER_SOCKET ? STOP_KEEP : STOP_UNMOUNT);
}

static void on_control_shutdown(void *userdata, bool unmount)
{
	Daemon *d = userdata;
	log_info("shutdown requested over the control socket (%s)",
		 unmount ? "unmount" : "keep the connection");
	request_stop(d, unmount || d->keeper.type == HANDOVER_KEEPER_NONE ? STOP_UNMOUNT
									  : STOP_KEEP);
}

static int resolve_keeper(Daemon *d)
{
	const char *k = d->cfg->keeper;

	if (!k)
		k = getenv("NOTIFY_SOCKET") ? "systemd" : "none";
	if (streq(k, "systemd"))
		d->keeper.type = HANDOVER_KEEPER_SYSTEMD;
	else if (strncmp(k, "socket:", 7) == 0) {
		d->keeper_path = strdup(k + 7);
		if (!d->keeper_path)
			return -ENOMEM;
		d->keeper.type = HANDOVER_KEEPER_SOCKET;
		d->keeper.path = d->keeper_path;
	} else
		d->keeper.type = HANDOVER_KEEPER_NONE;
	/* handover.sock next to the control socket */
	const char *cs = d->cfg->control_socket, *slash = strrchr(cs, '/');
	if (asprintf(&d->handover_path, "%.*s/handover.sock", (int)(slash - cs), cs) < 0)
		return -ENOMEM;
	if (asprintf(&d->lock_path, "%.*s/daemon.lock", (int)(slash - cs), cs) < 0)
		return -ENOMEM;
	return 0;
}

/* One daemon serves the connection at a time. The one that may serve it holds daemon.lock (an
 * flock, next to the handover socket) from before it adopts or mounts until it exits, and a
 * planned handover passes the lock's open file description along with the connection, so the
 * lock is never free while some daemon may still serve: a successor that adopted and has not
 * bound the handover socket yet, or a predecessor still handing over. The keeper never holds it:
 * a crashed daemon's lock is gone with the process. 0 taken, -EBUSY held by another. */
static int lock_try(Daemon *d)
{
	if (d->lock_fd < 0) {
		int r = mkdir_parents(d->lock_path, 0755, 0700);
		if (r < 0)
			return log_error_errno(r, "cannot create the directory of %s", d->lock_path);
		d->lock_fd = open(d->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (d->lock_fd < 0)
			return log_error_errno(negative_errno(), "cannot open %s", d->lock_path);
	}
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int r = negative_errno();
		if (r == -EWOULDBLOCK)
			return -EBUSY;
		return log_error_errno(r, "cannot lock %s", d->lock_path);
	}
	return 0;
}

static void lock_release(Daemon *d)
{
	if (d->lock_fd >= 0) {
		close(d->lock_fd);
		d->lock_fd = -1;
	}
}

static uint64_t facts_u64(const KvMsg *m, const char *key)
{
	const char *v = kv_get(m, key);
	return v ? strtoull(v, NULL, 10) : 0;
}

/* The facts that travel with the connection. */
static int build_facts(Daemon *d, KvMsg **ret)
{
	_cleanup_free_ char *hex = NULL;
	const void *init;
	size_t len;
	KvMsg *m;
	int r;

	r = fuse_conn_get_init(d->conn, &init, &len);
	if (r < 0)
		return r;
	r = handover_hex_encode(init, len, &hex);
	if (r < 0)
		return r;
	r = kv_new(&m);
	if (r < 0)
		return r;
	kv_add(m, "init", hex);
	kv_addf(m, "mounted_at", "%lld", (long long)d->mounted_at);
	kv_addf(m, "takeovers", "%u", d->takeovers);
	kv_add(m, "mountpoint", d->cfg->mountpoint);
	kv_addf(m, "epoch", "%llu", (unsigned long long)d->epoch);
	{
		_cleanup_free_ char *khex = NULL;
		uint8_t key[INO_KEY_SIZE];
		ino_key_export(d->ino_key, key);
		r = handover_hex_encode(key, sizeof key, &khex);
		secret_wipe(key, sizeof key);
		if (r < 0) {
			kv_free(m);
			return r;
		}
		kv_add(m, "inokey", khex);
		secret_wipe(khex, strlen(khex));
	}
	kv_addf(m, "last_reply_us", "%llu",
		(unsigned long long)fuse_conn_last_reply_us(d->conn));
	*ret = m;
	return 0;
}

static int stash(Daemon *d)
{
	KvMsg *facts = NULL;
	int fds[2], r;

	if (d->keeper.type == HANDOVER_KEEPER_NONE)
		return 0;
	r = build_facts(d, &facts);
	if (r < 0)
		return log_error_errno(r, "cannot describe the FUSE connection for the keeper");
	fds[0] = fuse_conn_fd(d->conn);
	fds[1] = ino_ledger_fd(d->ledger);
	r = handover_stash(&d->keeper, fds, 2, facts);
	kv_free(facts);
	if (r < 0)
		return log_error_errno(r, "cannot hand the FUSE connection to the keeper (%s)",
				       d->keeper.type == HANDOVER_KEEPER_SYSTEMD ? "systemd"
										 : d->keeper.path);
	return 0;
}

/* Planned upgrade: ask the running daemon for its connection. */
static int fetch_from_predecessor(Daemon *d, int *fds, size_t *n_fds, KvMsg **facts)
{
	_cleanup_(kv_freep) KvMsg *req = NULL;
	int s, r;

	s = handover_connect(d->handover_path);
	if (s == -ENOENT || s == -ECONNREFUSED)
		return -ENOENT; /* nobody listens */
	if (s < 0)
		return log_error_errno(s, "--takeover: cannot connect to %s", d->handover_path);
	r = kv_new(&req);
	if (r >= 0)
		r = kv_add(req, "op", "takeover");
	if (r >= 0)
		r = handover_send(s, req, NULL, 0);
	if (r >= 0)
		r = handover_recv(s, 30000, facts, fds, n_fds);
	if (r >= 0) {
		const char *st = kv_get(*facts, "status");
		r = st ? atoi(st) : -EPROTO;
		if (r >= 0 && *n_fds < 1)
			r = -EPROTO;
		if (r < 0) {
			for (size_t i = 0; i < *n_fds; i++)
				close(fds[i]);
			kv_free(*facts);
			*facts = NULL;
		}
	}
	if (r < 0) {
		close(s);
		/* It hung up or was already handing over to another successor: ask again. */
		if (r == -EBUSY || r == -ECONNRESET || r == -EPIPE)
			return -EAGAIN;
		return log_error_errno(r, "--takeover: the running daemon did not hand over");
	}
	if (*n_fds > 2) {
		/* The predecessor's daemon.lock comes with the connection: held without a gap. */
		lock_release(d);
		d->lock_fd = fds[2];
		*n_fds = 2;
	}
	d->pred_fd = s;
	return 0;
}

/* The connection from a predecessor (--takeover), or the lock that lets this daemon take the
 * keeper's connection or mount. 0 from a predecessor, -ENOENT alone (keeper or mount). */
static int claim_connection(Daemon *d, int *fds, size_t *n_fds, KvMsg **facts)
{
	const Config *cfg = d->cfg;
	struct timespec t0, t;
	bool said = false;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (cfg->takeover) {
			r = fetch_from_predecessor(d, fds, n_fds, facts);
			if (r >= 0)
				return 0;
			if (r != -ENOENT && r != -EAGAIN)
				return r;
		}
		r = lock_try(d);
		if (r >= 0) {
			if (cfg->takeover)
				log_info("--takeover: no daemon answers on %s; starting without one",
					 d->handover_path);
			return -ENOENT;
		}
		if (r != -EBUSY)
			return r;
		if (!cfg->takeover)
			return log_error_errno(r, "another svidfs daemon serves this node (it holds "
						  "%s); start with --takeover to replace it",
					       d->lock_path);
		/* Another daemon holds the lock: a successor between its adoption and its
		 * handover socket, or one still handing over. Ask it again shortly. */
		if (!said)
			log_info("--takeover: waiting for the daemon that holds %s to answer on %s",
				 d->lock_path, d->handover_path);
		said = true;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec >= 30)
			return log_error_errno(-ETIMEDOUT, "--takeover: the daemon that holds %s "
							   "does not hand over",
					       d->lock_path);
		usleep(20 * 1000);
	}
}

static int adopt_ino_key(Daemon *d, const char *hex)
{
	uint8_t key[INO_KEY_SIZE];
	size_t len = 0;
	int r;

	r = hex ? handover_hex_decode(hex, key, sizeof key, &len) : -EPROTO;
	if (r >= 0 && len != sizeof key)
		r = -EPROTO;
	if (r >= 0) {
		d->ino_key = ino_key_free(d->ino_key);
		r = ino_key_new(key, &d->ino_key);
	}
	secret_wipe(key, sizeof key);
	if (r < 0)
		log_warning_errno(r, "the kept connection carries no usable inode key");
	return r;
}

/* Either adopts a live connection (a predecessor's, or the keeper's) or mounts afresh. */
static int fuse_mount_start(Daemon *d)
{
	const Config *cfg = d->cfg;
	char *argv[] = {"svidfs", cfg->fuse_debug ? "-d" : NULL, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(cfg->fuse_debug ? 2 : 1, argv);
	_cleanup_(kv_freep) KvMsg *facts = NULL;
	int fds[HANDOVER_MAX_FDS];
	size_t n_fds = 0;
	int r;

	r = claim_connection(d, fds, &n_fds, &facts);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == -ENOENT && d->keeper.type != HANDOVER_KEEPER_NONE) {
		r = handover_fetch(&d->keeper, fds, &n_fds, &facts);
		if (r < 0 && r != -ENOENT && r != -ECONNREFUSED)
			log_warning_errno(r, "the keeper did not answer; mounting afresh");
		if (r < 0)
			n_fds = 0;
	}
	if (n_fds > 0) {
		const char *mp = kv_get(facts, "mountpoint");
		uint8_t init[FUSE_CONN_INIT_MAX];
		size_t len = 0;
		r = kv_get(facts, "init") ? handover_hex_decode(kv_get(facts, "init"), init,
							        sizeof init, &len)
					  : -EINVAL;
		/* A connection whose mount is gone (unmounted by hand) cannot be adopted. */
		if (r >= 0 && (!mp || !streq(mp, cfg->mountpoint) || mount_kind(cfg->mountpoint) != 1))
			r = -ESTALE;
		/* The kernel holds wrapped inode numbers: without the key they mean nothing. */
		if (r >= 0)
			r = adopt_ino_key(d, kv_get(facts, "inokey"));
		if (r >= 0)
			r = fuse_conn_adopt(fds[0], init, len, &d->conn);
		if (r >= 0 && n_fds > 1 && ino_ledger_adopt(fds[1], &d->ledger) < 0)
			log_warning("the previous daemon's inode ledger is unusable: its inodes "
				    "answer ESTALE");
		else if (r >= 0 && n_fds > 1)
			fds[1] = -1;
		for (size_t i = r >= 0 ? 1 : 0; i < n_fds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		if (r < 0) {
			log_warning_errno(r, "cannot adopt the kept connection; mounting afresh");
			if (d->keeper.type != HANDOVER_KEEPER_NONE)
				handover_release(&d->keeper);
			if (d->pred_fd >= 0)
				return r; /* the predecessor stopped serving: nothing safe to do */
		} else {
			d->adopted = true;
			d->mounted_at = (int64_t)facts_u64(facts, "mounted_at");
			d->takeovers = (unsigned)facts_u64(facts, "takeovers") + 1;
			d->prev_last_reply_us = facts_u64(facts, "last_reply_us");
		}
	}
	if (!d->adopted) {
		r = clean_stale_mount(cfg->mountpoint);
		if (r < 0)
			return r;
		r = mkdir_p(cfg->mountpoint, 0755, 0755);
		if (r < 0)
			return log_error_errno(r, "cannot create the mountpoint %s", cfg->mountpoint);
		r = fuse_conn_mount(cfg->mountpoint, "svidfs", &d->conn);
		if (r < 0)
			return log_error_errno(r, "cannot mount svidfs on %s", cfg->mountpoint);
		d->mounted_at = (int64_t)time(NULL);
	}
	if (!d->ledger) {
		r = ino_ledger_new(0, &d->ledger);
		if (r < 0)
			return log_error_errno(r, "cannot create the inode ledger");
	}
	if (!d->adopted) {
		/* A new connection: a new key (the adoption attempt may have set one). */
		d->ino_key = ino_key_free(d->ino_key);
		r = ino_key_new(NULL, &d->ino_key);
		if (r < 0)
			return log_error_errno(r, "cannot create the inode key");
	}
	d->se = fuse_session_new(&args, &svidfs_fuse_ops, sizeof svidfs_fuse_ops, d->view);
	fuse_opt_free_args(&args);
	if (!d->se)
		return log_error_errno(-EINVAL, "cannot create the FUSE session");
	r = fuse_conn_attach(d->conn, d->se);
	if (r < 0)
		return log_error_errno(r, "cannot attach the FUSE connection");
	if (d->adopted) {
		log_info("adopted the FUSE connection at %s (mounted %lld, takeover %u)",
			 cfg->mountpoint, (long long)d->mounted_at, d->takeovers);
		r = fuse_conn_request_resend(d->conn);
		if (r == -EOPNOTSUPP)
			log_warning("kernel < 6.9: a request the old daemon held when it died stays "
				    "blocked");
		else if (r < 0)
			log_warning_errno(r, "cannot ask the kernel to resend pending requests");
	}
	return 0;
}

/* After adopting: serve nothing until every reloaded workload has its first SVID, so a lookup
 * right after the restart never sees an empty directory. Requests queue in the kernel. */
static void adopt_wait(Daemon *d)
{
	char **names = NULL;
	size_t n = 0, missing = 0;
	struct timespec t0, t1;

	if (d->cfg->adopt_wait_ms == 0 || registry_list_all(d->registry, &names, &n) < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		long spent = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		long left = (long)d->cfg->adopt_wait_ms - spent;
		size_t svids;
		if (__atomic_load_n(&d->stop_mode, __ATOMIC_SEQ_CST) != STOP_NONE ||
		    sessions_wait(d->sessions, names[i], (int)MAX(left, 0L), &svids) < 0)
			missing++;
		free(names[i]);
	}
	free(names);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	if (missing)
		log_warning("serving after %ld ms with %zu of %zu workload(s) still without SVIDs", ms,
			    missing, n);
	else
		log_info("all %zu workload(s) have their SVIDs after %ld ms", n, ms);
}

/* ---- JWT-SVIDs ---- */

static int mint_fetch(void *userdata, const char *name, const char *audience)
{
	return sessions_fetch_jwt(userdata, name, audience);
}

static int mint_submit(void *userdata, const char *name, const char *audience,
		       void (*done)(void *, int), void *done_userdata)
{
	return minter_submit(userdata, name, audience, done, done_userdata);
}

/* Tokens may take a quarter of the secure heap in all, so keys always find room; one workload
 * at most 128 KiB of that (its audiences' tokens with those the kernel still holds). */
static size_t jwt_budget_per_workload(size_t secure_heap)
{
	return MIN((size_t)128 * 1024, secure_heap / 4 / 16);
}

/* ---- the handover socket: a successor started with --takeover asks for the connection ---- */

static void *handover_thread(void *userdata)
{
	Daemon *d = userdata;

	for (;;) {
		struct pollfd p[2] = {{.fd = d->ho_listen, .events = POLLIN},
				      {.fd = d->ho_stop, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error_errno(negative_errno(), "handover socket: poll failed");
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		int s = accept4(d->ho_listen, NULL, NULL, SOCK_CLOEXEC);
		if (s < 0)
			continue;
		struct ucred cred;
		socklen_t cl = sizeof cred;
		_cleanup_(kv_freep) KvMsg *req = NULL, *rep = NULL;
		if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != 0 ||
		    handover_recv(s, 5000, &req, NULL, NULL) < 0 || !kv_get(req, "op") ||
		    !streq(kv_get(req, "op"), "takeover")) {
			close(s);
			continue;
		}
		int none = STOP_NONE;
		if (!__atomic_compare_exchange_n(&d->stop_mode, &none, STOP_HANDOVER, false,
						 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			if (kv_new(&rep) >= 0) {
				kv_add(rep, "status", "-16"); /* -EBUSY: already stopping */
				handover_send(s, rep, NULL, 0);
			}
			close(s);
			continue;
		}
		log_info("handing the FUSE connection over to pid %d", (int)cred.pid);
		/* Stop reading; the workers answer what they hold; the loop returns. */
		fuse_conn_drain(d->conn);
		pthread_mutex_lock(&d->lock);
		while (!d->loop_done)
			pthread_cond_wait(&d->cond, &d->lock);
		pthread_mutex_unlock(&d->lock);
		/* Lookups waiting for a JWT-SVID are requests the kernel sent us: answer them
		 * before the successor takes the connection. */
		minter_drain(d->minter);
		int fds[3] = {fuse_conn_fd(d->conn), ino_ledger_fd(d->ledger), d->lock_fd};
		int r = build_facts(d, &rep);
		if (r >= 0) {
			kv_add(rep, "status", "0");
			r = handover_send(s, rep, fds, d->lock_fd >= 0 ? 3 : 2);
		}
		if (r >= 0)
			lock_release(d); /* the successor holds it now (an idle old daemon must not) */
		else
			log_error_errno(r, "cannot hand the connection over to pid %d", (int)cred.pid);
		pthread_mutex_lock(&d->lock);
		d->handed_over = r >= 0;
		d->handover_done = true;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		/* Kept open until we exit: the successor waits for the hang-up. */
		d->succ_fd = s;
		return NULL;
	}
}

static int handover_listen(Daemon *d)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r;

	if (strlen(d->handover_path) >= sizeof sa.sun_path)
		return log_error_errno(-ENAMETOOLONG, "%s: path too long", d->handover_path);
	strcpy(sa.sun_path, d->handover_path);
	d->ho_listen = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (d->ho_listen < 0)
		return log_error_errno(negative_errno(), "cannot create the handover socket");
	(void)unlink(d->handover_path);
	mode_t old = umask(0077);
	r = bind(d->ho_listen, (struct sockaddr *)&sa, sizeof sa) < 0 ? negative_errno() : 0;
	umask(old);
	if (r >= 0 && listen(d->ho_listen, 4) < 0)
		r = negative_errno();
	if (r < 0)
		return log_error_errno(r, "cannot listen on %s", d->handover_path);
	d->ho_stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->ho_stop < 0)
		return log_error_errno(negative_errno(), "cannot create an eventfd");
	r = -pthread_create(&d->ho_thread, NULL, handover_thread, d);
	if (r < 0)
		return log_error_errno(r, "cannot start the handover thread");
	d->ho_running = true;
	return 0;
}

static void handover_stop(Daemon *d)
{
	uint64_t one = 1;

	if (d->ho_running) {
		if (write(d->ho_stop, &one, sizeof one) < 0) {
			/* an eventfd write does not fail here */
		}
		pthread_join(d->ho_thread, NULL);
		d->ho_running = false;
	}
	if (d->ho_listen >= 0) {
		close(d->ho_listen);
		d->ho_listen = -1;
		/* Only ours: a successor binds its own after we exit. */
		if (__atomic_load_n(&d->stop_mode, __ATOMIC_SEQ_CST) != STOP_HANDOVER)
			(void)unlink(d->handover_path);
	}
	if (d->ho_stop >= 0) {
		close(d->ho_stop);
		d->ho_stop = -1;
	}
}

/* Sockets a predecessor still holds: wait until it has exited (it hangs up), then bind ours. */
static int late_start(Daemon *d)
{
	int r;

	if (d->pred_fd >= 0) {
		struct pollfd p = {.fd = d->pred_fd, .events = POLLIN};
		char b;
		for (int i = 0; i < 300; i++) {
			if (poll(&p, 1, 100) > 0 && (p.revents & (POLLHUP | POLLERR) ||
						     recv(d->pred_fd, &b, 1, MSG_DONTWAIT) == 0))
				break;
		}
		close(d->pred_fd);
		d->pred_fd = -1;
	}
	r = control_start(d->control);
	if (r >= 0)
		r = handover_listen(d);
	return r;
}

/* Whether the mount answers (a stat of its root through the FUSE loop), checked in a child
 * process: if the loop stops meanwhile, the stat would block until the next daemon, and only a
 * process can be killed out of it. 1 answered, 0 not (yet), -errno. */
static int mount_answers(Daemon *d, int timeout_ms)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return negative_errno();
	if (pid == 0) {
		struct stat st;
		_exit(stat(d->cfg->mountpoint, &st) == 0 && st.st_ino == TREE_INO_ROOT ? 0 : 1);
	}
	for (int i = 0; i < timeout_ms / 10; i++) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 1 : 0;
		pthread_mutex_lock(&d->lock);
		bool done = d->loop_done;
		pthread_mutex_unlock(&d->lock);
		if (done)
			break;
		usleep(10 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return 0;
}

/* Once the mount answers: READY=1, hand the connection to the keeper, and after an adoption
 * drop the previous daemon's dentries. Binds the sockets a predecessor held, first. */
static void *ready_thread(void *userdata)
{
	Daemon *d = userdata;

	if (!d->late_ok && late_start(d) < 0) {
		log_error("cannot serve the control socket: stopping");
		request_stop(d, d->keeper.type != HANDOVER_KEEPER_NONE ? STOP_KEEP : STOP_UNMOUNT);
		return NULL;
	}
	for (int i = 0; i < 600; i++) {
		pthread_mutex_lock(&d->lock);
		bool done = d->loop_done;
		pthread_mutex_unlock(&d->lock);
		if (done)
			return NULL;
		if (mount_answers(d, 5000) > 0) {
			size_t pods, ids, ready;
			/* Under d->lock and only while no stop began: the shutdown (which sets
			 * loop_done under the same lock) frees the control socket and the notify
			 * queue, and a handover sends the fds only after it; none of this blocks on
			 * a FUSE request (invalidations are queued to the notify thread). */
			pthread_mutex_lock(&d->lock);
			if (d->loop_done ||
			    __atomic_load_n(&d->stop_mode, __ATOMIC_SEQ_CST) != STOP_NONE) {
				pthread_mutex_unlock(&d->lock);
				return NULL;
			}
			sessions_count(d->sessions, &pods, &ids, &ready);
			control_set_mounted_at(d->control, d->mounted_at);
			control_set_takeovers(d->control, d->takeovers);
			stash(d);
			if (d->adopted) {
				int n = recovery_invalidate_previous(d->recovery);
				uint64_t first = fuse_conn_first_reply_us(d->conn);
				if (d->prev_last_reply_us && first > d->prev_last_reply_us)
					log_info("handover: first reply %.1f ms after the previous "
						 "daemon's last; %d name(s) invalidated",
						 (double)(first - d->prev_last_reply_us) / 1000.0, n);
				log_info("first reply at %llu us (takeover %u)",
					 (unsigned long long)first, d->takeovers);
			}
			sd_notifyf(0, "READY=1\nSTATUS=%zu pod(s), %zu identit%s", pods, ids,
				   ids == 1 ? "y" : "ies");
			log_info("svidfs %s serving %s", SVIDFS_VERSION, d->cfg->mountpoint);
			pthread_mutex_unlock(&d->lock);
			return NULL;
		}
		usleep(50 * 1000);
	}
	log_error("the mount at %s did not answer", d->cfg->mountpoint);
	return NULL;
}

/* ---- wiring the connection's facts into the layers ---- */

static void ledger_record(void *ledger, uint64_t ino, const void *data, size_t len)
{
	/* -ENOSPC: the inode is just not recoverable by a successor (it answers ESTALE). */
	(void)ino_ledger_record(ledger, ino, data, len);
}

static void ledger_forget(void *ledger, uint64_t ino)
{
	(void)ino_ledger_forget(ledger, ino);
}

static int ledger_find_slot(void *ledger, const char *name, uint32_t *ret_slot,
			    uint64_t *ret_dir_serial)
{
	return ino_ledger_find_workload(ledger, name, ret_slot, ret_dir_serial);
}

static void ledger_set_slot(void *ledger, uint32_t slot, uint64_t dir_serial, const char *name)
{
	(void)ino_ledger_set_workload(ledger, slot, dir_serial, name);
}

/* The connection is ours (mounted or adopted): its ledger and key go to the layers. */
static void use_connection(Daemon *d, InodeTable *inodes)
{
	const InodeRecorder rec = {ledger_record, ledger_forget, d->ledger};
	const SessionsSlots slots = {ledger_find_slot, ledger_set_slot, d->ledger};

	inode_table_set_recorder(inodes, &rec);
	sessions_set_slots(d->sessions, &slots);
	recovery_set_ledger(d->recovery, d->ledger);
	fsview_set_recovery(d->view, recovery_recover, d->recovery);
	fsview_set_connection(d->view, d->ino_key, d->epoch);
	notify_set_ino_key(d->notify, d->ino_key);
}

static int sessions_create(Daemon *d, SvidStore *store)
{
	const Config *cfg = d->cfg;

	d->agents = calloc(cfg->n_agents ? cfg->n_agents : 1, sizeof *d->agents);
	if (!d->agents)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_agents; i++)
		d->agents[i] = (SessionsAgent){cfg->agents[i].name, cfg->agents[i].address};
	SessionsOptions o = {.agents = d->agents,
			     .n_agents = cfg->n_agents,
			     .workload_socket = cfg->workload_socket,
			     .state_dir = cfg->state_dir,
			     .failover_ms = cfg->failover_ms,
			     .secure_heap = cfg->secure_heap,
			     .identities = cfg->identities,
			     .identity_files = cfg->identity_files,
			     .n_identities = cfg->n_identities};
	return sessions_new(&o, store, d->registry, &d->sessions);
}

static void access_policy_freep_(AccessPolicy **p)
{
	access_policy_free(*p);
}

static int run(Config *cfg)
{
	_cleanup_(access_policy_freep_) AccessPolicy *policy = NULL;
	Daemon dd = {.cfg = cfg, .pred_fd = -1, .succ_fd = -1, .ho_listen = -1, .ho_stop = -1,
		     .lock_fd = -1},
	       *d = &dd;
	SvidStore *store = NULL;
	InodeTable *inodes = NULL;
	struct fuse_loop_config *loop = NULL;
	pthread_t ready;
	bool ready_started = false, handed_over = false;
	struct timespec ts;
	int r;

	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	r = resolve_keeper(d);
	if (r < 0)
		goto out;
	r = access_policy_new(cfg->cgroup_root, &policy);
	if (r < 0) {
		log_error_errno(r, "bad cgroup_root %s", cfg->cgroup_root);
		goto out;
	}
	if (cfg->pod_pattern)
		log_warning("pod_pattern is obsolete and ignored: pods are recognised where kubelet "
			    "puts them, below cgroup_root %s",
			    cfg->cgroup_root);
	if (access_cgroupns_private(NULL) > 0)
		log_warning("svidfs runs in a private cgroup namespace: callers outside it cannot "
			    "be attributed and are denied; run it in the host cgroup namespace");
	{
		char own[ACCESS_UID_MAX];
		if (access_policy_trust_own_pod(policy, NULL, own) > 0)
			log_info("running in pod %s: its containers (the CSI plugin) may enter every "
				 "pod directory; other pods only their own",
				 own);
		if (access_policy_own_root(policy))
			log_info("pods are also recognised below %s, where kubelet put this daemon",
				 access_policy_own_root(policy)[0] ? access_policy_own_root(policy)
								   : "/");
	}
	/* Generations and serials start above any earlier run's: microseconds of wall clock. */
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t base = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	d->epoch = base;
	workload_serial_init(base);
	r = svid_store_new(base, &store);
	if (r >= 0)
		r = svid_store_set_jwt_budget(store, jwt_budget_per_workload(cfg->secure_heap),
					      cfg->secure_heap / 4);
	if (r >= 0)
		r = inode_table_new(&inodes);
	if (r >= 0)
		r = notify_new(&d->notify);
	if (r >= 0)
		r = registry_new(inodes, d->notify, &d->registry);
	if (r >= 0)
		r = sessions_create(d, store);
	if (r >= 0)
		r = fsview_new(d->registry, store, inodes, policy, d->notify, &d->view);
	if (r >= 0)
		r = recovery_new(d->registry, store, inodes, d->notify, NULL, &d->recovery);
	if (r >= 0)
		r = minter_new(mint_fetch, d->sessions, NULL, &d->minter);
	if (r >= 0)
		fsview_set_minter(d->view, mint_submit, d->minter);
	if (r >= 0) {
		ControlContext cc = {.cfg = cfg, .sessions = d->sessions, .registry = d->registry,
				     .store = store, .inodes = inodes,
				     .started_at = (int64_t)ts.tv_sec, .recovery = d->recovery,
				     .shutdown = on_control_shutdown, .shutdown_userdata = d};
		r = control_new(&cc, &d->control);
	}
	if (r < 0) {
		log_error_errno(r, "cannot set up the daemon");
		goto out;
	}
	/* Signals drain the loop (it answers what it holds, then returns). */
	the_daemon = d;
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	r = fuse_mount_start(d);
	if (r < 0)
		goto out;
	use_connection(d, inodes);
	r = notify_start(d->notify, d->se);
	if (r >= 0)
		r = sessions_start(d->sessions);
	if (r < 0)
		goto unmount;
	if (d->adopted)
		adopt_wait(d);
	if (d->pred_fd < 0) {
		r = late_start(d);
		if (r < 0)
			goto unmount;
		d->late_ok = true;
	}
	if (pthread_create(&ready, NULL, ready_thread, d) == 0)
		ready_started = true;
	loop = fuse_loop_cfg_create();
	if (!loop) {
		r = log_error_errno(-ENOMEM, "cannot create the loop config");
		goto unmount;
	}
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_idle_threads(loop, cfg->threads);
	if (__atomic_load_n(&d->stop_mode, __ATOMIC_SEQ_CST) == STOP_NONE) {
		/* 0 or a negative errno. */
		r = fuse_session_loop_mt(d->se, loop);
		if (r < 0)
			log_error_errno(r, "the FUSE loop failed");
		r = MIN(r, 0);
	}
	if (__atomic_load_n(&d->stop_signal, __ATOMIC_SEQ_CST))
		log_info("received signal %d", d->stop_signal);
	sd_notify(0, "STOPPING=1");

unmount:
	pthread_mutex_lock(&d->lock);
	d->loop_done = true;
	pthread_cond_broadcast(&d->cond);
	/* The loop can also end without a stop request (the kernel aborted the connection). */
	int none = STOP_NONE;
	__atomic_compare_exchange_n(&d->stop_mode, &none, STOP_UNMOUNT, false, __ATOMIC_SEQ_CST,
				    __ATOMIC_SEQ_CST);
	StopMode mode = (StopMode)__atomic_load_n(&d->stop_mode, __ATOMIC_SEQ_CST);
	if (mode == STOP_HANDOVER) {
		/* The handover thread sends the fds now; they must stay open until it did. */
		while (!d->handover_done)
			pthread_cond_wait(&d->cond, &d->lock);
		if (!d->handed_over)
			mode = d->keeper.type != HANDOVER_KEEPER_NONE ? STOP_KEEP : STOP_UNMOUNT;
	}
	pthread_mutex_unlock(&d->lock);
	/* Answers the lookups still waiting for a JWT-SVID (queued ones with EAGAIN). */
	d->minter = minter_free(d->minter);
	if (d->se)
		fuse_session_exit(d->se);
	if (d->conn && mode == STOP_KEEP)
		r = stash(d) < 0 && r == 0 ? -EIO : r;
	handed_over = mode == STOP_HANDOVER;
	log_info("shutting down (%s)", mode == STOP_HANDOVER ? "handed over to the successor"
				       : mode == STOP_KEEP   ? "the keeper holds the connection"
							     : "unmounting");
	handover_stop(d);
	d->control = control_free(d->control);
	notify_stop(d->notify);
	if (mode == STOP_UNMOUNT && d->conn) {
		/* Unmounting closes the connection, which also ends a stat the ready thread's
		 * child may have pending. */
		if (umount2(cfg->mountpoint, MNT_DETACH) < 0)
			log_warning_errno(negative_errno(), "cannot unmount %s", cfg->mountpoint);
		if (d->keeper.type != HANDOVER_KEEPER_NONE)
			handover_release(&d->keeper);
	}
	if (ready_started)
		pthread_join(ready, NULL);
out:
	the_daemon = NULL;
	control_free(d->control);
	minter_free(d->minter);
	sessions_free(d->sessions);
	free(d->agents);
	fsview_free(d->view);
	d->view = NULL;
	recovery_free(d->recovery);
	registry_free(d->registry);
	notify_free(d->notify);
	if (d->se)
		fuse_session_destroy(d->se); /* closes the attached fd; the keeper holds a copy */
	else
		fuse_conn_free(d->conn);
	if (loop)
		fuse_loop_cfg_destroy(loop);
	inode_table_free(inodes);
	ino_ledger_free(d->ledger);
	ino_key_free(d->ino_key);
	svid_store_unref(store);
	handover_stop(d);
	if (d->pred_fd >= 0)
		close(d->pred_fd);
	if (d->succ_fd >= 0)
		close(d->succ_fd);
	lock_release(d); /* last: nothing of this process serves the connection any more */
	free(d->keeper_path);
	free(d->handover_path);
	free(d->lock_path);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	if (handed_over && cfg->after_handover_wait) {
		/* Kubernetes: exiting would make kubelet restart this (old) pod's daemon, which
		 * would take the connection back with --takeover; stay idle until deleted. */
		sigset_t set;
		int sig;
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		sd_notify(0, "STATUS=handed the connection to a successor");
		log_info("handed over; idle until SIGTERM (after_handover=wait)");
		sigwait(&set, &sig);
	}
	return r;
}

int main(int argc, char **argv)
{
	Config cfg;
	char *error = NULL;
	int r;

	/* Before anything can make OpenSSL allocate: its key parsing then stays in locked memory. */
	int ossl_r = secret_openssl_init();
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
	if (ossl_r < 0)
		log_warning_errno(ossl_r, "OpenSSL allocated memory before start-up; its copies of "
					  "parsed keys are not kept in locked memory");
	log_info("agents: %zu, mountpoint %s, state %s, control %s", cfg.n_agents, cfg.mountpoint,
		 cfg.state_dir, cfg.control_socket);
	r = run(&cfg);
	config_done(&cfg);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
