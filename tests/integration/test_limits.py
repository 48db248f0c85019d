"""Limits the kernel enforces on a container: memory (OOM -> 137), pids, cpu quota, live update."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import cgroup_value, requires

pytestmark = pytest.mark.root


def test_memory_hog_dies_137_and_is_reported_oom_killed(clean):
    requires("cgroup:memory")
    hog = "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while :; do x=$x$x; done"
    r = clean("run", "--name", "hog", "-m", "32m", "busybox", "sh", "-c", hog, check=False)
    assert r.returncode == 137
    state = json.loads(clean.out("inspect", "hog"))[0]["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    assert json.loads(clean.out("inspect", "hog"))[0]["HostConfig"]["Memory"] == 32 << 20
    clean("rm", "hog")


def test_fork_bomb_is_stopped_by_the_pids_limit(clean):
    requires("cgroup:pids")
    bomb = "for i in $(seq 100); do sleep 3 & echo $i; done"
    r = clean("run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c", bomb, check=False, timeout=30)
    started = r.stdout.split()
    assert 1 <= len(started) <= 9        # the shell itself is the 10th process
    assert "can't fork" in r.stderr and r.returncode != 0


def test_default_pids_limit_is_set(clean):
    requires("cgroup:pids")
    with clean.detached("busybox", "sleep", "30") as cid:
        assert json.loads(clean.out("inspect", cid))[0]["HostConfig"]["PidsLimit"] == 2048
        assert cgroup_value(cid, "pids", "pids.max", "pids.max") == "2048"


def test_cpu_quota_is_in_effect(clean):
    """--cpus 0.2: a busy loop gets a fifth of a CPU. The share is the group's CPU time (what
    `stats` reads) over a window whose ends this process reads, so the seconds a slow machine
    (the VM tier) spends starting `minirun` commands are not counted as the container's."""
    from minirun.runtime.cgroups import detect

    requires("cgroup:cpu")
    with clean.detached("--cpus", "0.2", "busybox", "sh", "-c", "while :; do :; done") as cid:
        group = detect().open(f"minirun/{cid}")
        used, start = group.stats()["cpu_usage_ns"], time.monotonic()
        time.sleep(1.5)
        used, took = (group.stats()["cpu_usage_ns"] - used) / 1e9, time.monotonic() - start
        assert 0.03 < used / took <= 0.3, f"a 0.2-cpu container used {used:.2f}s of cpu in {took:.2f}s"
        assert sum(p["cpu_seconds"] for p in json.loads(clean.out("top", cid, "--format", "json"))) > 0


def test_update_changes_limits_live(clean):
    requires("cgroup:memory", "cgroup:pids")
    with clean.detached("-m", "64m", "busybox", "sleep", "30") as cid:
        clean("update", "-m", "128m", "--pids-limit", "50", cid)
        host = json.loads(clean.out("inspect", cid))[0]["HostConfig"]
        assert host["Memory"] == 128 << 20 and host["PidsLimit"] == 50
        assert int(cgroup_value(cid, "memory", "memory.limit_in_bytes", "memory.max")) == 128 << 20
        assert cgroup_value(cid, "pids", "pids.max", "pids.max") == "50"


def test_cpuset_pins_the_container(clean):
    requires("cgroup:cpuset")
    out = clean.out("run", "--rm", "--cpuset-cpus", "0", "busybox", "grep", "Cpus_allowed_list", "/proc/self/status")
    assert out.split()[-1] == "0"


def test_the_container_reads_its_own_limits_under_sys_fs_cgroup(clean):
    """Docker's read-only cgroup mount: programs (a JVM, Go's runtime) read their limits there,
    see only their own group, and cannot change it."""
    requires("cgroup:memory", "cgroup:pids")
    memory = inside("memory", "memory.limit_in_bytes", "memory.max")
    pids = inside("pids", "pids.max", "pids.max")
    script = (f"cat {memory} {pids}; "
              f"ls {memory.rpartition('/')[0]} | grep -c '^[0-9a-f]\\{{64\\}}$'; "
              f"echo 1 > {pids} && echo WROTE")
    out = clean("run", "--rm", "-m", "48m", "--pids-limit", "33", "busybox", "sh", "-c", script,
                check=False)
    limit, pids, siblings = out.stdout.split()[:3]
    assert int(limit) == 48 << 20 and pids == "33"
    assert siblings == "0", "another container's group is visible"
    assert "WROTE" not in out.stdout and "Read-only file system" in out.stderr


def inside(controller: str, v1_file: str, v2_file: str) -> str:
    """Where a container sees one of its cgroup files: the group of each hierarchy is mounted
    at /sys/fs/cgroup/<the host's mount name> (memory, pids, unified), or, on a host with
    cgroup v2 alone, at /sys/fs/cgroup itself (Cgroup.views())."""
    import os

    from minirun.runtime.cgroups import detect

    mgr = detect()
    if mgr.available()[controller] == "v1":
        return f"/sys/fs/cgroup/{os.path.basename(mgr.hierarchies()[controller])}/{v1_file}"
    if not mgr.mounts.v1:
        return f"/sys/fs/cgroup/{v2_file}"
    return f"/sys/fs/cgroup/{os.path.basename(mgr.mounts.unified)}/{v2_file}"
