#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs the svidfs and svidfs-csi containers of the rendered DaemonSet in an unpacked image root
# as Kubernetes would (chroot in a private mount namespace; the root read-only, as
# readOnlyRootFilesystem makes it; the hostPath volumes as writable tmpfs mounts) and checks that
# the daemon's liveness probe command passes and the CSI socket listens.
# Usage: ds-smoke.sh ROOT DAEMONSET.yaml LOGDIR   (run by image.sh; needs kubectl)
set -u
if [ -z "${SVIDFS_TEST_IN_NS:-}" ]; then
	SVIDFS_TEST_IN_NS=1 exec unshare -m --propagation private "$0" "$@"
fi
root=$1
ds=$2
log=$3
KUBECTL=${KUBECTL:-kubectl}
field() { # a field of the DaemonSet, via kubectl's offline jsonpath
	"$KUBECTL" set env --local -f "$ds" -o jsonpath="$1" SVIDFS_TEST=1
}
daemon_cmd=$(field '{.spec.template.spec.containers[?(@.name=="svidfs")].command[*]}')
probe_cmd=$(field '{.spec.template.spec.containers[?(@.name=="svidfs")].livenessProbe.exec.command[*]}')
csi_cmd=$(field '{.spec.template.spec.containers[?(@.name=="svidfs-csi")].command[*]}')
csi_sock=$(echo "$csi_cmd" | sed -n 's|.*--endpoint=unix://\([^ ]*\).*|\1|p')
echo "daemon: $daemon_cmd"
echo "probe:  $probe_cmd"
echo "csi:    $csi_cmd"
[ -n "$daemon_cmd" ] && [ -n "$probe_cmd" ] && [ -n "$csi_cmd" ] && [ -n "$csi_sock" ] || exit 1

# Mountpoints for the volumes exist in the image (the runtime would create them), then the root
# turns read-only and each volume gets a writable tmpfs.
mkdir -p "$root/var/lib/svidfs" "$root/var/lib/kubelet" "$root/run" || exit 1
mount --bind "$root" "$root" && mount -o remount,bind,ro "$root" || exit 1
for v in /run /var/lib/svidfs /var/lib/kubelet; do
	mount -t tmpfs -o mode=0755 volume "$root$v" || exit 1
done
mount --rbind /dev "$root/dev" && mount -t proc proc "$root/proc" || exit 1
mkdir -p "$root/run/svidfs" "$root/run/svidfs-control" "$root/run/spire/admin-sockets" \
	"$root/var/lib/kubelet/pods" "$root/var/lib/kubelet/plugins/csi.svidfs.spiffe.io"
touch "$root/ro-probe" 2>/dev/null && { echo "the image root is not read-only"; exit 1; }
# shellcheck disable=SC2086 # the commands are word lists without spaces inside words
chroot "$root" $daemon_cmd >"$log/daemon.log" 2>&1 &
d=$!
# shellcheck disable=SC2086
chroot "$root" env NODE_NAME=node-1 $csi_cmd >"$log/csi.log" 2>&1 &
c=$!
rc=1
for _ in $(seq 100); do
	# shellcheck disable=SC2086
	if chroot "$root" $probe_cmd >"$log/probe.log" 2>&1 && [ -S "$root$csi_sock" ]; then
		rc=0
		break
	fi
	sleep 0.1
done
kill -TERM "$c" "$d" 2>/dev/null
wait "$c" "$d"
umount -l "$root/run/svidfs" 2>/dev/null
umount "$root/proc"
umount -l "$root/dev"
for v in /var/lib/kubelet /var/lib/svidfs /run; do umount -l "$root$v"; done
umount -l "$root"
tail -n 5 "$log/daemon.log" "$log/csi.log" "$log/probe.log"
exit $rc
