#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""pin-jwt.py DIR N: looks up DIR/jwt/pin-<i> for i < N with O_PATH and keeps every fd open
(each holds the inode, so its token, in the kernel) until stdin closes. Prints
"ok <opened> <errno>:<count> ..." after the lookups."""
import os
import sys

d, n = sys.argv[1], int(sys.argv[2])
fds, errs = [], {}
for i in range(n):
    try:
        fds.append(os.open(f"{d}/jwt/pin-{i}", os.O_PATH))
    except OSError as e:
        errs[e.errno] = errs.get(e.errno, 0) + 1
print("ok", len(fds), " ".join(f"{k}:{v}" for k, v in sorted(errs.items())), flush=True)
sys.stdin.read()
