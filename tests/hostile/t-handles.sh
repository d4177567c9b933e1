#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 12.3, file handles: a process of pod B with CAP_DAC_READ_SEARCH, in its own mount
# namespace with the host mount lazily unmounted, forges handles for pod A's directory and key
# with open_by_handle_at on its own bind mount. Inode numbers the kernel sees are a keyed
# permutation and generations a keyed hash (fs/inokey.c): every forged handle fails.
. "$(dirname "$0")/../integration/lib.sh"
FORGE=$BUILD/tests/hostile/handle-forge
KEY=credential-bundle.private-key.pem

start_agent a --auto-k8s || exit 1
start_daemon -a "a=unix://$T/a.admin" --cgroup-root "$CG_ROOT" || exit 1
A=$(uuid)
B=$(uuid)
register_pod "$A"
register_pod "$B"
CG_B=$(pod_cgroup "$B") || exit 1

cp "$MNT/pods/$A/$KEY" "$T/secretA"
check "pod A's key is cached in the kernel (host root read it)" test -s "$T/secretA"
read -r NA GA <<<"$("$FORGE" show "$MNT/pods/$A")"
read -r NB GB <<<"$("$FORGE" show "$MNT/pods/$B")"
echo "handles: pods/A $NA gen $GA, pods/B $NB gen $GB" | diag
check "a directory's generation is not a fixed value" test "$GA" != 00000001 -a "$GA" != "$GB"
# Plain numbers were (slot+1)<<44 | node id<<32 | serial: two pods' directories differed only in
# the slot field and the low bits. Keyed numbers differ all over.
DIFF=$(python3 -c "print(bin(int('$NA',16) ^ int('$NB',16))[2:].zfill(64)[20:32].count('1') + bin((int('$NA',16) ^ int('$NB',16)) >> 44).count('1'))")
check "two pods' directory numbers are unrelated (node-id field and slot field differ too)" \
	test "$DIFF" -gt 2

mkdir -p "$T/podB"
in_cgroup "$CG_B" "mount --bind '$MNT/pods/$B' '$T/podB' && umount -l '$MNT' &&
	'$FORGE' forge '$T/podB' '$T/podB' '$T/secretA' '$KEY' 3000" >"$T/forge.out" 2>&1
cat "$T/forge.out" | diag
read -r _ ATTEMPTS _ OPENED _ CROSS <"$T/forge.out"
check "the forger ran (its own handle opens, attempts counted)" test "${ATTEMPTS:-0}" -gt 100000
expect_eq "forged handles opened nothing of another workload" 0 "${OPENED:-x}"
expect_eq "forged handles read pod A's key 0 times" 0 "${CROSS:-x}"
check "pod A's key still served to the host" cmp -s "$T/secretA" "$MNT/pods/$A/$KEY"
finish
