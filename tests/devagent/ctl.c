// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "ctl.h"
#include "kv.h"
#include "log.h"
#include "macro.h"

#define CTL_MAX_CLIENTS 64
#define CTL_MAX_MSG (64 * 1024)

struct Ctl {
	Server *srv;
	char *path, *lock_path;
	int fd, lock_fd, wake_fd;
	int clients[CTL_MAX_CLIENTS];
	pthread_t thread;
	bool started, locked;
};

DEFINE_CLEANUP_FUNC(KvMsg, kv_free);

/* Milliseconds: a bare number is ms here ("stall 500"); units allowed ("2s"). */
static int parse_ms(const char *v, uint64_t *ret)
{
	if (!v)
		return -EINVAL;
	if (config_parse_uint(v, UINT64_MAX, ret) == 0)
		return 0;
	return config_parse_duration(v, ret);
}

static const char *arg_of(const KvMsg *req, const char *const *keys)
{
	for (; *keys; keys++) {
		const char *v = kv_get(req, *keys);
		if (v)
			return v;
	}
	return NULL;
}

/* add-entry from keys: spiffe_id= plus selector=/selectors=/hint=/federates_with=/admin=/id=. */
static int spec_from_keys(const KvMsg *req, char **ret)
{
	const char *id = kv_get(req, "spiffe_id");
	char *spec = NULL;
	size_t len = 0;
	FILE *f;

	if (!id)
		return -EINVAL;
	if (!(f = open_memstream(&spec, &len)))
		return -ENOMEM;
	fputs(id, f);
	for (size_t i = 0; i < kv_count(req); i++) {
		const char *k = kv_key(req, i);
		if (streq(k, "op") || streq(k, "spiffe_id"))
			continue;
		fprintf(f, " %s=%s", k, kv_value(req, i));
	}
	if (fclose(f) != 0) {
		free(spec);
		return -ENOMEM;
	}
	*ret = spec;
	return 0;
}

