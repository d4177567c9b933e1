// SPDX-License-Identifier: Apache-2.0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "ctlclient.h"
#include "stack.h"

#ifndef SVIDFS_BIN
#define SVIDFS_BIN "svidfs"
#endif
#ifndef SVIDFS_CSI_BIN
#define SVIDFS_CSI_BIN "svidfs-csi"
#endif
#ifndef DEVAGENT_BIN
#define DEVAGENT_BIN "devagent"
#endif

#define TRUST_DOMAIN "example.org"
#define CGROUP_ROOT "/sys/fs/cgroup/unified"
#define QOS_SLICE "kubepods.slice/kubepods-besteffort.slice"

struct Stack {
	StackOptions o;
	char dir[64];
	char csi_sock[128], kubelet[128], mnt[128], control[128], agent_sock[128], agent_ctl[128],
	    state[128], cgroup[256];
	pid_t agent_pid, daemon_pid, csi_pid;
};

static const char *bin(const char *env, const char *def)
{
	const char *e = getenv(env);
	return e && *e ? e : def;
}

int stack_enter_private_mount_ns(void)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "stack: cannot enter a private mount namespace: %s\n",
			strerror(errno));
		return -errno;
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Starts argv with stdout/stderr to <dir>/<name>.log (or inherited when verbose). */
static pid_t spawn(Stack *s, const char *name, char *const argv[])
{
	char log[256];
	snprintf(log, sizeof log, "%s/%s.log", s->dir, name);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (!s->o.verbose) {
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static bool alive(pid_t pid)
{
	return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

static void stop_pid(pid_t *pid, int sig)
{
	if (*pid <= 0)
		return;
	kill(*pid, sig);
	double t0 = now_s();
	while (waitpid(*pid, NULL, WNOHANG) == 0) {
		if (now_s() - t0 > 10) {
			kill(*pid, SIGKILL);
			waitpid(*pid, NULL, 0);
			break;
		}
		usleep(10000);
	}
	*pid = 0;
}

static bool connectable(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static int wait_socket(const char *path, pid_t pid, const char *what)
{
	double t0 = now_s();
	while (!connectable(path)) {
		if (!alive(pid)) {
			fprintf(stderr, "stack: %s exited before serving %s\n", what, path);
			return -ECHILD;
		}
		if (now_s() - t0 > 20) {
			fprintf(stderr, "stack: %s does not serve %s after 20 s\n", what, path);
			return -ETIMEDOUT;
		}
		usleep(20000);
	}
	return 0;
}

static int start_agent(Stack *s)
{
	char delay[32], ttl[32];
	snprintf(delay, sizeof delay, "%dms", s->o.first_svid_delay_ms);
	snprintf(ttl, sizeof ttl, "%ds", s->o.svid_ttl_s > 0 ? s->o.svid_ttl_s : 3600);
	/* auto-k8s: every pod (uid + namespace + service account selectors) gets the entry
	 * spiffe://<td>/ns/<ns>/sa/<sa>, as a ClusterSPIFFEID would give it. */
	char *argv[] = {(char *)bin("DEVAGENT_BIN", DEVAGENT_BIN),
			"--admin-socket",
			s->agent_sock,
			"--control",
			s->agent_ctl,
			"--trust-domain",
			TRUST_DOMAIN,
			"--auto-k8s",
			"--first-svid-delay",
			delay,
			"--svid-ttl",
			ttl,
			NULL};
	s->agent_pid = spawn(s, "devagent", argv);
	if (s->agent_pid < 0)
		return s->agent_pid;
	/* The gRPC sockets listen before the control socket appears. */
	return wait_socket(s->agent_ctl, s->agent_pid, "the development agent");
}

static int start_daemon(Stack *s)
{
	char agent[200];
	snprintf(agent, sizeof agent, "dev=unix://%s", s->agent_sock);
	/* Pods are recognised where kubelet with --cgroup-root=<this> puts them. */
	const char *root = s->cgroup + strlen(CGROUP_ROOT);
	char *argv[] = {(char *)bin("SVIDFS_BIN", SVIDFS_BIN),
			"--cgroup-root",
			(char *)root,
			"--mountpoint",
			s->mnt,
			"--control-socket",
			s->control,
			"--state-dir",
			s->state,
			"--agent",
			agent,
			NULL};
	s->daemon_pid = spawn(s, "svidfs", argv);
	if (s->daemon_pid < 0)
		return s->daemon_pid;
	return wait_socket(s->control, s->daemon_pid, "the svidfs daemon");
}

static int start_csi(Stack *s)
{
	char ep[160], timeout[16];
	snprintf(ep, sizeof ep, "unix://%s", s->csi_sock);
	snprintf(timeout, sizeof timeout, "%d",
		 s->o.publish_timeout_s > 0 ? s->o.publish_timeout_s : 30);
	char *argv[] = {(char *)bin("SVIDFS_CSI_BIN", SVIDFS_CSI_BIN),
			"--endpoint",
			ep,
			"--node-id",
			"node-under-test",
			"--kubelet-root",
			s->kubelet,
			"--svidfs-mount",
			s->mnt,
			"--control-socket",
			s->control,
			"--publish-timeout",
			timeout,
			NULL};
	s->csi_pid = spawn(s, "svidfs-csi", argv);
	if (s->csi_pid < 0)
		return s->csi_pid;
	return wait_socket(s->csi_sock, s->csi_pid, "svidfs-csi");
}

int stack_start(const StackOptions *o, Stack **ret)
{
	Stack *s = calloc(1, sizeof *s);
	int r;

	s->o = *o;
	snprintf(s->dir, sizeof s->dir, "/tmp/svidfs-test.XXXXXX");
	if (!mkdtemp(s->dir)) {
		free(s);
		return -errno;
	}
	/* Container processes that drop root must reach their volume below this directory. */
	chmod(s->dir, 0755);
	snprintf(s->csi_sock, sizeof s->csi_sock, "%s/csi.sock", s->dir);
	snprintf(s->kubelet, sizeof s->kubelet, "%s/kubelet", s->dir);
	snprintf(s->mnt, sizeof s->mnt, "%s/svidfs", s->dir);
	snprintf(s->control, sizeof s->control, "%s/control.sock", s->dir);
	snprintf(s->agent_sock, sizeof s->agent_sock, "%s/admin.sock", s->dir);
	snprintf(s->agent_ctl, sizeof s->agent_ctl, "%s/devagent-ctl.sock", s->dir);
	snprintf(s->state, sizeof s->state, "%s/state", s->dir);
	snprintf(s->cgroup, sizeof s->cgroup, "%s/svidfs-test-%d", CGROUP_ROOT, (int)getpid());
	mkdir(s->kubelet, 0750);
	mkdir(s->mnt, 0755);
	mkdir(s->state, 0700);
	char pods[160];
	snprintf(pods, sizeof pods, "%s/pods", s->kubelet);
	mkdir(pods, 0750);
	if ((r = start_agent(s)) < 0 || (r = start_daemon(s)) < 0 || (r = start_csi(s)) < 0) {
		fprintf(stderr, "stack: start failed (%s); logs in %s\n", strerror(-r), s->dir);
		s->dir[0] = s->dir[0]; /* keep the directory for the logs */
		stack_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char p[1024];
			snprintf(p, sizeof p, "%s/%s", path, de->d_name);
			struct stat st;
			if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
				rm_rf(p);
			else
				unlink(p);
		}
		closedir(d);
	}
	rmdir(path);
}

Stack *stack_free(Stack *s)
{
	if (!s)
		return NULL;
	stop_pid(&s->csi_pid, SIGTERM);
	stop_pid(&s->daemon_pid, SIGTERM);
	stop_pid(&s->agent_pid, SIGTERM);
	/* Everything is in our private mount namespace; unmount what is left (a killed daemon's
	 * FUSE mount, binds) so the directory can go. */
	umount2(s->mnt, MNT_DETACH);
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	while (f && fgets(line, sizeof line, f)) {
		char mp[2048];
		if (sscanf(line, "%*s %*s %*s %*s %2047s", mp) == 1 &&
		    strncmp(mp, s->dir, strlen(s->dir)) == 0)
			umount2(mp, MNT_DETACH);
	}
	if (f)
		fclose(f);
	if (getenv("CSI_TEST_KEEP"))
		fprintf(stderr, "stack: keeping %s\n", s->dir);
	else
		rm_rf(s->dir);
	char cg[512];
	snprintf(cg, sizeof cg, "%s/" QOS_SLICE, s->cgroup);
	rmdir(cg);
	snprintf(cg, sizeof cg, "%s/kubepods.slice", s->cgroup);
	rmdir(cg);
	rmdir(s->cgroup);
	free(s);
	return NULL;
}

const char *stack_dir(const Stack *s)
{
	return s->dir;
}
const char *stack_csi_socket(const Stack *s)
{
	return s->csi_sock;
}
const char *stack_kubelet_root(const Stack *s)
{
	return s->kubelet;
}
const char *stack_svidfs_mount(const Stack *s)
{
	return s->mnt;
}
const char *stack_control_socket(const Stack *s)
{
	return s->control;
}
const char *stack_trust_domain(const Stack *s)
{
	return TRUST_DOMAIN;
}

int stack_ctl(Stack *s, const char *op, const char *workload, KvMsg **ret_reply)
{
	KvMsg *req = NULL, *rep = NULL;
	kv_new(&req);
	kv_add(req, "op", op);
	if (workload)
		kv_add(req, "workload", workload);
	int r = ctl_call(s->control, req, 10000, &rep);
	kv_free(req);
	if (r < 0)
		return r;
	r = ctl_reply_status(rep);
	if (ret_reply)
		*ret_reply = rep;
	else
		kv_free(rep);
	return r;
}

int stack_run_second_plugin(Stack *s)
{
	pid_t saved = s->csi_pid;
	int st = 0;

	int r = start_csi(s); /* wait_socket succeeds at once: the first plugin serves */
	pid_t second = s->csi_pid;
	s->csi_pid = saved;
	if (second <= 0)
		return r < 0 ? r : -ECHILD;
	double t0 = now_s();
	while (waitpid(second, &st, WNOHANG) == 0) {
		if (now_s() - t0 > 10) {
			kill(second, SIGKILL);
			waitpid(second, &st, 0);
			return -ETIMEDOUT; /* it kept running: it took the socket */
		}
		usleep(10000);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -EINTR;
}

char *stack_plugin_log(Stack *s)
{
	char path[256];
	snprintf(path, sizeof path, "%s/svidfs-csi.log", s->dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(f);
	fclose(m);
	return buf;
}

int stack_restart_plugin(Stack *s, bool hard)
{
	stop_pid(&s->csi_pid, hard ? SIGKILL : SIGTERM);
	return start_csi(s);
}

bool stack_stop_plugin_cleanly(Stack *s)
{
	char log[256], line[4096];
	int st = -1;
	bool clean = true;

	if (s->csi_pid <= 0)
		return false;
	kill(s->csi_pid, SIGTERM);
	if (waitpid(s->csi_pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		clean = false;
	s->csi_pid = 0;
	snprintf(log, sizeof log, "%s/svidfs-csi.log", s->dir);
	FILE *f = fopen(log, "r");
	while (f && fgets(line, sizeof line, f))
		if (strstr(line, "Sanitizer") || strstr(line, "runtime error:")) {
			fprintf(stderr, "svidfs-csi: %s", line);
			clean = false;
		}
	if (f)
		fclose(f);
	return clean;
}

int stack_kill_daemon(Stack *s)
{
	if (s->daemon_pid <= 0)
		return -ESRCH;
	stop_pid(&s->daemon_pid, SIGKILL);
	return 0;
}

static int agent_ctl(Stack *s, const char *op, const char *key, const char *value)
{
	KvMsg *req = NULL, *rep = NULL;
	kv_new(&req);
	kv_add(req, "op", op);
	if (key)
		kv_add(req, key, value);
	int r = ctl_call(s->agent_ctl, req, 10000, &rep);
	kv_free(req);
	if (r == 0)
		r = ctl_reply_status(rep);
	kv_free(rep);
	return r;
}

int stack_rotate(Stack *s)
{
	return agent_ctl(s, "rotate", NULL, NULL);
}

int stack_set_first_svid_delay(Stack *s, int ms)
{
	char v[32];
	snprintf(v, sizeof v, "%d", ms);
	return agent_ctl(s, "set-delay", "ms", v);
}

static int write_str(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, v, strlen(v));
	int e = errno;
	close(fd);
	return n < 0 ? -e : 0;
}

int stack_pod_exec(Stack *s, const char *pod_uid, const char *volume, uid_t uid, gid_t gid,
		   PodFn fn, void *arg, char *out, size_t outlen)
{
	char cg[512], dir[160];
	int p[2];

	/* The systemd cgroup driver's naming below the root:
	 * kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid with '_'>.slice. */
	snprintf(cg, sizeof cg, "%s/" QOS_SLICE "/kubepods-besteffort-pod%s.slice", s->cgroup,
		 pod_uid);
	for (char *c = cg + strlen(cg) - strlen(pod_uid) - 6; *c; c++)
		if (*c == '-')
			*c = '_';
	mkdir(s->cgroup, 0755);
	snprintf(dir, sizeof dir, "%s/kubepods.slice", s->cgroup);
	mkdir(dir, 0755);
	snprintf(dir, sizeof dir, "%s/" QOS_SLICE, s->cgroup);
	mkdir(dir, 0755);
	if (mkdir(cg, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	snprintf(dir, sizeof dir, "%s/container-%d", s->dir, (int)getpid());
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char procs[600], self[16];
		close(p[0]);
		snprintf(procs, sizeof procs, "%s/cgroup.procs", cg);
		snprintf(self, sizeof self, "%d", (int)getpid());
		if (write_str(procs, self) < 0)
			_exit(201);
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
			_exit(202);
		snprintf(dir, sizeof dir, "%s/container-%d", s->dir, (int)getpid());
		if (volume) {
			/* As the container runtime does: a recursive bind of the volume. */
			if (mkdir(dir, 0755) < 0 ||
			    mount(volume, dir, NULL, MS_BIND | MS_REC, NULL) < 0)
				_exit(203);
		}
		if (uid != 0 && (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0))
			_exit(204);
		int r = fn(dir, p[1], arg);
		_exit(r > 0 && r < 200 ? r : r ? 199 : 0);
	}
	close(p[1]);
	size_t n = 0;
	for (;;) {
		char buf[4096];
		ssize_t k = read(p[0], buf, sizeof buf);
		if (k <= 0)
			break;
		if (out && n + 1 < outlen) {
			size_t c = (size_t)k < outlen - 1 - n ? (size_t)k : outlen - 1 - n;
			memcpy(out + n, buf, c);
			n += c;
		}
	}
	if (out && outlen)
		out[n] = 0;
	close(p[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	snprintf(dir, sizeof dir, "%s/container-%d", s->dir, (int)pid);
	rmdir(dir);
	rmdir(cg);
	if (!WIFEXITED(st))
		return -EINTR;
	int code = WEXITSTATUS(st);
	if (code > 200) {
		fprintf(stderr, "stack: pod process setup failed (step %d)\n", code - 200);
		return -EIO;
	}
	return code;
}
