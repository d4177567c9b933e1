#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Restart survival after a crash: svidfs-keeper holds the FUSE connection; the daemon is killed
# with SIGKILL and restarted 50 times (then 10 more times with the agent restarted in between)
# while a reader per pod, each in its own mount namespace through a read-only bind mount of its
# pods/<uid>, opens+reads+closes its credential bundle in a tight loop. Every read must succeed
# with a whole, valid bundle; no reader may be left blocked. CYCLES/AGENT_CYCLES override.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/common.sh"
CYCLES=${CYCLES:-50}
AGENT_CYCLES=${AGENT_CYCLES:-10}

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
check "the keeper holds the connection" wait_for sh -c "grep -q . '$T/svidfs.log' && '$SVIDFSCTL' -s '$T/control.sock' info | grep -q '^takeovers *0'"

REC_DIRS=0 REC_FILES=0 REC_STALE=0
# Requests for the previous daemon's inodes this daemon saw (svidfsctl info), summed.
count_recovery() {
	local d f s
	read -r d f s < <(ctl info | awk '$1 == "recovered_dirs" { d = $2 }
		$1 == "recovered_files" { f = $2 } $1 == "recovered_stale" { s = $2 }
		END { print d + 0, f + 0, s + 0 }')
	REC_DIRS=$((REC_DIRS + d))
	REC_FILES=$((REC_FILES + f))
	REC_STALE=$((REC_STALE + s))
}

crash_cycle() {
	count_recovery
	kill -9 "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	echo "killed $(date +%s%6N)" >>"$T/cycles.log"
	sleep 0.1 # pacing: 100 ms without a daemon, readers' requests queue meanwhile
	start_daemon "${DAEMON_ARGS[@]}" || return 1
	sleep 0.2 # pacing: readers read from this daemon before the next crash
}

t0=$(date +%s)
fails=0
for c in $(seq "$CYCLES"); do
	crash_cycle || { fails=$((fails + 1)); break; }
done
t1=$(date +%s)
expect_eq "$CYCLES kill -9 + restart cycles (in $((t1 - t0)) s)" 0 "$fails"
expect_eq "every restart adopted the live connection" "$CYCLES" \
	"$(grep -c 'adopted the FUSE connection' "$T/svidfs.log")"
expect_eq "svidfsctl info counts the takeovers" "$CYCLES" "$(info_of takeovers)"
check "the connection is as old as the first mount" test "$(info_of connection_age_s)" -ge "$((t1 - t0 - 1))"
check "the mount never went stale" not grep -q "detached a stale svidfs mount" "$T/svidfs.log"
count_recovery
echo "old inodes after $CYCLES crashes: directories rebuilt $REC_DIRS, files served (ledger matched) $REC_FILES, ESTALE $REC_STALE" | diag
REC_DIRS=0 REC_FILES=0 REC_STALE=0
stop_readers
expect_eq "crashes: no reader left blocked" 0 "$BLOCKED"
expect_eq "crashes: no read errors (page-cache readers)" 0 "$ERR_TOTAL"
expect_eq "crashes: no read errors (O_DIRECT reader)" 0 "$ERR_DIRECT"
expect_eq "crashes: no ESTALE (the agent served the same SVIDs: the ledger vouched)" 0 "$STALE_TOTAL"
expect_eq "crashes: every read a whole valid bundle" 0 "$INVALID_TOTAL"
check "crashes: readers kept reading ($READ_TOTAL reads, longest stall $((MAX_GAP_US / 1000)) ms)" test "$READ_TOTAL" -gt 1000
grep -h '^gap' "$T"/reader-*.out 2>/dev/null | sort -k3 -n | tail -3 | diag
cat "$T"/reader-*.out | grep '^gap' >"$T/gaps-crash.txt"
# shellcheck disable=SC2086
check "readers are reading again" start_readers $PODS

# The agent restarts in between too (it answers the new daemon's subscriptions afresh).
fails=0
for c in $(seq "$AGENT_CYCLES"); do
	count_recovery
	kill -9 "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	stop_agent a
	start_agent a --auto-k8s || { fails=$((fails + 1)); break; }
	start_daemon "${DAEMON_ARGS[@]}" || { fails=$((fails + 1)); break; }
	sleep 0.3 # pacing: readers read from this daemon before the next crash
done
expect_eq "$AGENT_CYCLES cycles with the agent restarted too" 0 "$fails"
count_recovery
echo "old inodes after $AGENT_CYCLES agent+daemon restarts: directories rebuilt $REC_DIRS, files served $REC_FILES, ESTALE $REC_STALE" | diag
expect_eq "takeovers counted across both" "$((CYCLES + AGENT_CYCLES))" "$(info_of takeovers)"

stop_readers
expect_eq "agent restarts: no reader left blocked" 0 "$BLOCKED"
expect_eq "agent restarts: no read errors other than ESTALE (page-cache readers)" 0 "$ERR_TOTAL"
expect_eq "agent restarts: no read errors other than ESTALE (O_DIRECT reader)" 0 "$ERR_DIRECT"
# New SVIDs from a restarted agent: a read through the previous daemon's inode cannot be
# vouched for and answers ESTALE; the name is invalidated at once (asynchronously: a tight loop
# may hit it a few times), then opens get the new SVID.
check "agent restarts: ESTALE only briefly per cycle ($STALE_TOTAL in $AGENT_CYCLES cycles)" \
	test "$STALE_TOTAL" -le "$((N_READERS * AGENT_CYCLES * 10))"
expect_eq "agent restarts: every read a whole valid bundle" 0 "$INVALID_TOTAL"
check "agent restarts: readers kept reading ($READ_TOTAL reads, longest stall $((MAX_GAP_US / 1000)) ms)" test "$READ_TOTAL" -gt 1000

# A clean SIGTERM with a keeper leaves the mount to it; shutdown unmounts for good.
stop_daemon
expect_eq "SIGTERM with a keeper: clean exit (and, with sanitizers, no leak)" 0 "$DAEMON_EXIT"
check "the mount stays alive with the keeper" mountpoint -q "$MNT"
start_daemon "${DAEMON_ARGS[@]}" || exit 1

P1=$(echo $PODS | cut -d' ' -f1)
check "and serves the pods" "$CHECK" keymatch "$MNT/pods/$P1/$KEY"
check "svidfsctl shutdown" ctl shutdown
for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
wait "$DAEMON_PID" 2>/dev/null
expect_eq "shutdown: clean exit" 0 "$?"
check "shutdown unmounted" not mountpoint -q "$MNT"

# bench/takeover.sh collects the raw timings.
if [ -n "${BENCH_OUT:-}" ]; then cp "$T"/svidfs.log "$T"/reader-*.out "$T"/gaps-crash.txt "$T"/cycles.log "$BENCH_OUT"/; fi
finish
