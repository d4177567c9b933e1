#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds kubernetes-csi's csi-node-driver-registrar v2.17.0 for the interop suite's `registrar`
# section (tests/interop/registrar.sh). build-tools.sh cannot fetch it: the Go module proxy does
# not serve github.com/kubernetes-csi/node-driver-registrar (403 at every version). Build it
# from a checkout of kubernetes-csi/node-driver-registrar at v2.17.0, e.g.
#   git clone --depth 1 --branch v2.17.0 https://github.com/kubernetes-csi/node-driver-registrar
#   tests/interop/build-registrar.sh node-driver-registrar
# The tree must be exactly v2.17.0's (git tree REGISTRAR_TREE below, checked on the files, so a
# tarball or `git archive` of the tag works too); it builds offline from the tree's vendor/
# directory, as upstream's Makefile does (CGO_ENABLED=0, main.version stamped), into
# $SVIDFS_INTEROP_CACHE/registrar-v2.17.0/ (default ~/.cache/svidfs-interop) where the suite
# finds it, and prints the binary's path. The source tree is only read.
#   build-registrar.sh --path   prints where the suite looks for the binary
set -euo pipefail
REGISTRAR_VERSION=v2.17.0
REGISTRAR_TREE=1730b84943fb91a68b6bb5209fb7bfaf80fa47da
cache=${SVIDFS_INTEROP_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/svidfs-interop}
out=$cache/registrar-$REGISTRAR_VERSION
bin=$out/csi-node-driver-registrar

if [ "${1:-}" = --path ]; then
	echo "$bin"
	exit 0
fi
if [ $# != 1 ] || [ ! -d "$1" ]; then
	sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
src=$(cd "$1" && pwd)
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local
command -v go >/dev/null || { echo "build-registrar: no go (expected /usr/local/go/bin/go)" >&2; exit 1; }

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.registrar.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The tree's git id, computed from the files (a scratch index; .git and ignored files left out).
git init -q --bare "$tmp/git"
git --git-dir="$tmp/git" --work-tree="$src" add -A .
tree=$(git --git-dir="$tmp/git" write-tree)
if [ "$tree" != "$REGISTRAR_TREE" ]; then
	echo "build-registrar: $src is not node-driver-registrar $REGISTRAR_VERSION" \
		"(tree $tree, expected $REGISTRAR_TREE)" >&2
	exit 1
fi
echo "build-registrar: building csi-node-driver-registrar $REGISTRAR_VERSION (go build -p ${JOBS:-2})" >&2
# -mod=vendor with GOPROXY=off: every dependency comes from the tree's vendor/ directory.
(cd "$src" && CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor go build -p "${JOBS:-2}" -trimpath \
	-buildvcs=false -ldflags "-X main.version=$REGISTRAR_VERSION" -o "$tmp/bin/" \
	./cmd/csi-node-driver-registrar) >&2
rm -rf "$out"
mv "$tmp/bin" "$out"
echo "$bin"
