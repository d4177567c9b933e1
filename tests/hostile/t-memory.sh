#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Memory that comes back (svidfs issue 12: 5,000 pods held ~152 MB, and still ~152 MB after all
# were unregistered). Registers N pods against the development agent (--auto-k8s), reads each
# pod's credential bundle once, unregisters them all, and checks that the daemon's anonymous
# memory returns to within a bound of the baseline; then a second, smaller cycle, to catch
# growth across cycles. The secure heap's locked pages are counted apart: OpenSSL never
# unmaps them, so they stay at the peak use (about 1.3 kB per pod), bounded by --secure-heap.
. "$(dirname "$0")/../integration/lib.sh"

PODCHURN=$BUILD/tests/hostile/podchurn
N=${MEMORY_PODS:-2000}
N2=$((N / 2))
# About 26 kB per pod comes and goes (some 52 MB for 2,000 pods). What stays is the allocator's
# fragmentation across its arenas: 0.5-2 MB measured on a quiet machine, 5 MB with both cores
# busy (more threads contend, so more arenas). The defect this test catches kept all 52 MB.
BOUND_KB=${MEMORY_BOUND_KB:-8192}

start_agent a --auto-k8s || exit 1
# Sanitizer lane: ASan's allocator gives freed pages back only when asked to (malloc_trim is
# glibc's); the normal build ignores this.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_release_to_os_interval_ms=200"
start_daemon -a "a=unix://$T/a.admin" || exit 1

# anon_kb: the daemon's anonymous resident memory minus the secure heap's locked pages.
anon_kb() {
	local anon sec
	anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$DAEMON_PID/status")
	sec=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { lk = 0 } /^Locked:/ { lk = $2 }
		/^VmFlags:/ && / lo/ && / dd/ { s += lk } END { print s + 0 }' \
		"/proc/$DAEMON_PID/smaps")
	echo $((anon - sec))
}
secure_kb() {
	awk '/^[0-9a-f]+-[0-9a-f]+ / { lk = 0 } /^Locked:/ { lk = $2 }
		/^VmFlags:/ && / lo/ && / dd/ { s += lk } END { print s + 0 }' "/proc/$DAEMON_PID/smaps"
}
info_key() { ctl info | awk -v k="$1" '$1 == k { print $2 }'; }

# back_within LIMIT_KB: polls (up to 30 s) until anon_kb is at most LIMIT_KB.
back_within() {
	for _ in $(seq 300); do
		[ "$(anon_kb)" -le "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

base=$(anon_kb)
base_rss=$(rss_kb "$DAEMON_PID")
check "register $N pods, each with its first SVID, and read each key once" \
	"$PODCHURN" register "$T/control.sock" "$N" 1 "$MNT"
cat "$T/check.out" | diag
reg=$(anon_kb)
reg_rss=$(rss_kb "$DAEMON_PID")
sec_peak=$(secure_kb)
echo "baseline: anon ${base} kB (RSS ${base_rss} kB); $N pods: anon ${reg} kB (RSS ${reg_rss} kB)," \
	"secure heap locked ${sec_peak} kB; per pod $(((reg - base) * 1024 / N)) B anon," \
	"$(((reg_rss - base_rss) * 1024 / N)) B RSS" | diag
check "registration shows in the measure (at least 5 kB per pod)" \
	test $((reg - base)) -ge $((N * 5))

# The sanitizer lane's allocator keeps its own metadata, caches and shadow for what was freed:
# there the checks are that at least half of what the pods took comes back and that a second
# cycle keeps less than a quarter of that (LeakSanitizer checks for leaks at exit); the tight
# bound is glibc's (the normal build).
asan=false
grep -q libasan "/proc/$DAEMON_PID/maps" && asan=true
limit=$((base + BOUND_KB))
what="memory returns to within $((BOUND_KB / 1024)) MB of the baseline"
if $asan; then
	limit=$((reg - (reg - base) / 2))
	what="ASan lane: at least half of the pods' memory comes back"
fi
check "unregister the $N pods" "$PODCHURN" unregister "$T/control.sock" "$N" 1
if back_within "$limit"; then ok "$what"; else not_ok "$what"; fi
after=$(anon_kb)
$asan && limit=$((after + (reg - base) / 4))
echo "after unregistering: anon ${after} kB ($((after - base)) kB above the baseline)," \
	"RSS $(rss_kb "$DAEMON_PID") kB, secure heap locked $(secure_kb) kB" | diag
expect_eq "no inode left" 0 "$(info_key inodes)"
check "no secret blob left (secure heap in use under 4 kB)" \
	test "$(info_key secure_heap_used)" -lt 4096

check "second cycle: register $N2 pods" "$PODCHURN" register "$T/control.sock" "$N2" 100000 "$MNT"
check "second cycle: unregister them" "$PODCHURN" unregister "$T/control.sock" "$N2" 100000
what="after a second cycle memory is still within $((BOUND_KB / 1024)) MB of the baseline"
$asan && what="ASan lane: a second cycle keeps less than a quarter of the first one's growth"
if back_within "$limit"; then ok "$what"; else not_ok "$what"; fi
echo "after the second cycle: anon $(anon_kb) kB" | diag
check "the secure heap's locked pages did not grow past the first peak" \
	test "$(secure_kb)" -le "$sec_peak"

stop_daemon
expect_eq "clean exit (no leak under the sanitizers)" 0 "$DAEMON_EXIT"
finish
