#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Races around a takeover (issue 8).
# 1. A request the kernel queued during a takeover must not overtake the replayed INIT. libfuse
# answers EIO to any request it processes before the INIT; when the INIT went through the MT
# loop, a second worker could read a queued READ first (rare; O_DIRECT readers saw EIO after
# adoptions). The daemon runs under slow-init.so, which makes libfuse take
# 20 ms over its first request, so that order would be certain: before the fix this test saw
# thousands of EIOs per run. Readers are all O_DIRECT (every read reaches the daemon), in pod
# mount namespaces; the daemon is killed (-9) and restarted, then upgraded with --takeover.
# 2. One daemon serves the connection at a time (daemon.lock): back-to-back handovers never leave
# two daemons adopting it, a --takeover start waits while another process holds the lock, and a
# plain second start is refused.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/common.sh"
CYCLES=${CYCLES:-5}
SHIM=$BUILD/tests/takeover/slow-init.so
# The shim comes before the sanitizer runtime in the ASan lane: allowed, it only wraps calloc.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

start_agent a --auto-k8s || exit 1
check "svidfs-keeper starts" start_keeper
DAEMON_ARGS=(-a "a=unix://$T/a.admin" --keeper "socket:$T/keeper.sock")
LD_PRELOAD=$SHIM start_daemon "${DAEMON_ARGS[@]}" || exit 1
PODS=""
for _ in 1 2; do
	P=$(uuid)
	PODS="$PODS $P"
	register_pod "$P" || { not_ok "register $P"; finish; exit 1; }
done
ok "2 pods registered"
# shellcheck disable=SC2086
ALL_DIRECT=1 check "readers are reading" start_readers $PODS $PODS

fails=0
for _ in $(seq "$CYCLES"); do
	kill -9 "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	LD_PRELOAD=$SHIM start_daemon "${DAEMON_ARGS[@]}" || { fails=$((fails + 1)); break; }
	sleep 0.2 # pacing: readers read from this daemon before the next crash
done
expect_eq "$CYCLES kill -9 + restart cycles under slow-init.so" 0 "$fails"
fails=0 exits=""
for _ in $(seq "$CYCLES"); do
	old=$DAEMON_PID
	LD_PRELOAD=$SHIM start_daemon "${DAEMON_ARGS[@]}" --takeover || { fails=$((fails + 1)); break; }
	for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
	wait "$old" 2>/dev/null
	exits="$exits $?"
	# Back to back: the next handover follows this adoption at once.
done
expect_eq "$CYCLES planned handovers back to back under slow-init.so" 0 "$fails"
# An old daemon handed over moments after it started: its start-up thread must not touch what
# the shutdown freed (it did: SIGSEGV, exit status 139, about 1 run in 6).
expect_eq "every old daemon exited 0" "$(printf ' 0%.0s' $(seq "$CYCLES"))" "$exits"
starts=$((2 * CYCLES + 1))
# start_daemon returns once the control socket answers, which the old daemon may still do while
# the new one adopts: wait (bounded) for the last one's log line before counting.
wait_for sh -c "[ \$(grep -c 'adopted the FUSE connection' '$T/svidfs.log') -ge $((2 * CYCLES)) ]"
expect_eq "every daemon adopted the connection" "$((2 * CYCLES))" \
	"$(grep -c 'adopted the FUSE connection' "$T/svidfs.log")"
expect_eq "the shim delayed libfuse's first request in every daemon" "$starts" \
	"$(grep -c 'slow-init: delaying' "$T/svidfs.log")"
# Two daemons adopting from the same predecessor would both count the same takeover.
expect_eq "no takeover adopted twice" "" \
	"$(grep -o 'adopted the FUSE connection.*takeover [0-9]*' "$T/svidfs.log" | awk '{print $NF}' | sort | uniq -d)"

# A second daemon without --takeover is refused; the running one keeps serving.
"$SVIDFS" -m "$MNT" --state-dir "$T/state" --control-socket "$T/control.sock" \
	--identities-dir "$T/identities.d" "${DAEMON_ARGS[@]}" >"$T/second.log" 2>&1
expect_eq "a plain second start exits with an error" 1 "$?"
check "and says why" grep -q "another svidfs daemon serves this node" "$T/second.log"
check "the running daemon still serves" ctl ping
check "only it: the mount answers" stat "$MNT/pods"

# While another process holds daemon.lock (as a successor does between its adoption and its
# handover socket), a --takeover start finds nobody on the handover socket and waits: it must
# not take the keeper's connection meanwhile.
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
# The holder keeps the lock until told (at most 60 s); each step waits for its condition.
flock -x "$T/daemon.lock" sh -c "for i in \$(seq 1200); do [ -e '$T/holder.stop' ] && exit 0; sleep 0.05; done" &
HOLDER=$!
PIDS="$PIDS $HOLDER"
check "another process holds daemon.lock" wait_for not flock -n "$T/daemon.lock" true
adopted=$(grep -c 'adopted the FUSE connection' "$T/svidfs.log")
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1" LD_PRELOAD=$SHIM "$SVIDFS" \
	-m "$MNT" --state-dir "$T/state" --control-socket "$T/control.sock" \
	--identities-dir "$T/identities.d" "${DAEMON_ARGS[@]}" --takeover >>"$T/svidfs.log" 2>&1 &
DAEMON_PID=$!
PIDS="$PIDS $DAEMON_PID"
check "--takeover waits for the lock holder, and says so" \
	wait_for grep -q "waiting for the daemon that holds" "$T/svidfs.log"
expect_eq "it does not take the keeper's connection meanwhile" "$adopted" \
	"$(grep -c 'adopted the FUSE connection' "$T/svidfs.log")"
touch "$T/holder.stop"
check "once the lock is free it starts" wait_for ctl ping
check "and adopts the keeper's connection" \
	wait_for sh -c "[ \$(grep -c 'adopted the FUSE connection' '$T/svidfs.log') = $((2 * CYCLES + 1)) ]"
check "the mount answers" wait_for stat "$MNT/pods"
sleep 0.3 # pacing: readers read from the last daemon
stop_readers
expect_eq "no reader left blocked" 0 "$BLOCKED"
expect_eq "no read errors (O_DIRECT readers: every read reached a daemon)" 0 "$((ERR_TOTAL + ERR_DIRECT))"
expect_eq "no ESTALE (same SVIDs: the ledger vouched)" 0 "$STALE_TOTAL"
expect_eq "every read a whole valid bundle" 0 "$INVALID_TOTAL"
check "readers kept reading ($READ_TOTAL reads, longest stall $((MAX_GAP_US / 1000)) ms)" test "$READ_TOTAL" -gt 1000
finish
