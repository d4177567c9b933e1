#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for systemd's service manager, enough to test svidfs's --keeper systemd path
without systemd as PID 1: it owns NOTIFY_SOCKET, keeps the fd store (FDSTORE=1/FDNAME=,
FDSTOREREMOVE=1) as systemd 252 does, and restarts the service when it dies from a signal
(Restart=on-failure), passing the stored fds with LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID.

usage: fake-systemd.py NOTIFY_SOCKET PIDFILE EVENTLOG -- COMMAND...
Events (one per line in EVENTLOG): "START <pid> <n-fds>", "READY <pid>", "FDSTORE <name>",
"FDSTOREREMOVE <name>", "EXIT <pid> <status>"."""
import array, os, select, signal, socket, subprocess, sys

notify_path, pidfile, eventlog = sys.argv[1:4]
cmd = sys.argv[sys.argv.index("--") + 1:]
store = {}  # FDNAME -> fd (kept open, non-inheritable)
log = open(eventlog, "a", buffering=1)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(notify_path)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


def spawn():
    names = sorted(store)
    fds = [store[n] for n in names]
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    if fds:
        env.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=":".join(names))

    def place_fds():
        high = [os.dup2(fd, 100 + i) for i, fd in enumerate(fds)]
        for i in range(len(fds)):
            os.dup2(100 + i, 3 + i)  # inheritable
            os.close(100 + i)

    # LISTEN_PID must be the service's pid: a shell sets it to its own and execs the service.
    argv = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"] + cmd if fds else cmd
    p = subprocess.Popen(argv, env=env, preexec_fn=place_fds, close_fds=False)
    with open(pidfile, "w") as f:
        f.write(f"{p.pid}\n")
    log.write(f"START {p.pid} {len(fds)}\n")
    return p


proc = spawn()
while True:
    r, _, _ = select.select([sock], [], [], 0.05)
    if r:
        msg, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
        fds = []
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(data[: len(data) - len(data) % a.itemsize])
                fds += list(a)
        kv = dict(l.split("=", 1) for l in msg.decode().split("\n") if "=" in l)
        name = kv.get("FDNAME", "stored")
        if kv.get("FDSTORE") == "1" and fds:
            if name in store:
                os.close(store[name])
            store[name] = fds.pop(0)
            os.set_inheritable(store[name], False)
            log.write(f"FDSTORE {name}\n")
        if kv.get("FDSTOREREMOVE") == "1" and name in store:
            os.close(store.pop(name))
            log.write(f"FDSTOREREMOVE {name}\n")
        for fd in fds:
            os.close(fd)
        if kv.get("READY") == "1":
            log.write(f"READY {proc.pid}\n")
    st = proc.poll()
    if st is not None:
        log.write(f"EXIT {proc.pid} {st}\n")
        if st < 0 and not stop:  # killed by a signal: Restart=on-failure
            proc = spawn()
            continue
        break
    if stop:
        proc.terminate()
        stop = False
# The unit is stopped: systemd empties the fd store.
for fd in store.values():
    os.close(fd)
