"""The cgroup-lock warmer (runtime/cgroup_warm.py): it keeps the kernel's migration lock in its
slow mode while containers are being started, without ever moving the process anywhere, and it
stops on its own."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import requires

pytestmark = pytest.mark.usefixtures("clean")


@pytest.fixture
def warm():
    requires("root")
    from minirun.runtime import cgroup_warm

    if cgroup_warm._own_procs_file() is None:
        pytest.skip("no writable cgroup.procs for this process")
    yield cgroup_warm
    cgroup_warm.stop()
    cgroup_warm.wait_ended(1.0)


def test_warming_never_moves_the_process(warm):
    before = Path("/proc/self/cgroup").read_text()
    warm.start()
    time.sleep(0.05)
    assert warm.warming()
    assert Path("/proc/self/cgroup").read_text() == before


def test_stop_ends_the_thread(warm):
    warm.start()
    time.sleep(0.01)
    warm.stop()
    assert warm.wait_ended(1.0), "the warmer kept running after stop()"
    assert not warm.warming()


def test_linger_ends_by_itself(warm):
    warm.start(seconds=60)
    warm.linger(0.05)
    assert warm.wait_ended(2.0), "the warmer outlived its linger time"


def test_a_migration_while_warm_does_not_wait_for_a_grace_period(warm):
    """The point of it all: once warm, moving a process costs a syscall, not 10-16 ms."""
    procs = warm._own_procs_file()
    warm.start()
    time.sleep(0.1)                       # the warmer's own first write waits the grace period
    fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
    try:
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            os.write(fd, b"0")
            best = min(best, time.perf_counter() - t0)
            time.sleep(0.002)
    finally:
        os.close(fd)
    assert best < 0.004, f"a warm migration took {best * 1000:.1f} ms"


def test_a_library_start_leaves_the_warmer_lingering(mr, data_root):
    """Runtime.start keeps the lock warm a moment after the join (back-to-back starts of a
    worker), and not for ever."""
    from minirun.runtime import cgroup_warm
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions

    rt = Runtime(data_root)
    st = rt.run(RunOptions(image="busybox", command=["true"], network="none", detach=True))
    try:
        assert cgroup_warm.warming()
        assert cgroup_warm.wait_ended(cgroup_warm.LINGER + 1.0)
    finally:
        rt.wait(st.record)
        rt.remove(st.record, force=True)
