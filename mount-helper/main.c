// SPDX-License-Identifier: Apache-2.0
/* svidfs-csi: the CSI node plugin. Parses flags, sets up logging, then serves CSI on a unix
 * socket until SIGTERM/SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cleanup.h"
#include "csi.h"
#include "log.h"
#include "macro.h"
#include "publish.h"
#include "secret.h"

#define DEFAULT_DRIVER_NAME "csi.svidfs.spiffe.io"
#define DEFAULT_ENDPOINT "unix:///var/lib/kubelet/plugins/csi.svidfs.spiffe.io/csi.sock"
#define DEFAULT_KUBELET_ROOT "/var/lib/kubelet"
#define DEFAULT_PUBLISH_TIMEOUT_S 30
#define DEFAULT_MAX_WORKERS 256

static void help(void)
{
	printf("Usage: svidfs-csi [OPTIONS]\n"
	       "CSI node plugin: bind-mounts each pod's svidfs directory into its volume.\n\n"
	       "  --endpoint URI          CSI socket, unix:///path (default %s)\n"
	       "  --driver-name NAME      CSI driver name (default %s)\n"
	       "  --node-id ID            node id for NodeGetInfo (default $NODE_NAME)\n"
	       "  --kubelet-root DIR      kubelet's root directory (default %s)\n"
	       "  --svidfs-mount DIR      the svidfs FUSE mount (default %s)\n"
	       "  --control-socket PATH   the daemon's control socket (default %s)\n"
	       "  --publish-timeout SEC   wait for a pod's first SVID (default %d)\n"
	       "  --max-workers N         concurrent blocking RPCs (default %d)\n"
	       "  --socket-mode OCTAL     mode of the CSI socket (default 0660)\n"
	       "  --log-level LEVEL       err, warning, notice, info, debug (default info)\n"
	       "  -h, --help              show this help\n"
	       "  --version               show the version\n",
	       DEFAULT_ENDPOINT, DEFAULT_DRIVER_NAME, DEFAULT_KUBELET_ROOT,
	       SVIDFS_DEFAULT_MOUNTPOINT, SVIDFS_DEFAULT_CONTROL_SOCKET, DEFAULT_PUBLISH_TIMEOUT_S,
	       DEFAULT_MAX_WORKERS);
}

/* Accepts unix:///abs/path, unix:/abs/path and a bare /abs/path; returns the path. */
static int endpoint_path(const char *ep, const char **ret)
{
	const char *p = ep;

	if (strncmp(p, "unix://", 7) == 0)
		p += 7;
	else if (strncmp(p, "unix:", 5) == 0)
		p += 5;
	if (p[0] != '/')
		return -EINVAL;
	if (strlen(p) > 107)
		return -ENAMETOOLONG;
	*ret = p;
	return 0;
}

