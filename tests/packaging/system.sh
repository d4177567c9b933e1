#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The README path on a real systemd: a Debian 12 root (mmdebstrap) with systemd and the built
# packages boots in systemd-nspawn, where
#   - spire-agent.service is the development agent (svidfs-devagent) standing in for SPIRE,
#   - svidfs.service is the packaged unit, unmodified except WatchdogSec=3s (a drop-in, so the
#     test sees the watchdog work in seconds), with the packaged example identity web.conf,
#   - demo-consumer.service runs as www-data with the packaged example drop-in,
# and the test checks: the unit starts under its full sandbox (seccomp, capabilities, ...), the
# FUSE mount is visible outside the service, the identity is served with the modes of web.conf,
# the consumer sees exactly its identity at /run/spiffe and nothing else of /run/svidfs, the
# watchdog is fed, and a stop unmounts and takes the consumer down with it.
set -u
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/svidfs-test.XXXXXX)
npid=
cpid=
cleanup() {
	if [ -n "$npid" ] && kill -0 "$npid" 2>/dev/null; then
		kill -TERM "$npid" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$npid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$npid" 2>/dev/null
	fi
	wait 2>/dev/null
	# Anything the container left mounted below its root.
	grep -o " $tmp/root[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$tmp"
}
trap cleanup EXIT

check "packaging dependencies are installed (tools/bootstrap-deps packaging)" \
	"$SRCROOT/tools/bootstrap-deps" packaging
debs=$("$SRCROOT/tests/packaging/ensure-debs.sh" 2>"$tmp/deb.log")
tap_result $? "the Debian packages are built" "$tmp/deb.log"
version=$(dpkg-parsechangelog -l "$SRCROOT/packaging/debian/changelog" -SVersion)
arch=$(dpkg --print-architecture)
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources="deb http://deb.debian.org/debian bookworm main"

# 1. A Debian 12 machine with the packages installed by apt/dpkg, as a user would.
mmdebstrap --variant=minbase --include=systemd,systemd-sysv,dbus,openssl \
	--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
	--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
	--include="$debs/svidfs_${version}_$arch.deb" \
	--include="$debs/svidfs-devagent_${version}_$arch.deb" \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	bookworm "$tmp/root" "$sources" >"$tmp/mmdebstrap.log" 2>&1
tap_result $? "a Debian 12 root with systemd and the svidfs packages installs (mmdebstrap)" "$tmp/mmdebstrap.log"
root=$tmp/root

# 2. The machine's configuration, as the README tells a user to write it.
cat >"$root/etc/systemd/system/spire-agent.service" <<'EOF'
[Unit]
Description=stand-in for the SPIRE agent (svidfs-devagent)
[Service]
Type=notify
RuntimeDirectory=spire/admin-sockets
ExecStart=/usr/bin/svidfs-devagent --trust-domain example.org \
  --admin-socket /run/spire/admin-sockets/admin.sock --control /run/spire/devagent.sock \
  --entry "spiffe://example.org/node/web selectors=unix:uid:33"
[Install]
WantedBy=multi-user.target
EOF
cp "$root/usr/share/doc/svidfs/examples/identities.d/web.conf" "$root/etc/svidfs/identities.d/"
# A sandbox may cap RLIMIT_MEMLOCK (this machine: a hard 8 MiB that nothing in it can raise), so
# the container's systemd cannot grant LimitMEMLOCK=80M: use a secure heap that fits instead.
hard_kib=$(ulimit -Hl)
if [ "$hard_kib" != unlimited ] && [ "$hard_kib" -lt $((80 * 1024)) ]; then
	echo "secure_heap = $((hard_kib / 2 / 1024))M" >>"$root/etc/svidfs/svidfs.conf"
