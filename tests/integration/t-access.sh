#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Access: a process placed in a pod's cgroup (systemd and cgroupfs naming, cgroup v2) inside its
# own mount namespace reads its pod through a bind of its pod directory and may walk from the
# mount root into its own pod only; other pods, identities and self are denied and logged once.
# Host processes are governed by modes. Also: bare-node identities from identities.d and self/
# from the Workload API.
. "$(dirname "$0")/lib.sh"

# cgroup v2 (pure or the hybrid "unified" mount) for systemd-named pods, and a cgroup v1
# hierarchy (pids) for the cgroupfs-named one, so both parsers are exercised.
find_cgroup_mounts
if [ -z "$CG2" ]; then
	echo "1..0 # SKIP no cgroup v2 mount"
	exit 0
fi
CGNAME=svidfs-test.$$
A=$(uuid)
B=$(uuid)
C=$(uuid)
A_=$(echo "$A" | tr - _)
C_=$(echo "$C" | tr - _)
CG_A=$CG2/$CGNAME/kubepods.slice/kubepods-pod$A_.slice
CG_C=$CG2/$CGNAME/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$C_.slice
# Pod B: cgroupfs naming, in v1 when there is a v1 hierarchy, else in v2.
CGB_ROOT=${CG1:-$CG2}
CG_B=$CGB_ROOT/$CGNAME/kubepods/besteffort/pod$B
mkdir -p "$CG_A" "$CG_B" "$CG_C" || exit 1
CGROUPS="$CG_A $CG_C $CG2/$CGNAME/kubepods.slice/kubepods-burstable.slice $CG2/$CGNAME/kubepods.slice"
CGROUPS="$CGROUPS $CG_B $CGB_ROOT/$CGNAME/kubepods/besteffort $CGB_ROOT/$CGNAME/kubepods"
CGROUPS="$CGROUPS $CGB_ROOT/$CGNAME $CG2/$CGNAME"
echo "cgroup v2 at $CG2, pod B in ${CG1:+v1 }$CGB_ROOT" | diag

start_node_agent || exit 1
start_daemon -a "a=unix://$T/a.admin" --workload-socket "unix://$T/a.wl" \
	--cgroup-root "/$CGNAME" || exit 1
for p in "$A" "$B" "$C"; do register_pod "$p"; done
KEY=credential-bundle.private-key.pem

check "identities.d: the bare-node identity is served" \
	wait_for "$CHECK" keymatch "$MNT/identities/worker-1/$KEY"
check "self/ comes from the Workload API" wait_for "$CHECK" keymatch "$MNT/self/$KEY"
check "self/ has the daemon's own SPIFFE ID" \
	sh -c "openssl x509 -in '$MNT/self/$KEY' -noout -ext subjectAltName | grep -q spiffe://example.org/svidfs"

mkdir -p "$T/podA"
check "a pod process reads its own files through a bind of its pod directory" \
	in_cgroup "$CG_A" "mount --bind '$MNT/pods/$A' '$T/podA' && '$CHECK' keymatch '$T/podA/$KEY'"
check "a pod process may walk from the mount root into its own pod" \
	in_cgroup "$CG_A" "cat '$MNT/pods/$A/$KEY' >/dev/null"
check "another pod's directory is denied (EACCES)" \
	in_cgroup "$CG_A" "! cat '$MNT/pods/$B/$KEY' 2>'$T/err' && grep -q 'Permission denied' '$T/err'"
check "listing another pod's directory is denied too" in_cgroup "$CG_A" "! ls '$MNT/pods/$B' 2>/dev/null"
check "a pod may not enter node identities" in_cgroup "$CG_A" "! ls '$MNT/identities/worker-1' 2>/dev/null"
check "a pod may not enter self/" in_cgroup "$CG_A" "! ls '$MNT/self' 2>/dev/null"
check "cgroupfs naming${CG1:+ (cgroup v1)}: pod B reaches its pod" in_cgroup "$CG_B" "'$CHECK' keymatch '$MNT/pods/$B/$KEY'"
check "cgroupfs naming: pod B is denied pod A" in_cgroup "$CG_B" "! cat '$MNT/pods/$A/$KEY' 2>/dev/null"
check "systemd burstable naming: pod C reaches its pod, not A" \
	in_cgroup "$CG_C" "cat '$MNT/pods/$C/$KEY' >/dev/null && ! cat '$MNT/pods/$A/$KEY' 2>/dev/null"
for _ in 1 2 3; do in_cgroup "$CG_A" "cat '$MNT/pods/$B/$KEY'" 2>/dev/null; done
expect_eq "the denial (pod A -> pods/B) is logged once" 1 \
	"$(grep -c "denied pods/$B to tid .* in pod $A" "$T/svidfs.log")"
check "the denial log line gives the reason" grep -q "may enter only its own pod directory" "$T/svidfs.log"

# Host processes: modes decide (the test directory must be traversable for them).
chmod 0755 "$T"
check "host root lists every pod" sh -c "ls '$MNT/pods' | grep -q '$A' && ls '$MNT/pods' | grep -q '$B'"
check "host root reads a pod's key" "$CHECK" keymatch "$MNT/pods/$B/$KEY"
check "a host non-root user may not walk into pods/ (root-only)" \
	not setpriv --reuid 65534 --regid 65534 --clear-groups cat "$MNT/pods/$A/example.org.spiffe-trust-bundle.pem"
# Through a bind of a pod's directory (a pod's or a service's view) modes decide.
mkdir -p "$T/viewA"
mount --bind "$MNT/pods/$A" "$T/viewA" && BINDS="$T/viewA $BINDS"
check "through a bind, a non-root user may read certificates and bundles" \
	setpriv --reuid 65534 --regid 65534 --clear-groups cat "$T/viewA/example.org.spiffe-trust-bundle.pem"
check "through a bind, a non-root user may not read a 0400 key" \
	not setpriv --reuid 65534 --regid 65534 --clear-groups cat "$T/viewA/$KEY"
# Outside --cgroup-root: a process in no kubepods hierarchy is a host process; one in a kubepods
# hierarchy where kubelet (as configured) does not put it cannot be attributed and is denied,
# never taken for the host (a wrong --cgroup-root fails closed).
HOSTCG=$CG2/svidfs-other.$$/system.slice/x.service
OUT=$CG2/svidfs-other.$$/kubepods/pod$A
mkdir -p "$OUT" "$HOSTCG"
CGROUPS="$CGROUPS $OUT $CG2/svidfs-other.$$/kubepods $HOSTCG $CG2/svidfs-other.$$/system.slice"
CGROUPS="$CGROUPS $CG2/svidfs-other.$$"
check "a process outside --cgroup-root and any kubepods cgroup is a host process" \
	in_cgroup "$HOSTCG" "cat '$MNT/pods/$B/$KEY' >/dev/null"
check "a kubepods cgroup outside --cgroup-root is denied, not taken for the host" \
	in_cgroup "$OUT" "! cat '$MNT/pods/$B/$KEY' 2>/dev/null && ! cat '$MNT/pods/$A/$KEY' 2>/dev/null"
check "that denial is logged with its reason" \
	grep -q "svidfs-other.$$/kubepods/pod$A: a kubepods cgroup where --cgroup-root does not put it" \
	"$T/svidfs.log"

finish
