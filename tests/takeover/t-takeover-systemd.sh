#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# --keeper systemd without systemd as PID 1: fake-systemd.py owns NOTIFY_SOCKET and the fd store
# the way systemd 252 does, and restarts the daemon when it is killed (Restart=on-failure),
# passing the stored fds with LISTEN_FDS/LISTEN_FDNAMES. Readers in pod mount namespaces must see
# no error across CRASHES kill -9 cycles; stopping the unit empties the store and unmounts.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/common.sh"
CRASHES=${CRASHES:-10}
FAKE=$(dirname "$0")/fake-systemd.py

start_agent a --auto-k8s || exit 1
mkdir -p "$MNT"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1" "$FAKE" "$T/notify.sock" \
	"$T/svc.pid" "$T/events" -- "$SVIDFS" -m "$MNT" --state-dir "$T/state" \
	--control-socket "$T/control.sock" --identities-dir "$T/identities.d" \
	-a "a=unix://$T/a.admin" --keeper systemd >>"$T/svidfs.log" 2>&1 &
SUP=$!
PIDS="$PIDS $SUP"
stored() { [ "$(grep -c '^FDSTORE svidfs-' "$T/events")" -ge "$1" ]; }
check "READY=1 reaches the service manager" wait_for grep -q '^READY' "$T/events"
check "the connection, its ledger and facts go to the fd store" wait_for stored 3
PODS=""
for _ in 1 2; do
	P=$(uuid)
	PODS="$PODS $P"
	register_pod "$P" || { not_ok "register $P"; finish; exit 1; }
done
ok "2 pods registered"
# shellcheck disable=SC2086
check "readers are reading" start_readers $PODS

fails=0
for c in $(seq "$CRASHES"); do
	pid=$(cat "$T/svc.pid")
	kill -9 "$pid"
	ready() { [ "$(grep -c '^READY' "$T/events")" -gt "$c" ]; }
	wait_for ready || { fails=$((fails + 1)); break; }
	wait_for stored $((3 * (c + 1))) || fails=$((fails + 1))
	sleep 0.3 # pacing: readers read from this daemon before the next crash
done
expect_eq "$CRASHES kill -9 restarts by the service manager" 0 "$fails"
expect_eq "every restart got the 3 stored fds" "$CRASHES" "$(grep -c '^START [0-9]* 3$' "$T/events")"
expect_eq "every restart adopted the connection from LISTEN_FDS" "$CRASHES" \
	"$(grep -c 'adopted the FUSE connection' "$T/svidfs.log")"
expect_eq "svidfsctl info counts the takeovers" "$CRASHES" "$(info_of takeovers)"
check "the mount was never remounted" not grep -q "detached a stale" "$T/svidfs.log"

stop_readers
expect_eq "no reader left blocked" 0 "$BLOCKED"
expect_eq "no read errors (page-cache readers)" 0 "$ERR_TOTAL"
expect_eq "no read errors (O_DIRECT reader)" 0 "$ERR_DIRECT"
expect_eq "every read a whole valid bundle" 0 "$INVALID_TOTAL"
check "readers kept reading ($READ_TOTAL reads, longest stall $((MAX_GAP_US / 1000)) ms)" \
	test "$READ_TOTAL" -gt 1000

# systemctl stop: SIGTERM, then systemd empties the store; the daemon unmounts cleanly.
kill -TERM "$SUP"
for _ in $(seq 100); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
check "the service stops" not kill -0 "$SUP"
expect_eq "SIGTERM: clean exit" 0 "$(tail -1 "$T/events" | awk '$1 == "EXIT" { print $3 }')"
check "stop unmounted" not mountpoint -q "$MNT"
finish