fi
mkdir -p "$root/etc/systemd/system/svidfs.service.d" "$root/etc/systemd/system/demo-consumer.service.d"
printf '[Service]\nWatchdogSec=3s\n' >"$root/etc/systemd/system/svidfs.service.d/test-watchdog.conf"
cat >"$root/etc/systemd/system/demo-consumer.service" <<'EOF'
[Unit]
Description=a service that reads its SPIFFE identity from /run/spiffe
[Service]
Type=oneshot
RemainAfterExit=yes
User=www-data
StateDirectory=demo
ExecStart=/bin/sh -c 'ls -ln /run/spiffe > /var/lib/demo/ls; ls -A /run/svidfs > /var/lib/demo/svidfs-ls; cp /run/spiffe/tls.crt /run/spiffe/ca.crt /var/lib/demo/; head -c 40 /run/spiffe/tls.key > /var/lib/demo/key-head'
[Install]
WantedBy=multi-user.target
EOF
cp "$root/usr/share/doc/svidfs/examples/consumer-drop-in.conf" \
	"$root/etc/systemd/system/demo-consumer.service.d/svidfs.conf"
for u in spire-agent.service demo-consumer.service; do
	ln -sf "/etc/systemd/system/$u" "$root/etc/systemd/system/multi-user.target.wants/$u"
done
[ -L "$root/etc/systemd/system/multi-user.target.wants/svidfs.service" ]
tap_result $? "the package enabled svidfs.service"

# 3. Boot. CAP_IPC_LOCK stays in the container's bounding set only because systemd-nspawn's
# seccomp filter otherwise forbids mlock() to every process; the unit itself drops it and locks
# key memory within LimitMEMLOCK, as on a real host.
systemd-nspawn -D "$root" --quiet --register=no --keep-unit --bind=/dev/fuse \
	--capability=CAP_IPC_LOCK -b --console=pipe >"$tmp/boot.log" 2>&1 &
npid=$!
in_ct() { nsenter -t "$cpid" -a "$@"; }
# Reads of /run/svidfs run as a unit of the container's systemd, as on a real machine: nsenter
# leaves a process in the host's cgroups, outside the container's cgroup namespace, where the
# daemon cannot tell a host process from a pod's and denies it (docs/daemon.md, Access).
in_unit() { in_ct systemd-run --quiet --wait --pipe --collect "$@"; }
for _ in $(seq 300); do
	cpid=$(pgrep -P "$npid" -x systemd | head -1)
	[ -n "$cpid" ] && in_ct systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded' && break
	sleep 0.2
done
state=$( [ -n "$cpid" ] && in_ct systemctl is-system-running 2>/dev/null)
[ "$state" = running ]
tap_result $? "the machine boots to 'running' (got '$state')" "$tmp/boot.log"
[ -z "$cpid" ] && { tap_done; exit 1; }
in_ct systemctl --no-pager --failed >"$tmp/failed.log" 2>&1

in_ct systemctl is-active svidfs.service >"$tmp/active.log" 2>&1
tap_result $? "svidfs.service is active under its full sandbox" "$tmp/active.log"
in_ct journalctl -b -u svidfs.service --no-pager >"$tmp/journal.log" 2>&1
! grep -qiE 'cannot lock memory|secure heap .* unavailable' "$tmp/journal.log"
tap_result $? "key memory is locked within LimitMEMLOCK (no warning in the journal)" "$tmp/journal.log"
fstype=$(in_ct findmnt -n -o FSTYPE /run/svidfs 2>&1)
[ "$fstype" = fuse.svidfs ]
tap_result $? "the FUSE mount is visible outside the service's namespace (findmnt: $fstype)"
for _ in $(seq 100); do in_unit test -e /run/svidfs/identities/web/tls.crt && break; sleep 0.2; done
in_unit ls -ln /run/svidfs/identities/web >"$tmp/web.ls" 2>&1
awk '$NF == "tls.key" && $1 == "-r--r-----" && $3 == 0 && $4 == 33 { k = 1 }
	$NF == "tls.crt" && $1 == "-r--r--r--" { c = 1 } END { exit !(k && c) }' "$tmp/web.ls"
tap_result $? "identities/web serves tls.crt 0444 and tls.key 0440 root:33 (web.conf)" "$tmp/web.ls"

