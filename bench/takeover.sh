#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Takeover benchmark (root; not a test): runs tests/takeover's crash (50 kill -9 restarts) and
# upgrade (10 --takeover handovers) scenarios with readers in pod mount namespaces and reports,
# median and p99 over the cycles:
#  - handover time: planned, the successor's first reply minus the predecessor's last (both
#    logged by the daemons); crash, the successor's first reply minus the SIGKILL (the dead
#    daemon's last reply is a little earlier still);
#  - the readers' longest stall per cycle (the longest pause between two completed reads of any
#    reader; the O_DIRECT reader goes to the daemon on every read).
# Usage: bench/takeover.sh BUILD_DIR
set -eu
BUILD=$(realpath "${1:?usage: takeover.sh BUILD_DIR}")
SRC=$(dirname "$(realpath "$0")")/..
OUT=$(mktemp -d /tmp/svidfs-bench.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
mkdir "$OUT/crash" "$OUT/upgrade"

stats() { # stdin: numbers (ms) -> "median X ms, p99 Y ms, max Z ms (n=N)"
	sort -n | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "no samples"; exit }
		m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.99 + 0.999)]; if (p == "") p = v[NR]
		printf "median %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)\n", m, p, v[NR], NR }'
}

# Per cycle: the longest reader gap that started in [t_i, t_i+1) (microsecond timestamps).
per_cycle_stall() { # $1 cycle start times (us, one a line), $2 gap lines "gap start len"
	awk 'NR == FNR { t[++n] = $1; next } $1 == "gap" {
		for (i = n; i >= 1; i--) if ($2 + $3 >= t[i]) break
		if (i >= 1 && $3 > m[i]) m[i] = $3 }
		END { for (i = 1; i <= n; i++) printf "%.1f\n", m[i] / 1000 }' "$1" "$2"
}

echo "== crash: kill -9 and restart, 50 cycles (keeper: svidfs-keeper)"
BUILD=$BUILD BENCH_OUT=$OUT/crash AGENT_CYCLES=0 "$SRC/tests/takeover/t-takeover-crash.sh" \
	>"$OUT/crash.tap" 2>&1 || { grep -v '^ok' "$OUT/crash.tap"; exit 1; }
awk '$1 == "killed" { print $2 }' "$OUT/crash/cycles.log" >"$OUT/crash/kills"
grep -o 'first reply at [0-9]* us' "$OUT/crash/svidfs.log" | awk '{ print $4 }' | head -50 \
	>"$OUT/crash/firsts"
echo -n "handover (SIGKILL -> first reply): "
paste "$OUT/crash/kills" "$OUT/crash/firsts" | awk 'NF == 2 { printf "%.1f\n", ($2 - $1) / 1000 }' | stats
echo -n "readers' longest stall per cycle: "
per_cycle_stall "$OUT/crash/kills" "$OUT/crash/gaps-crash.txt" | stats

echo "== planned upgrade: svidfs --takeover, 10 cycles"
BUILD=$BUILD BENCH_OUT=$OUT/upgrade "$SRC/tests/takeover/t-takeover-upgrade.sh" \
	>"$OUT/upgrade.tap" 2>&1 || { grep -v '^ok' "$OUT/upgrade.tap"; exit 1; }
echo -n "handover (old's last reply -> new's first): "
grep -o 'first reply [0-9.]* ms after' "$OUT/upgrade/svidfs.log" | awk '{ print $3 }' | stats
grep -o 'first reply at [0-9]* us' "$OUT/upgrade/svidfs.log" | awk '{ print $4 - 100000 }' \
	>"$OUT/upgrade/starts"
echo -n "readers' longest stall per cycle: "
cat "$OUT"/upgrade/reader-*.out | grep '^gap' >"$OUT/upgrade/gaps" || true
per_cycle_stall "$OUT/upgrade/starts" "$OUT/upgrade/gaps" | stats
