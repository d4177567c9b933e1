// SPDX-License-Identifier: Apache-2.0
/* The CSI integration suite: a kubelet-like client against the real svidfs-csi, the real svidfs
 * daemon and the development agent. Prints TAP, one line per check. Needs root, /dev/fuse and
 * cgroups; runs in a private mount namespace so nothing outlives it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csi.pb-c.h"
#include "kubelet.h"
#include "mountinfo.h"
#include "stack.h"

static int n_test, n_fail;

static void tap(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tap(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", ok ? "" : "not ", ++n_test);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		n_fail++;
}

static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static Stack *S;
static Kubelet *K;
static char msg[1024];

static const MountEntry *find_mount(MountInfo **mi, const char *path)
{
	*mi = mountinfo_free(*mi);
	if (mountinfo_read(NULL, mi) < 0)
		return NULL;
	return mountinfo_find_mountpoint(*mi, path);
}

static bool is_mounted(const char *path)
{
	MountInfo *mi = NULL;
	bool r = find_mount(&mi, path) != NULL;
	mountinfo_free(mi);
	return r;
}

static void new_pod(KubeletVolume *v, const char *ns, const char *name)
{
	char uid[37];
	kubelet_random_uid(uid);
	if (kubelet_pod_init(v, stack_kubelet_root(S), uid, ns, name, "default", "spiffe") < 0)
		diag("cannot create the pod directory for %s", uid);
}

static int publish(const KubeletVolume *v)
{
	msg[0] = 0;
	return kubelet_publish(K, v, msg, sizeof msg, 60000);
}

static int unpublish(const KubeletVolume *v)
{
	msg[0] = 0;
	return kubelet_unpublish(K, v->volume_id, v->target_path, msg, sizeof msg, 30000);
}

/* The daemon's view of a pod: its status= for op=status (0 registered, -ENOENT gone). */
static int daemon_status(const char *uid)
{
	char w[96];
	KvMsg *rep = NULL;
	snprintf(w, sizeof w, "pods/%s", uid);
	int r = stack_ctl(S, "status", w, &rep);
	kv_free(rep);
	return r;
}

/* The daemon's reference count of a pod (-1 when it has none registered). */
static int daemon_refs(const char *uid)
{
	char w[96];
	KvMsg *rep = NULL;
	snprintf(w, sizeof w, "pods/%s", uid);
	int r = stack_ctl(S, "status", w, &rep);
	const char *v = r == 0 ? kv_get(rep, "refs") : NULL;
	char *end = NULL;
	long n = v ? strtol(v, &end, 10) : -1;
	if (v && (!*v || *end))
		n = -2;
	kv_free(rep);
	return n;
}

/* ---- pod processes ---- */

static int read_file(const char *path, char *buf, size_t len, size_t *ret_n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	ssize_t n = read(fd, buf, len);
	int e = errno;
	close(fd);
	if (n < 0)
		return e;
	*ret_n = (size_t)n;
	return 0;
}

/* Reads every regular file at the top of the volume and reports "name size" lines. */
static int pod_list_and_read(const char *dir, int out, void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int nfiles = 0;

	if (!d)
		return errno;
	while ((de = readdir(d))) {
		char p[512], buf[65536];
		size_t n;
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		struct stat st;
		if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		int e = read_file(p, buf, sizeof buf, &n);
		if (e) {
			closedir(d);
			return e;
		}
		dprintf(out, "%s %zu %s\n", de->d_name, n,
			memmem(buf, n, "-----BEGIN CERTIFICATE-----", 27) ? "cert" : "-");
		nfiles++;
	}
	closedir(d);
	return nfiles > 0 ? 0 : ENOENT;
}

static int pod_write(const char *dir, int out, void *arg)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, (const char *)arg);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno;
}

static int pod_create(const char *dir, int out, void *arg)
{
	char p[512];
	snprintf(p, sizeof p, "%s/new-file", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno;
}

static int pod_chmod(const char *dir, int out, void *arg)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, (const char *)arg);
	return chmod(p, 0666) < 0 ? errno : 0;
}

/* Prints the bytes of one file (for rotation checks). */
static int pod_cat(const char *dir, int out, void *arg)
{
	char p[512], buf[65536];
	size_t n;
	snprintf(p, sizeof p, "%s/%s", dir, (const char *)arg);
	int e = read_file(p, buf, sizeof buf, &n);
	if (e)
		return e;
	if (write(out, buf, n) < 0)
		return errno;
	return 0;
}

/* Reads an absolute path (ignores the volume dir). */
static int pod_read_abs(const char *dir, int out, void *arg)
{
	char buf[65536];
	size_t n;
	return read_file((const char *)arg, buf, sizeof buf, &n);
}

/* The name of the file that holds the key in the default layout. */
#define KEY_FILE "credential-bundle.private-key.pem"

/* ---- the checks ---- */

