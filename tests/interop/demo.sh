#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# tools/dev demo --spire [--keep]: the README demo against real SPIRE. A SPIRE server and an
# agent (admin socket, svidfs an authorized delegate, svidfs's own entry), a pod entry, svidfs
# on a temporary mountpoint; shows the pod's files, its certificate, a rotation forced with
# `spire-server entry update`, and cleans up (unless --keep).
#   BUILD=build TOOLS=<tests/interop/build-tools.sh output> tests/interop/demo.sh [--keep]
set -uo pipefail
BUILD=$(cd "${BUILD:?}" && pwd)
: "${TOOLS:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
keep=0
[ "${1:-}" = --keep ] && keep=1
T=$(mktemp -d /tmp/svidfs-demo.XXXXXX)
MNT=$T/mnt
diag() { sed 's/^/  /'; }
. "$HERE/spire.sh"
ctl() { "$BUILD/fs/svidfsctl" -s "$T/control.sock" "$@"; }
daemon_pid=""
cleanup_demo() {
	echo
	echo "=== cleaning up (SIGTERM unmounts $MNT)"
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
	topology_down
	mountpoint -q "$MNT" && umount -l "$MNT"
	rm -rf "$T"
}
if [ "$keep" = 0 ]; then
	trap cleanup_demo EXIT
	trap 'exit 143' TERM INT
	trap 'exit 141' PIPE # `| head`: still clean up
fi

echo "=== SPIRE $("$TOOLS/spire-server" --version 2>&1): a server (example.org) and an agent"
ROOT_PORT=$(free_port)
server_conf root "$TD" "$ROOT_PORT"
server_start root || exit 1
sctl root bundle show -format pem >"$T/root-bundle.pem"
join a1 root || exit 1
agent_conf a1 "$ROOT_PORT" yes "$SVIDFS_ID"
agent_start a1 "$TOKEN_a1" || exit 1
echo "    agent config: admin_socket_path = $T/a1/admin/admin.sock"
echo "                  authorized_delegates = [\"$SVIDFS_ID\"]"
echo
echo "=== spire-server entry create: svidfs's own entry, and the pod's"
# show ARGS...: prints the spire-server command line, then runs it.
show() {
	echo "\$ spire-server entry create $*"
	echo "  entry id $(entry root "$@")"
}
show -parentID "$(agent_id a1)" -spiffeID "$SVIDFS_ID" -selector unix:uid:0
uid=$(cat /proc/sys/kernel/random/uuid)
show -parentID "$(agent_id a1)" -spiffeID "spiffe://$TD/ns/demo/sa/web" \
	-selector "k8s:pod-uid:$uid" -selector k8s:ns:demo -selector k8s:sa:web -x509SVIDTTL 3600
spire_wait "svidfs's entry on the agent" actl a1 api fetch x509 || exit 1

echo
echo "=== svidfs on $MNT, delegate of the agent"
mkdir -p "$MNT"
"$BUILD/fs/svidfs" -m "$MNT" --state-dir "$T/state" --control-socket "$T/control.sock" \
	--identities-dir "$T/identities.d" -a "a1=unix://$T/a1/admin/admin.sock" \
	--workload-socket "unix://$T/a1/public/api.sock" >"$T/svidfs.log" 2>&1 &
daemon_pid=$!
spire_wait "svidfs" sh -c "'$BUILD/fs/svidfsctl' -s '$T/control.sock' ping" || exit 1
echo
echo "=== svidfsctl register pod_uid=$uid namespace=demo service_account=web pod_name=web-0"
ctl register pod_uid="$uid" namespace=demo service_account=web pod_name=web-0 ref=demo-volume
ctl wait "$uid" 30000 >/dev/null || { tail "$T/svidfs.log"; exit 1; }
dir=$MNT/pods/$uid
key=$dir/credential-bundle.private-key.pem
echo
echo "=== ls -l $dir"
ls -l "$dir"
echo
echo "=== openssl x509 -in credential-bundle.private-key.pem (the leaf after the key)"
openssl x509 -in "$key" -noout -ext subjectAltName -issuer -enddate -serial | sed 's/^ *//'
echo
echo "=== openssl verify: the chain against the served bundle"
openssl verify -CAfile "$dir/$TD.spiffe-trust-bundle.pem" "$key"
old=$(openssl x509 -in "$key" -noout -serial)
echo
echo "=== forcing a rotation at SPIRE: spire-server entry update (adds a DNS name)"
eid=$(sctl root entry show -spiffeID "spiffe://$TD/ns/demo/sa/web" | awk '/^Entry ID/ { print $NF; exit }')
sctl root entry update -entryID "$eid" -parentID "$(agent_id a1)" \
	-spiffeID "spiffe://$TD/ns/demo/sa/web" -selector "k8s:pod-uid:$uid" -selector k8s:ns:demo \
	-selector k8s:sa:web -x509SVIDTTL 3600 -dns web.demo.svc >/dev/null
spire_wait -t 30 "the rotated SVID" sh -c "[ \"\$(openssl x509 -in '$key' -noout -serial)\" != '$old' ]"
echo "before:    $old"
echo "next read: $(openssl x509 -in "$key" -noout -serial)"
openssl x509 -in "$key" -noout -ext subjectAltName | sed 's/^ *//'
echo
echo "=== svidfsctl list"
ctl list
if [ "$keep" = 1 ]; then
	echo
	echo "Still running in $T (svidfs pid $daemon_pid, SPIRE pids$SPIRE_PIDS). Try:"
	echo "  ls -l $dir; cat $dir/status.json"
	echo "  $TOOLS/spire-server entry show -socketPath $T/root/api.sock"
	echo "Stop with: kill $daemon_pid$SPIRE_PIDS; umount $MNT; rm -rf $T"
fi
