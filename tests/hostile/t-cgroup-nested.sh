#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Hostile callers against cgroup attribution (svidfs issue 12, items 1 and 2), with real cgroups
# and the real mount. Pod cgroups are made the way kubelet makes them with --cgroup-root=/$ROOT:
# the systemd driver on cgroup v2 ($ROOT.slice/$ROOT-kubepods.slice/...) and the cgroupfs driver
# on a cgroup v1 controller ($ROOT/kubepods/...; on cgroup v2 when there is no v1 hierarchy).
# - A process of pod B that creates a child cgroup named after pod A and moves into it (v2
#   systemd spelling, v1 cgroupfs spelling) is denied A's key from the mount root, and
#   everything else, with the reason logged.
# - A static pod (32-hex UID) reaches its own pod and nothing else: it is not the host.
# - A process under kubepods that is in no pod is denied everything, even identities/.
# - The daemon's own pod (the daemon started inside it) stays a node component; restarted
#   without --cgroup-root (the DaemonSet on kind), the daemon finds pods where it is itself.
. "$(dirname "$0")/../integration/lib.sh"

find_cgroup_mounts
if [ -z "$CG2" ]; then
	echo "1..0 # SKIP no cgroup v2 mount"
	exit 0
fi
# kubelet --cgroup-root=/$ROOT; letters only, so that both kubelet's systemd names and older
# svidfs pod patterns read it.
ROOT=svidfsh$(echo $$ | tr 0-9 a-j)
SD=$CG2/$ROOT.slice/$ROOT-kubepods.slice
FSB=${CG1:-$CG2}
FS=$FSB/$ROOT/kubepods
rmtree() { [ -d "$1" ] && find "$1" -depth -type d -exec rmdir {} \; 2>/dev/null; }
trap 'cleanup; rmtree "$CG2/$ROOT.slice"; rmtree "$FSB/$ROOT"' EXIT

hex64() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
A=$(uuid)
B=$(uuid)
D=$(uuid)
S=$(uuid | tr -d -) # a static pod: kubelet's 32-hex hash
A_=$(echo "$A" | tr - _)
B_=$(echo "$B" | tr - _)
D_=$(echo "$D" | tr - _)

# sd_pod QOS UID_: the pod cgroup of the systemd driver ("" QOS: Guaranteed).
sd_pod() {
	if [ -n "$1" ]; then
		echo "$SD/$ROOT-kubepods-$1.slice/$ROOT-kubepods-$1-pod$2.slice"
	else
		echo "$SD/$ROOT-kubepods-pod$2.slice"
	fi
}
CA=$(sd_pod burstable "$A_")/cri-containerd-$(hex64).scope
CB=$(sd_pod besteffort "$B_")/cri-containerd-$(hex64).scope
CS=$(sd_pod besteffort "$S")/cri-containerd-$(hex64).scope
CD=$(sd_pod "" "$D_")/cri-containerd-$(hex64).scope
CD2=$(sd_pod "" "$D_")/cri-containerd-$(hex64).scope
FB=$FS/besteffort/pod$B/$(hex64)
FS_S=$FS/pod$S/$(hex64)
UNATTR_SD=$SD/foo.scope
UNATTR_FS=$FS/burstable/notapod/x
mkdir -p "$CA" "$CB" "$CS" "$CD" "$CD2" "$FB" "$FS_S" "$UNATTR_SD" "$UNATTR_FS" || exit 1
echo "systemd driver on cgroup v2 at $CG2/$ROOT.slice, cgroupfs driver on $FSB/$ROOT" | diag

start_node_agent || exit 1
# The daemon runs in pod D's container, as in its DaemonSet.
REAL_SVIDFS=$SVIDFS
SVIDFS=$T/svidfs-in-pod
cat >"$SVIDFS" <<EOF
#!/bin/sh
echo \$\$ >'$CD/cgroup.procs' || exit 1
exec '$REAL_SVIDFS' "\$@"
EOF
chmod +x "$SVIDFS"
start_daemon -a "a=unix://$T/a.admin" --workload-socket "unix://$T/a.wl" \
	--cgroup-root "/$ROOT" || exit 1
