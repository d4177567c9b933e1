#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""soak-attack.py MNT VICTIM_UID KEY OWN_VIEW STOPFILE: run as a process of one pod (its cgroup,
its own pid and mount namespaces, the host mount visible as with a hostPath misuse): tries to
reach the victim pod's files by every path a process can name, until STOPFILE exists. Prints
"attempts N cross K" (cross: any open that succeeded)."""
import os
import sys

mnt, victim, key, own, stop = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
paths = [
    f"{mnt}/pods/{victim}/{key}",
    f"{mnt}/pods/{victim}/status.json",
    f"{mnt}/pods/{victim}/jwt/soak",
    f"{mnt}/pods/{victim}",
    f"{mnt}/pods/./{victim}/{key}",
    f"{mnt}/pods/../pods/{victim}/{key}",
    f"{mnt}//pods//{victim}//{key}",
    f"/proc/self/root{mnt}/pods/{victim}/{key}",
    f"/proc/1/root{mnt}/pods/{victim}/{key}",
    f"/proc/self/cwd/../../..{mnt}/pods/{victim}/{key}",
    f"{own}/../pods/{victim}/{key}",
    f"{own}/../../pods/{victim}/{key}",
    f"{own}/../{victim}/{key}",
    f"{mnt}/pods/{victim.upper()}/{key}",
    f"{mnt}/pods/{victim.replace('-', '_')}/{key}",
    f"{mnt}/identities",
    f"{mnt}/self/{key}",
]
attempts = cross = 0
dfd = os.open(f"{mnt}/pods", os.O_PATH) if os.path.exists(f"{mnt}/pods") else -1
while not os.path.exists(stop):
    for p in paths:
        attempts += 1
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        os.close(fd)
        if p.endswith("/identities"):
            continue  # listing the directory itself is not a cross read
        cross += 1
        print("cross read:", p, file=sys.stderr)
    if dfd >= 0:
        attempts += 1
        try:
            os.close(os.open(f"{victim}/{key}", os.O_RDONLY, dir_fd=dfd))
            cross += 1
        except OSError:
            pass
print(f"attempts {attempts} cross {cross}", flush=True)
