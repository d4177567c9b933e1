#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Key bytes only in locked memory (svidfs issue 12): the daemon serves pods (Delegated Identity
# API) and its own identity (Workload API, self/), the agent rotates them a few times, then the
# daemon's memory is searched for every private key the agent issued (PKCS#8 DER, the PEM base64
# body as served, and the same without newlines): no occurrence may lie outside mappings that
# are locked and excluded from core dumps (the secure heap), and a core file written by gcore
# must hold none. The served files are secure blobs, and FUSE replies point into them, so the
# current keys are expected in the secure heap (a check that the search sees memory at all).
. "$(dirname "$0")/../integration/lib.sh"

MEMSCAN=$BUILD/tests/hostile/memscan
PODS=${KEYMEM_PODS:-12}
ROTATIONS=${KEYMEM_ROTATIONS:-3}
KEY=credential-bundle.private-key.pem
mkdir -p "$T/keys"

start_agent a --auto-k8s -e "spiffe://example.org/svidfs selectors=unix:uid:0" || exit 1
start_daemon -a "a=unix://$T/a.admin" --workload-socket "unix://$T/a.wl" || exit 1

UIDS=""
for i in $(seq "$PODS"); do
	u=$(uuid)
	UIDS="$UIDS $u"
	register_pod "$u" || echo "register $u failed" | diag
done
DIRS="$MNT/self"
for u in $UIDS; do DIRS="$DIRS $MNT/pods/$u"; done

# save_keys ROUND: copies every served key (the agent's latest) into $T/keys.
save_keys() {
	local d n=0
	for d in $DIRS; do
		n=$((n + 1))
		cp "$d/$KEY" "$T/keys/$n.$1.pem" 2>/dev/null || return 1
	done
}
check "self/ and $PODS pods serve keys" wait_for "$CHECK" keymatch "$MNT/self/$KEY"
check "first keys saved" save_keys 0

# rotated DIR OLD_SERIAL: the file now shows another serial.
rotated() { [ "$(serial_of "$1/$KEY")" != "$2" ]; }
rotate_all() {
	local d s="" ok=0
	for d in $DIRS; do s="$s $(serial_of "$d/$KEY")"; done
	agentctl a rotate >/dev/null || return 1
	set -- $s
	for d in $DIRS; do
		wait_for rotated "$d" "$1" || ok=1
		shift
	done
	return $ok
}
for r in $(seq "$ROTATIONS"); do
	check "rotation $r reached every pod and self/" rotate_all
	check "keys of rotation $r saved" save_keys "$r"
done
NKEYS=$(ls "$T/keys" | wc -l)
expect_eq "distinct keys collected" "$NKEYS" \
	"$(cat "$T/keys"/*.pem | awk '/BEGIN PRIVATE KEY/ {k = ""; next} /END PRIVATE KEY/ {print k} {k = k $0}' | sort -u | wc -l)"

# The process memory, mapping by mapping.
"$MEMSCAN" -v pid "$DAEMON_PID" "$T/keys"/*.pem >"$T/scan.out" 2>&1
rc=$?
grep -v '^# hit' "$T/scan.out" | diag
if [ $rc -eq 0 ]; then
	ok "no key ($NKEYS issued) outside locked, non-dumpable memory"
else
	not_ok "no key ($NKEYS issued) outside locked, non-dumpable memory"
	grep '^# hit' "$T/scan.out" | grep -v 'lo=1 dd=1' | head -30 | sed 's/^# //' | diag
fi
safe=$(awk '$1 == "der" { sub("safe=", "", $3); print $3 }' "$T/scan.out")
check "the current keys are found in the secure heap (the search sees memory)" \
	test "${safe:-0}" -ge $((PODS + 1))

# What a core dump holds: gcore skips the same mappings the kernel's dumper does (VM_DONTDUMP).
# Not in the sanitizer lane: gdb crawls through ASan's terabytes of reserved mappings there.
if grep -q libasan "/proc/$DAEMON_PID/maps"; then
	ok "# SKIP gcore of a sanitizer build"
elif command -v gcore >/dev/null; then
	if gcore -o "$T/core" "$DAEMON_PID" >"$T/gcore.log" 2>&1 && [ -s "$T/core.$DAEMON_PID" ]; then
		"$MEMSCAN" file "$T/core.$DAEMON_PID" "$T/keys"/*.pem >"$T/core.out" 2>&1
		rc=$?
		diag <"$T/core.out"
		if [ $rc -eq 0 ]; then ok "a gcore core file holds no key"; else
			not_ok "a gcore core file holds no key"; fi
		rm -f "$T/core.$DAEMON_PID"
	else
		not_ok "gcore wrote a core file"
		tail -5 "$T/gcore.log" | diag
	fi
else
	ok "# SKIP gcore not installed"
fi

check "the daemon still serves after the dumps" "$CHECK" keymatch "$MNT/self/$KEY"
check "OpenSSL's allocations were routed at start-up (no warning)" \
	not grep -q "OpenSSL allocated memory before start-up" "$T/svidfs.log"
stop_daemon
expect_eq "clean exit" 0 "$DAEMON_EXIT"
finish
