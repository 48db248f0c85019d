"""A container cloned into the runtime's own memory (sync point 3', c_ext/spawn.c: share_memory,
used when the runtime has nothing to do between clone and execve, e.g. --network none): the
caller's process must find itself as it was, and the container as it asked."""

from __future__ import annotations

import ctypes
import os
import threading

import pytest

from tests.conftest import quiet_warmer

pytestmark = pytest.mark.root

PR_GET_DUMPABLE = 3


def _ids(tid: str) -> list[str]:
    """The Uid, Gid and Groups lines of one of our threads."""
    with open(f"/proc/self/task/{tid}/status") as f:
        return [line for line in f if line.startswith(("Uid:", "Gid:", "Groups:"))]


def test_the_caller_keeps_its_threads_ids_fds_and_dumpable_flag(mr, data_root):
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions
    from minirun.runtime.plan import exec_trampoline

    libc = ctypes.CDLL(None, use_errno=True)
    rt = Runtime(data_root)
    rt.cgroups, rt.images, exec_trampoline()        # noqa: B018 — open what stays open first
    dumpable = libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
    quiet_warmer()                  # its thread comes and goes, with an fd open at each write
    fds_before = sorted(os.listdir("/proc/self/fd"))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)     # a thread of ours, running meanwhile
    other.start()
    try:
        before = {tid: _ids(tid) for tid in os.listdir("/proc/self/task")}
        for _ in range(3):
            # the child switches to uid 1000 in our memory: by system calls, not libc's
            # wrappers, which would have changed our threads' ids too
            st = rt.run(RunOptions(image="busybox", command=["true"], user="1000:1000",
                                   network="none", detach=True))
            _, status = os.waitpid(st.monitor_pid, 0)      # our child: reaped, no zombie left
            assert os.waitstatus_to_exitcode(status) == 0
            rt.remove(st.record)
        quiet_warmer()
        after = {tid: _ids(tid) for tid in before}
    finally:
        stop.set()
        other.join()
    assert after == before
    # the child made the memory non-dumpable while it ran in it; ours is as it was
    assert libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == dumpable == 1
    assert sorted(os.listdir("/proc/self/fd")) == fds_before


def test_the_container_runs_as_asked(clean):
    out = clean.out("run", "--rm", "--network", "none", "-u", "1000:1000", "--hostname", "box",
                    "busybox", "sh", "-c", "id -u; id -g; hostname; cat /proc/self/status")
    uid, gid, host, *status = out.splitlines()
    assert (uid, gid, host) == ("1000", "1000", "box")
    caps = {line.split(":")[0]: line.split()[1] for line in status if line.startswith("Cap")}
    assert caps["CapEff"] == "0000000000000000"        # a non-root user: no effective caps
    assert [line.split()[1] for line in status if line.startswith("NoNewPrivs")] == ["1"]


def test_threads_starting_containers_at_once_leave_the_caller_dumpable(mr, data_root):
    """The dumpable flag is the memory's: a shared-memory spawn in one thread while another's
    child had cleared it saved "not dumpable" and put that back last (4 threads left the caller
    non-dumpable every time). Shared-memory spawns now take turns (spawn.c)."""
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions

    libc = ctypes.CDLL(None, use_errno=True)
    rt = Runtime(data_root)
    assert libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1
    failures: list[str] = []

    def starts() -> None:
        try:
            for _ in range(15):
                st = rt.run(RunOptions(image="busybox", command=["true"], network="none",
                                       detach=True))
                assert rt.wait(st.record) == 0
                rt.remove(st.record)
        except Exception as e:          # reported below: a thread's failure must fail the test
            failures.append(repr(e))

    threads = [threading.Thread(target=starts) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1
