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
its slow mode (0.1 ms instead of 15). The thread is native (c_ext/warm.c): a Python thread
needs the GIL, which the importing main thread handed over 1.5-2 ms late.

A burst of short-lived commands (podman starting a pod's containers, a shell loop of
`minirun-oci run`) can pass the slow mode on: `pass_on()`, just before such a command exits,
writes once more if the warmer wrote moments ago, and the next command, starting well within a
grace period of that write, finds the lock still slow and waits for nothing.

A long-lived process (a scheduler worker, the library's warm path) pays it too: containers a
few milliseconds apart are each more than a grace period apart, so the lock is back in its fast
mode at every join. So after a join the library does not stop the warmer but lets it linger
(`linger()`, LINGER seconds): a process that starts containers back to back keeps the lock slow
and never waits; one that stops starting them stops writing a second later. The slow mode costs
the rest of the machine little: a reader (fork, exit) then takes a memory barrier.
With cgroup v2, clone3(CLONE_INTO_CGROUP) avoids the migration altogether (not used yet).
"""

from __future__ import annotations

import os
import time

from minirun._native import ffi, lib

PERIOD = 0.003          # well under one grace period
LINGER = 1.0            # after a join: how long a quiet process keeps the lock warm
PASS_ON_WITHIN = 0.010  # pass_on() writes only if the warmer wrote this recently (a grace
                        # period after the last write the lock is fast again: nothing to keep)


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


def _ns(seconds_from_now: float) -> int:
    return time.monotonic_ns() + int(seconds_from_now * 1e9)


def start(seconds: float = 2.0) -> None:
    """Begin warming (for at most `seconds`, unless extended); if already warming, the deadline
    only moves later. Without a writable cgroup.procs (not root, no cgroups) it does nothing."""
    until = _ns(seconds)
    if lib.mr_warm_start(b"", until, 0) == 0:     # a running thread: its deadline moved
        return
    procs = _own_procs_file()       # looked up for each new thread: someone may have moved us
    if procs is not None:
        lib.mr_warm_start(procs.encode(), until, int(PERIOD * 1e9))


def linger(seconds: float = LINGER) -> None:
    """A container has joined its cgroup: keep warming only `seconds` more, so that the next
    start in this process, if it comes soon, finds the lock warm."""
    lib.mr_warm_set_deadline(_ns(seconds))


def stop() -> None:
    """Stop warming (the thread ends within one period)."""
    lib.mr_warm_set_deadline(0)


def pass_on() -> None:
    """For a command about to exit: one more no-op migration, now, if the warmer wrote within
    PASS_ON_WITHIN, so that the next command of a burst finds the lock still in its slow mode
    (see the module's docstring). Otherwise nothing: the lock is fast again, or we never warmed."""
    _, _, last = _status()
    if last and time.monotonic_ns() - last < PASS_ON_WITHIN * 1e9:
        lib.mr_warm_write_now()


def _status() -> tuple[bool, int, int]:
    """(a thread runs, its deadline, when its last write returned), in CLOCK_MONOTONIC ns."""
    until, last = ffi.new("long long *"), ffi.new("long long *")
    running = bool(lib.mr_warm_status(until, last))
    return running, until[0], last[0]


def warming() -> bool:
    is_running, until, _ = _status()
    return is_running and time.monotonic_ns() < until


def running() -> bool:
    """Whether the warmer thread still exists: it ends within one period after stop()."""
    return _status()[0]


def wait_ended(timeout: float) -> bool:
    """Whether the thread has ended within `timeout` seconds (after stop(), or its deadline).
    Who counts its own fds or threads waits for this first: the thread opens cgroup.procs for
    each write."""
    deadline = time.monotonic() + timeout
    while running():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True