static void t_registration(void)
{
	char *name = NULL, *version = NULL, *node = NULL;
	int r = kubelet_register_plugin(K, &name, &version, &node);
	tap(r == 0 && name && strcmp(name, "csi.svidfs.spiffe.io") == 0,
	    "GetPluginInfo names the driver (%s)", name ? name : kubelet_code_name(r));
	tap(r == 0 && version && strcmp(version, SVIDFS_VERSION) == 0,
	    "GetPluginInfo vendor_version is the project version (%s)", version ? version : "-");
	tap(r == 0 && node && strcmp(node, "node-under-test") == 0,
	    "NodeGetInfo gives the node id");
	free(name);
	free(version);
	free(node);

	Csi__V1__NodeGetCapabilitiesRequest cr = CSI__V1__NODE_GET_CAPABILITIES_REQUEST__INIT;
	Csi__V1__NodeGetCapabilitiesResponse *caps = NULL;
	r = kubelet_call(K, "/csi.v1.Node/NodeGetCapabilities", &cr.base,
			 &csi__v1__node_get_capabilities_response__descriptor,
			 (ProtobufCMessage **)&caps, msg, sizeof msg, 10000);
	int seen = 0;
	for (size_t i = 0; r == 0 && i < caps->n_capabilities; i++) {
		Csi__V1__NodeServiceCapability *c = caps->capabilities[i];
		if (c->type_case == CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC)
			seen |= 1 << c->rpc->type;
	}
	tap(r == 0 && caps->n_capabilities == 3 &&
		seen == ((1 << CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__VOLUME_MOUNT_GROUP) |
			 (1 << CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__VOLUME_CONDITION) |
			 (1 << CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__GET_VOLUME_STATS)),
	    "NodeGetCapabilities: VOLUME_MOUNT_GROUP, VOLUME_CONDITION, GET_VOLUME_STATS");
	if (caps)
		protobuf_c_message_free_unpacked(&caps->base, NULL);

	Csi__V1__GetPluginCapabilitiesRequest pr = CSI__V1__GET_PLUGIN_CAPABILITIES_REQUEST__INIT;
	Csi__V1__GetPluginCapabilitiesResponse *pc = NULL;
	r = kubelet_call(K, "/csi.v1.Identity/GetPluginCapabilities", &pr.base,
			 &csi__v1__get_plugin_capabilities_response__descriptor,
			 (ProtobufCMessage **)&pc, msg, sizeof msg, 10000);
	tap(r == 0 && pc->n_capabilities == 0, "GetPluginCapabilities is empty (node-only plugin)");
	if (pc)
		protobuf_c_message_free_unpacked(&pc->base, NULL);

	bool ready = false;
	r = kubelet_probe(K, &ready);
	tap(r == 0 && ready, "Probe: ready while the daemon answers");

	Csi__V1__ProbeRequest any = CSI__V1__PROBE_REQUEST__INIT;
	r = kubelet_call(K, "/csi.v1.Controller/CreateVolume", &any.base,
			 &csi__v1__probe_response__descriptor, NULL, msg, sizeof msg, 10000);
	tap(r == GRPC_STATUS_UNIMPLEMENTED, "a controller RPC is UNIMPLEMENTED (%s)",
	    kubelet_code_name(r));
	r = kubelet_call(K, "/csi.v1.Node/NodeStageVolume", &any.base,
			 &csi__v1__probe_response__descriptor, NULL, msg, sizeof msg, 10000);
	tap(r == GRPC_STATUS_UNIMPLEMENTED, "NodeStageVolume is UNIMPLEMENTED (%s)",
	    kubelet_code_name(r));
}

static KubeletVolume A, B;

static void t_publish_and_read(void)
{
	MountInfo *mi = NULL;
	char out[4096];

	new_pod(&A, "shop", "web-a");
	new_pod(&B, "shop", "web-b");
	int r = publish(&A);
	tap(r == 0, "publish pod A (%s %s)", kubelet_code_name(r), msg);
	const MountEntry *e = find_mount(&mi, A.target_path);
	char want_root[96];
	snprintf(want_root, sizeof want_root, "/pods/%s", A.pod_uid);
	tap(e && strcmp(mountinfo_entry_root(e), want_root) == 0,
	    "the target is a bind of the pod's svidfs directory (root %s)",
	    e ? mountinfo_entry_root(e) : "none");
	tap(e && mountinfo_entry_has_option(e, "ro") && mountinfo_entry_has_option(e, "nosuid") &&
		mountinfo_entry_has_option(e, "nodev") && mountinfo_entry_has_option(e, "noexec"),
	    "the bind is ro,nosuid,nodev,noexec (%s)", e ? mountinfo_entry_options(e) : "-");
	struct stat st;
	tap(stat(A.target_path, &st) == 0 && S_ISDIR(st.st_mode), "the target is a directory");
	mi = mountinfo_free(mi);
	r = daemon_status(A.pod_uid);
	tap(r == 0, "the daemon has pod A registered (status %d)", r);

	out[0] = 0;
	r = stack_pod_exec(S, A.pod_uid, A.target_path, 0, 0, pod_list_and_read, NULL, out,
			   sizeof out);
	tap(r == 0 && strstr(out, KEY_FILE) && strstr(out, "status.json"),
	    "a process in pod A's cgroup and own mount namespace reads the files (%d)", r);
	/* Before the diagnostics: strtok() cuts out at its first line. */
	bool has_cert = strstr(out, "cert") != NULL;
	if (r == 0)
		for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n"))
			diag("  %s", l);
	tap(r == 0 && has_cert, "the files hold PEM certificates");

	r = stack_pod_exec(S, A.pod_uid, A.target_path, 0, 0, pod_write, KEY_FILE, NULL, 0);
	tap(r == EROFS, "writing a file through the bind fails with EROFS (%s)", strerror(r));
	r = stack_pod_exec(S, A.pod_uid, A.target_path, 0, 0, pod_create, NULL, NULL, 0);
	tap(r == EROFS, "creating a file fails with EROFS (%s)", strerror(r));
	r = stack_pod_exec(S, A.pod_uid, A.target_path, 0, 0, pod_chmod, KEY_FILE, NULL, 0);
	tap(r == EROFS, "chmod fails with EROFS (%s)", strerror(r));
}

