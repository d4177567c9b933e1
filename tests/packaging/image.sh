#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The OCI image: tools/build-image builds it here from Debian packages only (mmdebstrap + the
# .debs); umoci accepts the layout and unpacks it (every digest checked); the programs run in
# its root filesystem (chroot); no development agent; its size stays small; and a second build
# gives the same manifest digest (reproducible).
set -u
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/svidfs-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

check "packaging dependencies are installed (tools/bootstrap-deps packaging)" \
	"$SRCROOT/tools/bootstrap-deps" packaging
debs=$("$SRCROOT/tests/packaging/ensure-debs.sh" 2>"$tmp/deb.log")
tap_result $? "the Debian packages are built" "$tmp/deb.log"
version=$(dpkg-parsechangelog -l "$SRCROOT/packaging/debian/changelog" -SVersion)

"$SRCROOT/tools/build-image" "$debs" "$tmp/img" >"$tmp/build.log" 2>&1
tap_result $? "tools/build-image builds the OCI image from Debian packages" "$tmp/build.log"
sed "s/^/# /" "$tmp/build.log"
archive="$tmp/img/svidfs-$version-oci.tar"

mkdir -p "$tmp/layout"
tar -xf "$archive" -C "$tmp/layout" 2>"$tmp/x.log" &&
	umoci stat --image "$tmp/layout:$version" >"$tmp/stat.log" 2>&1
tap_result $? "umoci reads the image (tag $version)" "$tmp/stat.log"
umoci unpack --image "$tmp/layout:$version" "$tmp/bundle" >"$tmp/unpack.log" 2>&1
tap_result $? "umoci unpacks it (blob digests verified)" "$tmp/unpack.log"
root="$tmp/bundle/rootfs"
out=$(chroot "$root" /usr/sbin/svidfs --version 2>&1)
[ "$out" = "svidfs $version" ]
tap_result $? "svidfs --version runs inside the image root (got '$out')"
chroot "$root" /usr/sbin/svidfs-csi --version >"$tmp/v.log" 2>&1 && grep -q "$version" "$tmp/v.log"
tap_result $? "svidfs-csi --version runs inside the image root" "$tmp/v.log"
chroot "$root" /usr/sbin/svidfsctl --help >"$tmp/v.log" 2>&1
tap_result $? "svidfsctl (the DaemonSet's liveness probe) runs inside the image root" "$tmp/v.log"
chroot "$root" dpkg-query -W -f='${Package}\n' >"$tmp/pkgs" 2>&1
! grep -qi -E 'devagent|^apt$|-dev$' "$tmp/pkgs" && ! find "$root" -iname '*devagent*' | grep -q .
tap_result $? "no development agent, apt or -dev package in the image ($(wc -l <"$tmp/pkgs") packages)" "$tmp/pkgs"
grep -q '"Cmd":\["/usr/sbin/svidfs"\]' "$tmp/bundle/config.json" 2>/dev/null ||
	grep -rq '/usr/sbin/svidfs' "$tmp/layout/blobs/sha256/"
tap_result $? "the image config runs /usr/sbin/svidfs by default"

# The image and the manifests together: the svidfs and svidfs-csi containers of the rendered
# DaemonSet start in the image root and the daemon's liveness probe command passes.
KUBECTL=${KUBECTL:-$(command -v kubectl || echo kubectl)}
mkdir -p "$tmp/ds"
"$KUBECTL" kustomize "$SRCROOT/deploy/kubernetes/base" -o "$tmp/base.yaml" >"$tmp/ds.log" 2>&1 &&
	awk 'BEGIN { RS = "---\n" } /\nkind: DaemonSet\n/ { printf "%s", $0 }' "$tmp/base.yaml" >"$tmp/ds.yaml" &&
	KUBECTL=$KUBECTL "$SRCROOT/tests/packaging/ds-smoke.sh" "$root" "$tmp/ds.yaml" "$tmp/ds" >>"$tmp/ds.log" 2>&1
tap_result $? "the DaemonSet's svidfs and svidfs-csi commands run in the read-only image root: liveness probe passes, CSI socket listens" "$tmp/ds.log"

layer=$(sed -n 's/.*compressed \([0-9]*\) bytes, uncompressed \([0-9]*\) bytes.*/\1 \2/p' "$tmp/build.log")
read -r csize usize <<<"$layer"
echo "# image size: $((csize / 1024 / 1024)) MiB compressed, $((usize / 1024 / 1024)) MiB uncompressed"
[ -n "$csize" ] && [ "$csize" -lt $((40 * 1024 * 1024)) ] && [ "$usize" -lt $((120 * 1024 * 1024)) ]
tap_result $? "image is small: ${csize:-?} bytes compressed (< 40 MiB), ${usize:-?} uncompressed (< 120 MiB)"

first=$(sed -n 's/^manifest: //p' "$tmp/build.log")
"$SRCROOT/tools/build-image" "$debs" "$tmp/img2" >"$tmp/build2.log" 2>&1
second=$(sed -n 's/^manifest: //p' "$tmp/build2.log")
[ -n "$first" ] && [ "$first" = "$second" ] && cmp -s "$archive" "$tmp/img2/svidfs-$version-oci.tar"
tap_result $? "a second build gives the same manifest digest and archive bytes ($first)" "$tmp/build2.log"

# The Containerfile (for users with a container engine; none runs here) installs the same two
# packages on debian:12-slim, without recommends.
cf="$SRCROOT/packaging/container/Containerfile"
grep -q '^FROM debian:12-slim$' "$cf" && grep -q -- '--no-install-recommends /tmp/debs/svidfs_\*.deb /tmp/debs/svidfs-csi_\*.deb' "$cf"
tap_result $? "Containerfile: debian:12-slim plus the svidfs and svidfs-csi packages only"
tap_done