for p in "$A" "$B" "$S"; do register_pod "$p" || exit 1; done
KEY=credential-bundle.private-key.pem

# nest CGROUP CHILD SCRIPT: a process of CGROUP creates CHILD below it, moves there, runs SCRIPT.
nest() {
	in_cgroup "$1" "mkdir -p '$1/$2' && echo \$\$ > '$1/$2/cgroup.procs' && $3"
}
# denied PATH...: each read fails with EACCES.
denied() {
	local p
	for p in "$@"; do
		printf "! cat '%s' >/dev/null 2>'%s' && grep -q 'Permission denied' '%s' && " \
			"$p" "$T/err" "$T/err"
	done
	echo true
}
# logged REGEX: the daemon log has a denial line matching REGEX.
logged() { wait_for grep -Eq "$1" "$T/svidfs.log"; }

check "the daemon trusts its own pod $D" logged "running in pod $D:"

# Pod B (API pod, systemd driver, cgroup v2).
check "v2 systemd: pod B reads its own key from the mount root" \
	in_cgroup "$CB" "'$CHECK' keymatch '$MNT/pods/$B/$KEY'"
check "v2 systemd: pod B is denied pod A" in_cgroup "$CB" "$(denied "$MNT/pods/$A/$KEY")"
NEST_SD=$ROOT-kubepods-burstable-pod$A_.slice
check "v2 systemd: pod B in a child cgroup named after A is denied A's key (EACCES)" \
	nest "$CB" "$NEST_SD" "$(denied "$MNT/pods/$A/$KEY")"
check "... and everything else: its own pod, identities/, self/" \
	nest "$CB" "$NEST_SD" \
	"$(denied "$MNT/pods/$B/$KEY" "$MNT/identities/worker-1/$KEY" "$MNT/self/$KEY")"
check "the denial is logged with its reason" \
	logged "denied pods/$A to tid [0-9]+: cgroup .*pod$B_\.slice/.*$NEST_SD: a cgroup below the pod's is named like a pod"

# Pod B again, cgroupfs driver on cgroup v1.
check "v1 cgroupfs: pod B reads its own key" in_cgroup "$FB" "'$CHECK' keymatch '$MNT/pods/$B/$KEY'"
check "v1 cgroupfs: pod B in a child cgroup pod<A> is denied A's key (EACCES)" \
	nest "$FB" "pod$A" "$(denied "$MNT/pods/$A/$KEY" "$MNT/pods/$B/$KEY")"
check "the denial is logged with its reason" \
	logged "cgroup /$ROOT/kubepods/besteffort/pod$B/[0-9a-f]{64}/pod$A: a cgroup below the pod's is named like a pod"

# A static pod: kubelet names it by a 32-hex hash.
check "static pod (v2 systemd): reads its own key" in_cgroup "$CS" "'$CHECK' keymatch '$MNT/pods/$S/$KEY'"
check "static pod (v2 systemd): is not the host: denied pod A, identities/, self/" \
	in_cgroup "$CS" "$(denied "$MNT/pods/$A/$KEY" "$MNT/identities/worker-1/$KEY" "$MNT/self/$KEY")"
check "static pod (v1 cgroupfs): reads its own key, denied pod B and identities/" \
	in_cgroup "$FS_S" "'$CHECK' keymatch '$MNT/pods/$S/$KEY' && $(denied "$MNT/pods/$B/$KEY" "$MNT/identities/worker-1/$KEY")"
check "static pod in a child cgroup named after A is denied A's key" \
	nest "$CS" "$ROOT-kubepods-pod$A_.slice" "$(denied "$MNT/pods/$A/$KEY" "$MNT/pods/$S/$KEY")"
check "the static pod's denial names its pod" \
	logged "denied pods/$A to tid [0-9]+ in pod $S: a pod may enter only its own pod directory"

