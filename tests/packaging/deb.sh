#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The Debian packages: built from this tree (dh + meson), reproducible, lintian-clean, with the
# expected contents and no development agent; installed with dpkg -i on this machine, where the
# programs run and the unit sits where systemd loads units from; removed cleanly with dpkg -r
# (and --purge).
set -u
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/svidfs-test.XXXXXX)
installed=0
cleanup() {
	[ "$installed" = 1 ] && dpkg --purge svidfs-csi svidfs >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

check "packaging dependencies are installed (tools/bootstrap-deps packaging)" \
	"$SRCROOT/tools/bootstrap-deps" packaging
debs=$("$SRCROOT/tests/packaging/ensure-debs.sh" 2>"$tmp/build.log")
tap_result $? "dpkg-buildpackage builds svidfs and svidfs-csi" "$tmp/build.log"
version=$(sed -n '1s/^svidfs (\([^)]*\)).*/\1/p' "$SRCROOT/packaging/debian/changelog")
arch=$(dpkg --print-architecture)
main="$debs/svidfs_${version}_$arch.deb"
csi="$debs/svidfs-csi_${version}_$arch.deb"
[ -f "$main" ] && [ -f "$csi" ]
tap_result $? "svidfs_${version}_$arch.deb and svidfs-csi_${version}_$arch.deb exist"

# Reproducible: a second build in another directory gives the same bytes.
"$SRCROOT/tools/build-deb" "$tmp/again" >"$tmp/again.log" 2>&1 &&
	cmp "$main" "$tmp/again/$(basename "$main")" && cmp "$csi" "$tmp/again/$(basename "$csi")" \
	>>"$tmp/again.log" 2>&1
tap_result $? "a second build gives byte-identical packages (SOURCE_DATE_EPOCH from debian/changelog)" "$tmp/again.log"

lintian --fail-on error,warning "$main" "$csi" "$debs/svidfs-devagent_${version}_$arch.deb" >"$tmp/lintian.log" 2>&1
tap_result $? "lintian: no errors or warnings (overrides are commented in packaging/debian)" "$tmp/lintian.log"

dpkg-deb -c "$main" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/main.list"
dpkg-deb -c "$csi" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/csi.list"
missing=""
for f in /usr/sbin/svidfs /usr/sbin/svidfsctl /usr/share/man/man8/svidfs.8.gz \
	/usr/share/man/man8/svidfsctl.8.gz /lib/systemd/system/svidfs.service \
	/etc/svidfs/svidfs.conf /etc/svidfs/identities.d/ \
	/usr/share/doc/svidfs/examples/identities.d/web.conf \
	/usr/share/doc/svidfs/examples/consumer-drop-in.conf /usr/share/doc/svidfs/packaging.md; do
	grep -qx "$f" "$tmp/main.list" || missing="$missing $f"
done
[ -z "$missing" ]
tap_result $? "svidfs contains the daemon, svidfsctl, man pages, unit, config, examples${missing:+ (missing:$missing)}" "$tmp/main.list"
grep -qx /usr/sbin/svidfs-csi "$tmp/csi.list" && grep -qx /usr/share/man/man8/svidfs-csi.8.gz "$tmp/csi.list"
tap_result $? "svidfs-csi contains svidfs-csi and its man page" "$tmp/csi.list"
! grep -i devagent "$tmp/main.list" "$tmp/csi.list" >"$tmp/dev.log"
tap_result $? "no development agent in svidfs or svidfs-csi" "$tmp/dev.log"
dev="$debs/svidfs-devagent_${version}_$arch.deb"
dpkg-deb -c "$dev" 2>&1 | grep -q '/usr/bin/svidfs-devagent$' &&
	dpkg-deb -f "$dev" Description | grep -q 'testing only'
tap_result $? "the development agent is a separate svidfs-devagent package, marked testing only"
dpkg-deb -f "$main" Depends | tr ',' '\n' | sed 's/^ *//' >"$tmp/depends"
grep -q '^libfuse3-3' "$tmp/depends" && grep -q '^libgrpc29' "$tmp/depends" &&
	[ "$(dpkg-deb -f "$main" Recommends)" = fuse3 ]
tap_result $? "svidfs Depends come from dh_shlibdeps (libfuse3-3, libgrpc29, ...); Recommends fuse3" "$tmp/depends"

# Install on this machine.
if dpkg-query -W -f='${Status}' svidfs 2>/dev/null | grep -q installed; then
	dpkg --purge svidfs-csi svidfs >/dev/null 2>&1
fi
installed=1
dpkg -i "$main" "$csi" >"$tmp/install.log" 2>&1
tap_result $? "dpkg -i svidfs svidfs-csi" "$tmp/install.log"
out=$(/usr/sbin/svidfs --version 2>&1)
[ "$out" = "svidfs $version" ]
tap_result $? "installed svidfs --version prints 'svidfs $version' (got '$out')"
/usr/sbin/svidfs-csi --version >"$tmp/v.log" 2>&1 && grep -q "$version" "$tmp/v.log"
tap_result $? "installed svidfs-csi --version runs" "$tmp/v.log"
/usr/sbin/svidfsctl --help >"$tmp/v.log" 2>&1
tap_result $? "installed svidfsctl --help runs" "$tmp/v.log"
if command -v man >/dev/null; then
	man -w 8 svidfs && man -w 8 svidfsctl && man -w 8 svidfs-csi
else
	ls /usr/share/man/man8/svidfs.8.gz /usr/share/man/man8/svidfsctl.8.gz /usr/share/man/man8/svidfs-csi.8.gz
fi >"$tmp/man.log" 2>&1
tap_result $? "man pages are installed where man finds them" "$tmp/man.log"

# Where systemd looks: the unit directory is in systemd's system unit search path, the offline
# manager sees the unit (enabled by the package), and verify passes on the installed file.
unitpath=$(dpkg -L svidfs | grep '/systemd/system/svidfs.service$')
systemd-analyze unit-paths --system 2>/dev/null | grep -qx "$(dirname "$unitpath")"
tap_result $? "the unit ($unitpath) is in systemd's system unit search path"
state=$(systemctl --root=/ is-enabled svidfs.service 2>&1)
[ "$state" = enabled ]
tap_result $? "systemctl --root=/ is-enabled svidfs.service: $state"
if [ -d /run/systemd/system ]; then
	systemctl cat svidfs.service >"$tmp/cat.log" 2>&1
	tap_result $? "systemctl cat svidfs.service (systemd is PID 1)" "$tmp/cat.log"
fi
systemd-analyze verify --man=no "$unitpath" >"$tmp/verify.log" 2>&1 && [ ! -s "$tmp/verify.log" ]
tap_result $? "systemd-analyze verify on the installed unit: no warnings" "$tmp/verify.log"

# Remove: programs and unit gone, conffile kept until purge; purge leaves nothing.
dpkg -r svidfs-csi svidfs >"$tmp/remove.log" 2>&1
tap_result $? "dpkg -r svidfs-csi svidfs" "$tmp/remove.log"
left=$(ls /usr/sbin/svidfs /usr/sbin/svidfsctl /usr/sbin/svidfs-csi "$unitpath" 2>/dev/null)
[ -z "$left" ]
tap_result $? "dpkg -r removes programs and unit${left:+ (left: $left)}"
dpkg --purge svidfs-csi svidfs >"$tmp/purge.log" 2>&1
installed=0
left=$(ls -d /etc/svidfs /etc/systemd/system/multi-user.target.wants/svidfs.service \
	/usr/share/doc/svidfs /var/lib/systemd/deb-systemd-helper-enabled/svidfs.service.dsh-also 2>/dev/null)
[ -z "$left" ] && ! dpkg-query -W svidfs >/dev/null 2>&1
tap_result $? "dpkg --purge leaves no file, symlink or package record${left:+ (left: $left)}" "$tmp/purge.log"
tap_done
