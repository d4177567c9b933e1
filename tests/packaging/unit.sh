#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The systemd unit as meson configured it: systemd-analyze verify (unit and the consumer
# drop-in example, no warnings), the settings the issue requires, no setting that would hide the
# FUSE mount from the host, and the systemd-analyze security exposure score.
# Usage: unit.sh CONFIGURED-UNIT SVIDFS-BINARY
set -u
. "$(dirname "$0")/lib.sh"
unit=$1
svidfs=$(realpath "$2")
tmp=$(mktemp -d /tmp/svidfs-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/units/demo-consumer.service.d"

# verify checks that ExecStart= exists: point it at the binary just built.
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
sed "s|^ExecStart=$exec_start|ExecStart=$svidfs|" "$unit" >"$tmp/units/svidfs.service"
printf '[Unit]\nDescription=consumer of a svidfs identity\n[Service]\nExecStart=/bin/true\n' \
	>"$tmp/units/demo-consumer.service"
# ... and the drop-in's svidfsctl at the one next to it.
sed "s|/usr/sbin/svidfsctl|$(dirname "$svidfs")/svidfsctl|" "$SRCROOT/packaging/examples/consumer-drop-in.conf" \
	>"$tmp/units/demo-consumer.service.d/svidfs.conf"
verify() {
	(cd "$tmp/units" && SYSTEMD_UNIT_PATH="$tmp/units:" systemd-analyze verify --man=no "$@") \
		>"$tmp/verify.log" 2>&1 && [ ! -s "$tmp/verify.log" ]
}
verify svidfs.service
tap_result $? "systemd-analyze verify svidfs.service: exit 0, no warnings" "$tmp/verify.log"
verify demo-consumer.service
tap_result $? "systemd-analyze verify a consumer with the example drop-in: exit 0, no warnings" "$tmp/verify.log"

missing=""
for want in 'Type=notify' 'NotifyAccess=main' 'WatchdogSec=' 'Restart=on-failure' \
	'RuntimeDirectory=svidfs' 'StateDirectory=svidfs' 'LimitMEMLOCK=' 'LimitCORE=0' \
	'NoNewPrivileges=yes' 'CapabilityBoundingSet=CAP_SYS_ADMIN$' \
	'SystemCallFilter=@system-service @mount$' 'UMask=0077' 'FileDescriptorStoreMax=4' \
	'ExecStart=.*/svidfs --keeper systemd' \
	'After=spire-agent.service' 'WantedBy=multi-user.target'; do
	grep -q "^$want" "$unit" || missing="$missing [$want]"
done
[ -z "$missing" ]
tap_result $? "the unit has the required settings${missing:+ (missing:$missing)}"

# Any of these gives the service a private mount namespace with slave propagation: its FUSE
# mount would never reach the host (systemd.exec(5); checked below with unshare).
ns_opts='^(ProtectSystem|ProtectHome|PrivateTmp|ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|ExecPaths|NoExecPaths|PrivateDevices|PrivateMounts|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectProc|ProcSubset|ProtectHostname|ProtectClock|BindPaths|BindReadOnlyPaths|TemporaryFileSystem|MountAPIVFS|RootDirectory|RootImage|MountFlags|PrivateNetwork|NetworkNamespacePath)='
grep -E "$ns_opts" "$unit" >"$tmp/ns.log"
[ ! -s "$tmp/ns.log" ]
tap_result $? "no setting that implies a private mount namespace" "$tmp/ns.log"

# The fact behind that rule: a mount made in a namespace whose mounts are slaves of the host's
# (what systemd sets up for those settings) is not visible on the host.
mkdir -p "$tmp/probe"
unshare -m --propagation unchanged sh -c "mount --make-rslave / && mount -t tmpfs svidfs-probe '$tmp/probe'"
! grep -q " $tmp/probe " /proc/self/mountinfo
tap_result $? "a mount made in a slave mount namespace does not reach the host"
umount "$tmp/probe" 2>/dev/null

systemd-analyze security --offline=true "$tmp/units/svidfs.service" >"$tmp/security.log" 2>&1
score=$(sed -n 's/.*Overall exposure level for svidfs.service: \([0-9.]*\).*/\1/p' "$tmp/security.log")
echo "# systemd-analyze security: overall exposure ${score:-?} (0 = best, 10 = worst)"
[ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 4.0) }'
tap_result $? "systemd-analyze security exposure ${score:-?} <= 4.0" "$tmp/security.log"
tap_done
