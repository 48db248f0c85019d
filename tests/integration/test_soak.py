"""The soak benchmark's short version (benchmarks/soak.py): 30 sequential and 16 concurrent
(8-way) run/rm cycles through the CLI, plus a library user and the in-process CLI, must leave
zero of every resource behind. And the audit itself must see a leak when there is one."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import REPO, requires

sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402
import pytest  # noqa: E402
import soak  # noqa: E402


@pytest.fixture(autouse=True)
def _benchmark_cleanups():
    """What the benchmark helpers made for the run (its private bytecode cache in /tmp): a
    script removes it at exit (run_standalone), a test here."""
    yield
    _common.run_cleanups()


def test_short_soak_leaves_nothing_behind():
    requires("root", "overlay", "busybox-image")
    s, found = soak.run_soak(sequential=30, concurrent=16, jobs=8, library=10, cli_inproc=6)
    assert not s.failures, s.failures
    assert {k: v for k, v in found.items() if v} == {}
    assert sum(n for _, n, _ in s.phases) == 30 + 16 + 10
    assert s.fds["a Runtime object (library user)"][0] > 0
    assert 0 < s.monitor_hwm_kib < 4096               # a static C monitor, not an interpreter
    assert 0 < s.cli_maxrss_kib


def test_the_audit_sees_what_a_container_holds(tmp_path: Path):
    """A container left running (bridge, published port) shows up as a leak of every kind it
    holds: the audit is not blind."""
    requires("root", "overlay", "busybox-image")
    baseline = soak.children()
    with soak.minirun_root("soak-audit") as root:
        s = soak.Soak(root, tmp_path)
        rc, out, err = s.cli("run", "-d", "-p", "80", "--name", "kept", "busybox", "sleep", soak.SLEEP)
        assert rc == 0, err
        s.ids.add(out.strip())
        (tmp_path / "left-by-a-command").mkdir()
        found = soak.leaks(s, -1, baseline)
        try:
            for kind in ("cgroups (every hierarchy)", "veths", "nft rules", "leases and port claims",
                         "temp dirs (TMPDIR, image staging)", "container records and names",
                         "processes (monitors, containers, our children, zombies)"):
                assert found[kind], f"the audit missed the {kind} of a live container"
        finally:
            s.cli("rm", "-f", "kept")
        after = {k: v for k, v in soak.leaks(s, -1, baseline).items() if v and not k.startswith("temp")}
        assert after == {}
