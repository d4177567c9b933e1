#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 12.5 and 12.6, JWT-SVIDs as a lever: (a) a caller that may not read a workload's key
# cannot make the daemon mint for it; (b) a flood of audiences by one that may is bounded (the
# list stays at 32, the workload's own audience keeps working); (c) holding O_PATH fds on
# thousands of audiences hits the workload's budget, never another workload's rotation; (d) a
# slow agent holds JWT lookups, not the FUSE workers: other pods' files stay readable.
. "$(dirname "$0")/../integration/lib.sh"
KEY=credential-bundle.private-key.pem
NOBODY="setpriv --reuid 65534 --regid 65534 --clear-groups"
PIN=$(dirname "$0")/pin-jwt.py

start_agent a --auto-k8s --jwt-ttl 1h || exit 1
# A small secure heap: 1 MiB. Tokens may take a quarter of it, one workload 16 KiB.
start_daemon -a "a=unix://$T/a.admin" --secure-heap 1M || exit 1
# A floods, P pins, S1..S12 wait on a slow agent, B rotates meanwhile, C is read meanwhile.
A=$(uuid)
P=$(uuid)
S=$(uuid)
B=$(uuid)
C=$(uuid)
for p in "$A" "$P" "$S" "$B" "$C"; do register_pod "$p"; done
for i in $(seq 11); do u=$(uuid); register_pod "$u" && echo "$u"; done >"$T/slow-pods"
chmod 0755 "$T"
for v in A P S B; do
	eval "u=\$$v"
	mkdir -p "$T/vol$v"
	mount --bind "$MNT/pods/$u" "$T/vol$v" && BINDS="$T/vol$v $BINDS"
done
njwt() { ls "$MNT/pods/$1/jwt" | wc -l; }

# (a) Not allowed to read the key (0400 root): no token, no audience, no inode.
check "nobody cannot even reach pods/<uid>/jwt from the host" \
	not $NOBODY ls "$MNT/pods/$A/jwt/x"
$NOBODY sh -c "i=0; while [ \$i -lt 2100 ]; do cat '$T/volA/jwt/aud-\$i' 2>/dev/null; i=\$((i+1)); done" >/dev/null
expect_eq "2,100 lookups as nobody in the pod's view: 0 audiences added" 0 "$(njwt "$A")"
expect_eq "... and 0 token bytes held" 0 "$(ctl info | awk '$1 == "jwt_bytes" { print $2 }')"
check "the pod's own reader still gets its token" \
	sh -c "cut -d. -f2 '$T/volA/jwt/spiffe:%2F%2Fexample.org%2Fown' | tr '_-' '/+' | base64 -d 2>/dev/null | grep -q example.org/own"

# (b) A flood by a caller that may read the key: bounded, own audience unharmed.
START=$(date +%s%N)
i=0
while [ $i -lt 2100 ]; do cat "$T/volA/jwt/flood-$i" >/dev/null 2>&1; i=$((i + 1)); done
echo "2,100 distinct audiences looked up in $((($(date +%s%N) - START) / 1000000)) ms" | diag
check "audiences per workload stay bounded (<= 32)" test "$(njwt "$A")" -le 32
check "after the flood the workload's own audience is still minted (no ENOSPC)" \
	sh -c "cut -d. -f2 '$T/volA/jwt/spiffe:%2F%2Fexample.org%2Fown2' | tr '_-' '/+' | base64 -d 2>/dev/null | grep -q example.org/own2"

# (c) Pinning tokens with O_PATH fds: the workload's budget runs out, nobody else's.
mkfifo "$T/hold"
"$PIN" "$T/volP" 2000 <"$T/hold" >"$T/pin.out" 2>&1 &
PIN_PID=$!
PIDS="$PIDS $PIN_PID"
exec 9>"$T/hold"
check "the pinning process finished its lookups" wait_long grep -q '^ok' "$T/pin.out"
cat "$T/pin.out" | diag
check "its lookups beyond the budget failed with ENOSPC (28)" grep -q ' 28:' "$T/pin.out"
JB=$(ctl info | awk '$1 == "jwt_bytes" { print $2 }')
echo "token bytes held while pinned: $JB; $(ctl info | grep secure_heap | tr '\n' ' ')" | diag
check "token bytes stay within the total JWT budget (256 KiB of a 1 MiB heap)" test "$JB" -le 262144
OLD=$(serial_of "$T/volB/$KEY")
agentctl a rotate >/dev/null
check "meanwhile pod B rotates (its new key is served)" \
	sh -c "for i in \$(seq 100); do [ \"\$('$CHECK' serial '$T/volB/$KEY')\" != '$OLD' ] && '$CHECK' keymatch '$T/volB/$KEY' && exit 0; sleep 0.1; done; exit 1"
check "and pod B still gets JWT-SVIDs" test -s "$T/volB/jwt/b-audience"
check "the daemon logged no rejected rotation" not grep -q "rejected\|does not parse" "$T/svidfs.log"
exec 9>&-
wait "$PIN_PID" 2>/dev/null

# (d) A slow agent: JWT lookups wait off the FUSE workers (no worker per stalled lookup; the
# kernel serialises lookups in one directory, so 12 pods' jwt/ directories are used); other
# pods' first reads are answered at once.
threads() { awk '/^Threads:/ { print $2 }' "/proc/$DAEMON_PID/status"; }
agentctl a jwt-delay 3000 >/dev/null
T0=$(threads)
for d in "$T/volS" $(sed "s|^|$MNT/pods/|" "$T/slow-pods"); do
	for k in 1 2 3 4; do (cat "$d/jwt/slow-$k" >/dev/null 2>&1 &); done
done
MAX=$T0
for _ in $(seq 10); do t=$(threads); [ "$t" -gt "$MAX" ] && MAX=$t; sleep 0.1; done
START=$(date +%s%N)
"$CHECK" keymatch "$MNT/pods/$C/$KEY" >/dev/null && cat "$MNT/pods/$C/status.json" >/dev/null
MS=$((($(date +%s%N) - START) / 1000000))
echo "daemon threads: $T0 before, at most $MAX during 48 stalled JWT lookups in 12 pods; pod C's first reads: $MS ms" | diag
check "48 stalled JWT lookups hold no FUSE worker (threads grew by <= 4)" test "$MAX" -le $((T0 + 4))
check "pod C's files are read at once while the agent stalls JWT-SVIDs (< 2000 ms)" test "$MS" -lt 2000
agentctl a jwt-delay 0 >/dev/null
check "after the stall JWT-SVIDs come back" wait_long test -s "$T/volS/jwt/after-stall"
finish
