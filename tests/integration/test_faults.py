"""Crash minirun (SIGKILL via MINIRUN_FAULT) at every named point of a container's life, then
check what a user relies on: `minirun gc` leaves no cgroup, process, half-made directory or
dangling name behind, the state is true (every listed container can be removed), and a second
gc finds nothing. The points are listed in minirun/faults.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from minirun.faults import POINTS
from tests.conftest import MINIRUN, cgroup_dirs

pytestmark = pytest.mark.root

# the command that reaches each point, and whether the container may survive the crash running
SCENARIOS = {
    "create:name-reserved": (["create", "--name", "victim", "busybox", "true"], False),
    "create:dir-made": (["create", "--name", "victim", "busybox", "true"], False),
    "create:state-saved": (["create", "--name", "victim", "busybox", "true"], False),
    "start:cgroup-created": (["run", "-d", "--name", "victim", "busybox", "sleep", "30"], False),
    "start:spawned": (["run", "-d", "--name", "victim", "busybox", "sleep", "30"], False),
    "start:running": (["run", "-d", "--name", "victim", "busybox", "sleep", "30"], True),
    "run:exited": (["run", "--rm", "--name", "victim", "busybox", "true"], False),
    # PID 1 of a pid namespace ignores a SIGTERM it has no handler for: sleep runs on
    "stop:signalled": (["stop", "-t", "5", "victim"], True),
    "stop:killed": (["stop", "-t", "0", "victim"], False),
    "rm:cgroup-destroyed": (["rm", "-f", "victim"], False),
    "rm:renamed": (["rm", "-f", "victim"], False),
}


def test_every_container_fault_point_has_a_scenario():
    assert set(SCENARIOS) == {p for p in POINTS if p.split(":")[0] in ("create", "start", "run", "stop", "rm")}


def _crash(clean, point: str, args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, MINIRUN_FAULT=point)
    return subprocess.run([*MINIRUN, "--root", str(clean.root), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def _ids(root: Path) -> set[str]:
    d = root / "containers"
    return {p.name.removeprefix(".removing-") for p in d.iterdir()} if d.exists() else set()


@pytest.mark.parametrize("point", list(SCENARIOS))
def test_gc_after_a_crash_leaves_the_host_clean_and_the_state_true(clean, point):
    args, may_run = SCENARIOS[point]
    if point.startswith(("rm:", "stop:")):
        clean("run", "-d", "--name", "victim", "busybox", "sleep", "30")
    before = _ids(clean.root)
    crashed = _crash(clean, point, args)
    assert crashed.returncode == -9, f"did not reach {point}: {crashed.returncode} {crashed.stderr}"
    touched = _ids(clean.root) | before

    released = clean.out("gc", "--grace", "0")
    assert "Traceback" not in released
    assert clean.out("gc", "--grace", "0") == "", "gc is not idempotent"

    containers = clean.root / "containers"
    leftovers = [p.name for p in containers.iterdir() if p.name.startswith(".")
                 or not (p / "state.json").exists() or not (p / "config.json").exists()]
    assert leftovers == [], f"half-made or half-removed containers after gc: {leftovers}"
    names = clean.root / "names"
    dangling = [p.name for p in names.iterdir() if not (containers / os.readlink(p)).is_dir()]
    assert dangling == [], f"names without a container: {dangling}"

    listed = set(clean.out("ps", "-a", "-q").split())
    running = set(clean.out("ps", "-q").split())
    assert may_run or not running, f"a container survived the crash at {point} running"
    for cid in touched:
        if cid[:12] in running:
            continue
        groups = cgroup_dirs(f"minirun/{cid}")
        assert groups == [], f"cgroup left for {cid[:12]} after gc: {groups}"
    # every container that is listed is a whole one: it can be inspected and removed
    for short in listed:
        clean("inspect", short)
        clean("rm", "-f", short)
    # the name is free again
    clean("create", "--name", "victim", "busybox", "true")
    clean("rm", "victim")


def test_start_after_a_crash_between_cgroup_and_process_works_without_gc(clean):
    """A stale empty cgroup from a start that died must not block the next start."""
    crashed = _crash(clean, "start:cgroup-created", ["run", "-d", "--name", "again", "busybox", "sleep", "30"])
    assert crashed.returncode == -9
    clean("start", "again")
    assert "again" in clean.out("ps")
    clean("rm", "-f", "again")


def test_every_fault_point_is_crashed_by_some_test():
    """Each family of points has its own test module, which checks that it covers all of its
    points: containers here, image:, build: and output: in test_faults_images.py, net:, connect: and
    network-rm: in test_faults_network.py, worker: in test_faults_worker.py."""
    families = {p.split(":")[0] for p in POINTS}
    assert families == {"create", "start", "run", "stop", "rm", "image", "output", "build", "net", "connect",
                        "network-rm", "worker"}