static int dispatch(Server *s, const KvMsg *req, KvMsg *reply, const char **ret_error)
{
	static const char *const target_keys[] = {"target", "id", "spiffe_id", "arg", NULL};
	static const char *const ms_keys[] = {"ms", "arg", NULL};
	const char *op = kv_get(req, "op");
	uint64_t v = 0;
	int r;

	*ret_error = NULL;
	if (!op) {
		*ret_error = "missing op";
		return -EINVAL;
	}
	if (streq(op, "ping") || streq(op, "info"))
		return server_info(s, reply);
	if (streq(op, "rotate")) {
		if ((r = server_rotate(s, arg_of(req, target_keys))) == -ENOENT)
			*ret_error = "no such entry";
		return r < 0 ? r : kv_addf(reply, "rotated", "%d", r);
	}
	if (streq(op, "add-entry")) {
		_cleanup_free_ char *built = NULL;
		const char *spec = arg_of(req, (const char *const[]){"entry", "arg", NULL});
		if (!spec) {
			if ((r = spec_from_keys(req, &built)) < 0) {
				*ret_error = "add-entry needs entry=<spec> or spiffe_id= and selector=";
				return r;
			}
			spec = built;
		}
		r = server_add_entry(s, spec, reply);
		if (r == -EINVAL)
			*ret_error = "invalid entry (need a SPIFFE ID in the trust-domain syntax and at least one type:value selector)";
		else if (r == -EEXIST)
			*ret_error = "an entry with this id exists";
		return r;
	}
	if (streq(op, "remove-entry")) {
		const char *t = arg_of(req, target_keys);
		if (!t) {
			*ret_error = "remove-entry needs an entry id or SPIFFE ID";
			return -EINVAL;
		}
		if ((r = server_remove_entry(s, t)) == -ENOENT)
			*ret_error = "no such entry";
		return r < 0 ? r : kv_addf(reply, "removed", "%d", r);
	}
	if (streq(op, "list"))
		return server_list(s, reply);
	if (streq(op, "close-streams"))
		return kv_addf(reply, "closed", "%d", server_close_streams(s));
	if (streq(op, "malformed"))
		return kv_addf(reply, "sent", "%d", server_send_malformed(s));
	if (streq(op, "oversize")) {
		if (config_parse_size(arg_of(req, (const char *const[]){"bytes", "arg", NULL}), &v) < 0) {
			*ret_error = "oversize needs bytes=N";
			return -EINVAL;
		}
		if ((r = server_send_oversize(s, v)) < 0)
			return r;
		return kv_addf(reply, "sent", "%d", r);
	}
	if (streq(op, "wait-streams")) {
		uint64_t n = 1, t = 5000;
		const char *nv = arg_of(req, (const char *const[]){"n", "arg", NULL});
		const char *tv = kv_get(req, "timeout_ms");
		if ((nv && config_parse_uint(nv, 1u << 30, &n) < 0) || (tv && parse_ms(tv, &t) < 0)) {
			*ret_error = "wait-streams takes n=N timeout_ms=T";
			return -EINVAL;
		}
		if ((r = server_wait_streams(s, (unsigned)n, t)) == -ETIMEDOUT)
			*ret_error = "timed out waiting for SVID streams";
		return r;
	}
	bool is_ms_op = streq(op, "stall") || streq(op, "refuse") || streq(op, "restart") ||
			streq(op, "set-delay") || streq(op, "jwt-delay");
	if (!is_ms_op) {
		*ret_error = "unknown op";
		return -EOPNOTSUPP;
	}
	const char *mv = arg_of(req, ms_keys);
	if (!mv && streq(op, "restart"))
		mv = "0";
	if (parse_ms(mv, &v) < 0) {
		*ret_error = "needs ms=N (milliseconds, or a duration like 2s)";
		return -EINVAL;
	}
	if (streq(op, "stall"))
		return server_stall(s, v);
	if (streq(op, "refuse"))
		return server_refuse(s, v);
	if (streq(op, "restart"))
		return server_restart(s, v);
	if (streq(op, "jwt-delay"))
		return server_set_jwt_delay(s, v);
	return server_set_delay(s, v);
}

static int serve_one(Ctl *c, int fd)
{
	_cleanup_(kv_freep) KvMsg *req = NULL;
	_cleanup_(kv_freep) KvMsg *reply = NULL;
	_cleanup_(kv_freep) KvMsg *out = NULL;
	const char *err = NULL;
	int r = kv_read_fd(fd, CTL_MAX_MSG, 2000, &req);
	if (r < 0)
		return r; /* EOF or garbage: drop the connection */
	if ((r = kv_new(&reply)) < 0 || (r = kv_new(&out)) < 0)
		return r;
	r = dispatch(c->srv, req, reply, &err);
	if (r < 0)
		log_info_errno(r, "devagent: control op %s failed%s%s", kv_get(req, "op") ?: "(none)",
			       err ? ": " : "", err ?: "");
	kv_addf(out, "status", "%d", r < 0 ? r : 0);
	if (r < 0)
		kv_add(out, "error", err ? err : strerror(-r));
	else
		for (size_t i = 0; i < kv_count(reply); i++)
			kv_add(out, kv_key(reply, i), kv_value(reply, i));
	return kv_write_fd(fd, out);
}