# The consumer: only its identity, at /run/spiffe; the rest of /run/svidfs hidden.
in_ct systemctl is-active demo-consumer.service >"$tmp/consumer.log" 2>&1 ||
	in_ct journalctl -b -u demo-consumer.service --no-pager >>"$tmp/consumer.log" 2>&1
tap_result $? "demo-consumer.service (User=www-data, example drop-in) ran" "$tmp/consumer.log"
grep -q ' tls.key$' "$root/var/lib/demo/ls" 2>/dev/null && grep -q 'PRIVATE KEY' "$root/var/lib/demo/key-head"
tap_result $? "the consumer reads its key at /run/spiffe/tls.key as www-data" "$root/var/lib/demo/ls"
[ -f "$root/var/lib/demo/svidfs-ls" ] && [ ! -s "$root/var/lib/demo/svidfs-ls" ]
tap_result $? "the consumer sees nothing under /run/svidfs" "$root/var/lib/demo/svidfs-ls"
openssl x509 -in "$root/var/lib/demo/tls.crt" -noout -ext subjectAltName >"$tmp/san.log" 2>&1 &&
	grep -q 'URI:spiffe://example.org/node/web' "$tmp/san.log" &&
	openssl verify -CAfile "$root/var/lib/demo/ca.crt" "$root/var/lib/demo/tls.crt" >>"$tmp/san.log" 2>&1
tap_result $? "its certificate is spiffe://example.org/node/web and verifies against ca.crt" "$tmp/san.log"

# Watchdog (3 s here): the same process, never restarted, over more than two intervals; and
# systemd saw it fed (WatchdogTimestamp moves). The 8 s are what is under test, not a wait for
# something: the loop stops at the first restart.
mpid=$(in_ct systemctl show -P MainPID svidfs.service)
wd0=$(in_ct systemctl show -P WatchdogTimestampMonotonic svidfs.service)
end=$(($(date +%s) + 8))
while [ "$(date +%s)" -lt "$end" ]; do
	in_ct systemctl show -p MainPID -p NRestarts -p ActiveState -p WatchdogUSec \
		-p WatchdogTimestampMonotonic svidfs.service >"$tmp/wd.log" 2>&1
	grep -qx "MainPID=$mpid" "$tmp/wd.log" && grep -qx NRestarts=0 "$tmp/wd.log" || break
	sleep 0.5
done
grep -qx "MainPID=$mpid" "$tmp/wd.log" && grep -qx NRestarts=0 "$tmp/wd.log" &&
	grep -qx ActiveState=active "$tmp/wd.log" &&
	! grep -qx "WatchdogTimestampMonotonic=$wd0" "$tmp/wd.log"
tap_result $? "WatchdogSec=3s: fed, and no watchdog kill or restart in 8 s" "$tmp/wd.log"

# Stop: clean exit, unmounted, the consumer (PartOf=) stopped with it.
in_ct systemctl stop svidfs.service >"$tmp/stop.log" 2>&1
in_ct systemctl show -p Result -p ActiveState -p ExecMainStatus svidfs.service >>"$tmp/stop.log" 2>&1
grep -qx Result=success "$tmp/stop.log" && grep -qx ExecMainStatus=0 "$tmp/stop.log"
tap_result $? "systemctl stop: svidfs exits 0" "$tmp/stop.log"
! in_ct findmnt /run/svidfs >/dev/null 2>&1
tap_result $? "systemctl stop: /run/svidfs is unmounted"
st=$(in_ct systemctl is-active demo-consumer.service 2>&1)
[ "$st" = inactive ]
tap_result $? "systemctl stop: the consumer stopped with it (PartOf=svidfs.service; $st)"
in_ct systemctl start svidfs.service >"$tmp/restart.log" 2>&1 && in_ct systemctl is-active svidfs.service >>"$tmp/restart.log" 2>&1
tap_result $? "svidfs.service starts again" "$tmp/restart.log"
tap_done
