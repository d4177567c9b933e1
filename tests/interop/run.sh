#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The real-SPIRE interop suite: the seed's nested topology (tests/interop/spire.sh), svidfs as an
# authorized delegate of two agents, the real svidfs-csi driven the way kubelet drives it,
# go-spiffe judging the development agent against SPIRE, csi-sanity, and node-driver-registrar
# when built (registrar.sh). TAP on stdout, one line per check; run by `tools/dev test-interop`
# (which builds the peers and prints the summary).
#   BUILD=build TOOLS=<dir with spire-server, spire-agent, csi-sanity, interop-check> run.sh
# ONLY="parity pods ..." runs a subset of the sections (names in the `section` calls below).
BUILD=$(cd "${BUILD:?BUILD must point at the meson build directory}" && pwd)
: "${TOOLS:?TOOLS must hold the pinned binaries (tests/interop/build-tools.sh)}"
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../integration/lib.sh"
. "$HERE/spire.sh"
CSI=$BUILD/mount-helper/svidfs-csi
IC=$TOOLS/interop-check
KUBELET=$T/kubelet
CSI_SOCK=$T/csi/csi.sock
chmod 755 "$T"

trap 'topology_down; cleanup' EXIT
trap 'exit 143' TERM INT
trap 'exit 141' PIPE

