#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The daemon under a real sd_notify socket (a datagram socket this test owns, as systemd's):
# READY=1 only once the mount answers, a STATUS= line, WATCHDOG=1 at half of WATCHDOG_USEC,
# and STOPPING=1 plus an unmount on SIGTERM. Runs in a private mount namespace so no mount can
# outlive it.
# Usage: notify.sh SVIDFS NOTIFY-LISTEN   (svidfsctl is taken from next to SVIDFS)
set -u
if [ -z "${SVIDFS_TEST_IN_NS:-}" ]; then
	SVIDFS_TEST_IN_NS=1 exec unshare -m --propagation private "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
svidfs=$(realpath "$1")
listen=$(realpath "$2")
tmp=$(mktemp -d /tmp/svidfs-test.XXXXXX)
dpid=""
lpid=""
cleanup() {
	{
		[ -n "$dpid" ] && kill -KILL "$dpid" && wait "$dpid"
		[ -n "$lpid" ] && kill -KILL "$lpid" && wait "$lpid"
	} 2>/dev/null
	umount -l "$tmp/mnt" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/mnt" "$tmp/state" "$tmp/ctl"
: >"$tmp/svidfs.conf"

# wait_for PATTERN SECONDS: polls the notify log.
wait_for() {
	for _ in $(seq $(($2 * 20))); do
		grep -q -- "$1" "$tmp/notify.log" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

"$listen" --timeout 60 --check-mount "$tmp/mnt" "$tmp/notify.sock" >"$tmp/notify.log" 2>&1 &
lpid=$!
wait_for LISTENING=1 10
# WATCHDOG_USEC as systemd sets it for WatchdogSec=1s; the daemon should ping every 0.5 s.
NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=1000000 "$svidfs" --config="$tmp/svidfs.conf" \
	--mountpoint="$tmp/mnt" --state-dir="$tmp/state" --control-socket="$tmp/ctl/control.sock" \
	--agent="default=unix://$tmp/no-agent.sock" --identities-dir="$SRCROOT/packaging/examples/identities.d" \
	>"$tmp/daemon.log" 2>&1 &
dpid=$!

wait_for READY=1 20
tap_result $? "READY=1 arrives" "$tmp/daemon.log"
grep -q " $dpid READY=1" "$tmp/notify.log"
tap_result $? "READY=1 comes from the daemon's main pid ($dpid)" "$tmp/notify.log"
grep -q "CHECK-MOUNT=fuse" "$tmp/notify.log"
tap_result $? "the FUSE mount answers when READY=1 arrives" "$tmp/notify.log"
grep -q " STATUS=." "$tmp/notify.log"
tap_result $? "a STATUS= line is sent" "$tmp/notify.log"
# Under systemd the default keeper is the fd store (docs/takeover.md).
wait_for "FDNAME=svidfs-fuse" 5 && grep -q "FDSTORE=1" "$tmp/notify.log" &&
	grep -q "FDNAME=svidfs-facts" "$tmp/notify.log"
tap_result $? "the FUSE connection and its facts go to the fd store (FDSTORE=1)" "$tmp/notify.log"
# The packaged example identities (packaging/examples/identities.d) are valid registrations.
"$(dirname "$svidfs")/svidfsctl" -s "$tmp/ctl/control.sock" list >"$tmp/list.log" 2>&1
for n in web backup metrics-agent; do grep -q "identities/$n " "$tmp/list.log" || echo "missing $n" >>"$tmp/list.log"; done
! grep -q missing "$tmp/list.log"
tap_result $? "the example identities (web, backup, metrics-agent) load and register" "$tmp/list.log"

# Watchdog: pings keep coming after READY (wait, bounded, for 4 of them), none more than 1 s
# apart (the interval systemd would kill at), and not a busy loop (at most one per 100 ms).
for _ in $(seq 600); do
	[ "$(awk '$3 == "WATCHDOG=1"' "$tmp/notify.log" | wc -l)" -ge 4 ] && break
	sleep 0.05
done
awk '$3 == "WATCHDOG=1" { print $1 }' "$tmp/notify.log" >"$tmp/wd"
n=$(wc -l <"$tmp/wd")
[ "$n" -ge 4 ]
tap_result $? "WATCHDOG=1 is sent repeatedly ($n pings with WATCHDOG_USEC=1s)" "$tmp/notify.log"
awk 'NR > 1 { d = $1 - p; if (d > 1000 || d < 100) bad = 1 } { p = $1 } END { exit bad || NR < 2 }' "$tmp/wd"
tap_result $? "WATCHDOG=1 intervals stay within 100-1000 ms (WATCHDOG_USEC=1s)" "$tmp/wd"

mountpoint -q "$tmp/mnt"
tap_result $? "the mount is up before SIGTERM"
kill -TERM "$dpid"
rc=124
for _ in $(seq 200); do
	if ! kill -0 "$dpid" 2>/dev/null; then
		wait "$dpid"
		rc=$?
		break
	fi
	sleep 0.05
done
dpid=
[ "$rc" -eq 0 ]
tap_result $? "SIGTERM: the daemon exits 0 within 10 s (status $rc)" "$tmp/daemon.log"
grep -q "STOPPING=1" "$tmp/notify.log"
tap_result $? "SIGTERM: STOPPING=1 is sent" "$tmp/notify.log"
# With the fd store as keeper SIGTERM still unmounts (systemd empties the store on stop);
# crashes are what the next start adopts.
! grep -q " $tmp/mnt " /proc/self/mountinfo
tap_result $? "SIGTERM: the mount is gone" /proc/self/mountinfo
tap_done
