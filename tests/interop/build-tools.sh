#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds (or reuses) the interop suite's pinned peers and prints the directory holding them:
#   spire-server, spire-agent  from tests/interop/spire/go.mod (SPIRE's own dependency set)
#   csi-sanity                 from tests/interop/go.mod (kubernetes-csi/csi-test)
#   interop-check              our go-spiffe v2 test program (tests/interop/cmd/interop-check)
# The binaries live in $SVIDFS_INTEROP_CACHE (default ~/.cache/svidfs-interop) under a key made
# from the go.mod/go.sum files, our Go sources and the Go version, so a second run builds nothing.
# Module downloads and build objects use Go's own caches (GOMODCACHE, GOCACHE). One go build at a
# time, -p ${JOBS:-2}: SPIRE is heavy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH=/usr/local/go/bin:$PATH
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
command -v go >/dev/null || { echo "build-tools: no go (expected /usr/local/go/bin/go)" >&2; exit 1; }
key=$( (go version; cd "$here" && cat go.mod go.sum spire/go.mod spire/go.sum && \
	find cmd -type f -name '*.go' | sort | xargs cat) | sha256sum | cut -c1-16)
cache=${SVIDFS_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/svidfs-interop}
out=$cache/$key
want="spire-server spire-agent csi-sanity interop-check"
have=1
for b in $want; do [ -x "$out/$b" ] || have=0; done
if [ "$have" = 1 ]; then
	echo "$out"
	exit 0
fi
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
p=${JOBS:-2}
# The go.sum files pin every module: -mod=readonly fails rather than change them.
(cd "$here/spire" && go build -mod=readonly -p "$p" -trimpath -o "$tmp/" \
	github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent) >&2
(cd "$here" && go build -mod=readonly -p "$p" -trimpath -o "$tmp/" \
	github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity ./cmd/interop-check) >&2
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