section() {
	CUR_SECTION=$1
	echo "# === $1: $2"
	[ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# SPIFFE ID (URI SAN) of the first certificate in FILE.
uri_of() {
	awk '/-----BEGIN CERT/ { n++ } n == 1' "$1" | openssl x509 -noout -ext subjectAltName |
		grep -o 'URI:[^,]*' | sed 's/^URI://'
}
# signer_of FILE: which nested server (n1, n2) signed the leaf of FILE: its authority key id is
# one of the server's X.509 authority ids (`spire-server localauthority x509 show`).
signer_of() {
	local aki s
	aki=$(awk '/-----BEGIN CERT/ { n++ } n == 1' "$1" | openssl x509 -noout \
		-ext authorityKeyIdentifier 2>/dev/null | tail -1 | tr -d ' :' | tr 'A-F' 'a-f')
	for s in n1 n2; do
		if [ -n "$aki" ] && sctl "$s" localauthority x509 show | grep -q "Authority ID: $aki\$"; then
			echo "$s"
			return
		fi
	done
	echo "none ($aki)"
}
n_certs() { grep -c 'BEGIN CERTIFICATE' "$1" 2>/dev/null || echo 0; }

# verify_chain FILE BUNDLE: the leaf of FILE verifies through the file's intermediates to BUNDLE.
verify_chain() {
	local d
	d=$(mktemp -d "$T/verify.XXXXXX")
	awk -v d="$d" '/-----BEGIN CERT/ { n++ } n { print > (d "/c" n ".pem") }' "$1"
	cat "$d"/c[2-9].pem >"$d/inter.pem" 2>/dev/null || : >"$d/inter.pem"
	if [ -s "$d/inter.pem" ]; then
		openssl verify -purpose any -CAfile "$2" -untrusted "$d/inter.pem" "$d/c1.pem"
	else
		openssl verify -purpose any -CAfile "$2" "$d/c1.pem"
	fi
}

# publish UID NS SA [-attr k=v...]: kubelet's NodePublishVolume; the reply in $T/publish.out.
publish() {
	local uid=$1 ns=$2 sa=$3
	shift 3
	"$IC" csi-publish -endpoint "unix://$CSI_SOCK" -kubelet-root "$KUBELET" -pod-uid "$uid" \
		-namespace "$ns" -service-account "$sa" -pod-name "$sa-0" "$@" >"$T/publish.out" 2>&1
}
unpublish() {
	"$IC" csi-unpublish -endpoint "unix://$CSI_SOCK" -kubelet-root "$KUBELET" -pod-uid "$1" \
		>"$T/unpublish.out" 2>&1
}
target_of() { echo "$KUBELET/pods/$1/volumes/kubernetes.io~csi/spiffe/mount"; }

start_csi() {
	mkdir -p "$T/csi" "$KUBELET"
	"$CSI" --endpoint "unix://$CSI_SOCK" --node-id interop-node --kubelet-root "$KUBELET" \
		--svidfs-mount "$MNT" --control-socket "$T/control.sock" \
		--publish-timeout "${PUBLISH_TIMEOUT:-10}" >>"$T/csi.log" 2>&1 &
	CSI_PID=$!
	PIDS="$PIDS $CSI_PID"
	wait_for test -S "$CSI_SOCK"
}

# svidfsctl status prints "key   value" lines.
stream_of() { ctl status "$1" | awk '$1 == "stream" { $1 = ""; sub(/^ +/, ""); print }'; }
agent_of() { ctl status "$1" | awk '$1 == "agent" { print $2 }'; }
is_agent() { [ "$(agent_of "$1")" = "$2" ]; }
is_signer() { [ "$(signer_of "$1")" = "$2" ]; }
is_streaming() { [ "$(stream_of "$1")" = streaming ]; }
serial_changed() { [ "$(serial_of "$1")" != "$2" ]; }

echo "# tools: $TOOLS"
"$TOOLS/spire-server" --version 2>&1 | sed 's/^/# spire-server /'

if ! topology_up; then
	not_ok "SPIRE topology (root, 2 nested, federated, 2 workload agents) comes up"
check "docs/spire.md shows the configuration files this suite runs" "$HERE/doc-configs.sh" check \
	"$T" "$ROOT_PORT" "$N1_PORT" "$N2_PORT" "$OTHER_PORT" "$HERE/../../docs/spire.md"
	for f in "$T"/*/server.log "$T"/*/agent.log; do
		echo "--- $f" | diag
		tail -15 "$f" | diag
	done
	finish
	exit 1
fi
ok "SPIRE topology (root, 2 nested, federated, 2 workload agents) comes up"
check "docs/spire.md shows the configuration files this suite runs" "$HERE/doc-configs.sh" check \
	"$T" "$ROOT_PORT" "$N1_PORT" "$N2_PORT" "$OTHER_PORT" "$HERE/../../docs/spire.md"

A1_ADMIN=$T/a1/admin/admin.sock
A2_ADMIN=$T/a2/admin/admin.sock

# ---------------------------------------------------------------------------------------------
if section parity "go-spiffe judges svidfs-devagent against SPIRE (same entries, same questions)"; then
	J=$(uuid)
	for s in n1 n2; do
		a=a${s#n}
		# Created web first, but metrics has the smaller entry id: SPIRE serves it first.
		entry "$s" -parentID "$(agent_id "$a")" -spiffeID "spiffe://$TD/ns/judge/sa/web" \
			-selector "k8s:pod-uid:$J" -selector k8s:ns:judge -selector k8s:sa:web \
			-hint web -federatesWith "spiffe://$FED_TD" -x509SVIDTTL 3600 \
			-entryID "judge-b-web-$s" >/dev/null
		entry "$s" -parentID "$(agent_id "$a")" -spiffeID "spiffe://$TD/ns/judge/sa/metrics" \
			-selector "k8s:pod-uid:$J" -hint metrics -x509SVIDTTL 3600 \
			-entryID "judge-a-metrics-$s" >/dev/null
	done
	spire_wait "judge entries on a1" sh -c "'$IC' first-svid -admin unix://$A1_ADMIN \
		-selector k8s:pod-uid:$J -selector k8s:ns:judge -selector k8s:sa:web -timeout 5s |
		grep -c spiffe:// | grep -qx 2"
	"$DEVAGENT" gen-root --trust-domain "$TD" --out-cert "$T/dev-root.pem" \
		--out-key "$T/dev-root.key" >/dev/null
	"$DEVAGENT" --trust-domain "$TD" -s "$T/dev.wl" -a "$T/dev.admin" -C "$T/dev.ctl" \
		--upstream-cert "$T/dev-root.pem" --upstream-key "$T/dev-root.key" --svid-ttl 1h \
		--federate-with "$FED_TD" \
		--entry "$SVIDFS_ID selectors=unix:uid:0" \
		--entry "spiffe://$TD/ns/judge/sa/web selectors=k8s:pod-uid:$J,k8s:ns:judge,k8s:sa:web hint=web federates_with=$FED_TD id=judge-b-web" \
		--entry "spiffe://$TD/ns/judge/sa/metrics selectors=k8s:pod-uid:$J hint=metrics id=judge-a-metrics" \
		>"$T/dev.log" 2>&1 &
	PIDS="$PIDS $!"
	wait_for "$DEVAGENT" ctl --control "$T/dev.ctl" ping
	args=(-audience interop.example -ttl 3600)
	dargs=(-selector "k8s:pod-uid:$J" -selector k8s:ns:judge -selector k8s:sa:web
		-selector k8s:pod-name:web-0 -nomatch-selector "k8s:pod-uid:$(uuid)")
	"$IC" workload -socket "unix://$T/a1/public/api.sock" -audience interop.example >"$T/spire.w"
	"$IC" delegated -admin "unix://$A1_ADMIN" "${args[@]}" "${dargs[@]}" >"$T/spire.d"
	"$IC" workload -socket "unix://$T/dev.wl" -audience interop.example >"$T/dev.w"
	"$IC" delegated -admin "unix://$T/dev.admin" "${args[@]}" "${dargs[@]}" >"$T/dev.d"
	cat "$T/spire.w" "$T/spire.d" >"$T/spire.profile"
	cat "$T/dev.w" "$T/dev.d" >"$T/dev.profile"
	check "go-spiffe parses SPIRE's answers (no ERROR in its profile)" \
		not grep -q ' ERROR ' "$T/spire.profile"
	# One check per fact SPIRE shows: the development agent must show the same.
	while read -r key val; do
		dv=$(awk -v k="$key" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$T/dev.profile")
		if [ "$dv" = "$val" ]; then
			ok "devagent = SPIRE: $key"
		else
			not_ok "devagent = SPIRE: $key"
			echo "SPIRE:    $val" | diag
			echo "devagent: $dv" | diag
		fi
	done <"$T/spire.profile"
	extra=$(awk 'NR == FNR { k[$1] = 1; next } !($1 in k)' "$T/spire.profile" "$T/dev.profile")
	expect_eq "devagent shows no fact SPIRE does not" "" "$extra"
fi

# ---------------------------------------------------------------------------------------------
# svidfs with both agents (the seed's node), and svidfs-csi in front of it.
start_daemon -a "a1=unix://$A1_ADMIN" -a "a2=unix://$A2_ADMIN" --failover-ms 1000 \
	--workload-socket "unix://$T/a1/public/api.sock" || {
	finish
	exit 1
}
check "svidfs-csi listens" start_csi
check "self/ serves svidfs's own SVID from a1's Workload API" \
	spire_wait -t 20 "self/" sh -c "[ \"\$(awk '/BEGIN CERT/ { n++ } n == 1' '$MNT/self/credential-bundle.private-key.pem' | openssl x509 -noout -ext subjectAltName | grep -o 'URI:.*')\" = 'URI:$SVIDFS_ID' ]"

# Pod A (shop/web): two entries (hints web, metrics), federated with other.org, TTL 30 s.
A=$(uuid)
# Entry ids podA-1-* < podA-2-*: the web SVID is the default, metrics under svids/metrics.
ENTRY_ID=podA-1-web pod_entry "spiffe://$TD/ns/shop/sa/web" "$A" shop web -hint web \
	-federatesWith "spiffe://$FED_TD" -x509SVIDTTL 30 -jwtSVIDTTL 120
for s in n1 n2; do
	entry "$s" -parentID "$(agent_id "a${s#n}")" -spiffeID "spiffe://$TD/ns/shop/sa/web-metrics" \
		-selector "k8s:pod-uid:$A" -hint metrics -x509SVIDTTL 30 -entryID "podA-2-metrics-$s" >/dev/null
done
DA=$(target_of "$A")
CA_FILE=$DA/credential-bundle.private-key.pem
BUNDLE=$DA/$TD.spiffe-trust-bundle.pem

if section pods "each pod's files come from real SPIRE"; then
	t0=$(now_ms)
	check "CSI publish of pod A succeeds (entries synced to the agents)" \
		sh -c "for i in \$(seq 60); do '$IC' csi-publish -endpoint unix://$CSI_SOCK \
		-kubelet-root $KUBELET -pod-uid $A -namespace shop -service-account web \
		-pod-name web-0 -attr svidfs.spiffe.io/jwt_svids=api.example.org=api.jwt && exit 0; \
		sleep 0.5; done; exit 1"
	echo "publish answered after $(($(now_ms) - t0)) ms" | diag
	# The metrics entry may reach the agent a sync later: until then it is the only SVID.
	check "the SPIFFE ID is the entry's (the smallest entry id's: the default SVID)" \
		spire_wait -t 30 "default SVID" sh -c "[ \"\$(awk '/BEGIN CERT/ { n++ } n == 1' '$CA_FILE' | openssl x509 -noout -ext subjectAltName | grep -o 'URI:.*')\" = 'URI:spiffe://$TD/ns/shop/sa/web' ]"
	check "the key matches the leaf" "$CHECK" keymatch "$CA_FILE"
	check "the chain verifies with openssl against the served bundle" verify_chain "$CA_FILE" "$BUNDLE"
	expect_eq "the leaf is signed by nested server n1 (agent a1 serves the pod)" n1 "$(signer_of "$CA_FILE")"
	expect_eq "the chain is leaf + nested intermediate" 2 "$(n_certs "$CA_FILE")"
	check "the served bundle is the root server's bundle" cmp "$BUNDLE" "$T/root-bundle.pem"
	check "the intermediate is issued by the root" sh -c "awk '/BEGIN CERT/ { n++ } n == 2' '$CA_FILE' |
		openssl verify -CAfile '$T/root-bundle.pem'"
	check "the federated bundle file appears" cmp "$DA/$FED_TD.spiffe-trust-bundle.pem" "$T/other-bundle.pem"
	# The metrics entry may reach the agent a sync after the first one: wait for it.
	check "the second SVID (hint metrics) is under svids/metrics" spire_wait -t 30 "svids/metrics" sh -c \
		"ls '$DA/svids/metrics/' && [ \"\$(awk '/BEGIN CERT/ { n++ } n == 1' $DA/svids/metrics/credential-bundle.private-key.pem |
		openssl x509 -noout -ext subjectAltName | grep -o 'URI:.*')\" = 'URI:spiffe://$TD/ns/shop/sa/web-metrics' ]"
	check "status.json names the SPIFFE IDs and agent a1" sh -c \
		"grep -q 'spiffe://$TD/ns/shop/sa/web\"' '$DA/status.json' && grep -q '\"agent\": \"a1\"' '$DA/status.json'"
	check "the JWT-SVID file verifies against the served JWKS with aud api.example.org" \
		"$IC" jwt-verify -token "$DA/api.jwt" -jwks "$DA/jwt-bundles/$TD.jwks" \
		-trust-domain "$TD" -audience api.example.org
	check "jwt/<audience> verifies against the served JWKS with that aud" \
		"$IC" jwt-verify -token "$DA/jwt/other.example" -jwks "$DA/jwt-bundles/$TD.jwks" \
		-trust-domain "$TD" -audience other.example
fi

if section rotation "SVID rotation by TTL and by entry update"; then
	s0=$(serial_of "$CA_FILE")
	t0=$(now_ms)
	check "the 30 s SVID is rotated by SPIRE and shows on the next open (within 40 s)" \
		spire_wait -t 40 "TTL rotation" serial_changed "$CA_FILE" "$s0"
	echo "TTL rotation seen after $(($(now_ms) - t0)) ms" | diag
	check "the rotated chain verifies" verify_chain "$CA_FILE" "$BUNDLE"
	# Pod B: a long TTL, then `entry update` adds a DNS name: the new SVID carries it.
	B=$(uuid)
	pod_entry "spiffe://$TD/ns/shop/sa/api" "$B" shop api -x509SVIDTTL 3600
	check "CSI publish of pod B" sh -c "for i in \$(seq 60); do '$IC' csi-publish \
		-endpoint unix://$CSI_SOCK -kubelet-root $KUBELET -pod-uid $B -namespace shop \
		-service-account api -pod-name api-0 && exit 0; sleep 0.5; done; exit 1"
	DB=$(target_of "$B")
	eid=$(sctl n1 entry show -spiffeID "spiffe://$TD/ns/shop/sa/api" | awk '/^Entry ID/ { print $NF; exit }')
	s0=$(serial_of "$DB/credential-bundle.private-key.pem")
	t0=$(now_ms)
	sctl n1 entry update -entryID "$eid" -parentID "$(agent_id a1)" \
		-spiffeID "spiffe://$TD/ns/shop/sa/api" -selector "k8s:pod-uid:$B" \
		-selector k8s:ns:shop -selector k8s:sa:api -x509SVIDTTL 3600 -dns api.shop.svc >/dev/null
	check "spire-server entry update: the new SVID (with the DNS SAN) shows on the next open" \
		spire_wait -t 30 "entry update" sh -c "awk '/BEGIN CERT/ { n++ } n == 1' \
		'$DB/credential-bundle.private-key.pem' | openssl x509 -noout -ext subjectAltName |
		grep -q DNS:api.shop.svc"
	echo "entry update visible after $(($(now_ms) - t0)) ms" | diag
fi

# ---------------------------------------------------------------------------------------------
if section ca "CA rotation with SPIRE's forced-rotation commands (root: prepare, activate, taint, revoke)"; then
	authority_ids() { sctl root localauthority x509 show | awk '/Authority ID:/ { print $NF }'; }
	old=$(sctl root localauthority x509 show | awk '/Active X.509 authority/ { f = 1 } f && /Authority ID/ { print $NF; exit }')
	t0=$(now_ms)
	sctl root localauthority x509 prepare >"$T/prepare.out"
	new=$(awk '/Authority ID/ { print $NF; exit }' "$T/prepare.out")
	check "prepare: the new root reaches the pod's bundle file (2 roots)" \
		spire_wait -t 60 "prepared root in the bundle" sh -c "[ \$(grep -c 'BEGIN CERT' '$BUNDLE') = 2 ]"
	echo "prepared root in the pod's bundle $(($(now_ms) - t0)) ms after prepare returned" | diag
	sctl root bundle show -format pem >"$T/root-bundle-2.pem"
	check "the bundle file equals SPIRE's bundle after prepare" cmp "$BUNDLE" "$T/root-bundle-2.pem"
	sctl root localauthority x509 activate -authorityID "$new" >/dev/null
	t0=$(now_ms)
	sctl root localauthority x509 taint -authorityID "$old" >"$T/taint.out" 2>&1
	# The nested servers re-sign their intermediates with the new root, the agents re-sign every
	# SVID whose chain has the tainted key: the pod's chain must verify against the new root alone.
	awk '/BEGIN CERT/ { n++ } { print > ("'"$T"'/bundle2-" n ".pem") }' "$T/root-bundle-2.pem"
	newroot=""
	for f in "$T"/bundle2-1.pem "$T"/bundle2-2.pem; do
		if openssl x509 -in "$f" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' :' |
			grep -qi "^$new\$"; then newroot=$f; fi
	done
	[ -n "$newroot" ] || { echo "no root with SKI $new; using the second" | diag; newroot=$T/bundle2-2.pem; }
	check "taint: every pod's chain moves to the new root (pod A)" \
		spire_wait -t 120 "chain under the new root" verify_chain "$CA_FILE" "$newroot"
	echo "pod A's chain under the new root $(($(now_ms) - t0)) ms after taint" | diag
	# Every agent: a2 (nested server n2) must re-sign too, or a failover would serve a chain
	# to the revoked root. svidfs's own SVID from a2's Workload API shows a2's chain.
	a2_under_new_root() {
		rm -rf "$T/a2fetch" && mkdir -p "$T/a2fetch" &&
			actl a2 api fetch x509 -write "$T/a2fetch" >/dev/null &&
			verify_chain "$T/a2fetch/svid.0.pem" "$newroot"
	}
	check "taint: agent a2's chains (nested server n2) move to the new root too" \
		spire_wait -t 120 "a2 under the new root" a2_under_new_root
	echo "a2's chain under the new root $(($(now_ms) - t0)) ms after taint" | diag
	if [ -n "${B:-}" ]; then
		check "taint: pod B's chain moves to the new root too" \
			spire_wait -t 60 "pod B chain" verify_chain "$(target_of "$B")/credential-bundle.private-key.pem" "$newroot"
	fi
	t0=$(now_ms)
	sctl root localauthority x509 revoke -authorityID "$old" >"$T/revoke.out" 2>&1
	check "revoke: the old root leaves the pod's bundle file" \
		spire_wait -t 60 "old root gone" sh -c "[ \$(grep -c 'BEGIN CERT' '$BUNDLE') = 1 ]"
	echo "old root gone from the bundle $(($(now_ms) - t0)) ms after revoke" | diag
	a2_bundle_is_new_root() {
		rm -rf "$T/a2fetch" && mkdir -p "$T/a2fetch" &&
			actl a2 api fetch x509 -write "$T/a2fetch" >/dev/null &&
			[ "$(n_certs "$T/a2fetch/bundle.0.pem")" = 1 ]
	}
	check "revoke: agent a2's bundle drops the old root too" \
		spire_wait -t 60 "a2 bundle" a2_bundle_is_new_root
	check "after revoke the bundle file is the new root" cmp "$BUNDLE" "$newroot"
	check "and the chain still verifies against it" verify_chain "$CA_FILE" "$BUNDLE"
	cp "$BUNDLE" "$T/root-bundle.pem"
fi

# ---------------------------------------------------------------------------------------------
if section failover "dual agents: a1 killed, svidfs serves pod A from a2 (n2), then fails back"; then
	"$IC" readers "$CA_FILE" >"$T/readers-fo.out" 2>&1 &
	readers=$!
	t0=$(now_ms)
	kill -9 "$(agent_pid a1)"
	check "svidfs moves pod A to agent a2" spire_wait "agent a2" is_agent "$A" a2
	echo "moved to a2 $(($(now_ms) - t0)) ms after kill -9 of a1" | diag
	check "the chain now goes through nested server 2" spire_wait "signer n2" is_signer "$CA_FILE" n2
	check "and verifies against the served bundle" verify_chain "$CA_FILE" "$BUNDLE"
	check "status.json names agent a2" grep -q '"agent": "a2"' "$DA/status.json"
	check "a2's chain verifies against the root's current bundle" verify_chain "$CA_FILE" "$T/root-bundle.pem"
	# Bundles are kept per agent: the pod's bundle file is now a2's bundle, byte for byte.
	rm -rf "$T/a2b" && mkdir -p "$T/a2b" && actl a2 api fetch x509 -write "$T/a2b" >/dev/null
	check "the pod's bundle file is agent a2's bundle (kept per agent)" cmp "$BUNDLE" "$T/a2b/bundle.0.pem"
	agent_start a1 || true
	t0=$(now_ms)
	check "failback: pod A returns to a1 once a1 is up again" spire_wait "agent a1" is_agent "$A" a1
	echo "back on a1 $(($(now_ms) - t0)) ms after a1 answered its healthcheck" | diag
	check "the chain goes through nested server 1 again" spire_wait "signer n1" is_signer "$CA_FILE" n1
	kill "$readers" 2>/dev/null
	wait "$readers"
	diag <"$T/readers-fo.out"
	check "readers through the failover and failback: 0 errors, 0 torn" grep -q 'torn=0 errors=0' "$T/readers-fo.out"
fi

# ---------------------------------------------------------------------------------------------
if section authz "svidfs's ID removed from authorized_delegates"; then
	agent_stop a2
	agent_conf a2 "$N2_PORT" yes "spiffe://$TD/someone-else"
	agent_start a2
	C=$(uuid)
	pod_entry "spiffe://$TD/ns/shop/sa/cart" "$C" shop cart
	publish "$C" shop cart -attr svidfs.spiffe.io/agent=a2
	cat "$T/publish.out" | diag
	check "the CSI publish fails" not grep -qx OK "$T/publish.out"
	check "its message: agent a2 answered PERMISSION_DENIED" grep -q 'agent a2: .*PERMISSION_DENIED' "$T/publish.out"
	check "its message names the refused ID and the setting to fix" \
		sh -c "grep -q '$SVIDFS_ID' '$T/publish.out' && grep -q 'authorized_delegates' '$T/publish.out'"
	ctl register pod_uid="$C" namespace=shop service_account=cart pod_name=cart-0 ref=authz agent=a2 >/dev/null
	spire_wait "stream state" sh -c "'$SVIDFSCTL' -s '$T/control.sock' status $C | grep -q PERMISSION_DENIED"
	ctl status "$C" >"$T/authz.status"
	diag <"$T/authz.status"
	check "svidfsctl status says PERMISSION_DENIED from the agent" grep -q 'PERMISSION_DENIED' "$T/authz.status"
	check "svidfsctl status says which ID was refused (not an authorized delegate)" \
		sh -c "grep -q 'caller not configured as an authorized delegate' '$T/authz.status' && grep -q 'refused svidfs ($SVIDFS_ID)' '$T/authz.status'"
	check "status.json says so too" grep -q 'PERMISSION_DENIED' "$MNT/pods/$C/status.json"
	check "the daemon log names the agent, the refusal and the refused ID" \
		grep -q "pods/$C: agent a2: .*PERMISSION_DENIED.*$SVIDFS_ID" "$T/svidfs.log"
	ctl unregister workload="pods/$C" ref=authz >/dev/null
	agent_stop a2
	agent_conf a2 "$N2_PORT" yes "$SVIDFS_ID"
	agent_start a2
fi

# ---------------------------------------------------------------------------------------------
if section nomatch "a pod no entry matches"; then
	E=$(uuid)
	t0=$(now_ms)
	publish "$E" shop ghost
	took=$(($(now_ms) - t0))
	cat "$T/publish.out" | diag
	check "the CSI publish fails" not grep -qx OK "$T/publish.out"
	check "its message says the agent returned no SVID for these selectors" grep -q 'agent a1: .*returned no SVID for these selectors' "$T/publish.out"
	check "and lists the selectors sent" sh -c "grep -q 'k8s:pod-uid:$E' '$T/publish.out' && grep -q 'k8s:ns:shop' '$T/publish.out' && grep -q 'k8s:sa:ghost' '$T/publish.out'"
	echo "publish answered in $took ms" | diag
	ctl register pod_uid="$E" namespace=shop service_account=ghost pod_name=ghost-0 ref=nomatch >/dev/null
	spire_wait "no-match state" sh -c "'$SVIDFSCTL' -s '$T/control.sock' status $E | grep -q 'no SVID'"
	ctl status "$E" >"$T/nomatch.status"
	diag <"$T/nomatch.status"
	check "svidfsctl status says the agent returned no SVID, with the selectors" \
		sh -c "grep -q 'returned no SVID for these selectors' '$T/nomatch.status' && grep -q 'k8s:pod-uid:$E' '$T/nomatch.status'"
	check "status.json says the same" sh -c "grep -q 'returned no SVID for these selectors' '$MNT/pods/$E/status.json' && grep -q 'k8s:sa:ghost' '$MNT/pods/$E/status.json'"
	check "the daemon log says it once per registration, with the selectors" \
		sh -c "n=\$(grep -c 'pods/$E: agent a1: .*returned no SVID.*k8s:pod-uid:$E' '$T/svidfs.log'); [ \$n -ge 1 ] && [ \$n -le 2 ]"
	t0=$(now_ms)
	err=$(timeout 5 cat "$MNT/pods/$E/credential-bundle.private-key.pem" 2>&1 >/dev/null)
	took=$(($(now_ms) - t0))
	check "a reader gets ENOENT at once (${took} ms)" sh -c "echo '$err' | grep -q 'No such file' && [ $took -lt 1000 ]"
	ctl unregister workload="pods/$E" ref=nomatch >/dev/null
fi

# ---------------------------------------------------------------------------------------------
if section resilience "agent restart, server restart, agent without its server"; then
	F=$(uuid)
	pod_entry "spiffe://$TD/ns/shop/sa/queue" "$F" shop queue -x509SVIDTTL 30
	check "CSI publish of pod F (served by a1 only)" sh -c "for i in \$(seq 60); do '$IC' csi-publish \
		-endpoint unix://$CSI_SOCK -kubelet-root $KUBELET -pod-uid $F -namespace shop \
		-service-account queue -pod-name queue-0 -attr svidfs.spiffe.io/agent=a1 && exit 0; sleep 0.5; done; exit 1"
	FF=$(target_of "$F")/credential-bundle.private-key.pem
	"$IC" readers "$FF" >"$T/readers-res.out" 2>&1 &
	readers=$!
	# 1. the agent restarts
	agent_stop a1
	check "agent a1 down: status shows the outage" spire_wait "outage" not is_streaming "$F"
	check "agent a1 down: the last good SVID is still served" "$CHECK" keymatch "$FF"
	agent_start a1
	check "agent a1 back: the stream resumes" spire_wait "streaming" is_streaming "$F"
	s0=$(serial_of "$FF")
	check "rotation resumes after the agent restart" spire_wait -t 40 "rotation" serial_changed "$FF" "$s0"
	# 2. the nested server restarts
	server_stop n1
	server_start n1
	s0=$(serial_of "$FF")
	check "rotation resumes after the server restart" spire_wait -t 60 "rotation" serial_changed "$FF" "$s0"
	# 3. the agent loses its server for longer than half the SVID's life
	server_stop n1
	s0=$(serial_of "$FF")
	sleep 20 # the outage itself (not a synchronisation): longer than a rotation period
	check "server down 20 s: the file still serves a valid key pair" "$CHECK" keymatch "$FF"
	server_start n1
	check "server back: rotation resumes" spire_wait -t 60 "rotation" serial_changed "$FF" "$s0"
	check "and the new chain verifies" verify_chain "$FF" "$BUNDLE"
	kill "$readers" 2>/dev/null
	wait "$readers"
	diag <"$T/readers-res.out"
	check "readers through all three: 0 errors, 0 torn" grep -q 'torn=0 errors=0' "$T/readers-res.out"
fi

# ---------------------------------------------------------------------------------------------
if section csi-sanity "kubernetes-csi csi-sanity against svidfs-csi"; then
	. "$HERE/csi-sanity.sh"
fi

if section registrar "kubernetes-csi csi-node-driver-registrar: kubelet's registration handshake"; then
	. "$HERE/registrar.sh"
fi

if section teardown "unpublish and clean exit"; then
	for p in ${A:-} ${B:-} ${F:-}; do
		unpublish "$p"
		check "unpublish of pod $p" grep -qx OK "$T/unpublish.out"
	done
	check "svidfs exits 0 on SIGTERM" stop_daemon
	expect_eq "svidfs exit status" 0 "${DAEMON_EXIT:-}"
fi

finish
