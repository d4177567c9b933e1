// SPDX-License-Identifier: Apache-2.0
/* svidfs-keeper: holds the daemon's /dev/fuse connection (and the facts needed to adopt it)
 * while no daemon runs, so a crashed or upgraded daemon's successor adopts the live mount and
 * readers never see ENOTCONN. It never reads the fd: requests queue in the kernel meanwhile.
 * Protocol (SOCK_SEQPACKET, common/kv.h messages, fds via SCM_RIGHTS; root only):
 *   op=put  + fds + facts  -> replace what is held          op=get  -> facts + dup'd fds
 *   op=drop                -> close what is held            op=ping -> held=true|false */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "handover.h"
#include "log.h"

static int held_fds[HANDOVER_MAX_FDS];
static size_t n_held;
static KvMsg *held_facts;
static volatile sig_atomic_t stop;

static void drop_held(void)
{
	for (size_t i = 0; i < n_held; i++)
		close(held_fds[i]);
	n_held = 0;
	held_facts = kv_free(held_facts);
}

static int reply_status(int s, int status, const char *error)
{
	KvMsg *m = NULL;
	int r = kv_new(&m);
	if (r < 0)
		return r;
	kv_addf(m, "status", "%d", status);
	if (error)
		kv_add(m, "error", error);
	kv_addf(m, "held", "%s", n_held ? "true" : "false");
	r = handover_send(s, m, NULL, 0);
	kv_free(m);
	return r;
}

static void serve(int s)
{
	struct ucred cred;
	socklen_t l = sizeof cred;
	KvMsg *req = NULL;
	int fds[HANDOVER_MAX_FDS];
	size_t n_fds = 0;
	const char *op;
	int r;

	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &l) < 0 ||
	    (cred.uid != 0 && cred.uid != getuid())) {
		log_warning("keeper: refusing a client with uid %u", (unsigned)cred.uid);
		return;
	}
	r = handover_recv(s, 5000, &req, fds, &n_fds);
	if (r < 0) {
		log_warning_errno(r, "keeper: cannot read a request from pid %d", (int)cred.pid);
		return;
	}
	op = kv_get(req, "op");
	if (op && streq(op, "put") && n_fds > 0) {
		drop_held();
		memcpy(held_fds, fds, n_fds * sizeof(int));
		n_held = n_fds;
		n_fds = 0;
		held_facts = TAKE_PTR(req);
		log_info("keeper: holding the connection of pid %d", (int)cred.pid);
		reply_status(s, 0, NULL);
	} else if (op && streq(op, "get")) {
		if (!n_held) {
			reply_status(s, -ENOENT, "no connection held");
		} else {
			KvMsg *m = NULL;
			if (kv_new(&m) == 0) {
				kv_add(m, "status", "0");
				kv_add(m, "held", "true");
				for (size_t i = 0; i < kv_count(held_facts); i++)
					if (!streq(kv_key(held_facts, i), "op"))
						kv_add(m, kv_key(held_facts, i),
						       kv_value(held_facts, i));
				r = handover_send(s, m, held_fds, n_held);
				if (r < 0)
					log_warning_errno(r, "keeper: cannot hand the connection to pid %d",
							  (int)cred.pid);
				else
					log_info("keeper: handed the connection to pid %d",
						 (int)cred.pid);
				kv_free(m);
			}
		}
	} else if (op && streq(op, "drop")) {
		drop_held();
		log_info("keeper: connection dropped by pid %d", (int)cred.pid);
		reply_status(s, 0, NULL);
	} else if (op && streq(op, "ping")) {
		reply_status(s, 0, NULL);
	} else {
		reply_status(s, -EINVAL, "unknown op or missing fds");
	}
	for (size_t i = 0; i < n_fds; i++)
		close(fds[i]);
	kv_free(req);
}

static void on_signal(int sig)
{
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: svidfs-keeper --socket PATH [--log-level LEVEL]\n"
		   "Holds svidfs's FUSE connection across daemon restarts (see svidfs-keeper(8)).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{},
	};
	const char *path = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int ls = -1, lockfd = -1;
	_cleanup_free_ char *lockpath = NULL;
	int c;

	log_set_ident("svidfs-keeper");
	while ((c = getopt_long(argc, argv, "s:l:hV", opts, NULL)) >= 0) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'l':
			if (log_parse_level(optarg) < 0) {
				log_error("unknown log level '%s'", optarg);
				return 2;
			}
			log_set_max_level(log_parse_level(optarg));
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("svidfs-keeper %s\n", SVIDFS_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!path || strlen(path) >= sizeof sa.sun_path) {
		usage(stderr);
		return 2;
	}
	/* Two keepers on one path would each think they hold the connection. */
	if (asprintf(&lockpath, "%s.lock", path) < 0)
		return 1;
	lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		log_error_errno(negative_errno(), "another keeper holds %s", lockpath);
		return 1;
	}
	strcpy(sa.sun_path, path);
	unlink(path);
	ls = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0600) < 0 ||
	    listen(ls, 16) < 0) {
		log_error_errno(negative_errno(), "cannot listen on %s", path);
		return 1;
	}
	struct sigaction act = {.sa_handler = on_signal};
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_info("keeper: listening on %s", path);
	while (!stop) {
		struct pollfd p = {.fd = ls, .events = POLLIN};
		if (poll(&p, 1, -1) <= 0)
			continue;
		int s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (s < 0)
			continue;
		serve(s);
		close(s);
	}
	drop_held();
	unlink(path);
	return 0;
}
