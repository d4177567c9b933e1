#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Files per layout against what the development agent issued: exact bytes (canonical PEM as
# openssl writes it, key matches leaf, chain verifies to the agent's root), sizes, modes,
# custom names, JWT files and bundles, multiple SVIDs, federated bundles.
. "$(dirname "$0")/lib.sh"

"$DEVAGENT" gen-root --trust-domain example.org --out-cert "$T/root.pem" --out-key "$T/root.key"
start_agent a --auto-k8s --upstream-cert "$T/root.pem" --upstream-key "$T/root.key" \
	--federate-with fed.example || exit 1
start_daemon -a "a=unix://$T/a.admin" || exit 1

# canonical FILE: the PEM blocks of FILE re-encoded by openssl, in order.
canonical() {
	awk -v dir="$T/blk" 'BEGIN { n = 0 } /-----BEGIN/ { n++; f = sprintf("%s.%03d", dir, n) }
		{ if (n) print > f }' "$1"
	for b in "$T"/blk.*; do
		if grep -q "PRIVATE KEY" "$b"; then openssl pkey -in "$b"; else openssl x509 -in "$b"; fi
	done
	rm -f "$T"/blk.*
}

# leaf_id FILE: the URI SAN of the first certificate in FILE.
leaf_id() {
	openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | grep -o 'URI:[^,]*' |
		sed 's/^URI://' | tr -d ' '
}

# verify CHAINFILE: leaf + intermediates of the file verify against the agent's root.
verify_chain() {
	awk -v dir="$T/c" '/-----BEGIN CERT/ { n++; f = sprintf("%s.%03d", dir, n) } { if (n) print > f }' "$1"
	cat "$T"/c.0* 2>/dev/null | awk 'NR>0' >/dev/null
	local untrusted=""
	if ls "$T"/c.002 >/dev/null 2>&1; then cat "$T"/c.0[0-9][2-9] >"$T/inter.pem"; untrusted="-untrusted $T/inter.pem"; fi
	# shellcheck disable=SC2086
	openssl verify -CAfile "$T/root.pem" $untrusted "$T/c.001"
	local r=$?
	rm -f "$T"/c.0* "$T/inter.pem"
	return $r
}

same_canonical() { canonical "$1" >"$T/canon" && cmp -s "$1" "$T/canon"; }
size_true() { [ "$(stat -c %s "$1")" = "$(wc -c <"$1")" ]; }

# --- default layout (spiffe) ---
P1=$(uuid)
register_pod "$P1"
D=$MNT/pods/$P1
CB=$D/credential-bundle.private-key.pem
check "spiffe layout: credential bundle present" test -s "$CB"
check "credential bundle starts with a PKCS#8 PRIVATE KEY block" \
	sh -c "head -1 '$CB' | grep -qx -- '-----BEGIN PRIVATE KEY-----'"
check "credential bundle: canonical PEM bytes (key, leaf, intermediates)" same_canonical "$CB"
check "credential bundle: key matches the leaf" "$CHECK" keymatch "$CB"
check "credential bundle: chain verifies to the agent's root" verify_chain "$CB"
expect_eq "leaf SPIFFE ID from auto-k8s" "spiffe://example.org/ns/ns1/sa/sa1" "$(leaf_id "$CB")"
expect_eq "leaf serial is the one status reports" "$(status_serial "$P1")" "$(serial_of "$CB")"
TB=$D/example.org.spiffe-trust-bundle.pem
check "trust bundle is the agent's root, byte for byte" \
	cmp -s "$TB" <(openssl x509 -in "$T/root.pem")
check "sizes at stat equal the bytes read" size_true "$CB"
check "trust bundle size is true" size_true "$TB"
expect_eq "key file mode 0400" 400 "$(stat -c %a "$CB")"
expect_eq "bundle mode 0444" 444 "$(stat -c %a "$TB")"
expect_eq "status.json mode 0444" 444 "$(stat -c %a "$D/status.json")"
check "status.json is JSON without key material" \
	sh -c "python3 -m json.tool '$D/status.json' >/dev/null && ! grep -q PRIVATE '$D/status.json'"
