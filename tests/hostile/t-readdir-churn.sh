#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 12, listings under churn: pods/ is listed over several readdir calls while other pods
# register and unregister. Positions are stable (a workload's slot), so no listing repeats a
# name and every pod that stayed registered is in every listing.
. "$(dirname "$0")/../integration/lib.sh"

start_agent a --auto-k8s || exit 1
start_daemon -a "a=unix://$T/a.admin" || exit 1
for i in $(seq 300); do echo "$(uuid)"; done >"$T/stable"
for i in $(seq 50); do echo "$(uuid)"; done >"$T/churn"
while read -r u; do ctl register pod_uid="$u" namespace=ns1 service_account=sa1 pod_name=p \
	ref=v >/dev/null; done <"$T/stable"
check "300 stable pods registered" wait_long sh -c "[ \$(ls '$MNT/pods' | wc -l) -ge 300 ]"

# The churn: register and unregister 50 other pods, over and over, until told to stop.
(
	while [ ! -e "$T/stop" ]; do
		while read -r u; do ctl register pod_uid="$u" namespace=ns1 service_account=sa1 \
			pod_name=p ref=c >/dev/null; done <"$T/churn"
		while read -r u; do ctl unregister "$u" c >/dev/null; done <"$T/churn"
		echo x >>"$T/cycles"
	done
) &
CHURN=$!
PIDS="$PIDS $CHURN"
python3 - "$MNT/pods" "$T/stable" "$T/cycles" >"$T/list.out" 2>&1 <<'PY'
import os, sys, time
d, stable = sys.argv[1], set(open(sys.argv[2]).read().split())
bad_dup = bad_missing = n = 0
deadline = time.monotonic() + 120
# At least 50 listings, and until the churn has run through a few cycles.
while n < 50 or (not os.path.exists(sys.argv[3]) and time.monotonic() < deadline):
    names = os.listdir(d)
    n += 1
    if len(names) != len(set(names)):
        bad_dup += 1
    if not stable <= set(names):
        bad_missing += 1
print(n, bad_dup, bad_missing)
PY
touch "$T/stop"
wait "$CHURN"
read -r LISTINGS DUP MISSING <"$T/list.out"
echo "$LISTINGS listings during $(wc -l <"$T/cycles" 2>/dev/null || echo 0) churn cycles" | diag
check "listings were taken (>= 50)" test "${LISTINGS:-0}" -ge 50
expect_eq "no listing repeats a name" 0 "${DUP:-x}"
expect_eq "every listing holds all 300 stable pods" 0 "${MISSING:-x}"
finish
