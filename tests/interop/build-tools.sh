#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds (or reuses) the interop suite's pinned peers and prints one directory holding them all:
#   spire-server, spire-agent  from tests/interop/spire/go.mod (exactly SPIRE v1.13.3's own
#                              dependency set)
#   csi-sanity                 from tests/interop/go.mod (kubernetes-csi/csi-test v5.6.0)
#   interop-check              our go-spiffe v2 / Delegated Identity / CSI test program (cmd/)
# Each group is cached in $SVIDFS_INTEROP_CACHE (default ~/.cache/svidfs-interop) under a key
# made of its go.mod/go.sum (and our sources) and the Go version, so a second run builds
# nothing and an edit to interop-check does not relink SPIRE. Downloads and objects use Go's own
# caches (GOMODCACHE, GOCACHE). One go build at a time, -p ${JOBS:-2}: SPIRE is heavy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local
command -v go >/dev/null || { echo "build-tools: no go (expected /usr/local/go/bin/go)" >&2; exit 1; }
cache=${SVIDFS_INTEROP_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/svidfs-interop}
gover=$(go version)
p=${JOBS:-2}

# build_group NAME MODULE_DIR "KEY FILES" "BINARIES" PACKAGES...: prints the group's directory.
build_group() {
	local name=$1 dir=$2 files=$3 bins=$4 key out b have=1 tmp
	shift 4
	key=$( (echo "$gover"; cd "$dir" && cat $files) | sha256sum | cut -c1-16)
	out=$cache/$name-$key
	for b in $bins; do [ -x "$out/$b" ] || have=0; done
	if [ "$have" = 0 ]; then
		mkdir -p "$cache"
		tmp=$(mktemp -d "$cache/.build.XXXXXX")
		echo "build-tools: building $bins (go build -p $p)" >&2
		# -mod=readonly: the go.sum files pin every module; never change them silently.
		# -buildvcs=false: a fresh clone or a worktree needs no VCS stamp in test binaries.
		if ! (cd "$dir" && go build -mod=readonly -buildvcs=false -p "$p" -trimpath \
			-o "$tmp/" "$@") >&2; then
			rm -rf "$tmp"
			return 1
		fi
		rm -rf "$out"
		mv "$tmp" "$out"
	fi
	echo "$out"
}

spire=$(build_group spire "$here/spire" "go.mod go.sum" "spire-server spire-agent" \
	github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent)
srcs=$(cd "$here" && find cmd -name '*.go' | sort | tr '\n' ' ')
peers=$(build_group peers "$here" "go.mod go.sum $srcs" "csi-sanity interop-check" \
	github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity ./cmd/interop-check)
# One directory for the suite: symlinks to both groups.
bin=$cache/bin-$(echo "$spire $peers" | sha256sum | cut -c1-16)
if [ ! -d "$bin" ]; then
	tmp=$(mktemp -d "$cache/.bin.XXXXXX")
	for b in spire-server spire-agent; do ln -s "$spire/$b" "$tmp/$b"; done
	for b in csi-sanity interop-check; do ln -s "$peers/$b" "$tmp/$b"; done
	mv -T "$tmp" "$bin" 2>/dev/null || rm -rf "$tmp"
fi
echo "$bin"
