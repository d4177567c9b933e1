#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Planned upgrade: 10 times, a new daemon is started with --takeover while the old one runs; the
# old one drains (answers what it holds, reads no more), hands the FUSE connection, its ledger
# and the facts over handover.sock, and exits without unmounting. Readers in pod mount
# namespaces (one with O_DIRECT) must see no error and never stay blocked. UPGRADES overrides.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/common.sh"
UPGRADES=${UPGRADES:-10}

start_agent a --auto-k8s || exit 1
check "svidfs-keeper starts" start_keeper
DAEMON_ARGS=(-a "a=unix://$T/a.admin" --keeper "socket:$T/keeper.sock")
start_daemon "${DAEMON_ARGS[@]}" || exit 1
PODS=""
for _ in 1 2 3; do
	P=$(uuid)
	PODS="$PODS $P"
	register_pod "$P" || { not_ok "register $P"; finish; exit 1; }
done
ok "3 pods registered"
# shellcheck disable=SC2086
check "readers are reading" start_readers $PODS

fails=0 exits=0
t0=$(date +%s)
for c in $(seq "$UPGRADES"); do
	old=$DAEMON_PID
	start_daemon "${DAEMON_ARGS[@]}" --takeover || { fails=$((fails + 1)); break; }
	# The old one exits right after handing over (its control socket may answer until then).
	for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$old" 2>/dev/null; then fails=$((fails + 1)); fi
	wait "$old" 2>/dev/null
	[ $? = 0 ] || exits=$((exits + 1))
	wait_for ctl ping || fails=$((fails + 1))
	sleep 0.3 # pacing: readers read from this daemon before the next handover
done
t1=$(date +%s)
expect_eq "$UPGRADES planned handovers (in $((t1 - t0)) s)" 0 "$fails"
expect_eq "every old daemon exited cleanly (and, with sanitizers, without leaks)" 0 "$exits"
expect_eq "every new daemon adopted the connection" "$UPGRADES" \
	"$(grep -c 'adopted the FUSE connection' "$T/svidfs.log")"
expect_eq "svidfsctl info counts the takeovers" "$UPGRADES" "$(info_of takeovers)"
check "the mount was never unmounted" not grep -q "unmounting\|detached a stale" "$T/svidfs.log"
grep -h 'handover: first reply' "$T/svidfs.log" | sed 's/.*handover: //' | tail -3 | diag

# Kubernetes (regression: the old pod's daemon exited 0 after handing over, so kubelet restarted
# it with --takeover and it took the connection back): with --after-handover=wait the old
# daemon stays idle after the handover and exits cleanly only on SIGTERM.
# The flag belongs to the daemon that hands over: every pod runs the same arguments.
prev=$DAEMON_PID
start_daemon "${DAEMON_ARGS[@]}" --takeover --after-handover=wait || not_ok "k8s-style daemon"
for _ in $(seq 100); do kill -0 "$prev" 2>/dev/null || break; sleep 0.1; done
wait "$prev" 2>/dev/null
# Back to back: this handover follows the previous adoption at once.
old=$DAEMON_PID
start_daemon "${DAEMON_ARGS[@]}" --takeover --after-handover=wait || not_ok "k8s-style handover"
for _ in $(seq 50); do grep -q 'idle until SIGTERM' "$T/svidfs.log" && break; sleep 0.1; done
sleep 0.5 # an observation window: the old daemon must not exit in it
check "after-handover=wait: the old daemon is still there after handing over" kill -0 "$old"
check "after-handover=wait: the new daemon serves" ctl ping
kill "$old"
for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
wait "$old" 2>/dev/null
expect_eq "after-handover=wait: SIGTERM ends the idle old daemon cleanly" 0 "$?"
check "after-handover=wait: the mount still answers" stat "$MNT/pods"

stop_readers
expect_eq "no reader left blocked" 0 "$BLOCKED"
expect_eq "no read errors (page-cache readers)" 0 "$ERR_TOTAL"
expect_eq "no read errors (O_DIRECT reader)" 0 "$ERR_DIRECT"
expect_eq "no ESTALE (same SVIDs: the ledger vouched)" 0 "$STALE_TOTAL"
expect_eq "every read a whole valid bundle" 0 "$INVALID_TOTAL"
check "readers kept reading ($READ_TOTAL reads, longest stall $((MAX_GAP_US / 1000)) ms)" test "$READ_TOTAL" -gt 1000

check "svidfsctl shutdown" ctl shutdown
for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
wait "$DAEMON_PID" 2>/dev/null
expect_eq "shutdown: clean exit" 0 "$?"
check "shutdown unmounted" not mountpoint -q "$MNT"
# bench/takeover.sh collects the raw timings.
if [ -n "${BENCH_OUT:-}" ]; then cp "$T"/svidfs.log "$T"/reader-*.out  "$BENCH_OUT"/; fi
finish