static void *ctl_thread(void *arg)
{
	Ctl *c = arg;
	for (;;) {
		struct pollfd p[2 + CTL_MAX_CLIENTS];
		int idx[2 + CTL_MAX_CLIENTS];
		size_t n = 0;
		p[n++] = (struct pollfd){.fd = c->wake_fd, .events = POLLIN};
		p[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
		for (int i = 0; i < CTL_MAX_CLIENTS; i++)
			if (c->clients[i] >= 0) {
				idx[n] = i;
				p[n++] = (struct pollfd){.fd = c->clients[i], .events = POLLIN};
			}
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error_errno(negative_errno(), "devagent: control poll");
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN) {
			int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				int i = 0;
				while (i < CTL_MAX_CLIENTS && c->clients[i] >= 0)
					i++;
				if (i == CTL_MAX_CLIENTS) {
					log_warning("devagent: too many control connections");
					close(fd);
				} else
					c->clients[i] = fd;
			}
		}
		for (size_t k = 2; k < n; k++)
			if (p[k].revents) {
				int i = idx[k];
				if (serve_one(c, c->clients[i]) < 0) {
					close(c->clients[i]);
					c->clients[i] = -1;
				}
			}
	}
	return NULL;
}

int ctl_new(const char *path, Server *s, Ctl **ret)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	Ctl *c = calloc(1, sizeof *c);
	int r;

	if (!c)
		return log_error_errno(-ENOMEM, "devagent: out of memory");
	c->srv = s;
	c->fd = c->lock_fd = c->wake_fd = -1;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		c->clients[i] = -1;
	if (strlen(path) >= sizeof sa.sun_path) {
		r = log_error_errno(-ENAMETOOLONG, "devagent: control socket path too long: %s", path);
		goto fail;
	}
	if (!(c->path = strdup(path)) || asprintf(&c->lock_path, "%s.lock", path) < 0) {
		c->lock_path = NULL;
		r = log_error_errno(-ENOMEM, "devagent: out of memory");
		goto fail;
	}
	c->lock_fd = open(c->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->lock_fd < 0 || flock(c->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = log_error_errno(negative_errno(), "devagent: control socket %s is in use (lock %s)",
				    path, c->lock_path);
		goto fail;
	}
	c->locked = true;
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = log_error_errno(negative_errno(), "devagent: socket()");
		goto fail;
	}
	(void)unlink(path);
	if (bind(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0600) < 0 ||
	    listen(c->fd, 16) < 0) {
		r = log_error_errno(negative_errno(), "devagent: cannot listen on control socket %s",
				    path);
		goto fail;
	}
	if ((c->wake_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
		r = log_error_errno(negative_errno(), "devagent: eventfd");
		goto fail;
	}
	if ((r = -pthread_create(&c->thread, NULL, ctl_thread, c)) < 0) {
		log_error_errno(r, "devagent: cannot start the control thread");
		goto fail;
	}
	c->started = true;
	*ret = c;
	return 0;
fail:
	ctl_free(c);
	return r;
}

Ctl *ctl_free(Ctl *c)
{
	if (!c)
		return NULL;
	if (c->started) {
		uint64_t one = 1;
		(void)!write(c->wake_fd, &one, sizeof one);
		pthread_join(c->thread, NULL);
	}
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		if (c->clients[i] >= 0)
			close(c->clients[i]);
	if (c->fd >= 0) {
		close(c->fd);
		(void)unlink(c->path);
	}
	if (c->lock_fd >= 0) {
		if (c->locked)
			(void)unlink(c->lock_path);
		close(c->lock_fd);
	}
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	free(c->path);
	free(c->lock_path);
	free(c);
	return NULL;
}

/* ---- client ---- */

static int ctl_connect(const char *path, uint64_t wait_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timespec start, now;

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return negative_errno();
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			return fd;
		int r = negative_errno();
		close(fd);
		clock_gettime(CLOCK_MONOTONIC, &now);
		uint64_t el = (uint64_t)(now.tv_sec - start.tv_sec) * 1000 +
			      (uint64_t)(now.tv_nsec - start.tv_nsec) / 1000000;
		if ((r != -ENOENT && r != -ECONNREFUSED) || el >= wait_ms)
			return r;
		usleep(20 * 1000);
	}
}

