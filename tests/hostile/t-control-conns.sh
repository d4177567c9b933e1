#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The control socket under hostile load (issue 12): 3,000 idle connections used to cost 3,000
# threads. Now one event loop serves every connection: idle ones cost a descriptor, at most
# CONTROL_MAX_CONNS (1024) are open at a time, beyond that a connection is refused, and an idle
# connection is closed after CONTROL_IDLE_TIMEOUT_S (15 s). Waits are timers, not threads. Also:
# the socket's directory is 0700, pipelined requests are answered in order, an oversized request
# gets one error and a hang-up, a client that shuts its side after a request gets its reply.
. "$(dirname "$0")/../integration/lib.sh"
: "${CTL_CONNS:?CTL_CONNS must point at ctl-conns}"

threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
field() { sed -n "s/.*\\b$2=\\([0-9]*\\).*/\\1/p" "$1" 2>/dev/null; }
# status_at_least FILE KEY N: the hold helper's status file shows KEY >= N.
status_at_least() { local v; v=$(field "$1" "$2"); [ -n "$v" ] && [ "$v" -ge "$3" ]; }
wait_long() { # wait_long SECONDS COMMAND...
	local n=$(($1 * 20))
	shift
	for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}

# --- the socket's directory, created by the daemon: 0700 as documented ---
mkdir -p "$T/mnt2"
"$SVIDFS" -m "$T/mnt2" --state-dir "$T/state2" --control-socket "$T/run/ctl/control.sock" \
	--identities-dir "$T/identities.d" -a "a=unix://$T/none.admin" >>"$T/svidfs2.log" 2>&1 &
second=$!
PIDS="$PIDS $second"
check "a daemon with its control socket in a new directory starts" \
	wait_long 20 "$SVIDFSCTL" -s "$T/run/ctl/control.sock" ping
expect_eq "the control socket's directory is created 0700" 700 "$(stat -c %a "$T/run/ctl")"
expect_eq "the control socket is 0600" 600 "$(stat -c %a "$T/run/ctl/control.sock")"
kill "$second"
check "and it stops" wait_long 20 not kill -0 "$second"

start_agent a --auto-k8s || exit 1
start_daemon -a "a=unix://$T/a.admin" || exit 1

# --- 3,000 idle connections ---
t0=$(threads "$DAEMON_PID")
f0=$(fds "$DAEMON_PID")
"$CTL_CONNS" hold "$T/control.sock" 3000 "$T/hold" &
hold=$!
PIDS="$PIDS $hold"
check "3,000 connections are made (accepted or refused)" wait_long 60 status_at_least "$T/hold" opened 3000
check "all but the limit's 1024 are refused at once" wait_long 20 status_at_least "$T/hold" closed 1976
cat "$T/hold" | diag
t1=$(threads "$DAEMON_PID")
f1=$(fds "$DAEMON_PID")
echo "daemon threads $t0 -> $t1, descriptors $f0 -> $f1 with 3,000 idle clients" | diag
check "idle connections cost no thread ($t0 -> $t1)" test "$t1" -le $((t0 + 2))
check "the daemon holds at most 1024 of them ($f0 -> $f1 descriptors)" test "$f1" -le $((f0 + 1024))
check "at the limit a new client is refused" not ctl ping
expect_eq "the limit is logged once" 1 "$(grep -c 'the limit: refusing new ones' "$T/svidfs.log")"
check "the idle connections are closed after the idle timeout" \
	wait_long 45 status_at_least "$T/hold" closed 3000
check "then clients are served again" wait_long 10 ctl ping
check "and the daemon says so" grep -q 'accepting connections again' "$T/svidfs.log"
check "no thread was left behind" test "$(threads "$DAEMON_PID")" -le $((t0 + 2))

# --- framing ---
expect_eq "two pipelined requests: both answered, in order" "replies=2 ordered=yes" \
	"$("$CTL_CONNS" pipeline "$T/control.sock")"
expect_eq "an oversized request: one EMSGSIZE reply, then the daemon hangs up" \
	"sent=71680 replies=1 emsgsize=yes eof=yes" "$("$CTL_CONNS" big "$T/control.sock")"
expect_eq "a request, then the client shuts its side: answered, then closed" \
	"replies=1 ping=yes eof=yes" "$("$CTL_CONNS" halfclose "$T/control.sock")"
check "the daemon serves on" ctl ping

# --- waits are timers on the loop, not threads ---
L=$(uuid)
ctl register pod_uid="$L" ref=late >/dev/null # no namespace: no entry matches yet
t0=$(threads "$DAEMON_PID")
wpids=""
for i in $(seq 200); do
	ctl wait "$L" 60000 >"$T/wait.$i" 2>&1 &
	wpids="$wpids $!"
done
PIDS="$PIDS $wpids"
check "200 clients wait for the SVID" \
	wait_long 30 sh -c "[ \$(ls /proc/$DAEMON_PID/fd | wc -l) -ge $((f0 + 200)) ]"
t1=$(threads "$DAEMON_PID")
check "200 waiting clients cost no thread ($t0 -> $t1)" test "$t1" -le $((t0 + 2))
check "a ping is answered meanwhile" ctl ping
start=$(date +%s%N)
agentctl a add-entry "spiffe://example.org/late selectors=k8s:pod-uid:$L" >/dev/null
ok_waits=0
for p in $wpids; do wait "$p" && ok_waits=$((ok_waits + 1)); done
ms=$((($(date +%s%N) - start) / 1000000))
echo "200 waits answered $ms ms after the entry was added" | diag
expect_eq "every wait is answered once the SVID arrives" 200 "$ok_waits"
[ "$ok_waits" = 200 ] || cat "$T"/wait.* | sort | uniq -c | diag
N=$(uuid)
ctl register pod_uid="$N" ref=x >/dev/null
check "a wait still times out by its timer" not ctl wait "$N" 300
check "a wait for an unknown workload is refused" not ctl wait "$(uuid)" 300

stop_daemon
expect_eq "SIGTERM: clean exit (and, with sanitizers, no leak)" 0 "$DAEMON_EXIT"
finish