check "status.json names the serving agent" grep -q '"agent": "a"' "$D/status.json"
check "ls -l of the pod directory" ls -l "$D"
expect_eq "spiffe layout lists exactly its files" \
	"credential-bundle.private-key.pem example.org.spiffe-trust-bundle.pem jwt jwt-bundles status.json svids" \
	"$(ls "$D" | tr '\n' ' ' | sed 's/ $//')"

# --- spiffe-helper layout, owner and group ---
P2=$(uuid)
register_pod "$P2" layout=spiffe-helper uid=1000 gid=2000
D2=$MNT/pods/$P2
check "spiffe-helper: svid.pem is canonical leaf+intermediates" same_canonical "$D2/svid.pem"
check "spiffe-helper: svid_key.pem matches svid.pem" "$CHECK" keymatch "$D2/svid.pem" "$D2/svid_key.pem"
check "spiffe-helper: svid_bundle.pem is the root" cmp -s "$D2/svid_bundle.pem" <(openssl x509 -in "$T/root.pem")
expect_eq "key mode 0440 with a gid" 440 "$(stat -c %a "$D2/svid_key.pem")"
expect_eq "owner uid:gid from the registration" "1000:2000" "$(stat -c %u:%g "$D2/svid_key.pem")"
check "svid.pem chain verifies" verify_chain "$D2/svid.pem"

# --- kubernetes-tls layout ---
P3=$(uuid)
register_pod "$P3" layout=kubernetes-tls
D3=$MNT/pods/$P3
expect_eq "kubernetes-tls names" "ca.crt jwt jwt-bundles status.json svids tls.crt tls.key" \
	"$(ls "$D3" | tr '\n' ' ' | sed 's/ $//')"
check "kubernetes-tls: tls.key matches tls.crt" "$CHECK" keymatch "$D3/tls.crt" "$D3/tls.key"
check "kubernetes-tls: canonical bytes" same_canonical "$D3/tls.crt"

# --- custom (spiffe-helper style) names ---
P4=$(uuid)
register_pod "$P4" svid_file_name=tls.crt svid_key_file_name=tls.key svid_bundle_file_name=svid_bundle.pem \
	jwt_bundle_file_name=jwt_bundle.json "jwt_svid=token.jwt api.example.org"
D4=$MNT/pods/$P4
check "custom names: tls.crt, tls.key, svid_bundle.pem" \
	"$CHECK" keymatch "$D4/tls.crt" "$D4/tls.key"
check "custom names: bundle file" test -s "$D4/svid_bundle.pem"
check "custom names: jwt bundle file is a JWKS" grep -q '"keys"' "$D4/jwt_bundle.json"
check "custom names: jwt_svid file holds a JWT for its audience" \
	sh -c "cut -d. -f2 '$D4/token.jwt' | tr '_-' '/+' | base64 -d 2>/dev/null | grep -q 'api.example.org'"
expect_eq "custom JWT file mode 0400" 400 "$(stat -c %a "$D4/token.jwt")"
check "invalid custom name refused" not ctl register pod_uid="$(uuid)" svid_file_name=../x ref=x
check "clashing custom names refused" \
	not ctl register pod_uid="$(uuid)" svid_file_name=a.pem svid_key_file_name=a.pem ref=x

# --- JWT ---
JWT=$D/jwt/spiffe:%2F%2Fexample.org%2Fservice
check "jwt/<audience> with '/' percent-encoded is minted on lookup" test -s "$JWT"
check "the JWT's sub is the workload's SPIFFE ID" \
	sh -c "cut -d. -f2 '$JWT' | tr '_-' '/+' | base64 -d 2>/dev/null | grep -q 'spiffe://example.org/ns/ns1/sa/sa1'"
check "a fresh JWT is served again from cache (same bytes, any escaping)" \
	cmp -s "$JWT" "$D/jwt/spiffe%3A%2F%2Fexample.org%2Fservice"
check "jwt/ lists the audiences looked up" sh -c "ls '$D/jwt' | grep -qx 'spiffe:%2F%2Fexample.org%2Fservice'"
check "jwt-bundles/example.org.jwks is a JWKS" grep -q '"keys"' "$D/jwt-bundles/example.org.jwks"