static void ctl_usage(FILE *f)
{
	fputs("usage: svidfs-devagent ctl [--control PATH] [--wait MS] OP [ARG...]\n"
	      "ops: ping | info | list | rotate [ID] | add-entry SPEC... | remove-entry ID\n"
	      "     close-streams | stall MS | refuse MS | malformed | oversize BYTES\n"
	      "     restart [MS] | set-delay MS | jwt-delay MS | wait-streams [N] [timeout_ms=T]\n"
	      "ARG is key=value, or a bare value (passed as arg=...).\n"
	      "PATH defaults to $SVIDFS_DEVAGENT_CONTROL. See svidfs-devagent(1).\n",
	      f);
}

int ctl_client_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"control", required_argument, NULL, 'c'},
		{"wait", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	const char *path = getenv("SVIDFS_DEVAGENT_CONTROL");
	uint64_t wait_ms = 0;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+c:w:h", opts, NULL)) >= 0) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'w':
			if (parse_ms(optarg, &wait_ms) < 0) {
				fprintf(stderr, "svidfs-devagent ctl: bad --wait value '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			ctl_usage(stdout);
			return 0;
		default:
			ctl_usage(stderr);
			return 2;
		}
	}
	if (!path || optind >= argc) {
		fputs(!path ? "svidfs-devagent ctl: --control PATH is required\n"
			    : "svidfs-devagent ctl: missing OP\n",
		      stderr);
		ctl_usage(stderr);
		return 2;
	}
	const char *op = argv[optind++];
	_cleanup_(kv_freep) KvMsg *req = NULL;
	_cleanup_(kv_freep) KvMsg *reply = NULL;
	_cleanup_free_ char *joined = NULL;
	int r = kv_new(&req);
	if (r >= 0)
		r = kv_add(req, "op", op);
	if (r >= 0 && streq(op, "add-entry") && optind < argc &&
	    strncmp(argv[optind], "entry=", 6) != 0 && strncmp(argv[optind], "spiffe_id=", 10) != 0) {
		/* `ctl add-entry spiffe://td/x selectors=a:b hint=h`: the words are one spec. */
		size_t len = 0;
		for (int i = optind; i < argc; i++)
			len += strlen(argv[i]) + 1;
		if (!(joined = calloc(1, len + 1)))
			r = -ENOMEM;
		for (int i = optind; r >= 0 && i < argc; i++) {
			if (i > optind)
				strcat(joined, " ");
			strcat(joined, argv[i]);
		}
		if (r >= 0)
			r = kv_add(req, "entry", joined);
		optind = argc;
	}
	for (int i = optind; r >= 0 && i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (eq) {
			_cleanup_free_ char *k = strndup(argv[i], (size_t)(eq - argv[i]));
			r = k ? kv_add(req, k, eq + 1) : -ENOMEM;
		} else
			r = kv_add(req, "arg", argv[i]);
	}
	if (r < 0) {
		fprintf(stderr, "svidfs-devagent ctl: bad argument: %s\n", strerror(-r));
		return 2;
	}
	_cleanup_close_ int fd = ctl_connect(path, wait_ms);
	if (fd < 0) {
		fprintf(stderr, "svidfs-devagent ctl: cannot connect to %s: %s\n", path, strerror(-fd));
		return 1;
	}
	if ((r = kv_write_fd(fd, req)) < 0 || (r = kv_read_fd(fd, CTL_MAX_MSG, 60000, &reply)) < 0) {
		fprintf(stderr, "svidfs-devagent ctl: %s: %s\n", op, strerror(-r));
		return 1;
	}
	const char *status = kv_get(reply, "status");
	if (!status || !streq(status, "0")) {
		const char *err = kv_get(reply, "error");
		fprintf(stderr, "svidfs-devagent ctl: %s: %s\n", op, err ? err : "failed");
		return 1;
	}
	for (size_t i = 0; i < kv_count(reply); i++)
		if (!streq(kv_key(reply, i), "status"))
			printf("%s=%s\n", kv_key(reply, i), kv_value(reply, i));
	return 0;
}
