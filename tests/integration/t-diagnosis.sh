#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Diagnosis: what svidfs says when a pod gets no SVID, in the agent's own terms (found against
# real SPIRE by tests/interop, whose users saw only "context deadline exceeded"):
# - an agent that answers the pod's selectors with an empty SVID list (no entry matches):
#   status.json, `svidfsctl status` and one log line say so and list the selectors sent;
#   readers get ENOENT at once; the diagnosis goes away when an entry appears.
# - an agent that refuses svidfs as a delegate (PERMISSION_DENIED): the same places say so
#   and name the setting to fix (authorized_delegates).
. "$(dirname "$0")/lib.sh"

start_agent a --entry 'spiffe://example.org/other selectors=k8s:ns:elsewhere' || exit 1
# b authorizes only a uid that is not ours: PERMISSION_DENIED for svidfs, as SPIRE's
# authorized_delegates without svidfs's SPIFFE ID.
start_agent b --auto-k8s --authorized-uid 54321 || exit 1
start_daemon -a "a=unix://$T/a.admin" -a "b=unix://$T/b.admin" || exit 1

stream_of() { ctl status "$1" | awk '$1 == "stream" { $1 = ""; sub(/^ +/, ""); print }'; }

P=$(uuid)
ctl register pod_uid="$P" namespace=shop service_account=ghost pod_name=ghost-0 ref=r agent=a \
	>/dev/null
check "no entry matches: svidfsctl status says the agent returned no SVID for these selectors" \
	wait_for sh -c "'$SVIDFSCTL' -s '$T/control.sock' status $P | grep -q 'returned no SVID for these selectors'"
s=$(stream_of "$P")
echo "$s" | diag
check "and lists every selector sent" sh -c "echo '$s' | grep -q 'k8s:pod-uid:$P, k8s:ns:shop, k8s:sa:ghost, k8s:pod-name:ghost-0'"
check "status.json says the same" grep -q "returned no SVID for these selectors: k8s:pod-uid:$P" \
	"$MNT/pods/$P/status.json"
check "one log line names the pod, the agent and the selectors" \
	sh -c "[ \$(grep -c 'pods/$P: agent a: .*returned no SVID.*k8s:sa:ghost' '$T/svidfs.log') = 1 ]"
t0=$(date +%s%N)
err=$(cat "$MNT/pods/$P/credential-bundle.private-key.pem" 2>&1 >/dev/null)
took=$((($(date +%s%N) - t0) / 1000000))
check "a reader gets ENOENT at once (${took} ms)" sh -c "echo '$err' | grep -q 'No such file' && [ $took -lt 1000 ]"
agentctl a add-entry spiffe://example.org/ghost selectors=k8s:pod-uid:"$P" >/dev/null
check "an entry appears: the SVID is served" ctl wait "$P" 10000
check "and the diagnosis is gone" wait_for sh -c "[ \"\$('$SVIDFSCTL' -s '$T/control.sock' status $P | awk '\$1 == \"stream\" { print \$2 }')\" = streaming ]"

Q=$(uuid)
ctl register pod_uid="$Q" namespace=shop service_account=web pod_name=web-0 ref=r agent=b \
	>/dev/null
check "refused: svidfsctl status says PERMISSION_DENIED and what to fix" \
	wait_for sh -c "'$SVIDFSCTL' -s '$T/control.sock' status $Q | grep 'PERMISSION_DENIED' | grep -q 'authorized_delegates'"
stream_of "$Q" | diag
check "status.json says so too" grep -q 'PERMISSION_DENIED.*authorized_delegates' "$MNT/pods/$Q/status.json"
check "a log line names the pod, the agent and the refusal" \
	grep -q "pods/$Q: agent b: .*PERMISSION_DENIED.*authorized_delegates" "$T/svidfs.log"
# An observation window, not a synchronisation: svidfs retries every ~250 ms meanwhile.
check "the refusal is logged once, not at every retry" \
	sh -c "sleep 2; [ \$(grep -c 'pods/$Q: agent b: ' '$T/svidfs.log') = 1 ]"

finish
