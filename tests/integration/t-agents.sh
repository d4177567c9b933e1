#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Agents: two agents (nested SPIRE: one root, two intermediates) with an ordered failover list;
# the serving agent goes down, the workload moves within seconds, and moves back when it
# recovers, while readers read (no torn file, no error). An agent restart while readers read:
# the last good state keeps being served, status.json shows the outage, the stream resumes.
. "$(dirname "$0")/lib.sh"

"$DEVAGENT" gen-root --trust-domain example.org --out-cert "$T/root.pem" --out-key "$T/root.key"
start_agent a --auto-k8s --upstream-cert "$T/root.pem" --upstream-key "$T/root.key" || exit 1
start_agent b --auto-k8s --upstream-cert "$T/root.pem" --upstream-key "$T/root.key" || exit 1
start_daemon -a "a=unix://$T/a.admin" -a "b=unix://$T/b.admin" --failover-ms 500 || exit 1

agent_of() { ctl status "$1" | awk '$1 == "agent" { print $2 }'; }
stream_of() { ctl status "$1" | awk '$1 == "stream" { print $2 }'; }
# leaf_issuer FILE: the issuing intermediate's subject key id (tells agent a from agent b).
issuer_of() {
	awk '/-----BEGIN CERT/ { n++ } n == 1' "$1" |
		openssl x509 -noout -ext authorityKeyIdentifier 2>/dev/null | tail -1 | tr -d ' '
}

P=$(uuid)
register_pod "$P" agent=a agent=b
D=$MNT/pods/$P
CB=$D/credential-bundle.private-key.pem
expect_eq "served by the first agent of its list" a "$(agent_of "$P")"
issuer_a=$(issuer_of "$CB")
Q=$(uuid)
register_pod "$Q" agent=b
expect_eq "a registration naming one agent is served by it" b "$(agent_of "$Q")"
check "an unknown agent name is refused" not ctl register pod_uid="$(uuid)" agent=nope ref=x

# --- failover to b and back, with readers ---
# Readers from before the outage until the files come from a again (at most 60 s).
"$CHECK" readers "$CB" 2 60000 "$T/readers1.ready" "$T/readers1.stop" >"$T/readers1.out" 2>&1 &
readers=$!
check "readers are reading" wait_for test -e "$T/readers1.ready"
agentctl a restart 4000 >/dev/null
start=$(date +%s%N)
check "moved to agent b within 5 s of a's outage" wait_for sh -c "[ \"\$('$SVIDFSCTL' -s '$T/control.sock' status $P | awk '\$1 == \"agent\" { print \$2 }')\" = b ]"
moved_ms=$((($(date +%s%N) - start) / 1000000))
echo "moved to b after ${moved_ms} ms" | diag
check "the files now come from agent b (a different issuing CA)" \
	wait_for sh -c "[ \"\$(awk '/-----BEGIN CERT/ { n++ } n == 1' '$CB' | openssl x509 -noout -ext authorityKeyIdentifier | tail -1 | tr -d ' ')\" != '$issuer_a' ]"
check "the key still matches the leaf after the switch" "$CHECK" keymatch "$CB"
check "status.json names agent b" grep -q '"agent": "b"' "$D/status.json"
check "moved back to agent a after it recovered" \
	sh -c "for i in \$(seq 150); do [ \"\$('$SVIDFSCTL' -s '$T/control.sock' status $P | awk '\$1 == \"agent\" { print \$2 }')\" = a ] && exit 0; sleep 0.1; done; exit 1"
check "the files come from agent a again" \
	wait_for sh -c "[ \"\$(awk '/-----BEGIN CERT/ { n++ } n == 1' '$CB' | openssl x509 -noout -ext authorityKeyIdentifier | tail -1 | tr -d ' ')\" = '$issuer_a' ]"
touch "$T/readers1.stop"
wait $readers
r=$?
cat "$T/readers1.out" | diag
expect_eq "readers during failover and back: no torn file, no error" 0 "$r"
check "readers saw both agents' SVIDs" grep -Eq 'serials=([2-9]|[1-9][0-9])' "$T/readers1.out"

# --- agent restart while readers read (single agent) ---
before=$(serial_of "$D/../$Q/credential-bundle.private-key.pem")
"$CHECK" readers "$MNT/pods/$Q/credential-bundle.private-key.pem" 2 60000 "$T/readers2.ready" \
	"$T/readers2.stop" >"$T/readers2.out" 2>&1 &
readers=$!
check "readers are reading" wait_for test -e "$T/readers2.ready"
agentctl b restart 2500 >/dev/null
check "status.json shows the stream down during the restart" \
	wait_for sh -c "! grep -q '\"stream_state\": \"streaming\"' '$MNT/pods/$Q/status.json'"
expect_eq "the last good SVID is still served during the outage" "$before" \
	"$(serial_of "$MNT/pods/$Q/credential-bundle.private-key.pem")"
# Until the stream is back (the restart's whole outage), at most 60 s.
wait_for sh -c "'$SVIDFSCTL' -s '$T/control.sock' status $Q | grep -q 'stream *streaming'"
touch "$T/readers2.stop"
wait $readers
r=$?
cat "$T/readers2.out" | diag
expect_eq "readers during the agent restart: no torn file, no error" 0 "$r"
check "the stream resumes after the restart" \
	wait_for sh -c "'$SVIDFSCTL' -s '$T/control.sock' status $Q | grep -q 'stream *streaming'"
check "status.json shows streaming again" wait_for grep -q '"stream_state": "streaming"' "$MNT/pods/$Q/status.json"
check "rotation works after the restart" sh -c "'$DEVAGENT' ctl --control '$T/b.ctl' rotate >/dev/null"
check "and is visible" wait_for sh -c "[ \"\$('$CHECK' serial '$MNT/pods/$Q/credential-bundle.private-key.pem')\" != '$before' ]"

# --- an expired SVID is still served, flagged ---
start_agent c --auto-k8s --svid-ttl 3s || exit 1
stop_daemon
start_daemon -a "a=unix://$T/a.admin" -a "b=unix://$T/b.admin" -a "c=unix://$T/c.admin" \
	--failover-ms 500 || exit 1
E=$(uuid)
register_pod "$E" agent=c
EF=$MNT/pods/$E/credential-bundle.private-key.pem
agentctl c stall 6000 >/dev/null
stalled=$(serial_of "$EF")
check "an SVID that expires while the agent is silent is flagged in status.json" \
	wait_for grep -q '"expired": true' "$MNT/pods/$E/status.json"
expect_eq "and svidfsctl status says expired" true "$(ctl status "$E" | awk '$1 == "expired" { print $2 }')"
expect_eq "the expired SVID is still served" "$stalled" "$(serial_of "$EF")"
check "a fresh SVID replaces it when the agent speaks again" \
	wait_for sh -c "grep -q '\"expired\": false' '$MNT/pods/$E/status.json' && [ \"\$('$CHECK' serial '$EF')\" != '$stalled' ]"

# --- resubscribe ---
check "svidfsctl resubscribe" ctl resubscribe "$P"
check "files still served after a resubscribe" wait_for "$CHECK" keymatch "$CB"

finish
