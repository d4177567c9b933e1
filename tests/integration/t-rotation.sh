#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Rotation: visible on the next open once the daemon has it (cached reads in between serve the
# current bytes), an fd opened before keeps reading the old bytes whole, poll() on status.json
# wakes, no torn and no stale read by concurrent readers during 1,000 rotations (also through a
# read-only bind of the pod directory), and memory stays flat over 10,000 rotations.
. "$(dirname "$0")/lib.sh"

start_agent a --auto-k8s || exit 1
start_daemon -a "a=unix://$T/a.admin" || exit 1
P=$(uuid)
register_pod "$P"
D=$MNT/pods/$P
CB=$D/credential-bundle.private-key.pem
rotate() { agentctl a rotate >/dev/null; }

# --- next open after the daemon has it; cached reads in between ---
stale=0
cached_bad=0
for i in $(seq 20); do
	old=$(serial_of "$CB")
	rm -f "$T/poll.ready"
	"$CHECK" poll "$D/status.json" 5000 "$T/poll.ready" >"$T/poll.out" &
	pollpid=$!
	wait_for test -e "$T/poll.ready" # the fd is open: the rotation must wake it
	rotate
	wait $pollpid || { stale=$((stale + 1)); continue; }
	# poll woke: the new generation is in; the very next open must show it.
	new=$(serial_of "$CB")
	[ "$new" != "$old" ] && [ "$new" = "$(status_serial "$P")" ] || stale=$((stale + 1))
	for _ in $(seq 20); do
		[ "$(serial_of "$CB")" = "$new" ] || cached_bad=$((cached_bad + 1))
	done
done
expect_eq "20 rotations: poll(status.json) woke and the next open saw the new SVID" 0 "$stale"
expect_eq "400 cached reads between rotations all served the current SVID" 0 "$cached_bad"
check "poll on a current status.json times out without a change" \
	not "$CHECK" poll "$D/status.json" 300

# --- an fd opened before a rotation keeps its bytes whole ---
coproc HOLD { "$CHECK" hold "$CB"; }
# Keep our own copies: bash unsets HOLD as soon as the coprocess exits.
exec {hold_out}<&"${HOLD[0]}" {hold_in}>&"${HOLD[1]}"
read -r _ held_serial <&$hold_out
rotate
wait_for sh -c "[ \"\$('$CHECK' serial '$CB')\" != '$held_serial' ]"
echo go >&$hold_in
read -r result _ <&$hold_out
expect_eq "fd opened before the rotation reads the old bytes whole after it" same "$result"
check "new opens see the new serial meanwhile" sh -c "[ \"\$('$CHECK' serial '$CB')\" != '$held_serial' ]"

# --- 1,000 rotations with 4 concurrent readers, from the root and through a bind ---
"$CHECK" rotate "$CB" 500 4 -- "ctl:$T/a.ctl" >"$T/rot1.out" 2>&1
r=$?
cat "$T/rot1.out" | diag
expect_eq "500 rotations, 4 readers from the mount root: no torn, no stale, no error" 0 "$r"
mkdir -p "$T/bind"
mount --bind "$D" "$T/bind" && mount -o remount,bind,ro,nosuid,nodev,noexec "$T/bind" &&
	BINDS="$BINDS $T/bind"
"$CHECK" rotate "$T/bind/credential-bundle.private-key.pem" 500 4 -- "ctl:$T/a.ctl" \
	>"$T/rot2.out" 2>&1
r=$?
cat "$T/rot2.out" | diag
expect_eq "500 rotations, 4 readers through a read-only bind: no torn, no stale, no error" 0 "$r"
check "writes through the bind fail" not touch "$T/bind/x"
umount "$T/bind"
BINDS=""

# --- memory flat over 10,000 rotations with no fd held ---
"$CHECK" churn "$CB" 1000 -- "ctl:$T/a.ctl" >/dev/null 2>&1
rss0=$(rss_kb "$DAEMON_PID")
"$CHECK" churn "$CB" 10000 -- "ctl:$T/a.ctl" >"$T/churn.out" 2>&1
r=$?
cat "$T/churn.out" | diag
rss1=$(rss_kb "$DAEMON_PID")
inodes=$(ctl info | awk '$1 == "inodes" { print $2 }')
echo "daemon RSS before ${rss0} kB, after 10,000 rotations ${rss1} kB; live inodes $inodes" | diag
expect_eq "10,000 rotations completed" 0 "$r"
# Keeping every generation would cost over 20 MB here (about 2 kB of files per rotation). ASan's
# allocator adds its own per-free bookkeeping (measured 5.6 to 8.1 MB with a 1 MB quarantine, one
# fresh-clone CI run went 56 kB over an 8 MB bound), so the sanitizer lane gets a looser bound,
# still well under the 20 MB a kept generation per rotation would cost; its leak check at exit
# (below) covers the rest.
limit=2048
grep -q libasan "/proc/$DAEMON_PID/maps" && limit=12288
check "daemon RSS grew by less than $((limit / 1024)) MB over 10,000 rotations" \
	test $((rss1 - rss0)) -lt $limit
check "old generations were forgotten (fewer than 64 live inodes)" test "$inodes" -lt 64
stop_daemon
expect_eq "clean exit after 11,000 rotations (with sanitizers: no leak)" 0 "$DAEMON_EXIT"

finish
