#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""soak-read.py VIEW KEY STOPFILE: a legitimate reader in its pod: reads its credential bundle
through its own bind mount until STOPFILE exists. Every read must be a whole bundle (a PKCS#8 key
then certificates). Prints "reads N errors E"."""
import os
import sys

view, key, stop = sys.argv[1], sys.argv[2], sys.argv[3]
reads = errors = 0
while not os.path.exists(stop):
    reads += 1
    try:
        with open(f"{view}/{key}", "rb") as f:
            b = f.read()
        if not (b.startswith(b"-----BEGIN PRIVATE KEY-----") and b.rstrip().endswith(b"-----END CERTIFICATE-----")):
            errors += 1
            print("torn or empty read", len(b), file=sys.stderr)
    except OSError as e:
        errors += 1
        print("read failed:", e, file=sys.stderr)
print(f"reads {reads} errors {errors}", flush=True)
