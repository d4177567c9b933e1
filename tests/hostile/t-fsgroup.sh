#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 12.4, host users in a pod's fsGroup: with volume_mount_group 1000 (gid=1000, key 0440) a
# host user whose groups include 1000 must not read the key from the host view: pods/ and
# identities/ are root-only. Inside the pod's bind mount the fsGroup rule stays.
. "$(dirname "$0")/../integration/lib.sh"
KEY=credential-bundle.private-key.pem
AS_1000="setpriv --reuid 65534 --regid 65534 --groups 1000"
AS_OTHER="setpriv --reuid 65534 --regid 65534 --clear-groups"

mkdir -p "$T/identities.d"
printf 'name = web\nselector = node:name:web\ngid = 1000\n' >"$T/identities.d/web.conf"
start_agent a --auto-k8s -e "spiffe://example.org/web selectors=node:name:web" || exit 1
start_daemon -a "a=unix://$T/a.admin" || exit 1
A=$(uuid)
register_pod "$A" gid=1000
chmod 0755 "$T"
check "identity served" wait_for test -s "$MNT/identities/web/$KEY"

expect_eq "pods/ is root-only (0500)" "500 0 0" "$(stat -c '%a %u %g' "$MNT/pods")"
expect_eq "identities/ is root-only (0500)" "500 0 0" "$(stat -c '%a %u %g' "$MNT/identities")"
expect_eq "the key is 0440 root:1000 (volume_mount_group)" "440 0 1000" \
	"$(stat -c '%a %u %g' "$MNT/pods/$A/$KEY")"
check "a host user in group 1000 cannot read the pod's key from the host view" \
	sh -c "! $AS_1000 cat '$MNT/pods/$A/$KEY' 2>'$T/err' && grep -q 'Permission denied' '$T/err'"
check "... nor list pods/" not $AS_1000 ls "$MNT/pods"
check "... nor read a bare-node identity's key (gid 1000) from identities/" \
	not $AS_1000 cat "$MNT/identities/web/$KEY"
check "a host user may still list the mount root" $AS_OTHER ls "$MNT"

# The pod's view: kubelet bind-mounts pods/<uid> into the pod's volume.
mkdir -p "$T/vol"
mount --bind "$MNT/pods/$A" "$T/vol" && BINDS="$T/vol $BINDS"
check "in the pod's bind mount, a process in fsGroup 1000 reads the key" \
	sh -c "$AS_1000 cat '$T/vol/$KEY' | grep -q 'BEGIN PRIVATE KEY'"
check "in the pod's bind mount, a process without the group cannot" \
	not $AS_OTHER cat "$T/vol/$KEY"
check "in the pod's bind mount, certificates are readable to all" \
	$AS_OTHER cat "$T/vol/example.org.spiffe-trust-bundle.pem"
# A service gets its identity the same way (systemd BindReadOnlyPaths=).
mkdir -p "$T/svc"
mount --bind "$MNT/identities/web" "$T/svc" && BINDS="$T/svc $BINDS"
check "through a bind of identities/web, group 1000 reads the key" \
	sh -c "$AS_1000 cat '$T/svc/$KEY' | grep -q 'BEGIN PRIVATE KEY'"
finish
