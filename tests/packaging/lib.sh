# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# TAP helpers for the packaging suite (sourced). The plan is printed at the end (TAP allows a
# trailing plan), so a script can emit checks as it goes.
TAP_N=0
TAP_FAILED=0
tap_result() { # tap_result STATUS NAME [DIAG-FILE]
	TAP_N=$((TAP_N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $TAP_N - $2"
	else
		TAP_FAILED=$((TAP_FAILED + 1))
		echo "not ok $TAP_N - $2"
		if [ -n "${3:-}" ] && [ -s "$3" ]; then
			tail -n 25 "$3" | sed 's/^/# /'
		fi
	fi
}
# check NAME CMD...: runs CMD with output captured; one TAP line.
check() {
	_name=$1
	shift
	_log=$(mktemp)
	if "$@" >"$_log" 2>&1; then
		tap_result 0 "$_name"
	else
		tap_result 1 "$_name" "$_log"
	fi
	rm -f "$_log"
}
# tap_merge: appends a sub-runner's TAP stream (stdin), renumbered, dropping its plan.
tap_merge() {
	while IFS= read -r _l; do
		case "$_l" in
		"ok "*) tap_result 0 "${_l#ok * - }" ;;
		"not ok "*) tap_result 1 "${_l#not ok * - }" ;;
		1..*) ;;
		*) echo "$_l" ;;
		esac
	done
}
tap_done() {
	echo "1..$TAP_N"
	[ "$TAP_FAILED" -eq 0 ]
}
# Source tree root (the tests run from the build dir).
export SRCROOT=${MESON_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
