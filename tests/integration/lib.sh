# SPDX-License-Identifier: Apache-2.0
# Shared helpers of the daemon's integration tests (sourced). Each test gets its own temporary
# directory, development agent(s) and svidfs mount; the EXIT trap kills what it started (by pid)
# and unmounts everything. Output is TAP: one line per real check, the plan at the end.
set -u

: "${BUILD:?BUILD must point at the meson build directory}"
SVIDFS=$BUILD/fs/svidfs
SVIDFSCTL=$BUILD/fs/svidfsctl
DEVAGENT=$BUILD/tests/devagent/svidfs-devagent
CHECK=$BUILD/tests/integration/svidfs-check

T=$(mktemp -d /tmp/svidfs-test.XXXXXX)
MNT=$T/mnt
TAP_N=0
TAP_FAILED=0
PIDS=""
BINDS=""
CGROUPS=""
DAEMON_PID=""

ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $*"; }
not_ok() { TAP_N=$((TAP_N + 1)); TAP_FAILED=$((TAP_FAILED + 1)); echo "not ok $TAP_N - $*"; }
diag() { sed 's/^/# /'; }

# check "description" command...: ok when the command succeeds; its output goes to the log.
check() {
	local desc=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then
		ok "$desc"
	else
		not_ok "$desc"
		tail -20 "$T/check.out" | diag
	fi
}

# expect_eq "description" expected actual
expect_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; echo "expected [$2] got [$3]" | diag; fi
}

cleanup() {
	local p b c
	for b in $BINDS; do umount -l "$b" 2>/dev/null; done
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	# Unconditionally: mountpoint(1) cannot stat a crashed daemon's mount (ENOTCONN).
	umount -l "$MNT" 2>/dev/null
	for c in $CGROUPS; do rmdir "$c" 2>/dev/null; done
	if [ "${KEEP_TMP:-}" = "" ]; then rm -rf "$T"; fi
}
trap cleanup EXIT

finish() {
	echo "1..$TAP_N"
	if [ "$TAP_FAILED" -gt 0 ]; then
		echo "# daemon log tail:"
		tail -40 "$T/svidfs.log" 2>/dev/null | diag
	fi
	[ "$TAP_FAILED" -eq 0 ]
}

uuid() { cat /proc/sys/kernel/random/uuid; }

# start_agent NAME [devagent options...]: admin socket $T/NAME.admin, control $T/NAME.ctl.
start_agent() {
	local name=$1
	shift
	"$DEVAGENT" -a "$T/$name.admin" -s "$T/$name.wl" -C "$T/$name.ctl" "$@" \
		>>"$T/$name.log" 2>&1 &
	PIDS="$PIDS $!"
	eval "AGENT_PID_$name=$!"
	for _ in $(seq 100); do
		agentctl "$name" ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "agent $name did not start" | diag
	cat "$T/$name.log" | diag
	return 1
}

agentctl() {
	local name=$1
	shift
	"$DEVAGENT" ctl --control "$T/$name.ctl" "$@"
}

stop_agent() {
	local pid
	eval "pid=\$AGENT_PID_$1"
	kill "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
}

# start_daemon [svidfs options...]: mounts $MNT, waits until the mount answers.
start_daemon() {
	mkdir -p "$MNT"
	# Sanitizer lane: a small free-quarantine, so RSS checks measure the daemon, not ASan.
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1" "$SVIDFS" -m "$MNT" --state-dir "$T/state" --control-socket "$T/control.sock" \
		--identities-dir "$T/identities.d" "$@" >>"$T/svidfs.log" 2>&1 &
	DAEMON_PID=$!
	PIDS="$PIDS $DAEMON_PID"
	for _ in $(seq 100); do
		if [ "$(stat -c %i "$MNT" 2>/dev/null)" = 1 ] && ctl ping >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "svidfs did not start" | diag
	tail -20 "$T/svidfs.log" | diag
	return 1
}

# stop_daemon: SIGTERM, then the exit status in DAEMON_EXIT (non-zero also for sanitizer leaks).
stop_daemon() {
	DAEMON_EXIT=timeout
	kill "$DAEMON_PID" 2>/dev/null
	for _ in $(seq 100); do
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			wait "$DAEMON_PID" 2>/dev/null
			DAEMON_EXIT=$?
			return 0
		fi
		sleep 0.1
	done
	kill -9 "$DAEMON_PID" 2>/dev/null
	return 1
}

ctl() { "$SVIDFSCTL" -s "$T/control.sock" "$@"; }
not() { ! "$@"; }

# register_pod UID [keys...]: namespace/sa/pod name defaults, then waits for the first SVID.
register_pod() {
	local uid=$1
	shift
	ctl register pod_uid="$uid" namespace=ns1 service_account=sa1 pod_name=pod-1 \
		ref="vol-$uid" "$@" >/dev/null && ctl wait "$uid" 10000 >/dev/null
}

# wait_for COMMAND...: retries for up to 10 s.
wait_for() {
	for _ in $(seq 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

serial_of() { "$CHECK" serial "$1"; }

# The serial the agent's status reports for a workload (svidfsctl status).
status_serial() { ctl status "$1" | awk '$1 == "serial" { print $2 }'; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Tests that put processes into pod cgroups. find_cgroup_mounts sets CG2 (the cgroup2 mount;
# empty when none) and CG1 (a cgroup v1 hierarchy with the pids controller; empty when none).
find_cgroup_mounts() {
	CG2=$(findmnt -n -t cgroup2 -o TARGET | head -1)
	CG1=$(findmnt -n -t cgroup -o TARGET,OPTIONS | awk '$2 ~ /(^|,)pids(,|$)/ { print $1; exit }')
}

# in_cgroup CGROUP SCRIPT: runs SCRIPT in a new mount namespace as a process of CGROUP.
in_cgroup() {
	unshare -m --propagation private sh -c "echo \$\$ > '$1/cgroup.procs' && $2"
}

# start_node_agent: agent "a" serving every pod (--auto-k8s), the bare-node identity worker-1
# ($T/identities.d/worker.conf, key 0400) and the daemon's own self/ (unix:uid:0).
start_node_agent() {
	mkdir -p "$T/identities.d"
	cat >"$T/identities.d/worker.conf" <<EOF
# a bare-node identity
name = worker-1
selector = node:name:worker-1
key_mode = 0400
EOF
	start_agent a --auto-k8s -e "spiffe://example.org/node/worker-1 selectors=node:name:worker-1" \
		-e "spiffe://example.org/svidfs selectors=unix:uid:0"
}

# pod_cgroup UID: creates the cgroup kubelet's systemd driver gives a burstable pod (cgroup v2,
# below /svidfs-test.<pid> so the daemon runs with --cgroup-root "$CG_ROOT") and prints its path.
CG_ROOT=/svidfs-test.$$
pod_cgroup() {
	local u
	[ -n "${CG2:-}" ] || find_cgroup_mounts
	u=$(echo "$1" | tr - _)
	local base=$CG2$CG_ROOT/kubepods.slice/kubepods-burstable.slice
	local cg=$base/kubepods-burstable-pod$u.slice
	mkdir -p "$cg" || return 1
	CGROUPS="$cg $CGROUPS $base $CG2$CG_ROOT/kubepods.slice $CG2$CG_ROOT"
	echo "$cg"
}

# wait_long COMMAND...: retries for up to 120 s (work that scales with the machine's load).
wait_long() {
	for _ in $(seq 1200); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
