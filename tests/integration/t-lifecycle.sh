#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Lifecycle: idempotent, reference-counted registrations; unregister removes the directory and
# frees the key material; registrations persist (no secrets) across a clean restart, which
# unmounts; a crashed daemon's stale mount is cleaned at start; generations never repeat across
# restarts; the control socket is root only; svidfsctl commands. Under the sanitizer build the
# daemon's exit status also reports leaks.
. "$(dirname "$0")/lib.sh"

start_agent a --auto-k8s -e "spiffe://example.org/node/db selectors=node:name:db" || exit 1
DAEMON_ARGS=(-a "a=unix://$T/a.admin")
# An identities.d file of another kind is refused with a log line (the daemon freed its
# registration twice there and died at start).
mkdir -p "$T/identities.d"
printf 'kind = self\n' >"$T/identities.d/wrong-kind.conf"
start_daemon "${DAEMON_ARGS[@]}" || exit 1
check "identities.d: a file with kind=self is refused, the daemon runs on" \
	wait_for grep -q "identity file .*wrong-kind.conf refused: kind must be identity" "$T/svidfs.log"
rm "$T/identities.d/wrong-kind.conf"
KEY=credential-bundle.private-key.pem
refs_of() { ctl status "$1" | awk '$1 == "refs" { print $2 }'; }

P=$(uuid)
check "register" ctl register pod_uid="$P" namespace=ns1 service_account=sa1 ref=vol-1
check "register again with the same ref (idempotent)" ctl register pod_uid="$P" namespace=ns1 service_account=sa1 ref=vol-1
expect_eq "one reference" 1 "$(refs_of "$P")"
check "a second volume adds a reference" ctl register pod_uid="$P" namespace=ns1 service_account=sa1 ref=vol-2
expect_eq "two references" 2 "$(refs_of "$P")"
check "other settings for a live workload are refused" \
	not ctl register pod_uid="$P" namespace=ns1 service_account=sa1 layout=kubernetes-tls ref=vol-3
check "wait returns once the SVID is there" ctl wait "$P" 10000
check "files are served" "$CHECK" keymatch "$MNT/pods/$P/$KEY"
check "a key mode with an 'other' bit is refused" not ctl register pod_uid="$(uuid)" key_mode=0404 ref=x
check "register without pod_uid is refused" not ctl register namespace=ns1 ref=x
N=$(uuid)
ctl register pod_uid="$N" ref=x >/dev/null
check "wait times out for a workload no entry matches" not ctl wait "$N" 300
ctl unregister "$N" >/dev/null
check "an identity registered through the control socket" \
	ctl register kind=identity name=db selector=node:name:db ref=node
check "the identity's files are served" wait_for "$CHECK" keymatch "$MNT/identities/db/$KEY"
check "the persisted registrations hold no key material" \
	sh -c "! grep -rq 'PRIVATE\|BEGIN' '$T/state'"
expect_eq "persisted files are root-only" 600 "$(stat -c %a "$T/state/registrations/pod-$P.conf")"
check "info answers" sh -c "'$SVIDFSCTL' -s '$T/control.sock' info | grep -q '^mountpoint *$MNT'"
check "non-root callers cannot use the control socket" \
	not setpriv --reuid 65534 --regid 65534 --clear-groups "$SVIDFSCTL" -s "$T/control.sock" ping

# --- restart: persisted registrations come back; new inode numbers ---
ino_before=$(stat -c %i "$MNT/pods/$P/$KEY")
serial_before=$(serial_of "$MNT/pods/$P/$KEY")
stop_daemon
expect_eq "SIGTERM: clean exit (and, with sanitizers, no leak)" 0 "$DAEMON_EXIT"
check "SIGTERM unmounted the filesystem" not mountpoint -q "$MNT"
start_daemon "${DAEMON_ARGS[@]}" || exit 1
check "after a restart the pod is back" wait_for "$CHECK" keymatch "$MNT/pods/$P/$KEY"
expect_eq "with both references" 2 "$(refs_of "$P")"
check "and the identity" wait_for "$CHECK" keymatch "$MNT/identities/db/$KEY"
expect_eq "same SVID from the agent after the restart" "$serial_before" "$(serial_of "$MNT/pods/$P/$KEY")"
check "a new generation: the file's inode number differs" \
	test "$(stat -c %i "$MNT/pods/$P/$KEY")" != "$ino_before"

# --- unregister ---
bytes_before=$(ctl info | awk '$1 == "inode_bytes" { print $2 }')
check "dropping one reference keeps the directory" \
	sh -c "'$SVIDFSCTL' -s '$T/control.sock' unregister $P vol-1 | grep -q 'removed *false'"
check "still served" test -s "$MNT/pods/$P/$KEY"
check "dropping the last reference removes the workload" \
	sh -c "'$SVIDFSCTL' -s '$T/control.sock' unregister $P vol-2 | grep -q 'removed *true'"
check "the directory is gone" not ls "$MNT/pods/$P"
check "pods/ no longer lists it" not sh -c "ls '$MNT/pods' | grep -q '$P'"
check "its persisted registration is gone" not test -e "$T/state/registrations/pod-$P.conf"
bytes_after=$(ctl info | awk '$1 == "inode_bytes" { print $2 }')
echo "inode bytes before $bytes_before, after $bytes_after" | diag
check "the key bytes the kernel's inodes pinned were released" test "$bytes_after" -lt "$bytes_before"
check "unregister is idempotent" ctl unregister "$P" vol-2
check "re-registering the same pod works" register_pod "$P"
check "and serves it again" "$CHECK" keymatch "$MNT/pods/$P/$KEY"

