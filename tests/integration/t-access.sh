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
CG2=$(findmnt -n -t cgroup2 -o TARGET | head -1)
CG1=$(findmnt -n -t cgroup -o TARGET,OPTIONS | awk '$2 ~ /(^|,)pids(,|$)/ { print $1; exit }')
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

mkdir -p "$T/identities.d"
cat >"$T/identities.d/worker.conf" <<EOF
# a bare-node identity
name = worker-1
selector = node:name:worker-1
key_mode = 0400
EOF
start_agent a --auto-k8s -e "spiffe://example.org/node/worker-1 selectors=node:name:worker-1" \
	-e "spiffe://example.org/svidfs selectors=unix:uid:0" || exit 1
start_daemon -a "a=unix://$T/a.admin" --workload-socket "unix://$T/a.wl" \
	--cgroup-root "/$CGNAME" || exit 1
for p in "$A" "$B" "$C"; do register_pod "$p"; done
KEY=credential-bundle.private-key.pem

# in_pod CGROUP SCRIPT: runs SCRIPT in a new mount namespace as a process of CGROUP.
in_pod() {
	unshare -m --propagation private sh -c "echo \$\$ > '$1/cgroup.procs' && $2"
}

check "identities.d: the bare-node identity is served" \
	wait_for "$CHECK" keymatch "$MNT/identities/worker-1/$KEY"
check "self/ comes from the Workload API" wait_for "$CHECK" keymatch "$MNT/self/$KEY"
check "self/ has the daemon's own SPIFFE ID" \
	sh -c "openssl x509 -in '$MNT/self/$KEY' -noout -ext subjectAltName | grep -q spiffe://example.org/svidfs"

mkdir -p "$T/podA"
check "a pod process reads its own files through a bind of its pod directory" \
	in_pod "$CG_A" "mount --bind '$MNT/pods/$A' '$T/podA' && '$CHECK' keymatch '$T/podA/$KEY'"
check "a pod process may walk from the mount root into its own pod" \
	in_pod "$CG_A" "cat '$MNT/pods/$A/$KEY' >/dev/null"
check "another pod's directory is denied (EACCES)" \
	in_pod "$CG_A" "! cat '$MNT/pods/$B/$KEY' 2>'$T/err' && grep -q 'Permission denied' '$T/err'"
check "listing another pod's directory is denied too" in_pod "$CG_A" "! ls '$MNT/pods/$B' 2>/dev/null"
check "a pod may not enter node identities" in_pod "$CG_A" "! ls '$MNT/identities/worker-1' 2>/dev/null"
check "a pod may not enter self/" in_pod "$CG_A" "! ls '$MNT/self' 2>/dev/null"
check "cgroupfs naming${CG1:+ (cgroup v1)}: pod B reaches its pod" in_pod "$CG_B" "'$CHECK' keymatch '$MNT/pods/$B/$KEY'"
check "cgroupfs naming: pod B is denied pod A" in_pod "$CG_B" "! cat '$MNT/pods/$A/$KEY' 2>/dev/null"
check "systemd burstable naming: pod C reaches its pod, not A" \
	in_pod "$CG_C" "cat '$MNT/pods/$C/$KEY' >/dev/null && ! cat '$MNT/pods/$A/$KEY' 2>/dev/null"
for _ in 1 2 3; do in_pod "$CG_A" "cat '$MNT/pods/$B/$KEY'" 2>/dev/null; done
expect_eq "the denial (pod A -> pods/B) is logged once" 1 \
	"$(grep -c "denied pods/$B to tid .* in pod $A" "$T/svidfs.log")"
check "the denial log line gives the reason" grep -q "may enter only its own pod directory" "$T/svidfs.log"

# Host processes: modes decide (the test directory must be traversable for them).
chmod 0755 "$T"
check "host root lists every pod" sh -c "ls '$MNT/pods' | grep -q '$A' && ls '$MNT/pods' | grep -q '$B'"
check "host root reads a pod's key" "$CHECK" keymatch "$MNT/pods/$B/$KEY"
check "a host non-root user may read certificates and bundles" \
	setpriv --reuid 65534 --regid 65534 --clear-groups cat "$MNT/pods/$A/example.org.spiffe-trust-bundle.pem"
check "a host non-root user may not read a 0400 key" \
	not setpriv --reuid 65534 --regid 65534 --clear-groups cat "$MNT/pods/$A/$KEY"
OUT=$CG2/svidfs-other.$$/kubepods/pod$A
mkdir -p "$OUT"
CGROUPS="$CGROUPS $OUT $CG2/svidfs-other.$$/kubepods $CG2/svidfs-other.$$"
check "a process outside --cgroup-root is not taken for a pod" \
	in_pod "$OUT" "cat '$MNT/pods/$B/$KEY' >/dev/null"

finish
