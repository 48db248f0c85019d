"""The manager's decisions without processes: a Manager on a temporary data root, driven through
the calls its API makes (heartbeats carry reports, tick() is one reconcile pass)."""

from __future__ import annotations

import os

import pytest

from minirun.errors import ResourceNotFound, TaskDefinitionError
from minirun.sched.backoff import BackoffPolicy
from minirun.sched.manager import Manager

TD = {"family": "web", "containerDefinitions": [{"name": "app", "image": "busybox", "memory": 64}]}
NOT_ALIVE = 1          # a start time no process of ours has: the manager will not signal it


def manager(root, **kw) -> Manager:
    return Manager(root, heartbeat=0.5, lost_after=2.0, policy=BackoffPolicy(base=100, cap=1000, jitter=0), seed=1, **kw)


def worker(m: Manager, memory: int = 1024) -> str:
    w = m.add_worker(1024, memory, {"zone": "a"})
    m.worker_started(w["id"], os.getpid(), NOT_ALIVE, {})
    return w["id"]


def report(m: Manager, wid: str, **statuses: dict) -> dict:
    return m.heartbeat_from(wid, {"tasks": statuses, "generation": 0}, wait=0)


def test_state_survives_a_restart_and_assignments_are_not_ignored(tmp_path):
    m = manager(tmp_path)
    assert m.register(TD)["revision"] == 1 and m.register(TD)["revision"] == 2
    w1 = worker(m)
    m.create_service({"name": "s", "taskDefinition": "web", "desiredCount": 2})
    gen = report(m, w1)["generation"]
    ids = sorted(t["id"] for t in m.tasks.values())
    m.store.close()
    m2 = manager(tmp_path)
    assert m2.taskdef("web")["revision"] == 2
    assert sorted(m2.tasks) == ids and all(t["worker"] == w1 for t in m2.tasks.values())
    m2.tick()
    assert len(m2.tasks) == 2                                  # nothing started twice
    reply = report(m2, w1)
    assert reply["generation"] > gen and sorted(t["id"] for t in reply["tasks"]) == ids


def test_after_cluster_down_the_next_manager_starts_a_new_cluster(tmp_path):
    """`cluster down` ends the state (Store.ended); a restart without it carries on (above)."""
    m = manager(tmp_path)
    m.register(TD)
    w1 = worker(m)
    worker(m)
    m.create_service({"name": "s", "taskDefinition": "web", "desiredCount": 2})
    (tmp_path / "cluster" / "logs").mkdir()
    (tmp_path / "cluster" / "logs" / "w1.log").write_text("the old w1\n")
    old = set(m.tasks)
    m.store.ended()
    m.store.close()
    m2 = manager(tmp_path)
    assert m2.workers == {} and m2.tasks == {} and m2.services == {}
    assert m2.taskdef("web")["revision"] == 1                 # definitions outlive a cluster
    assert worker(m2) == w1 == "w1"                            # numbered from w1 again
    assert (tmp_path / "cluster" / "logs" / "previous" / "w1.log").read_text() == "the old w1\n"
    events = m2.store.events()
    assert old <= {e["subject"].rsplit("/", 1)[-1] for e in events}   # the history stays
    first = next(e for e in events if e["kind"] == "cluster")
    assert first["message"].startswith("a new cluster: the one before (2 workers, 2 tasks, 1 service)")
    m2.create_service({"name": "s", "taskDefinition": "web", "desiredCount": 1})
    from minirun.sched.manager import _service_view
    assert all(e["seq"] > first["seq"] for e in _service_view(m2, m2.service("s"))["events"])
    m2.store.close()
    assert manager(tmp_path).workers.keys() == {"w1"}           # started once: no second reset


