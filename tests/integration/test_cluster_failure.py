"""Failures: a worker killed with SIGKILL, a manager restarted, a container that exits, a health
check that fails. Each time the service gets back to its count, with no duplicate and nothing
left of what failed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

from cluster_helpers import FAST, containers, register, running, sleeper, tasks, wait_until, workers


def test_killed_worker_tasks_run_elsewhere_without_duplicates(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "3", *FAST)
    register(cluster, sleeper(), tmp_path)
    cluster("service", "create", "web", "-t", "sleeper", "-n", "6", "--wait")
    before = running(cluster, "web")
    assert Counter(t["worker"] for t in before) == {"w1": 2, "w2": 2, "w3": 2}
    victim = workers(cluster)["w2"]
    on_victim = {t["id"] for t in before if t["worker"] == "w2"}
    their_containers = [c["Id"] for c in containers(cluster) if c["Names"].rsplit("-", 1)[-1] in on_victim]
    assert len(their_containers) == 2

    os.kill(victim["pid"], signal.SIGKILL)
    t0 = time.monotonic()

    def replaced():
        now = running(cluster, "web")
        return len(now) == 6 and "w2" not in {t["worker"] for t in now} and now
    now = wait_until("6 tasks running on w1 and w3", replaced, timeout=10)
    elapsed = time.monotonic() - t0
    assert elapsed < 1.5 + 3, elapsed                        # lost after 1.5 s, then placed at once
    assert workers(cluster)["w2"]["status"] == "LOST"
    assert Counter(t["worker"] for t in now) == {"w1": 3, "w3": 3}
    lost = [t for t in tasks(cluster, "--all") if t["id"] in on_victim]
    assert all(t["status"] == "STOPPED" and "worker w2 lost" in t["stop_reason"] for t in lost)
    # the dead worker's containers are killed and removed; exactly one container per task
    wait_until("the leftovers removed", lambda: not {c["Id"] for c in containers(cluster)} & set(their_containers))
    names = sorted(c["Names"].rsplit("-", 1)[-1] for c in containers(cluster))
    assert names == sorted(t["id"] for t in now)
    events = cluster.out("cluster", "events")
    assert "LOST: no heartbeat" in events and "leftover container(s)" in events
    # the killed worker was the manager's child, and its monitors were re-parented to the
    # manager (a child subreaper): all reaped, no zombie left
    manager = int((cluster.root / "cluster" / "manager.pid").read_text().split()[0])
    wait_until("no zombie under the manager", lambda: not zombies_of(manager))
    assert not Path(f"/proc/{victim['pid']}").exists()


def zombies_of(parent: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                status = (d / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if fields.get("PPid", "").strip() == str(parent) and fields.get("State", "").startswith("Z"):
                found.append(int(d.name))
    return found


def test_manager_restart_keeps_the_counts(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "2", *FAST)
    register(cluster, sleeper(), tmp_path)
    cluster("service", "create", "web", "-t", "sleeper", "-n", "4", "--wait")
    tid = cluster.out("task", "run", "sleeper")
    wait_until("the task running", lambda: [t for t in tasks(cluster) if t["id"] == tid and t["status"] == "RUNNING"])
    before = {t["id"]: t["worker"] for t in tasks(cluster)}
    ids_before = sorted(c["Id"] for c in containers(cluster))
    pid = int((cluster.root / "cluster" / "manager.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    time.sleep(1.0)                                          # the workers keep their containers
    assert sorted(c["Id"] for c in containers(cluster)) == ids_before
    out = cluster.out("cluster", "up", "--workers", "2")
    assert "manager started" in out and "worker w3" not in out
    time.sleep(2.5)                                          # longer than lost-after: nobody is lost
    assert {w["status"] for w in workers(cluster).values()} == {"ACTIVE"}
    assert {t["id"]: t["worker"] for t in tasks(cluster)} == before
    assert all(t["status"] == "RUNNING" for t in tasks(cluster))
    assert sorted(c["Id"] for c in containers(cluster)) == ids_before
    cluster("service", "update", "web", "-n", "5", "--wait")  # and it still works
    assert len(running(cluster, "web")) == 5 and len(containers(cluster)) == 6


def test_essential_container_exit_replaces_the_task_with_backoff(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "2", *FAST)
    register(cluster, sleeper("crasher", command=["sh", "-c", "sleep 0.3; exit 3"]), tmp_path)
    cluster("service", "create", "crash", "-t", "crasher", "-n", "1")

    def failures():
        stopped = [t for t in tasks(cluster, "--all") if t["status"] == "STOPPED"]
        return len(stopped) >= 3 and stopped
    stopped = wait_until("three failures", failures, timeout=20)
    assert stopped[0]["stop_reason"] == "Essential container in task exited (main exited with code 3)"
    assert stopped[0]["containers"][0]["exitCode"] == 3
    events = [json.loads(line) for line in cluster.out("cluster", "events").splitlines()]
    waits = [float(e["message"].split("next start in ")[1].split(" s")[0]) for e in events
             if "next start in" in e["message"]]
    assert len(waits) >= 3
    # exponential with ±20 % jitter from 0.5 s: about 0.5, 1, 2
    assert 0.4 <= waits[0] <= 0.6 and 0.8 <= waits[1] <= 1.2 and 1.6 <= waits[2] <= 2.4, waits
    starts = sorted(t["created_at"] for t in tasks(cluster, "--all"))
    assert starts[2] - starts[1] > starts[1] - starts[0]     # the gaps grow
    cluster("service", "rm", "crash")


def test_failing_health_check_replaces_the_task(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "2", *FAST)
    # healthy until /tmp/sick exists
    hc = {"command": ["CMD-SHELL", "test ! -e /tmp/sick"], "interval": 1, "timeout": 2, "retries": 2}
    register(cluster, sleeper("checked", healthCheck=hc), tmp_path)
    cluster("service", "create", "web", "-t", "checked", "-n", "2")
    wait_until("both healthy", lambda: [t["health"] for t in running(cluster, "web")] == ["HEALTHY"] * 2)
    sick = running(cluster, "web")[0]
    cid = next(c["Id"] for c in containers(cluster) if c["Names"].endswith(sick["id"]))
    cluster("exec", cid, "touch", "/tmp/sick")
    stopped = wait_until("the sick task replaced", lambda: [
        t for t in tasks(cluster, "--all") if t["id"] == sick["id"] and t["status"] == "STOPPED"], timeout=15)
    assert stopped[0]["stop_reason"] == "Task failed container health checks"
    wait_until("two healthy again", lambda: [t["health"] for t in running(cluster, "web")] == ["HEALTHY"] * 2
               and len(containers(cluster)) == 2, timeout=15)
    assert sick["id"] not in {t["id"] for t in running(cluster, "web")}


def test_a_hung_worker_is_fenced(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "2", *FAST)
    register(cluster, sleeper(), tmp_path)
    cluster("service", "create", "web", "-t", "sleeper", "-n", "2", "--wait")
    hung = workers(cluster)["w2"]
    os.kill(hung["pid"], signal.SIGSTOP)                   # alive, but silent
    try:
        wait_until("both tasks on w1", lambda: [t["worker"] for t in running(cluster, "web")] == ["w1", "w1"])
        assert workers(cluster)["w2"]["status"] == "LOST"
        # the manager killed the silent worker, so it cannot wake up and run its tasks twice
        wait_until("the hung worker killed and reaped", lambda: not Path(f"/proc/{hung['pid']}").exists())
        wait_until("its containers removed", lambda: len(containers(cluster)) == 2)
    finally:
        if Path(f"/proc/{hung['pid']}").exists():
            os.kill(hung["pid"], signal.SIGCONT)