# --- multiple SVIDs ---
agentctl a add-entry "spiffe://example.org/db selectors=k8s:pod-uid:$P1 hint=db" >/dev/null
check "a second SVID appears under svids/<hint>/" wait_for test -s "$D/svids/db/credential-bundle.private-key.pem"
expect_eq "second SVID's ID" "spiffe://example.org/db" "$(leaf_id "$D/svids/db/credential-bundle.private-key.pem")"
check "second SVID's key matches its leaf" "$CHECK" keymatch "$D/svids/db/credential-bundle.private-key.pem"
expect_eq "status counts two SVIDs" 2 "$(ctl status "$P1" | awk '$1 == "svids" { print $2 }')"
agentctl a add-entry "spiffe://example.org/cache selectors=k8s:pod-uid:$P1" >/dev/null
check "an SVID without hint appears under svids/<index>/" wait_for test -s "$D/svids/2/credential-bundle.private-key.pem"

# --- federated bundles ---
P5=$(uuid)
agentctl a add-entry "spiffe://example.org/fed selectors=k8s:pod-uid:$P5 federates_with=fed.example" >/dev/null
ctl register pod_uid="$P5" ref=v5 >/dev/null && ctl wait "$P5" 10000 >/dev/null
D5=$MNT/pods/$P5
check "federated: one bundle file per trust domain" \
	sh -c "test -s '$D5/example.org.spiffe-trust-bundle.pem' && test -s '$D5/fed.example.spiffe-trust-bundle.pem'"
check "federated bundle differs from the own bundle" \
	sh -c "! cmp -s '$D5/example.org.spiffe-trust-bundle.pem' '$D5/fed.example.spiffe-trust-bundle.pem'"
P6=$(uuid)
agentctl a add-entry "spiffe://example.org/fed2 selectors=k8s:pod-uid:$P6 federates_with=fed.example" >/dev/null
ctl register pod_uid="$P6" layout=spiffe-helper include_federated_domains=true ref=v6 >/dev/null &&
	ctl wait "$P6" 10000 >/dev/null
check "jwt-bundles of a federating workload has the federated domain" \
	test -s "$D5/jwt-bundles/fed.example.jwks"
expect_eq "include_federated_domains appends the federated bundle" 2 \
	"$(grep -c 'BEGIN CERTIFICATE' "$MNT/pods/$P6/svid_bundle.pem")"

# --- listings follow changes (regression: without opendir the kernel caches listings) ---
ls "$MNT/pods" >/dev/null
L=$(uuid)
ctl register pod_uid="$L" ref=vl >/dev/null
check "ls pods/ shows a pod registered after an earlier listing" sh -c "ls '$MNT/pods' | grep -qx '$L'"
expect_eq "a pod with no SVID yet lists only the fixed entries" "jwt jwt-bundles status.json svids" \
	"$(ls "$MNT/pods/$L" | tr '\n' ' ' | sed 's/ $//')"
agentctl a add-entry "spiffe://example.org/late selectors=k8s:pod-uid:$L" >/dev/null
check "its listing shows the credential files once the SVID arrives" \
	wait_for sh -c "ls '$MNT/pods/$L' | grep -qx credential-bundle.private-key.pem"
ls "$D/jwt" >/dev/null
cat "$D/jwt/second-audience" >/dev/null
check "ls jwt/ shows an audience looked up after an earlier listing" \
	sh -c "ls '$D/jwt' | grep -qx second-audience"
ctl unregister "$L" >/dev/null
check "ls pods/ drops an unregistered pod" not sh -c "ls '$MNT/pods' | grep -qx '$L'"

# --- host view ---
check "host root can list pods/" sh -c "ls '$MNT/pods' | grep -q '$P1'"
check "svidfsctl list shows SPIFFE IDs and the agent" \
	sh -c "'$SVIDFSCTL' -s '$T/control.sock' list | grep '$P1' | grep 'spiffe://example.org/ns/ns1/sa/sa1' | grep -q ' a '"
check "writes fail (read-only mount)" sh -c "! touch '$D/x' 2>/dev/null"

finish