def test_a_silent_worker_is_lost_and_its_tasks_replaced(tmp_path):
    m = manager(tmp_path)
    m.register(TD)
    w1, w2 = worker(m), worker(m)
    m.create_service({"name": "s", "taskDefinition": "web", "desiredCount": 2})
    on = {t["worker"] for t in m.tasks.values()}
    assert on == {w1, w2}
    for wid in (w1, w2):
        report(m, wid, **{t["id"]: {"status": "RUNNING"} for t in m.tasks.values() if t["worker"] == wid})
    m.workers[w2]["last_seen"] -= 10
    m.tick()
    assert m.workers[w2]["status"] == "LOST"
    lost = [t for t in m.tasks.values() if t["status"] == "STOPPED"]
    assert len(lost) == 1 and lost[0]["stop_reason"] == f"worker {w2} lost (no heartbeat for 2 s)"
    live = [t for t in m.tasks.values() if t["status"] != "STOPPED"]
    assert len(live) == 2 and {t["worker"] for t in live} == {w1}
    assert m.services["s"]["failures"] == 0                    # not the task's fault: no backoff
    assert report(m, w2)["status"] == "LOST"                   # it is told, if it ever speaks


def test_a_failed_task_backs_off_and_a_pending_one_says_why(tmp_path):
    m = manager(tmp_path)
    m.register(TD)
    w1 = worker(m, memory=100)
    m.create_service({"name": "s", "taskDefinition": "web", "desiredCount": 2})
    placed = [t for t in m.tasks.values() if t["worker"]]
    pending = [t for t in m.tasks.values() if not t["worker"]]
    assert len(placed) == 1 and pending[0]["pending_reason"] == \
        "no worker fits (cpu 0, memory 64 MiB): 1 not enough memory"
    tid = placed[0]["id"]
    report(m, w1, **{tid: {"status": "RUNNING"}})
    report(m, w1, **{tid: {"status": "STOPPED", "reason": "Essential container in task exited (app exited with code 1)"}})
    t = m.tasks[tid]
    assert t["status"] == "STOPPED" and t["stop_reason"].startswith("Essential container")
    svc = m.services["s"]
    assert svc["failures"] == 1 and svc["not_before"] > t["stopped_at"] + 99
    m.tick()
    live = [t for t in m.tasks.values() if t["status"] != "STOPPED"]
    assert len(live) == 1                                      # backing off: no new task yet
    assert live[0]["worker"] == w1                             # the pending one took the room


def test_unhealthy_service_task_is_stopped_and_unknown_names_are_refused(tmp_path):
    m = manager(tmp_path)
    m.register(TD)
    w1 = worker(m)
    m.create_service({"name": "s", "taskDefinition": "web", "desiredCount": 1})
    tid = next(iter(m.tasks))
    report(m, w1, **{tid: {"status": "RUNNING", "health": "UNHEALTHY"}})
    assert m.tasks[tid]["desired"] == "STOPPED"
    assert m.tasks[tid]["stop_reason"] == "Task failed container health checks"
    assert tid not in [t["id"] for t in report(m, w1)["tasks"]]
    with pytest.raises(ResourceNotFound):
        m.task("ffff")
    with pytest.raises(ResourceNotFound):
        m.heartbeat_from("w9", {}, 0)
    with pytest.raises(TaskDefinitionError):
        m.register({"family": "x"})


def test_a_late_older_report_does_not_undo_a_newer_one(tmp_path):
    m = manager(tmp_path)
    m.register(TD)
    w1 = worker(m)
    tid = m.run_tasks("web", 1, None, [], None)[0]["id"]
    m.heartbeat_from(w1, {"seq": 2, "tasks": {tid: {"status": "RUNNING"}}}, 0)
    assert m.tasks[tid]["status"] == "RUNNING"
    m.heartbeat_from(w1, {"seq": 1, "tasks": {}}, 0)          # built before the task existed
    assert m.tasks[tid]["status"] == "RUNNING"
    m.heartbeat_from(w1, {"seq": 3, "tasks": {}}, 0)          # newer, and the task is gone
    assert m.tasks[tid]["status"] == "STOPPED"
    assert m.tasks[tid]["stop_reason"] == f"the task vanished from worker {w1}"
