#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 12, churn soak: processes in two pods' cgroups, pid and mount namespaces try to read each
# other's keys continuously (path walks from the root, /proc tricks, forged handles) while 1,000
# register/rotate/unregister cycles run; each pod's own reader reads its key meanwhile. 0 cross
# reads, 0 errors for the legitimate readers; the attempts are counted. Attackers and readers run
# for the whole churn and at least SOAK_SECONDS (default 60). The state directory is a tmpfs, so
# the churn's pace is the daemon's, not the disk's.
. "$(dirname "$0")/../integration/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
FORGE=$BUILD/tests/hostile/handle-forge
KEY=credential-bundle.private-key.pem
SECS=${SOAK_SECONDS:-60}

mkdir -p "$T/state"
mount -t tmpfs -o size=16m,mode=0700 tmpfs "$T/state" && BINDS="$T/state $BINDS"
start_agent a --auto-k8s || exit 1
start_daemon -a "a=unix://$T/a.admin" --cgroup-root "$CG_ROOT" || exit 1
A=$(uuid)
B=$(uuid)
register_pod "$A"
register_pod "$B"
CG_A=$(pod_cgroup "$A") || exit 1
CG_B=$(pod_cgroup "$B") || exit 1
cp "$MNT/pods/$A/$KEY" "$T/keyA"
cp "$MNT/pods/$B/$KEY" "$T/keyB"

# pod_run CGROUP NAME SCRIPT: SCRIPT in the pod's cgroup, its own pid and mount namespaces, with
# its directory bound at $T/view-NAME (the host mount stays visible: the hostPath-misuse case).
# Niced: on two cores the churn (the daemon) must not starve behind six busy loops.
pod_run() {
	mkdir -p "$T/view-$2"
	nice -n 19 unshare -m -p --fork --mount-proc --propagation private sh -c \
		"echo \$\$ > '$1/cgroup.procs' && mount --bind '$MNT/pods/$3' '$T/view-$2' && $4"
}
for p in A:$A:$B B:$B:$A; do
	IFS=: read -r n own other <<<"$p"
	pod_run "$(eval echo "\$CG_$n")" "$n" "$own" \
		"'$HERE/soak-read.py' '$T/view-$n' '$KEY' '$T/stop'" >"$T/read-$n.out" 2>&1 &
	PIDS="$PIDS $!"
	pod_run "$(eval echo "\$CG_$n")" "atk$n" "$own" \
		"'$HERE/soak-attack.py' '$MNT' '$other' '$KEY' '$T/view-atk$n' '$T/stop'" \
		>"$T/attack-$n.out" 2>&1 &
	PIDS="$PIDS $!"
	# Forged handles, for as long: each round ~20,000 guesses against the other pod's key.
	pod_run "$(eval echo "\$CG_$n")" "fh$n" "$own" "
		while [ ! -e '$T/stop' ]; do
			'$FORGE' forge '$T/view-fh$n' '$T/view-fh$n' '$T/key$([ $n = A ] && echo B || echo A)' '$KEY' 200 || exit 1
		done" >"$T/forge-$n.out" 2>&1 &
	PIDS="$PIDS $!"
done

# The churn: 1,000 cycles of register, rotate (every pod, A and B too), unregister.
START=$(date +%s)
for i in $(seq 1000); do
	u=$(uuid)
	ctl register pod_uid="$u" namespace=ns1 service_account=sa1 pod_name=p ref=c >/dev/null || echo "register $i failed"
	[ $((i % 4)) = 0 ] && { agentctl a rotate >/dev/null || echo "rotate $i failed"; }
	ctl unregister "$u" c >/dev/null || echo "unregister $i failed"
done >"$T/churn.out" 2>&1
CHURN_S=$(($(date +%s) - START))
while [ $(($(date +%s) - START)) -lt "$SECS" ]; do sleep 1; done # the soak's minimum length
touch "$T/stop"
for f in read-A read-B attack-A attack-B; do
	wait_long sh -c "grep -q '^reads\|^attempts' '$T/$f.out'"
done
wait_long sh -c "! pgrep -f 'handle-forge forge $T' >/dev/null"
cat "$T"/*.out | grep -v '^attempts [0-9]* opened 0 cross 0$' | head -20 | diag
echo "churn: 1,000 cycles (250 rotations of every pod) in $CHURN_S s; soak $(($(date +%s) - START)) s" | diag
check "the churn ran without a failed call" test ! -s "$T/churn.out"
for n in A B; do
	read -r _ READS _ ERRS <"$T/read-$n.out"
	echo "pod $n: reader $READS reads, $ERRS errors" | diag
	check "pod $n's reader read its key (> 100 reads)" test "${READS:-0}" -gt 100
	expect_eq "pod $n's reader: 0 errors" 0 "${ERRS:-x}"
	read -r _ ATT _ CROSS <"$T/attack-$n.out"
	FH=$(awk '/^attempts/ { a += $2; o += $4; c += $6 } END { print a + 0, o + c }' "$T/forge-$n.out")
	echo "pod $n's attacker: $ATT path attempts, ${FH% *} forged handles" | diag
	check "pod $n's attacker made attempts" test "${ATT:-0}" -gt 1000 -a "${FH% *}" -gt 1000
	expect_eq "pod $n's attacker: 0 cross reads by path" 0 "${CROSS:-x}"
	expect_eq "pod $n's attacker: 0 cross reads or opens by handle" 0 "${FH#* }"
done
finish
