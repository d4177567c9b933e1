#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `kubectl kustomize` renders every kustomization under deploy/kubernetes, and every rendered
# object validates against the Kubernetes API schema (npm kubernetes-models, pinned by
# k8s-validate/package-lock.json, installed into a cache dir on first use).
set -u
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/svidfs-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
check "kubectl with kustomize is available ($KUBECTL)" "${KUBECTL:-false}" kustomize --help
renders=()
for k in base overlays/example examples/workload; do
	out="$tmp/$(echo "$k" | tr / -).yaml"
	check "kubectl kustomize deploy/kubernetes/$k renders" \
		"${KUBECTL:-false}" kustomize "$SRCROOT/deploy/kubernetes/$k" -o "$out"
	renders+=("$k=$out")
done
# Fragments that are not part of a kustomization but are still API objects.
renders+=("spire/svidfs-clusterspiffeid=$SRCROOT/deploy/kubernetes/spire/svidfs-clusterspiffeid.yaml")

# The validator and its pinned dependencies, in a cache keyed by the lockfile.
vdir="$SRCROOT/tests/packaging/k8s-validate"
key=$(cat "$vdir/package-lock.json" "$vdir/package.json" | sha256sum | cut -c1-16)
cache="${SVIDFS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/svidfs}/k8s-validate-$key"
if [ ! -d "$cache/node_modules/kubernetes-models" ]; then
	mkdir -p "$cache"
	cp "$vdir/package.json" "$vdir/package-lock.json" "$cache/"
	check "npm ci of the pinned validator dependencies" \
		sh -c "cd '$cache' && npm ci --no-audit --no-fund --loglevel=error"
fi
cp "$vdir/validate.mjs" "$cache/validate.mjs"

# The validator must reject a broken object, or a pass means nothing.
sed 's/mountPropagation: Bidirectional/mountPropagation: Bidirectionl/' \
	"$tmp/base.yaml" >"$tmp/broken.yaml" 2>/dev/null
if node "$cache/validate.mjs" "broken=$tmp/broken.yaml" >"$tmp/broken.tap" 2>&1; then
	tap_result 1 "validator rejects an invalid mountPropagation" "$tmp/broken.tap"
else
	grep -q "must be equal to one of the allowed values" "$tmp/broken.tap"
	tap_result $? "validator rejects an invalid mountPropagation" "$tmp/broken.tap"
fi
sed 's/mountPropagation: HostToContainer/mountPropogation: HostToContainer/' \
	"$tmp/base.yaml" >"$tmp/typo.yaml" 2>/dev/null
node "$cache/validate.mjs" "typo=$tmp/typo.yaml" >"$tmp/typo.tap" 2>&1
grep -q "unknown: .spec.template.spec.containers\[1\].volumeMounts\[[0-9]*\].mountPropogation" "$tmp/typo.tap"
tap_result $? "validator rejects a misspelt field (mountPropogation)" "$tmp/typo.tap"
tap_merge < <(node "$cache/validate.mjs" "${renders[@]}" 2>&1)
tap_done
