#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Prints the directory holding the Debian packages of the current tree, building them with
# tools/build-deb when the tree changed since the last build (keyed by a hash of every tracked
# and untracked, non-ignored file). Shared by the packaging tests, which run one at a time.
set -euo pipefail
src=${MESON_SOURCE_ROOT:?}
out=${MESON_BUILD_ROOT:?}/packaging-out
key=$(cd "$src" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done' sh |
	xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ ! -f "$out/debs/.key" ] || [ "$(cat "$out/debs/.key")" != "$key" ]; then
	rm -rf "$out/debs"
	"$src/tools/build-deb" "$out/debs" >&2
	echo "$key" >"$out/debs/.key"
fi
echo "$out/debs"
