"""Crash a scheduler worker (SIGKILL via MINIRUN_FAULT, inherited from `cluster up` through the
manager) as it registers and as it launches a task's container, with the manager told to wait a
minute before it declares the worker lost: `minirun gc` alone must then remove the dead worker's
containers (their cgroups and monitors go with them), its tasks' scratch volumes and its pid file, and a second gc finds
nothing. The `cluster` fixture then checks, after `cluster down`, that no process, container,
cgroup or mount of the cluster is left."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from minirun.faults import POINTS
from tests.conftest import MINIRUN, cgroup_dirs
from tests.integration.cluster_helpers import register, sleeper, wait_until

pytestmark = pytest.mark.root

WORKER_POINTS = [p for p in POINTS if p.startswith("worker:")]


def _worker_dead(root: Path) -> bool:
    out = subprocess.run(["pgrep", "-f", f"minirun-worker w1 {root}"], capture_output=True, text=True)
    return out.stdout.strip() == ""


@pytest.mark.parametrize("point", WORKER_POINTS)
def test_gc_after_a_worker_crash_removes_its_containers(cluster, tmp_path, point):
    m = cluster
    env = dict(os.environ, MINIRUN_FAULT=point)
    subprocess.run([*MINIRUN, "--root", str(m.root), "cluster", "up", "--workers", "1",
                    "--heartbeat", "0.3", "--lost-after", "60"], env=env, capture_output=True,
                   text=True, timeout=60)
    if point != "worker:registered":
        # with a scratch volume: the worker makes it before the container, journaled as its own
        register(m, sleeper(mountPoints=[{"sourceVolume": "scratch", "containerPath": "/scratch"}])
                 | {"volumes": [{"name": "scratch"}]}, tmp_path)
        m("task", "run", "sleeper")
    wait_until(f"the worker to die at {point}", lambda: _worker_dead(m.root), timeout=20)
    ids = [c["Id"] for c in json.loads(m.out("ps", "-a", "--format", "json"))]
    if point != "worker:registered":
        assert len(ids) == 1, f"the worker did not leave its container behind: {ids}"
        assert len(os.listdir(m.root / "cluster" / "volumes")) == 1, "no task volume to clean up"

    released = m.out("gc", "--grace", "0")
    assert "Traceback" not in released
    assert "worker w1 pid file" in released
    assert m.out("gc", "--grace", "0") == "", "gc is not idempotent"

    assert m.out("ps", "-a", "-q") == "", "a dead worker's container outlived gc"
    volumes = m.root / "cluster" / "volumes"
    assert not volumes.exists() or os.listdir(volumes) == [], "a dead worker's task volumes outlived gc"
    for cid in ids:
        assert cgroup_dirs(f"minirun/{cid}") == []
    monitors = subprocess.run(["pgrep", "-f", f"minirun-monitor.*{m.root}"], capture_output=True, text=True)
    assert monitors.stdout.split() == [], "a monitor of a dead worker's container is left"