# Under kubepods but in no pod: nothing at all.
check "v2: a process in $ROOT-kubepods.slice/foo.scope is denied everything, even identities/" \
	in_cgroup "$UNATTR_SD" "$(denied "$MNT/pods/$A/$KEY" "$MNT/pods/$B/$KEY" "$MNT/pods/$S/$KEY" \
		"$MNT/identities/worker-1/$KEY" "$MNT/self/$KEY")"
check "the denial is logged with its reason" \
	logged "denied identities/worker-1 to tid [0-9]+: cgroup /$ROOT.slice/$ROOT-kubepods.slice/foo.scope: no pod cgroup where kubelet puts it"
check "v1: a process in kubepods/burstable/notapod/x is denied everything, even identities/" \
	in_cgroup "$UNATTR_FS" "$(denied "$MNT/pods/$B/$KEY" "$MNT/identities/worker-1/$KEY")"

# The daemon's own pod: its other containers (the CSI plugin) are node components...
check "a container of the daemon's pod reaches every pod (node component)" \
	in_cgroup "$CD2" "'$CHECK' keymatch '$MNT/pods/$A/$KEY' && '$CHECK' keymatch '$MNT/pods/$B/$KEY'"
# ...but not once it names itself after another pod.
check "a child cgroup of the daemon's pod named after A is denied" \
	nest "$CD2" "$ROOT-kubepods-pod$A_.slice" "$(denied "$MNT/pods/$A/$KEY")"

# The host: modes decide.
check "host root reads every pod's key and identities/" \
	sh -c "'$CHECK' keymatch '$MNT/pods/$A/$KEY' && '$CHECK' keymatch '$MNT/pods/$S/$KEY' && '$CHECK' keymatch '$MNT/identities/worker-1/$KEY'"

# The DaemonSet as deployed: no --cgroup-root, kubelet's root is not the default (kind). The
# daemon's own pod shows where pods are; the same hostile callers fail the same way.
stop_daemon
expect_eq "the daemon exits cleanly (sanitizer lane: no leak)" 0 "$DAEMON_EXIT"
start_daemon -a "a=unix://$T/a.admin" --workload-socket "unix://$T/a.wl" || exit 1
for p in "$A" "$B" "$S"; do ctl wait "$p" 10000 >/dev/null || exit 1; done
check "restarted without --cgroup-root, the daemon finds pods below /$ROOT.slice" \
	logged "pods are also recognised below /$ROOT.slice, where kubelet put this daemon"
check "own pod: pod B reads its own key, is denied pod A" \
	in_cgroup "$CB" "'$CHECK' keymatch '$MNT/pods/$B/$KEY' && $(denied "$MNT/pods/$A/$KEY")"
check "pod B in a child cgroup named after A is denied A's key" \
	nest "$CB" "$NEST_SD" "$(denied "$MNT/pods/$A/$KEY" "$MNT/pods/$B/$KEY")"
check "the static pod reaches its own pod, not identities/" \
	in_cgroup "$CS" "'$CHECK' keymatch '$MNT/pods/$S/$KEY' && $(denied "$MNT/identities/worker-1/$KEY")"
check "a process in $ROOT-kubepods.slice/foo.scope is denied everything" \
	in_cgroup "$UNATTR_SD" "$(denied "$MNT/pods/$A/$KEY" "$MNT/identities/worker-1/$KEY")"
check "a kubepods tree where this node's kubelet puts no pods is denied, not the host" \
	in_cgroup "$FB" "$(denied "$MNT/pods/$B/$KEY" "$MNT/identities/worker-1/$KEY")"
check "a container of the daemon's pod still reaches every pod" \
	in_cgroup "$CD2" "'$CHECK' keymatch '$MNT/pods/$A/$KEY' && '$CHECK' keymatch '$MNT/pods/$S/$KEY'"
stop_daemon
expect_eq "it exits cleanly too" 0 "$DAEMON_EXIT"

finish