static void t_rotation(void)
{
	char before[16384] = "", after[16384] = "";
	int r = stack_pod_exec(S, A.pod_uid, A.target_path, 0, 0, pod_cat, KEY_FILE, before,
			       sizeof before);
	int rr = stack_rotate(S);
	bool changed = false;
	for (int i = 0; r == 0 && rr == 0 && i < 100 && !changed; i++) {
		usleep(50000);
		after[0] = 0;
		if (stack_pod_exec(S, A.pod_uid, A.target_path, 0, 0, pod_cat, KEY_FILE, after,
				   sizeof after) == 0)
			changed = strcmp(before, after) != 0 && after[0];
	}
	tap(changed, "a rotation is visible through the bind mount (rotate %d)", rr);
}

static void t_isolation(void)
{
	char p[512];

	snprintf(p, sizeof p, "%s/pods/%s/status.json", stack_svidfs_mount(S), A.pod_uid);
	int r = stack_pod_exec(S, B.pod_uid, NULL, 0, 0, pod_read_abs, p, NULL, 0);
	tap(r == EACCES, "pod B's process is denied pod A's directory on the svidfs mount (%s)",
	    strerror(r));
	r = stack_pod_exec(S, A.pod_uid, NULL, 0, 0, pod_read_abs, p, NULL, 0);
	tap(r == 0, "pod A's own process may walk to its directory on the svidfs mount (%s)",
	    strerror(r));
	/* Pod A's volume reaching pod B (a hostPath mistake): file modes still guard the key. */
	char out[8192];
	r = stack_pod_exec(S, B.pod_uid, A.target_path, 65534, 65534, pod_cat,
			   "example.org.spiffe-trust-bundle.pem", out, sizeof out);
	tap(r == 0,
	    "an unprivileged process of pod B given pod A's volume reads its bundle (0444) "
	    "(%s)",
	    r ? strerror(r) : "ok");
	r = stack_pod_exec(S, B.pod_uid, A.target_path, 65534, 65534, pod_cat, KEY_FILE, out,
			   sizeof out);
	tap(r == EACCES, "but not its key (0400, owner root): %s", strerror(r));
}

static void t_idempotency(void)
{
	MountInfo *mi = NULL;

	int r = publish(&A);
	tap(r == 0, "a repeated publish with the same arguments is OK (%s %s)",
	    kubelet_code_name(r), msg);
	size_t n = 0;
	if (mountinfo_read(NULL, &mi) == 0)
		for (size_t i = 0; i < mountinfo_count(mi); i++)
			n += strcmp(mountinfo_entry_mountpoint(mountinfo_entry(mi, i)),
				    A.target_path) == 0;
	mi = mountinfo_free(mi);
	tap(n == 1, "still exactly one mount at the target (%zu)", n);

	KubeletVolume v = A;
	kubelet_volume_set(&v, "svidfs.spiffe.io/layout", "kubernetes-tls");
	r = publish(&v);
	tap(r == GRPC_STATUS_ALREADY_EXISTS,
	    "the same volume with different attributes is ALREADY_EXISTS (%s %s)",
	    kubelet_code_name(r), msg);

	v = A;
	kubelet_volume_set(&v, "csi.storage.k8s.io/pod.uid", B.pod_uid);
	kubelet_volume_set(&v, "csi.storage.k8s.io/pod.name", "web-b");
	r = publish(&v);
	tap(r == GRPC_STATUS_ALREADY_EXISTS,
	    "the same target published for another pod is ALREADY_EXISTS (%s %s)",
	    kubelet_code_name(r), msg);
	tap(is_mounted(A.target_path) && daemon_status(A.pod_uid) == 0,
	    "the refused publishes left pod A's mount and registration alone");

	/* Issue 12: another volume id on an already published target was OK and took a second
	 * reference that no unpublish would ever drop. */
	v = A;
	snprintf(v.volume_id, sizeof v.volume_id, "csi-another-volume-on-the-same-target");
	r = publish(&v);
	tap(r == GRPC_STATUS_ALREADY_EXISTS,
	    "another volume id on an already published target is ALREADY_EXISTS (%s %s)",
	    kubelet_code_name(r), msg);
	int refs = daemon_refs(A.pod_uid);
	tap(refs == 1, "and takes no reference (pod A has %d)", refs);
}