static int parse_uint(const char *s, unsigned long max, int base, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || !*s || *end || v > max || s[0] == '-')
		return -EINVAL;
	*ret = v;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		ARG_ENDPOINT = 0x100,
		ARG_DRIVER_NAME,
		ARG_NODE_ID,
		ARG_KUBELET_ROOT,
		ARG_SVIDFS_MOUNT,
		ARG_CONTROL_SOCKET,
		ARG_PUBLISH_TIMEOUT,
		ARG_MAX_WORKERS,
		ARG_SOCKET_MODE,
		ARG_LOG_LEVEL,
		ARG_VERSION,
	};
	static const struct option opts[] = {
	    {"endpoint", required_argument, NULL, ARG_ENDPOINT},
	    {"driver-name", required_argument, NULL, ARG_DRIVER_NAME},
	    {"node-id", required_argument, NULL, ARG_NODE_ID},
	    {"kubelet-root", required_argument, NULL, ARG_KUBELET_ROOT},
	    {"svidfs-mount", required_argument, NULL, ARG_SVIDFS_MOUNT},
	    {"control-socket", required_argument, NULL, ARG_CONTROL_SOCKET},
	    {"publish-timeout", required_argument, NULL, ARG_PUBLISH_TIMEOUT},
	    {"max-workers", required_argument, NULL, ARG_MAX_WORKERS},
	    {"socket-mode", required_argument, NULL, ARG_SOCKET_MODE},
	    {"log-level", required_argument, NULL, ARG_LOG_LEVEL},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, ARG_VERSION},
	    {},
	};
	const char *endpoint = DEFAULT_ENDPOINT, *driver = DEFAULT_DRIVER_NAME;
	const char *node_id = getenv("NODE_NAME"), *kubelet_root = DEFAULT_KUBELET_ROOT;
	const char *svidfs_mount = SVIDFS_DEFAULT_MOUNTPOINT;
	const char *control = SVIDFS_DEFAULT_CONTROL_SOCKET, *sock;
	unsigned long timeout_s = DEFAULT_PUBLISH_TIMEOUT_S, workers = DEFAULT_MAX_WORKERS;
	unsigned long mode = 0660;
	int c, r;

	log_set_ident("svidfs-csi");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (c) {
		case ARG_ENDPOINT:
			endpoint = optarg;
			break;
		case ARG_DRIVER_NAME:
			driver = optarg;
			break;
		case ARG_NODE_ID:
			node_id = optarg;
			break;
		case ARG_KUBELET_ROOT:
			kubelet_root = optarg;
			break;
		case ARG_SVIDFS_MOUNT:
			svidfs_mount = optarg;
			break;
		case ARG_CONTROL_SOCKET:
			control = optarg;
			break;
		case ARG_PUBLISH_TIMEOUT:
			if (parse_uint(optarg, 3600, 10, &timeout_s) < 0 || timeout_s == 0) {
				log_error("--publish-timeout: \"%s\" is not 1-3600 seconds",
					  optarg);
				return 2;
			}
			break;
		case ARG_MAX_WORKERS:
			if (parse_uint(optarg, 4096, 10, &workers) < 0 || workers == 0) {
				log_error("--max-workers: \"%s\" is not 1-4096", optarg);
				return 2;
			}
			break;
		case ARG_SOCKET_MODE:
			if (parse_uint(optarg, 0777, 8, &mode) < 0) {
				log_error("--socket-mode: \"%s\" is not an octal mode", optarg);
				return 2;
			}
			break;
		case ARG_LOG_LEVEL:
			r = log_parse_level(optarg);
			if (r < 0) {
				log_error("--log-level: unknown level \"%s\"", optarg);
				return 2;
			}
			log_set_max_level(r);
			break;
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("svidfs-csi %s\n", SVIDFS_VERSION);
			return 0;
		default:
			return 2;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument \"%s\" (see --help)", argv[optind]);
		return 2;
	}
	if (!node_id || !*node_id) {
		log_error("no node id: pass --node-id or set NODE_NAME");
		return 2;
	}
	if (strlen(node_id) > 256) {
		log_error("node id is longer than 256 bytes (CSI limit)");
		return 2;
	}
	if (strlen(driver) > 63 || !*driver) {
		log_error("--driver-name must be 1-63 characters (CSI limit)");
		return 2;
	}
	if (kubelet_root[0] != '/' || svidfs_mount[0] != '/' || control[0] != '/') {
		log_error("--kubelet-root, --svidfs-mount and --control-socket must be absolute");
		return 2;
	}
	r = endpoint_path(endpoint, &sock);
	if (r < 0) {
		log_error("--endpoint \"%s\": expected unix:///absolute/path (at most 107 bytes)",
			  endpoint);
		return 2;
	}

	/* The plugin never holds identity material, but CSI secrets and kubelet's service
	 * account tokens pass through its memory: no core dumps. */
	r = secret_init(64 * 1024);
	if (r < 0)
		log_warning_errno(r, "cannot lock memory for secrets; continuing");
	prctl(PR_SET_DUMPABLE, 0);

	/* Signals are taken synchronously by this thread; block them before any thread starts. */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);

	grpc_init();
	Publisher *pub = NULL;
	CsiServer *srv = NULL;
	PublisherConfig pc = {
	    .kubelet_root = kubelet_root,
	    .svidfs_mount = svidfs_mount,
	    .control_socket = control,
	    .publish_timeout_ms = (int)timeout_s * 1000,
	};
	r = publisher_new(&pc, &pub);
	if (r < 0) {
		log_error_errno(r, "cannot set up");
		goto out;
	}
	CsiServerConfig sc = {
	    .socket_path = sock,
	    .driver_name = driver,
	    .node_id = node_id,
	    .socket_mode = (unsigned)mode,
	    .max_workers = (unsigned)workers,
	    .publisher = pub,
	};
	r = csi_server_new(&sc, &srv);
	if (r < 0)
		goto out;
	r = csi_server_start(srv);
	if (r < 0)
		goto out;
	log_info("svidfs-csi %s serving %s on %s (node %s, kubelet root %s, svidfs %s, control %s)",
		 SVIDFS_VERSION, driver, sock, node_id, kubelet_root, svidfs_mount, control);

	for (;;) {
		int sig;
		if (sigwait(&ss, &sig) != 0)
			continue;
		if (sig == SIGHUP)
			continue; /* nothing to reload */
		log_info("signal %s: shutting down", strsignal(sig));
		break;
	}
	r = 0;
out:
	csi_server_free(srv);
	publisher_free(pub);
	grpc_shutdown();
	return r < 0 ? 1 : 0;
}
