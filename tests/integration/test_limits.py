"""Limits the kernel enforces on a container: memory (OOM -> 137), pids, cpu quota, live update."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import requires

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
    cid = clean.out("run", "-d", "busybox", "sleep", "30")
    try:
        limit = json.loads(clean.out("inspect", cid))[0]["HostConfig"]["PidsLimit"]
        assert limit == 2048
        assert open(f"/sys/fs/cgroup/pids/minirun/{cid}/pids.max").read().strip() == "2048"
    finally:
        clean("rm", "-f", cid)


def test_cpu_quota_is_in_effect(clean):
    requires("cgroup:cpu")
    cid = clean.out("run", "-d", "--cpus", "0.2", "busybox", "sh", "-c", "while :; do :; done")
    try:
        time.sleep(1.5)
        used = sum(p["cpu_seconds"] for p in json.loads(clean.out("top", cid, "--format", "json")))
        assert 0.05 < used <= 0.5, f"a 0.2-cpu container used {used:.2f}s of cpu in 1.5s"
    finally:
        clean("rm", "-f", cid)


def test_update_changes_limits_live(clean):
    requires("cgroup:memory", "cgroup:pids")
    cid = clean.out("run", "-d", "-m", "64m", "busybox", "sleep", "30")
    try:
        clean("update", "-m", "128m", "--pids-limit", "50", cid)
        host = json.loads(clean.out("inspect", cid))[0]["HostConfig"]
        assert host["Memory"] == 128 << 20 and host["PidsLimit"] == 50
        assert int(open(f"/sys/fs/cgroup/memory/minirun/{cid}/memory.limit_in_bytes").read()) == 128 << 20
        assert open(f"/sys/fs/cgroup/pids/minirun/{cid}/pids.max").read().strip() == "50"
    finally:
        clean("rm", "-f", cid)


def test_cpuset_pins_the_container(clean):
    requires("cgroup:cpuset")
    out = clean.out("run", "--rm", "--cpuset-cpus", "0", "busybox", "grep", "Cpus_allowed_list", "/proc/self/status")
    assert out.split()[-1] == "0"