/* Volume attributes and the fsGroup reach the files. */
static void t_attributes(void)
{
	KubeletVolume v;
	char out[4096] = "", p[600];
	struct stat st;

	new_pod(&v, "shop", "helper");
	kubelet_volume_set(&v, "svidfs.spiffe.io/layout", "spiffe-helper");
	kubelet_volume_set(&v, "svidfs.spiffe.io/svid_file_name", "cert.pem");
	kubelet_volume_set(&v, "svidfs.spiffe.io/svid_key_file_name", "key.pem");
	kubelet_volume_set(&v, "svidfs.spiffe.io/svid_bundle_file_name", "ca.pem");
	kubelet_volume_set(&v, "svidfs.spiffe.io/jwt_svids", "https://api.example.org=api.jwt");
	kubelet_volume_set(&v, "svidfs.spiffe.io/agent", "dev");
	v.volume_mount_group = "2000";
	int r = publish(&v);
	tap(r == 0,
	    "publish with layout spiffe-helper, renamed files, a JWT-SVID and fsGroup 2000 "
	    "(%s %s)",
	    kubelet_code_name(r), msg);
	r = stack_pod_exec(S, v.pod_uid, v.target_path, 0, 0, pod_list_and_read, NULL, out,
			   sizeof out);
	tap(r == 0 && strstr(out, "cert.pem") && strstr(out, "key.pem") && strstr(out, "ca.pem"),
	    "the spiffe-helper file names are served (%s)", r ? strerror(r) : "ok");
	snprintf(p, sizeof p, "%s/key.pem", v.target_path);
	memset(&st, 0, sizeof st);
	int sr = stat(p, &st);
	tap(sr == 0 && st.st_gid == 2000 && (st.st_mode & 07777) == 0440,
	    "the key belongs to the pod's fsGroup with mode 0440 (gid %u, mode %o)",
	    (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
	r = stack_pod_exec(S, v.pod_uid, v.target_path, 65534, 2000, pod_cat, "key.pem", out,
			   sizeof out);
	tap(r == 0 && strstr(out, "PRIVATE KEY"),
	    "a non-root container process in the fsGroup reads the key (%s)",
	    r ? strerror(r) : "ok");
	r = stack_pod_exec(S, v.pod_uid, v.target_path, 0, 0, pod_cat, "jwt/api.jwt", out,
			   sizeof out);
	if (r == ENOENT) {
		snprintf(p, sizeof p, "api.jwt");
		r = stack_pod_exec(S, v.pod_uid, v.target_path, 0, 0, pod_cat, p, out, sizeof out);
	}
	tap(r == 0 && strncmp(out, "eyJ", 3) == 0,
	    "the JWT-SVID for the requested audience is "
	    "served (%s)",
	    r ? strerror(r) : "ok");
	r = unpublish(&v);
	tap(r == 0 && !is_mounted(v.target_path) && daemon_status(v.pod_uid) == -ENOENT,
	    "and it unpublishes cleanly (%s)", kubelet_code_name(r));
}

/* Secrets from nodePublishSecretRef and kubelet's service account tokens never reach the log. */
#define SECRET_VALUE "S3CR3T-value-that-must-never-be-logged"
#define TOKEN_VALUE "TOKEN-value-that-must-never-be-logged"

static void t_secrets(void)
{
	KubeletVolume v, w;
	char tokens[128];

	snprintf(tokens, sizeof tokens, "{\"vault\":{\"token\":\"%s\"}}", TOKEN_VALUE);
	new_pod(&v, "shop", "secretive");
	v.secret_key = "password";
	v.secret_value = SECRET_VALUE;
	kubelet_volume_set(&v, "csi.storage.k8s.io/serviceAccount.tokens", tokens);
	int r1 = publish(&v);
	w = v;
	kubelet_volume_set(&w, "svidfs.spiffe.io/bogus", "x"); /* a refused request too */
	int r2 = publish(&w);
	int r3 = unpublish(&v);
	char *log = stack_plugin_log(S);
	tap(r1 == 0 && r2 == GRPC_STATUS_INVALID_ARGUMENT && r3 == 0 && log &&
		!strstr(log, SECRET_VALUE) && !strstr(log, TOKEN_VALUE) && strstr(log, v.pod_uid),
	    "CSI secrets and service account tokens never appear in the plugin's log");
	free(log);
}

static void t_second_plugin(void)
{
	int r = stack_run_second_plugin(S);
	char *name = NULL, *version = NULL, *node = NULL;
	int q = kubelet_register_plugin(K, &name, &version, &node);
	tap(r == 1 && q == 0,
	    "a second svidfs-csi on the same socket exits 1 and the first keeps serving (%d, %s)",
	    r, kubelet_code_name(q));
	free(name);
	free(version);
	free(node);
}

typedef struct {
	KubeletVolume *v;
	const char *sock;
	int code;
	char msg[512];
} ConcArg;

static void *conc_publish(void *arg)
{
	ConcArg *a = arg;
	Kubelet *k = NULL;
	kubelet_new(a->sock, &k);
	a->code = kubelet_publish_only(k, a->v, a->msg, sizeof a->msg, 60000);
	kubelet_free(k);
	return NULL;
}

static void t_concurrent(void)
{
	KubeletVolume v;
	ConcArg a[2];
	pthread_t t[2];

	/* The development agent delays the new pod's first SVID (2.5 s, within the plugin's 3 s
	 * --publish-timeout): the second publish starts once the first has registered the pod,
	 * so it arrives while the first waits for the SVID. */
	int d = stack_set_first_svid_delay(S, 2500);
	new_pod(&v, "shop", "slow");
	for (int i = 0; i < 2; i++) {
		a[i] = (ConcArg){.v = &v, .sock = stack_csi_socket(S)};
		pthread_create(&t[i], NULL, conc_publish, &a[i]);
		for (int k = 0; i == 0 && k < 1000 && daemon_status(v.pod_uid) != 0; k++)
			usleep(10000); /* bounded: until the first publish registered the pod */
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	stack_set_first_svid_delay(S, 0);
	tap(d == 0 && a[0].code == 0, "the first of two concurrent publishes succeeds (%s %s)",
	    kubelet_code_name(a[0].code), a[0].msg);
	tap(a[1].code == GRPC_STATUS_ABORTED,
	    "the second concurrent publish for the same volume is ABORTED (%s %s)",
	    kubelet_code_name(a[1].code), a[1].msg);
	int r = unpublish(&v);
	tap(r == 0 && !is_mounted(v.target_path), "and it unpublishes cleanly (%s)",
	    kubelet_code_name(r));
}

typedef void (*Mutate)(KubeletVolume *v);
#define MUT(name, body)                                                                            \
	static void name(KubeletVolume *v)                                                         \
	{                                                                                          \
		body;                                                                              \
	}
MUT(m_no_volume_id, v->volume_id[0] = 0)
MUT(m_no_target, v->target_path[0] = 0)
MUT(m_no_capability, v->no_capability = true)
MUT(m_no_access_type, v->no_access_type = true)
MUT(m_block, v->block = true)
MUT(m_fs_type, v->fs_type = "ext4")
MUT(m_mount_flag, v->mount_flag = "noatime")
MUT(m_no_access_mode, v->no_access_mode = true)
MUT(m_reader_only,
    v->access_mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY)
MUT(m_not_readonly, v->readonly = false)
MUT(m_not_ephemeral, kubelet_volume_set(v, "csi.storage.k8s.io/ephemeral", "false"))
MUT(m_no_uid, kubelet_volume_set(v, "csi.storage.k8s.io/pod.uid", NULL))
MUT(m_no_namespace, kubelet_volume_set(v, "csi.storage.k8s.io/pod.namespace", NULL))
MUT(m_no_sa, kubelet_volume_set(v, "csi.storage.k8s.io/serviceAccount.name", NULL))
MUT(m_uid_mismatch,
    kubelet_volume_set(v, "csi.storage.k8s.io/pod.uid", "00000000-1111-2222-3333-444444444444"))
MUT(m_outside_root, snprintf(v->target_path, sizeof v->target_path,
			     "/tmp/pods/%s/volumes/kubernetes.io~csi/x/mount", v->pod_uid))
MUT(m_dotdot, snprintf(v->target_path, sizeof v->target_path,
		       "%s/pods/%s/volumes/kubernetes.io~csi/../kubernetes.io~csi/spiffe/mount",
		       stack_kubelet_root(S), v->pod_uid))
MUT(m_unknown_attr, kubelet_volume_set(v, "svidfs.spiffe.io/color", "blue"))
MUT(m_foreign_attr, kubelet_volume_set(v, "csi.spiffe.io/audience", "x"))
MUT(m_bad_layout, kubelet_volume_set(v, "svidfs.spiffe.io/layout", "pkcs12"))
MUT(m_bad_file_name, kubelet_volume_set(v, "svidfs.spiffe.io/svid_file_name", "../../etc/passwd"))
MUT(m_bad_gid, v->volume_mount_group = "wheel")

static void t_invalid(void)
{
	static const struct {
		const char *what;
		Mutate m;
	} cases[] = {
	    {"missing volume_id", m_no_volume_id},
	    {"missing target_path", m_no_target},
	    {"missing volume_capability", m_no_capability},
	    {"capability without access type", m_no_access_type},
	    {"block capability", m_block},
	    {"fs_type ext4", m_fs_type},
	    {"mount flags", m_mount_flag},
	    {"missing access_mode", m_no_access_mode},
	    {"SINGLE_NODE_READER_ONLY", m_reader_only},
	    {"readonly false", m_not_readonly},
	    {"not ephemeral", m_not_ephemeral},
	    {"missing pod uid", m_no_uid},
	    {"missing pod namespace", m_no_namespace},
	    {"missing service account", m_no_sa},
	    {"pod uid differs from target_path's", m_uid_mismatch},
	    {"target_path outside the kubelet root", m_outside_root},
	    {"target_path with ..", m_dotdot},
	    {"unknown svidfs attribute", m_unknown_attr},
	    {"attribute of another driver", m_foreign_attr},
	    {"unknown layout", m_bad_layout},
	    {"file name with a slash", m_bad_file_name},
	    {"non-numeric volume_mount_group", m_bad_gid},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		KubeletVolume v;
		new_pod(&v, "shop", "invalid");
		cases[i].m(&v);
		int r = publish(&v);
		tap(r == GRPC_STATUS_INVALID_ARGUMENT && msg[0] &&
			daemon_status(v.pod_uid) == -ENOENT,
		    "%s: INVALID_ARGUMENT, nothing registered (%s: %s)", cases[i].what,
		    kubelet_code_name(r), msg);
	}

	/* A symlink below the kubelet root that leads out of it. */
	KubeletVolume v;
	char evil[512], outside[512], podvol[512];
	new_pod(&v, "shop", "symlink");
	snprintf(outside, sizeof outside, "%s/outside", stack_dir(S));
	mkdir(outside, 0750);
	snprintf(podvol, sizeof podvol, "%s/pods/%s/volumes/kubernetes.io~csi/spiffe",
		 stack_kubelet_root(S), v.pod_uid);
	rmdir(podvol);
	snprintf(evil, sizeof evil, "%s", podvol);
	int sr = symlink(outside, evil);
	int r = publish(&v);
	char probe[600];
	snprintf(probe, sizeof probe, "%s/mount", outside);
	struct stat st;
	tap(sr == 0 && r == GRPC_STATUS_INVALID_ARGUMENT && stat(probe, &st) < 0,
	    "a symlink escape from the kubelet root: INVALID_ARGUMENT, nothing created outside "
	    "(%s: %s)",
	    kubelet_code_name(r), msg);

	r = kubelet_unpublish(K, "", A.target_path, msg, sizeof msg, 10000);
	tap(r == GRPC_STATUS_INVALID_ARGUMENT, "unpublish without volume_id: INVALID_ARGUMENT");
	r = kubelet_unpublish(K, A.volume_id, "", msg, sizeof msg, 10000);
	tap(r == GRPC_STATUS_INVALID_ARGUMENT, "unpublish without target_path: INVALID_ARGUMENT");
	r = kubelet_unpublish(K, A.volume_id, "/etc", msg, sizeof msg, 10000);
	tap(r == GRPC_STATUS_INVALID_ARGUMENT && is_mounted(A.target_path),
	    "unpublish outside the kubelet root: INVALID_ARGUMENT (%s)", msg);
}

/* Issue 12: requests that meant one thing on the wire and another to the plugin, and targets
 * that are not directories. */
static void t_hostile_requests(void)
{
	KubeletVolume v;
	char p[600];
	struct stat st;
	int r;

	new_pod(&v, "shop", "nul-target");
	snprintf(p, sizeof p, "%s", v.target_path);
	snprintf(v.target_path, sizeof v.target_path, "%s" KUBELET_NUL "/../../../../../../tmp", p);
	v.nul_marker = true;
	r = publish(&v);
	tap(r == GRPC_STATUS_INVALID_ARGUMENT && !is_mounted(p) &&
		daemon_status(v.pod_uid) == -ENOENT,
	    "a NUL inside target_path: INVALID_ARGUMENT, nothing mounted or registered (%s: %s)",
	    kubelet_code_name(r), msg);

	new_pod(&v, "shop", "nul-volume-id");
	strcat(v.volume_id, KUBELET_NUL "x");
	v.nul_marker = true;
	r = publish(&v);
	tap(r == GRPC_STATUS_INVALID_ARGUMENT && !is_mounted(v.target_path) &&
		daemon_status(v.pod_uid) == -ENOENT,
	    "a NUL inside volume_id: INVALID_ARGUMENT (%s: %s)", kubelet_code_name(r), msg);

	new_pod(&v, "shop", "nul-file-name");
	kubelet_volume_set(&v, "svidfs.spiffe.io/svid_file_name", "cert.pem" KUBELET_NUL "/../../x");
	v.nul_marker = true;
	r = publish(&v);
	tap(r == GRPC_STATUS_INVALID_ARGUMENT && !is_mounted(v.target_path) &&
		daemon_status(v.pod_uid) == -ENOENT,
	    "a NUL inside a file name attribute: INVALID_ARGUMENT (%s: %s)",
	    kubelet_code_name(r), msg);

	/* A symlinked target could redirect the bind mount: never followed. */
	new_pod(&v, "shop", "symlink-target");
	snprintf(p, sizeof p, "%s/pods/%s", stack_kubelet_root(S), v.pod_uid);
	int sr = symlink(p, v.target_path);
	r = publish(&v);
	tap(sr == 0 && r == GRPC_STATUS_INVALID_ARGUMENT && !is_mounted(p) &&
		!is_mounted(v.target_path) && daemon_status(v.pod_uid) == -ENOENT,
	    "a target that is a symlink: INVALID_ARGUMENT, nothing mounted (%s: %s)",
	    kubelet_code_name(r), msg);
	unlink(v.target_path);
	sr = symlink("/nonexistent-target", v.target_path);
	r = publish(&v);
	tap(sr == 0 && r == GRPC_STATUS_INVALID_ARGUMENT && daemon_status(v.pod_uid) == -ENOENT,
	    "a target that is a dangling symlink: INVALID_ARGUMENT (%s: %s)",
	    kubelet_code_name(r), msg);
	unlink(v.target_path);

	new_pod(&v, "shop", "file-target");
	int fd = open(v.target_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	r = publish(&v);
	tap(fd >= 0 && r == GRPC_STATUS_INVALID_ARGUMENT && !is_mounted(v.target_path) &&
		stat(v.target_path, &st) == 0 && S_ISREG(st.st_mode) &&
		daemon_status(v.pod_uid) == -ENOENT,
	    "a target that is a regular file: INVALID_ARGUMENT, the file left alone (%s: %s)",
	    kubelet_code_name(r), msg);
	unlink(v.target_path);
}

static void t_stats(void)
{
	bool ab = true;
	char cond[256] = "";
	int r = kubelet_volume_stats(K, A.volume_id, A.target_path, &ab, cond, sizeof cond, msg,
				     sizeof msg);
	tap(r == 0 && !ab, "NodeGetVolumeStats: a published volume is normal (%s)", cond);
	r = kubelet_volume_stats(K, B.volume_id, B.target_path, &ab, cond, sizeof cond, msg,
				 sizeof msg);
	tap(r == 0 && ab, "NodeGetVolumeStats: an unmounted volume is abnormal (%s)", cond);
	/* CSI: NOT_FOUND when no volume with this id is at volume_path (csi-sanity's "should fail
	 * when volume is not found" sends a relative path). */
	r = kubelet_volume_stats(K, A.volume_id, "some/path", &ab, cond, sizeof cond, msg,
				 sizeof msg);
	tap(r == GRPC_STATUS_NOT_FOUND, "NodeGetVolumeStats: a path that is no volume target: NOT_FOUND (%s)",
	    msg);
}

static void t_unpublish(void)
{
	int r = unpublish(&A);
	struct stat st;
	char p[512];
	tap(r == 0, "unpublish pod A (%s %s)", kubelet_code_name(r), msg);
	tap(!is_mounted(A.target_path), "no mount left at the target");
	tap(stat(A.target_path, &st) < 0 && errno == ENOENT, "the target directory is removed");
	r = daemon_status(A.pod_uid);
	tap(r == -ENOENT, "the daemon dropped pod A's registration (status %d)", r);
	snprintf(p, sizeof p, "%s/pods/%s", stack_svidfs_mount(S), A.pod_uid);
	tap(stat(p, &st) < 0, "pod A's directory is gone from the svidfs mount");
	r = unpublish(&A);
	tap(r == 0, "a repeated unpublish is OK (%s %s)", kubelet_code_name(r), msg);
	r = unpublish(&B);
	tap(r == 0, "unpublish of a never-published volume is OK (%s %s)", kubelet_code_name(r),
	    msg);
}

static void t_restart(void)
{
	KubeletVolume v;
	new_pod(&v, "shop", "survivor");
	int r = publish(&v);
	tap(r == 0, "publish before a plugin crash (%s %s)", kubelet_code_name(r), msg);
	r = stack_restart_plugin(S, true);
	kubelet_free(K);
	kubelet_new(stack_csi_socket(S), &K);
	tap(r == 0, "the plugin restarts on the same socket after SIGKILL");
	tap(is_mounted(v.target_path), "the mount survived the plugin crash");
	r = publish(&v);
	tap(r == 0, "the restarted plugin accepts the repeated publish (%s %s)",
	    kubelet_code_name(r), msg);
	r = unpublish(&v);
	tap(r == 0 && !is_mounted(v.target_path) && daemon_status(v.pod_uid) == -ENOENT,
	    "the restarted plugin unpublishes the earlier pod: no mount, no registration (%s %s)",
	    kubelet_code_name(r), msg);
}

#define MANY 200

static void t_many(void)
{
	static KubeletVolume v[MANY];
	int ok_pub = 0, ok_unpub = 0;
	MountInfo *mi = NULL;

	for (int i = 0; i < MANY; i++) {
		char name[32];
		snprintf(name, sizeof name, "pod-%d", i);
		new_pod(&v[i], "bulk", name);
		ok_pub += publish(&v[i]) == 0;
	}
	size_t mounted = 0;
	if (mountinfo_read(NULL, &mi) == 0)
		mounted = mountinfo_count_under(mi, stack_kubelet_root(S));
	mi = mountinfo_free(mi);
	tap(ok_pub == MANY && mounted == MANY, "%d pods published, %zu mounts", ok_pub, mounted);
	for (int i = 0; i < MANY; i++)
		ok_unpub += unpublish(&v[i]) == 0;
	if (mountinfo_read(NULL, &mi) == 0)
		mounted = mountinfo_count_under(mi, stack_kubelet_root(S));
	mi = mountinfo_free(mi);
	tap(ok_unpub == MANY, "%d pods unpublished", ok_unpub);
	tap(mounted == 0, "no mount left under the kubelet root (/proc/self/mountinfo: %zu)",
	    mounted);
	int left = 0;
	for (int i = 0; i < MANY; i++)
		left += daemon_status(v[i].pod_uid) != -ENOENT;
	tap(left == 0, "no registration left in the daemon (%d)", left);
	char p[512];
	snprintf(p, sizeof p, "%s/pods", stack_svidfs_mount(S));
	DIR *d = opendir(p);
	int entries = 0;
	for (struct dirent *de; d && (de = readdir(d));)
		entries += de->d_name[0] != '.';
	if (d)
		closedir(d);
	tap(d && entries == 0, "the svidfs pods/ directory is empty (%d)", entries);
}

static void t_publish_timeout(void)
{
	/* The development agent mints the new pod's first SVID only after 10 s; the plugin waits
	 * --publish-timeout (3 s here). */
	KubeletVolume v;
	int d = stack_set_first_svid_delay(S, 10000);
	new_pod(&v, "shop", "cold-cache");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int r = publish(&v);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	stack_set_first_svid_delay(S, 0);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	tap(d == 0 && r == GRPC_STATUS_UNAVAILABLE && s > 2.5 && s < 9,
	    "no SVID within --publish-timeout: UNAVAILABLE after %.1f s (%s)", s, msg);
	tap(!is_mounted(v.target_path) && daemon_status(v.pod_uid) == -ENOENT,
	    "the timed-out publish rolled back: no mount, no registration");
}

static void t_daemon_down(void)
{
	KubeletVolume v;
	new_pod(&v, "shop", "orphaned");
	int r = publish(&v);
	int k = stack_kill_daemon(S);
	bool ab = false, ready = true;
	char cond[256] = "";
	int s = kubelet_volume_stats(K, v.volume_id, v.target_path, &ab, cond, sizeof cond, msg,
				     sizeof msg);
	tap(r == 0 && k == 0 && s == 0 && ab,
	    "NodeGetVolumeStats is abnormal when the daemon is down (%s)", cond);
	r = kubelet_probe(K, &ready);
	tap(r == 0 && !ready, "Probe: not ready when the daemon is down");
	KubeletVolume w;
	new_pod(&w, "shop", "late");
	r = publish(&w);
	tap(r == GRPC_STATUS_UNAVAILABLE && !is_mounted(w.target_path),
	    "publish while the daemon is down is UNAVAILABLE (%s)", msg);
}

int main(void)
{
	grpc_init();
	if (getuid() != 0 || access("/dev/fuse", R_OK | W_OK) < 0) {
		printf("1..0 # SKIP needs root and /dev/fuse\n");
		return 77;
	}
	if (stack_enter_private_mount_ns() < 0) {
		printf("Bail out! cannot enter a private mount namespace\n");
		return 1;
	}
	StackOptions o = {.first_svid_delay_ms = 0, .publish_timeout_s = 3};
	if (getenv("CSI_TEST_VERBOSE"))
		o.verbose = true;
	if (stack_start(&o, &S) < 0) {
		printf("Bail out! cannot start the svidfs stack\n");
		return 1;
	}
	kubelet_new(stack_csi_socket(S), &K);

	t_registration();
	t_publish_and_read();
	t_rotation();
	t_isolation();
	t_idempotency();
	t_concurrent();
	t_attributes();
	t_secrets();
	t_second_plugin();
	t_invalid();
	t_hostile_requests();
	t_stats();
	t_unpublish();
	t_restart();
	t_publish_timeout();
	t_many();
	t_daemon_down();

	kubelet_free(K);
	tap(stack_stop_plugin_cleanly(S),
	    "svidfs-csi exits 0 on SIGTERM with no sanitizer report in its log");
	stack_free(S);
	printf("1..%d\n", n_test);
	grpc_shutdown();
	return n_fail ? 1 : 0;
}
