"""Keep the kernel's cgroup migration lock fast while a container is being prepared.

(A module of its own, outside runtime/cgroups/, so that `minirun run` can start it before
anything else is imported.)

Moving a process into a cgroup (writing to cgroup.procs, which every container's first process
does, v1 and v2 alike) takes `cgroup_threadgroup_rwsem` for writing. It is a per-cpu rwsem: cheap
for its readers (every fork and exit on the machine), expensive for a writer after an idle period,
which must wait for an RCU grace period (kernel/rcu/sync.c) while the lock switches to its slow
mode — 10 to 16 ms on this machine, more than everything else a container's start costs. Once
switched, the lock stays slow until one grace period after its last writer.

A short-lived `minirun run` or `minirun-oci run` would pay it every time, so it starts this
warmer as its first act: a thread that writes "0" (= itself) into its *own* cgroup's
cgroup.procs — a migration that changes nothing — every few milliseconds, so the grace period
passes while Python is still importing, and the container's own join finds the lock already in
its slow mode (0.1 ms instead of 15).

A long-lived process (a scheduler worker, the library's warm path) pays it too: containers a
few milliseconds apart are each more than a grace period apart, so the lock is back in its fast
mode at every join. So after a join the library does not stop the warmer but lets it linger
(`linger()`, LINGER seconds): a process that starts containers back to back keeps the lock slow
and never waits; one that stops starting them stops writing a second later. The slow mode costs
the rest of the machine little: a reader (fork, exit) then takes a memory barrier.
With cgroup v2, clone3(CLONE_INTO_CGROUP) avoids the migration altogether (not used yet).
"""

from __future__ import annotations

import _thread
import os
import time

# The thread warms while time.monotonic() < _until; start() and linger() move that deadline.
# (_thread, not threading: this runs first in every `minirun-oci run`, and threading's imports
# cost ~3 ms. _thread_id is the warmer's thread id, None when there is none.)
_until = 0.0
_thread_id: int | None = None
_guard = _thread.allocate_lock()
PERIOD = 0.003          # well under one grace period
LINGER = 1.0            # after a join: how long a quiet process keeps the lock warm


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


def _loop() -> None:
    """Write "0" every PERIOD until the deadline. The file is opened for each write, so a
    lingering warmer holds no fd of its caller's (a worker counts its fds)."""
    global _thread_id
    me = _thread.get_ident()
    try:
        path = _own_procs_file()
        while path is not None:
            with _guard:
                if time.monotonic() >= _until:     # decided under the guard: a start() now
                    _thread_id = None              # makes a new thread rather than count on us
                    return
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
            time.sleep(PERIOD)
    except OSError:
        pass                         # not root, no cgroups: nothing to warm, nothing lost
    with _guard:
        if _thread_id == me:
            _thread_id = None


def _warm_until(deadline: float) -> None:
    global _thread_id, _until
    with _guard:
        _until = max(_until, deadline) if _thread_id is not None else deadline
        if _thread_id is None:
            _thread_id = _thread.start_new_thread(_loop, ())


def start(seconds: float = 2.0) -> None:
    """Begin warming (for at most `seconds`, unless extended); a no-op if already warming."""
    _warm_until(time.monotonic() + seconds)


def linger(seconds: float = LINGER) -> None:
    """A container has joined its cgroup: keep warming only `seconds` more, so that the next
    start in this process, if it comes soon, finds the lock warm."""
    global _until
    with _guard:
        if _thread_id is not None:
            _until = time.monotonic() + seconds


def stop() -> None:
    """Stop warming (the thread ends within one period)."""
    global _until
    with _guard:
        _until = 0.0


def _forget_in_child() -> None:
    """A forked child has no warmer thread, whatever the parent had (a worker forks)."""
    global _thread_id, _until, _guard
    _thread_id, _until, _guard = None, 0.0, _thread.allocate_lock()


os.register_at_fork(after_in_child=_forget_in_child)


def warming() -> bool:
    with _guard:
        return _thread_id is not None and time.monotonic() < _until


def running() -> bool:
    """Whether the warmer thread still exists: it ends within one period after stop()."""
    with _guard:
        return _thread_id is not None
