#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The daemon benchmark (root): open+read+close and stat of a pod's credential file on tmpfs vs
# svidfs through a read-only bind of the pod directory (the pod's view) vs svidfs from the mount
# root (the host's view), one and two threads; rotation latency; daemon RSS with 1,000 and
# 10,000 registered workloads. Usage: bench/fs-bench.sh [BUILD_DIR] [ITERATIONS]
set -eu
BUILD=$(realpath "${1:-build}")
N=${2:-200000}
SVIDFS=$BUILD/fs/svidfs
CTL=$BUILD/fs/svidfsctl
DEVAGENT=$BUILD/tests/devagent/svidfs-devagent
CHECK=$BUILD/tests/integration/svidfs-check
READ=$BUILD/bench/fs-read
T=$(mktemp -d /tmp/svidfs-bench.XXXXXX)
PIDS=""
cleanup() {
	umount -l "$T/bind" 2>/dev/null || true
	umount -l "$T/tmpfs" 2>/dev/null || true
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do # until they exited (the daemon unmounts), at most 5 s each
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	mountpoint -q "$T/mnt" && umount -l "$T/mnt"
	rm -rf "$T"
}
trap cleanup EXIT
ctl() { "$CTL" -s "$T/control.sock" "$@"; }

"$DEVAGENT" -a "$T/a.admin" -C "$T/a.ctl" --auto-k8s >"$T/agent.log" 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do "$DEVAGENT" ctl --control "$T/a.ctl" ping >/dev/null 2>&1 && break; sleep 0.1; done
mkdir -p "$T/mnt"
"$SVIDFS" -m "$T/mnt" --state-dir "$T/state" --control-socket "$T/control.sock" \
	--identities-dir "$T/none" -a "a=unix://$T/a.admin" -l warning >"$T/svidfs.log" 2>&1 &
DAEMON=$!
PIDS="$PIDS $DAEMON"
for _ in $(seq 100); do ctl ping >/dev/null 2>&1 && [ "$(stat -c %i "$T/mnt")" = 1 ] && break; sleep 0.1; done

UID1=$(cat /proc/sys/kernel/random/uuid)
ctl register pod_uid="$UID1" namespace=bench service_account=web ref=bench >/dev/null
ctl wait "$UID1" 10000 >/dev/null
F=credential-bundle.private-key.pem
mkdir -p "$T/tmpfs" "$T/bind"
mount -t tmpfs tmpfs "$T/tmpfs"
cp "$T/mnt/pods/$UID1/$F" "$T/tmpfs/$F"
mount --bind "$T/mnt/pods/$UID1" "$T/bind"
mount -o remount,bind,ro,nosuid,nodev,noexec "$T/bind"

echo "## read path ($N iterations per setup, best of two interleaved passes)"
echo "file: $F, $(stat -c %s "$T/tmpfs/$F") bytes; $(nproc) CPUs; kernel $(uname -r)"
"$READ" -n "$N" tmpfs="$T/tmpfs/$F" svidfs-bind="$T/bind/$F" svidfs-root="$T/mnt/pods/$UID1/$F"

echo
echo "## rotation latency (1,000 rotations, no other reader)"
"$CHECK" churn "$T/bind/$F" 1000 -- "ctl:$T/a.ctl" | grep -v '^rotations'
echo "(latency: from the rotate request to the agent, which mints and sends, to the next open"
echo " returning the new SVID; sent_to_open: from the agent's reply, sent after the push)"

echo
echo "## daemon memory"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON/status"; }
echo "1 workload: $(rss) kB RSS"
# One connection, many requests (the protocol allows it): python keeps it simple and fast.
register_over_socket() {
	python3 - "$T/control.sock" "$1" "$2" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rwb')
for i in range(int(sys.argv[2]), int(sys.argv[3]) + 1):
    f.write(('op=register\npod_uid=%08d-0000-4000-8000-%012d\nnamespace=bench\n'
             'service_account=sa%d\nref=b\n\n' % (i, i, i)).encode()); f.flush()
    while f.readline().strip(): pass
EOF
}
wait_ready() {
	local want=$1
	for _ in $(seq 600); do
		[ "$(ctl list | awk 'NR > 1 && $2 > 0' | wc -l)" -ge "$want" ] && return 0
		sleep 0.5
	done
	echo "only $(ctl list | awk 'NR > 1 && $2 > 0' | wc -l) of $want workloads got SVIDs"
}
for target in 1000 10000; do
	have=$(ctl list | awk 'NR > 1' | wc -l)
	t0=$(date +%s%N)
	register_over_socket "$have" $((target - 1))
	t1=$(date +%s%N)
	wait_ready "$target"
	t2=$(date +%s%N)
	# Read every workload's key once from the host (inodes and rendered bytes in memory).
	nfiles=$(find "$T/mnt/pods" -name "$F" | wc -l)
	find "$T/mnt/pods" -name "$F" -exec cat {} + >/dev/null
	echo "$target workloads: $(rss) kB RSS after reading every key file once;" \
		"registered in $(((t1 - t0) / 1000000)) ms, all with SVIDs after $(((t2 - t0) / 1000000)) ms;" \
		"$nfiles key files read; $(ctl info | awk '$1 == "inodes" { print $2 }') live inodes;" \
		"secure heap $(ctl info | awk '$1 == "secure_heap_used" { print $2 }') bytes used"
done
