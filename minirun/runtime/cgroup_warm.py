"""Keep the kernel's cgroup migration lock fast while a container is being prepared.

(A module of its own, outside runtime/cgroups/, so that `minirun run` can start it before
anything else is imported.)

Moving a process into a cgroup (writing to cgroup.procs, which every container's first process
does, v1 and v2 alike) takes `cgroup_threadgroup_rwsem` for writing. It is a per-cpu rwsem: cheap
for its readers (every fork and exit on the machine), expensive for a writer after an idle period,
which must wait for an RCU grace period (kernel/rcu/sync.c) while the lock switches to its slow
mode — 10 to 16 ms on this machine, more than everything else a container's start costs. Once
switched, the lock stays slow until one grace period after its last writer.

A long-lived process that starts containers often (a worker) never notices. A short-lived
`minirun run` pays it every time, so the CLI starts this warmer as its first act: a thread that
writes "0" (= itself) into its *own* cgroup's cgroup.procs — a migration that changes nothing —
every few milliseconds, so the grace period passes while Python is still importing, and the
container's own join finds the lock already in its slow mode (0.1 ms instead of 15).
With cgroup v2, clone3(CLONE_INTO_CGROUP) avoids the migration altogether (not used yet).
"""

from __future__ import annotations

import os
import threading

_stop = threading.Event()
_thread: threading.Thread | None = None


def _own_procs_file() -> str | None:
    """cgroup.procs of the group this process is in, in the first hierarchy we can find."""
    with open("/proc/self/mountinfo") as f:
        mounts = {}
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if rfields and rfields[0] in ("cgroup", "cgroup2"):
                opts = set(rfields[2].split(",")) if len(rfields) > 2 else set()
                mounts[fields[4]] = (rfields[0], opts, fields[3])
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for mount_point, (fstype, opts, root) in mounts.items():
                matches = (fstype == "cgroup2" and controllers == "") or (
                    fstype == "cgroup" and controllers and set(controllers.split(",")) <= opts)
                if matches and path.startswith(root):
                    procs = os.path.join(mount_point, path[len(root):].lstrip("/"), "cgroup.procs")
                    if os.access(procs, os.W_OK):
                        return procs
    return None


def _loop(seconds: float) -> None:
    try:
        path = _own_procs_file()
        if path is None:
            return
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return                       # not root, no cgroups: nothing to warm, nothing lost
    try:
        deadline = seconds / 0.003
        while not _stop.is_set() and deadline > 0:
            os.write(fd, b"0")
            _stop.wait(0.003)        # well under one grace period
            deadline -= 1
    except OSError:
        pass
    finally:
        os.close(fd)


def start(seconds: float = 2.0) -> None:
    """Begin warming (at most `seconds`); a no-op if already running."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_loop, args=(seconds,), name="cgroup-warm", daemon=True)
        _thread.start()


def stop() -> None:
    """The container has joined its cgroup: stop warming."""
    _stop.set()