# --- crash: stale mount cleaned at start ---
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
check "after kill -9 the mount is stale (ENOTCONN)" \
	sh -c "stat '$MNT/pods' 2>&1 | grep -q 'not connected'"
start_daemon "${DAEMON_ARGS[@]}" || exit 1
check "a new daemon cleaned the stale mount and serves again" wait_for "$CHECK" keymatch "$MNT/pods/$P/$KEY"
check "the stale mount was logged" grep -q "detached a stale svidfs mount" "$T/svidfs.log"
check "a second daemon on a live mount is refused" \
	not "$SVIDFS" -m "$MNT" --state-dir "$T/state2" --control-socket "$T/control2.sock" -a "a=unix://$T/a.admin"
# A later mount whose mountinfo line is longer than 4096 bytes, cut so that its second 4096-byte
# piece reads like a mount of $MNT (its source is "$MNT"). svidfs once read mountinfo in 4096-byte
# lines, took that piece for the topmost mount at $MNT and mounted a second daemon over the first.
LONG=$(python3 - "$T/long" "$MNT" <<'PY'
import os, subprocess, sys
base, src = sys.argv[1], sys.argv[2]
def line_of(mp):
    for l in open("/proc/self/mountinfo"):
        if l.split(" ")[4] == mp:
            return l
def path_of(n):  # n bytes, components of at most 200 (never an empty last one)
    p = base
    while len(p) < n:
        rem = n - len(p) - 1
        c = min(200, rem) - (1 if rem - min(200, rem) == 1 else 0)
        p += "/" + "a" * c
    return p
mp = path_of(3900)
for _ in range(4):
    os.makedirs(mp, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", src, mp], check=True)
    line = line_of(mp)
    if line[4095:].split(" ")[4:5] == [src]:
        print(mp)
        sys.exit(0)
    subprocess.run(["umount", mp], check=True)
    head = line.index(" " + mp + " ") + 1  # "id parent maj:min root "
    rest = line[head + len(mp):].split(" ")[1:]  # options, optional fields, -, fstype, source
    k = rest.index(src)  # tokens before the source: the piece starts 4 tokens before it
    off = -1 if k < 4 else 1 + sum(len(t) + 1 for t in rest[: k - 4])
    mp = path_of(4095 - head - off)
sys.exit(1)
PY
)
[ -n "$LONG" ] && BINDS="$BINDS $LONG"
check "a later mount with a 4096-byte mountinfo line naming $MNT as its source" test -n "$LONG"
# (Its own control socket directory, so daemon.lock does not refuse it first.)
check "... and a second daemon on the live mount is still refused" \
	sh -c "timeout 20 '$SVIDFS' -m '$MNT' --state-dir '$T/state2' --control-socket '$T/ctl2/control.sock' \
		-a 'a=unix://$T/a.admin' 2>&1 | grep -q 'already mounted by a running svidfs'"
[ -n "$LONG" ] && umount "$LONG"
check "bad configuration is refused with a message" \
	sh -c "! '$SVIDFS' --agent bad 2>&1 | grep -q 'NAME=URI'; ! '$SVIDFS' --agent bad >/dev/null 2>&1"
check "--help" sh -c "'$SVIDFS' --help | grep -q mountpoint"
stop_daemon
expect_eq "clean exit after the crash recovery" 0 "$DAEMON_EXIT"

# --- systemd: READY=1 once the mount answers, STATUS=, WATCHDOG=1 at half WATCHDOG_USEC ---
# The listener logs each datagram after a line "@<monotonic seconds>"; it runs until killed (at
# most 10 minutes). Every check waits for its condition (bounded), never for a fixed time.
python3 - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(0.2)
end = time.monotonic() + 600
with open(sys.argv[2], "w") as log:
    while time.monotonic() < end:
        try:
            msg = s.recv(4096).decode()
            log.write("@%.3f\n%s\n---\n" % (time.monotonic(), msg)); log.flush()
        except socket.timeout:
            pass
PY
listener=$!
PIDS="$PIDS $listener"
check "the notify listener is up" wait_for test -S "$T/notify.sock"
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=1000000 start_daemon "${DAEMON_ARGS[@]}" || exit 1
check "READY=1 after the mount answered" wait_for grep -q '^READY=1' "$T/notify.log"
check "STATUS= with workload counts" wait_for grep -q '^STATUS=.*pod' "$T/notify.log"
check "WATCHDOG=1 pings keep coming" wait_for sh -c "test \$(grep -c '^WATCHDOG=1' '$T/notify.log') -ge 4"
# Half of WATCHDOG_USEC (1 s): the closest two pings are well under the full interval even on a
# busy machine (the ticker runs every 250 ms).
gap=$(awk '/^@/ { t = substr($0, 2) } /^WATCHDOG=1/ { if (last != "") { g = t - last; if (min == "" || g < min) min = g } last = t } END { print min }' "$T/notify.log")
echo "smallest gap between WATCHDOG=1 pings: $gap s (WATCHDOG_USEC=1 s)" | diag
check "WATCHDOG=1 pings at half the interval, not at the interval" \
	awk -v g="$gap" 'BEGIN { exit !(g != "" && g < 0.9) }'
stop_daemon
check "STOPPING=1 on SIGTERM" wait_for grep -q '^STOPPING=1' "$T/notify.log"
kill "$listener" 2>/dev/null

finish
