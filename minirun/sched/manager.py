"""The manager: desired state, placement, failure handling, and the API the CLI calls.

    python -m minirun.sched.manager --root ROOT      (started by `minirun cluster up`)

One process. It keeps every task definition, service, task and worker in SQLite (store.py) and
in memory, and runs a reconcile pass several times a second, under one lock:

1. workers whose last heartbeat is older than `lost_after` are LOST: their tasks are STOPPED
   and their leftover containers killed (the worker process too, if it still exists: a hung
   worker must not come back and run a task twice);
2. each service is compared with its tasks (reconcile.plan): missing tasks are created, surplus
   or replaced ones told to stop; a service whose tasks keep failing waits (backoff.py);
3. tasks that have no worker yet are placed (placement.place); those that fit nowhere stay
   PENDING with the reason.

Workers pull: each heartbeat carries the worker's report (its tasks, their containers, health,
stats) and returns the tasks it should run. The manager holds a heartbeat for up to one
interval when it has nothing new, so a new assignment reaches the worker at once (a long poll).

The API is HTTP/1.0 + JSON on a Unix socket (ROOT/cluster/manager.sock, docs/api/openapi.yaml);
`/metrics` in Prometheus's text format is served on a loopback TCP port.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import random
import secrets
import signal
import socketserver
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from minirun import errors
from minirun.errors import ClusterError, MinirunError, ResourceNotFound, UsageError
from minirun.sched import backoff, ecs_units, placement, reconcile, taskdef
from minirun.sched.paths import ClusterPaths
from minirun.sched.store import Store

ACTIVE_STATES = ("PENDING", "RUNNING")


def container_name(task_id: str, name: str) -> str:
    """The runtime's name for a task's container (ECS's agent names them ecs-...-ID too)."""
    return f"ecs-{name}-{task_id}"


class Manager:
    def __init__(self, root: Path, heartbeat: float = 1.0, lost_after: float = 5.0,
                 policy: backoff.BackoffPolicy | None = None, seed: int | None = None):
        self.root = Path(root)
        self.paths = ClusterPaths(self.root)
        self.heartbeat = heartbeat
        self.lost_after = lost_after
        self.policy = policy or backoff.BackoffPolicy()
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.store = Store(self.paths.db)
        self.taskdefs: dict[tuple[str, int], dict] = {}
        self.workers: dict[str, dict] = {}
        self.services: dict[str, dict] = {}
        self.tasks: dict[str, dict] = {}
        self.generation: dict[str, int] = {}      # worker -> version of its desired task list
        self.shutting_down = False
        self.stopped = threading.Event()
        self.started = time.time()
        self.placements = 0
        self._load()

    # -- start-up: reconcile from SQLite -------------------------------------------------------
    def _load(self) -> None:
        now = time.time()
        # after `cluster down`, a new cluster: none of the old one's workers, services or tasks
        # (they would show as LOST and STOPPED beside the new ones); its events stay
        gone = self.store.start_clean()
        if gone is not None:
            self._new_cluster(gone)
        # a service's own events (service describe, the dashboard) are this cluster's only
        self.cluster_since = int(self.store.meta("cluster_since", "0") or 0)
        for td in self.store.load("task_definitions"):
            if not taskdef.DERIVED_FIELDS <= td.keys():     # stored by an older manager
                td = taskdef.derive(td)
            self.taskdefs[(td["family"], td["revision"])] = td
        for w in self.store.load("workers"):
            self.workers[w["id"]] = w
            if w["status"] in ("ACTIVE", "DRAINING"):
                # the workers kept running while we were away: give each a full period to
                # reconnect before calling it lost
                w["last_seen"] = now
        for s in self.store.load("services"):
            self.services[s["name"]] = s
        for t in self.store.load("tasks"):
            self.tasks[t["id"]] = t
        # a worker ignores an assignment older than the last it applied: start above anything a
        # previous manager handed out (microseconds since the epoch), so a restart is not ignored
        base = int(now * 1_000_000)
        self.generation = {w: base for w in self.workers}
        self.event("manager", "manager", f"started (pid {os.getpid()}): {len(self.workers)} workers, "
                   f"{sum(t['status'] != 'STOPPED' for t in self.tasks.values())} tasks not stopped")

    def _new_cluster(self, gone: dict) -> None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(gone["down_at"]))
        self.event("cluster", "cluster",
                   f"a new cluster: the one before ({_count(gone['workers'], 'worker')}, "
                   f"{_count(gone['tasks'], 'task')}, {_count(gone['services'], 'service')}) went down "
                   f"at {when}; its events are the ones before this")
        self.store.set_meta("cluster_since", str(self.store.last_seq()))
        # the new w1 must not append to the old w1's log: keep the old cluster's logs aside
        previous = self.paths.logs / "previous"
        for log in sorted(self.paths.logs.glob("w*.log")) if self.paths.logs.is_dir() else []:
            previous.mkdir(exist_ok=True)
            log.replace(previous / log.name)

    def event(self, kind: str, subject: str, message: str) -> None:
        self.store.event(kind, subject, message)
        with self.changed:                    # the lock is reentrant: callers may hold it
            self.changed.notify_all()

    # -- task definitions -----------------------------------------------------------------------
    def register(self, body: Any) -> dict:
        td = taskdef.validate(body)
        with self.lock:
            revs = [r for (f, r) in self.taskdefs if f == td["family"]]
            td = dict(td, revision=max(revs, default=0) + 1, status="ACTIVE", registeredAt=time.time())
            self.taskdefs[(td["family"], td["revision"])] = td
            self.store.put_task_definition(td)
            self.event("task-definition", f"{td['family']}:{td['revision']}", "registered")
            return td

    def taskdef(self, ref: str, active_only: bool = False) -> dict:
        """'family' (its latest ACTIVE revision) or 'family:revision'."""
        family, _, rev = ref.partition(":")
        if rev:
            if not rev.isdigit() or (family, int(rev)) not in self.taskdefs:
                raise ResourceNotFound(f"no task definition {ref}")
            td = self.taskdefs[(family, int(rev))]
            if active_only and td["status"] != "ACTIVE":
                raise ResourceNotFound(f"task definition {ref} is deregistered (INACTIVE)")
            return td
        revs = [td for (f, _), td in self.taskdefs.items() if f == family and td["status"] == "ACTIVE"]
        if not revs:
            raise ResourceNotFound(f"no active task definition of family {family!r} "
                                   "(see minirun task-definition ls)")
        return max(revs, key=lambda td: td["revision"])

    def deregister(self, ref: str) -> dict:
        if ":" not in ref:
            raise UsageError(f"deregister needs a revision: {ref}:N")
        with self.lock:
            td = self.taskdef(ref)
            td["status"] = "INACTIVE"
            self.store.put_task_definition(td)
            self.event("task-definition", ref, "deregistered")
            return td

    # -- workers --------------------------------------------------------------------------------
    def add_worker(self, cpu: int, memory: int, attributes: dict[str, str]) -> dict:
        if cpu < 128 or memory < 16:
            raise UsageError("a worker needs at least 128 CPU units and 16 MiB")
        with self.lock:
            n = int(self.store.meta("worker_seq", "0")) + 1
            self.store.set_meta("worker_seq", str(n))
            w = {"id": f"w{n}", "cpu": cpu, "memory": memory, "attributes": dict(attributes),
                 "status": "STARTING", "pid": None, "pid_start": None, "last_seen": time.time(),
                 "registered_at": time.time(), "stats": {}}
            self.workers[w["id"]] = w
            self.generation[w["id"]] = int(time.time() * 1_000_000)
            self.store.put_worker(w)
            return w

    def spawn_worker(self, wid: str) -> int:
        """Start the worker process as our child, in a session of its own. The manager is a
        child subreaper and reaps it (and, if the worker is killed, its orphaned monitors)."""
        log = self.paths.logs / f"{wid}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "minirun.sched.worker", "--root", str(self.root), "--id", wid]
        return os.posix_spawn(sys.executable, argv, dict(os.environ), setsid=True, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2)])

    def worker(self, wid: str) -> dict:
        w = self.workers.get(wid)
        if w is None:
            raise ResourceNotFound(f"no worker {wid} (see minirun cluster status)")
        return w

    def worker_started(self, wid: str, pid: int, pid_start: int, attributes: dict[str, str]) -> dict:
        with self.lock:
            w = self.worker(wid)
            if w["status"] not in ("STARTING", "ACTIVE"):
                raise ClusterError(f"worker {wid} is {w['status']}: it cannot come back")
            w.update(status="ACTIVE", pid=pid, pid_start=pid_start, last_seen=time.time(), report_seq=0)
            w["attributes"] = {**attributes, **w["attributes"]}
            self.store.put_worker(w)
            self.event("worker", wid, f"active (pid {pid}, {w['cpu']} cpu units, {w['memory']} MiB)")
            return {"heartbeat": self.heartbeat, "lost_after": self.lost_after}

    def drain(self, wid: str) -> dict:
        with self.lock:
            w = self.worker(wid)
            if w["status"] not in ("ACTIVE", "DRAINING"):
                raise ClusterError(f"worker {wid} is {w['status']}: only an active worker can drain")
            w["status"] = "DRAINING"
            self.store.put_worker(w)
            self.event("worker", wid, "draining: its service tasks move to other workers")
            # ECS: service tasks on a draining instance are replaced; standalone tasks stay
            for t in self._tasks_on(wid):
                if t["service"] and t["desired"] == "RUNNING":
                    self._stop(t, f"worker {wid} is draining")
            self.changed.notify_all()
            return w

    def heartbeat_from(self, wid: str, report: dict, wait: float) -> dict:
        deadline = time.monotonic() + min(max(wait, 0.0), self.heartbeat)
        with self.lock:
            w = self.worker(wid)
            if w["status"] == "LOST":
                return {"status": "LOST", "tasks": [], "generation": 0}
            w["last_seen"] = time.time()
            seq = report.get("seq", 0)
            if not seq or seq > w.get("report_seq", 0):   # an older report arriving late is stale
                w["report_seq"] = seq
                if "stats" in report:
                    w["stats"] = report["stats"]
                self._apply_report(w, report.get("tasks", {}))
            self.store.put_worker(w)
            known = report.get("generation", 0)
            while (not self.shutting_down and self.generation.get(wid, 0) == known
                   and w["status"] != "STOPPED" and time.monotonic() < deadline):
                self.changed.wait(deadline - time.monotonic())
            return self._assignment(w)

    def _assignment(self, w: dict) -> dict:
        tasks = []
        for t in self._tasks_on(w["id"]):
            if t["desired"] == "RUNNING" and t["status"] != "STOPPED":
                # the definition by name: the worker asks for one it has not seen, once
                tasks.append({"id": t["id"], "taskdef": t["taskdef"], "overrides": t.get("overrides", {})})
        status = "STOPPED" if self.shutting_down and not tasks else w["status"]
        return {"status": status, "tasks": tasks, "generation": self.generation.get(w["id"], 0),
                "grace": 1 if self.shutting_down else None}

    def _apply_report(self, w: dict, reported: dict[str, dict]) -> None:
        now = time.time()
        dirty = []
        for tid, r in reported.items():
            t = self.tasks.get(tid)
            if t is None or t["worker"] != w["id"] or t["status"] == "STOPPED":
                continue                       # not ours (any more): absent from the assignment
            before = (t["status"], t.get("health"), t.get("containers"))
            t["acked"] = True
            t["containers"] = r.get("containers", [])
            t["health"] = r.get("health", "UNKNOWN")
            if r["status"] == "RUNNING" and t["status"] == "PENDING":
                t["status"] = "RUNNING"
                t["started_at"] = r.get("started_at") or now
                t["history"].append([now, "RUNNING"])
                self.event("task", self._subject(t), f"RUNNING on {w['id']}")
            elif r["status"] == "STOPPED":
                self._stopped(t, r.get("reason") or "stopped", now)
            if (t["service"] and t["status"] == "RUNNING" and t["health"] == "UNHEALTHY"
                    and t["desired"] == "RUNNING"):
                self._stop(t, "Task failed container health checks", failure=True)
            if (t["status"], t.get("health"), t.get("containers")) != before:
                dirty.append(t)
        for t in self._tasks_on(w["id"]):
            if t["status"] != "STOPPED" and t.get("acked") and t["id"] not in reported:
                self._stopped(t, f"the task vanished from worker {w['id']}", now)
                dirty.append(t)
        if dirty:
            self.store.put_tasks(dirty)
            self.changed.notify_all()

    # -- tasks ----------------------------------------------------------------------------------
    def _tasks_on(self, wid: str) -> list[dict]:
        return [t for t in self.tasks.values() if t["worker"] == wid]

    @staticmethod
    def _subject(t: dict) -> str:
        return f"service/{t['service']}/{t['id']}" if t["service"] else f"task/{t['id']}"

    def _new_task(self, td: dict, service: dict | None, group: str, strategy: list, constraints: list,
                  overrides: dict | None = None) -> dict:
        cpu, memory = taskdef.reservation(td)
        overrides = overrides or {}
        cpu = overrides.get("cpu", cpu)
        memory = overrides.get("memory", memory)
        now = time.time()
        t = {"id": secrets.token_hex(6), "taskdef": f"{td['family']}:{td['revision']}",
             "service": service["name"] if service else None, "group": group, "worker": None,
             "desired": "RUNNING", "status": "PENDING", "health": "UNKNOWN", "acked": False,
             "cpu": cpu, "memory": memory, "ports": taskdef.host_ports(td),
             "strategy": strategy, "constraints": constraints + [
                 c for c in td.get("placementConstraints", [])],
             "overrides": overrides, "containers": [], "stop_reason": None,
             "pending_reason": "not placed yet", "decision": None, "created_at": now,
             "started_at": None, "stopped_at": None, "history": [[now, "PENDING"]]}
        self.tasks[t["id"]] = t
        return t

    def run_tasks(self, ref: str, count: int, strategy: str | None, constraints: list[str],
                  group: str | None) -> list[dict]:
        if not 1 <= count <= 1000:
            raise UsageError("--count must be from 1 to 1000")
        strat = placement.parse_strategy(strategy) if strategy else list(placement.DEFAULT_STRATEGY)
        cons = [placement.parse_constraint(c) for c in constraints]
        with self.lock:
            td = self.taskdef(ref, active_only=True)
            tasks = [self._new_task(td, None, group or f"family:{td['family']}", strat, cons)
                     for _ in range(count)]
            self._place_pending()
            self.store.put_tasks(tasks)
            for t in tasks:
                self.event("task", self._subject(t), f"created from {t['taskdef']}")
            return tasks

    def task(self, ref: str) -> dict:
        t = self.tasks.get(ref)
        if t is None:
            matches = [t for tid, t in self.tasks.items() if tid.startswith(ref)] if ref else []
            if len(matches) != 1:
                raise ResourceNotFound(f"no task {ref}" if not matches else f"task id {ref} is ambiguous")
            t = matches[0]
        return t

    def stop_task(self, ref: str, reason: str | None) -> dict:
        with self.lock:
            t = self.task(ref)
            if t["desired"] == "RUNNING":
                self._stop(t, reason or "Task stopped by the user")
                self.changed.notify_all()
            return t

    def _stop(self, t: dict, reason: str, failure: bool = False) -> None:
        """Desired STOPPED: the worker stops the containers and reports it STOPPED."""
        t["desired"] = "STOPPED"
        t["stop_reason"] = reason
        t["failure"] = failure
        self.event("task", self._subject(t), f"stopping: {reason}")
        if t["worker"] is None:
            self._stopped(t, reason, time.time())
        else:
            self.generation[t["worker"]] = self.generation.get(t["worker"], 0) + 1
        self.store.put_task(t)

    def _stopped(self, t: dict, reason: str, now: float) -> None:
        """The task is STOPPED (reported by its worker, its worker lost, or never placed)."""
        if t["status"] == "STOPPED":
            return
        asked = t["desired"] == "STOPPED"
        failed = t.get("failure") or not asked
        t["status"] = "STOPPED"
        t["stopped_at"] = now
        t["stop_reason"] = t["stop_reason"] if asked and t["stop_reason"] else reason
        t["desired"] = "STOPPED"
        t["history"].append([now, "STOPPED"])
        self.event("task", self._subject(t), f"STOPPED: {t['stop_reason']}")
        svc = self.services.get(t["service"] or "")
        if svc and failed and not t.get("lost"):
            state = backoff.RestartState(svc.get("failures", 0), svc.get("not_before", 0.0))
            ran = (now - t["started_at"]) if t["started_at"] else None
            wait = state.failed(now, ran, self.policy, self.rng)
            svc["failures"], svc["not_before"] = state.failures, state.not_before
            self.store.put_service(svc)
            self.event("service", f"service/{svc['name']}",
                       f"task {t['id']} failed ({t['stop_reason']}); next start in {wait:.1f} s "
                       f"(failure {state.failures} in a row)")
        self.store.put_task(t)

    # -- services -------------------------------------------------------------------------------
    def create_service(self, body: dict) -> dict:
        name = body.get("name", "")
        if not isinstance(name, str) or not taskdef.NAME.match(name):
            raise UsageError(f"service name {name!r}: 1 to 255 letters, digits, '-' or '_'")
        desired = body.get("desiredCount", 1)
        if not isinstance(desired, int) or desired < 0 or desired > 1000:
            raise UsageError("--desired-count must be from 0 to 1000")
        lo, hi = body.get("minimumHealthyPercent", 100), body.get("maximumPercent", 200)
        problem = reconcile.check_bounds(lo, hi)
        if problem:
            raise UsageError(problem)
        strat = placement.parse_strategy(body["strategy"]) if body.get("strategy") else list(placement.DEFAULT_STRATEGY)
        cons = [placement.parse_constraint(c) for c in body.get("constraints", [])]
        with self.lock:
            if name in self.services and self.services[name]["status"] == "ACTIVE":
                raise ClusterError(f"service {name} exists already (service update changes it)")
            td = self.taskdef(body.get("taskDefinition", ""), active_only=True)
            now = time.time()
            svc = {"name": name, "taskdef": f"{td['family']}:{td['revision']}", "desired": desired,
                   "status": "ACTIVE", "strategy": strat, "constraints": cons,
                   "minimumHealthyPercent": lo, "maximumPercent": hi, "overrides": {},
                   "failures": 0, "not_before": 0.0, "created_at": now, "updated_at": now,
                   "deployments": [[now, f"{td['family']}:{td['revision']}", desired]]}
            self.services[name] = svc
            self.store.put_service(svc)
            self.event("service", f"service/{name}", f"created: {desired} × {svc['taskdef']}")
            self._reconcile_services()
            self._place_pending()
            return svc

    def service(self, name: str) -> dict:
        svc = self.services.get(name)
        if svc is None or svc["status"] != "ACTIVE":
            raise ResourceNotFound(f"no service {name} (see minirun service ls)")
        return svc

    def update_service(self, name: str, body: dict) -> dict:
        with self.lock:
            svc = self.service(name)
            changes = []
            if body.get("desiredCount") is not None:
                d = body["desiredCount"]
                if not isinstance(d, int) or not 0 <= d <= 1000:
                    raise UsageError("--desired-count must be from 0 to 1000")
                changes.append(f"desired {svc['desired']} -> {d}")
                svc["desired"] = d
            if body.get("taskDefinition"):
                td = self.taskdef(body["taskDefinition"], active_only=True)
                ref = f"{td['family']}:{td['revision']}"
                if ref != svc["taskdef"]:
                    changes.append(f"task definition {svc['taskdef']} -> {ref} (rolling deployment)")
                    svc["taskdef"] = ref
                    svc["failures"], svc["not_before"] = 0, 0.0
            live = {k: body[k] for k in ("cpu", "memory") if body.get(k) is not None}
            if live:
                self._vertical(svc, live, changes)
            if not changes:
                raise UsageError("nothing to change: give --desired-count, --task-definition, --cpu or --memory")
            svc["updated_at"] = time.time()
            svc["deployments"].append([svc["updated_at"], svc["taskdef"], svc["desired"]])
            self.store.put_service(svc)
            self.event("service", f"service/{name}", "updated: " + "; ".join(changes))
            self._reconcile_services()
            self._place_pending()
            self.changed.notify_all()
            return svc

    def _vertical(self, svc: dict, live: dict, changes: list[str]) -> None:
        """New task-level cpu/memory: applied live when every task still fits where it runs
        (the workers change the cgroups), otherwise by rolling replacement."""
        for key, value in live.items():
            if not isinstance(value, int) or value < (128 if key == "cpu" else ecs_units.MIN_MEMORY_MIB):
                raise UsageError(f"--{key}: must be an integer ≥ {128 if key == 'cpu' else 6} "
                                 f"({'CPU units' if key == 'cpu' else 'MiB'})")
        svc["overrides"] = {**svc.get("overrides", {}), **live}
        tasks = [t for t in self.tasks.values() if t["service"] == svc["name"] and t["desired"] == "RUNNING"]
        views = self._views()
        fits = True
        for t in tasks:
            if t["worker"] is None:
                continue
            v = views[t["worker"]]
            extra_cpu = live.get("cpu", t["cpu"]) - t["cpu"]
            extra_mem = live.get("memory", t["memory"]) - t["memory"]
            if v.free_cpu < extra_cpu or v.free_memory < extra_mem:
                fits = False
            v.reserved_cpu += extra_cpu
            v.reserved_memory += extra_mem
        if fits:
            for t in tasks:
                t["cpu"] = live.get("cpu", t["cpu"])
                t["memory"] = live.get("memory", t["memory"])
                t["overrides"] = dict(svc["overrides"])
                if t["worker"]:
                    self.generation[t["worker"]] = self.generation.get(t["worker"], 0) + 1
            self.store.put_tasks(tasks)
            changes.append(f"{', '.join(f'{k} {v}' for k, v in live.items())} applied live")
        else:
            svc["config"] = svc.get("config", 0) + 1
            changes.append(f"{', '.join(f'{k} {v}' for k, v in live.items())} by rolling replacement "
                           "(the tasks do not all fit where they run)")

    def remove_service(self, name: str) -> dict:
        with self.lock:
            svc = self.service(name)
            svc["status"] = "INACTIVE"
            svc["desired"] = 0
            self.store.put_service(svc)
            for t in list(self.tasks.values()):
                if t["service"] == name and t["desired"] == "RUNNING":
                    self._stop(t, f"service {name} deleted")
            self.event("service", f"service/{name}", "deleted")
            self.changed.notify_all()
            return svc

    # -- the reconcile pass ---------------------------------------------------------------------
    def tick(self) -> None:
        with self.lock:
            self._detect_lost()
            if not self.shutting_down:
                self._reconcile_services()
            self._place_pending()

    def _detect_lost(self) -> None:
        now = time.time()
        for w in self.workers.values():
            if w["status"] in ("ACTIVE", "DRAINING", "STARTING") and now - w["last_seen"] > self.lost_after:
                w["status"] = "LOST"
                self.store.put_worker(w)
                self.event("worker", w["id"], f"LOST: no heartbeat for {now - w['last_seen']:.1f} s "
                           f"(limit {self.lost_after:g} s)")
                doomed = []
                for t in self._tasks_on(w["id"]):
                    if t["status"] != "STOPPED":
                        t["lost"] = True
                        self._stopped(t, f"worker {w['id']} lost (no heartbeat for {self.lost_after:g} s)", now)
                    doomed.append(t["id"])
                threading.Thread(target=self._clean_lost, args=(dict(w), doomed), daemon=True).start()
                self.changed.notify_all()

    def _clean_lost(self, w: dict, task_ids: list[str]) -> None:
        """Fence the lost worker (kill it if it still exists), then kill its leftover containers."""
        from minirun import procfs

        if w.get("pid") and procfs.is_alive(w["pid"], w.get("pid_start")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(w["pid"], signal.SIGKILL)
        removed = remove_task_containers(self.root, set(task_ids))
        with self.lock:
            if removed:
                self.event("worker", w["id"], f"removed {removed} leftover container(s)")

    def _reconcile_services(self) -> None:
        now = time.time()
        for svc in self.services.values():
            if svc["status"] != "ACTIVE":
                continue
            mine = [t for t in self.tasks.values() if t["service"] == svc["name"] and t["desired"] == "RUNNING"]
            # what a task was made from: the definition, and the service's cpu/memory version
            # (bumped when a resize could not be applied live: the old tasks are then replaced
            # by a rolling deployment, like a new definition)
            current = f"{svc['taskdef']}#{svc.get('config', 0)}"
            views = [reconcile.TaskView(t["id"], f"{t['taskdef']}#{t.get('config', 0)}", t["status"],
                                        t.get("health") != "UNHEALTHY", t["created_at"]) for t in mine]
            start, stop = reconcile.plan(reconcile.ServiceView(
                svc["name"], current, svc["desired"], svc["minimumHealthyPercent"],
                svc["maximumPercent"]), views)
            for tid in stop:
                t = self.tasks[tid]
                if f"{t['taskdef']}#{t.get('config', 0)}" == current:
                    why = "scaled down"
                elif t["taskdef"] != svc["taskdef"]:
                    why = f"replaced by {svc['taskdef']} (deployment)"
                else:
                    why = "replaced with the new cpu/memory (deployment)"
                self._stop(t, f"Scaling activity initiated by service {svc['name']}: {why}")
            if start and now < svc.get("not_before", 0):
                continue                    # backing off after failures
            if start:
                family, rev = svc["taskdef"].rsplit(":", 1)
                td = self.taskdefs[(family, int(rev))]
                new = [self._new_task(td, svc, f"service:{svc['name']}", svc["strategy"],
                                      svc["constraints"], svc.get("overrides")) for _ in range(start)]
                for t in new:
                    t["config"] = svc.get("config", 0)
                self.store.put_tasks(new)
                self.event("service", f"service/{svc['name']}", f"started {start} task(s) of {svc['taskdef']}")
            # a run that lasted reset_after without a failure clears the count
            if svc.get("failures") and now - svc.get("not_before", 0) > self.policy.reset_after:
                svc["failures"] = 0
                self.store.put_service(svc)

    def _views(self) -> dict[str, placement.WorkerView]:
        views = {wid: placement.WorkerView(wid, w["cpu"], w["memory"], w["attributes"],
                                           w["status"] if w["status"] != "STARTING" else "starting")
                 for wid, w in self.workers.items() if w["status"] not in ("STOPPED",)}
        for t in self.tasks.values():
            if t["worker"] in views and t["status"] != "STOPPED":
                views[t["worker"]].add(placement.TaskRequest(t["cpu"], t["memory"], t["group"], tuple(t["ports"])))
        return views

    def _place_pending(self) -> None:
        pending = sorted((t for t in self.tasks.values()
                          if t["worker"] is None and t["desired"] == "RUNNING" and t["status"] == "PENDING"),
                         key=lambda t: t["created_at"])
        if not pending:
            return
        views = self._views()
        listed = [views[w] for w in sorted(views, key=_worker_order)]
        changed = []
        for t in pending:
            req = placement.TaskRequest(t["cpu"], t["memory"], t["group"], tuple(t["ports"]),
                                        t["strategy"], t["constraints"])
            d = placement.place(req, listed, self.rng, explain=True)
            self.placements += 1
            t["decision"] = dict(d.to_json(), time=time.time())
            if d.worker is None:
                if t["pending_reason"] != d.reason:
                    t["pending_reason"] = d.reason
                    self.event("task", self._subject(t), f"PENDING: {d.reason}")
                    changed.append(t)
                continue
            views[d.worker].add(req)
            t["worker"] = d.worker
            t["pending_reason"] = None
            self.generation[d.worker] = self.generation.get(d.worker, 0) + 1
            self.event("task", self._subject(t), f"placed on {d.worker}: {d.reason}")
            changed.append(t)
        if changed:
            self.store.put_tasks(changed)
            self.changed.notify_all()

    def loop(self) -> None:
        while not self.stopped.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 — a bug in one pass must not stop all later ones
                import traceback

                traceback.print_exc()         # to ROOT/cluster/logs/manager.log
                with self.lock:
                    self.event("manager", "manager", "a reconcile pass failed (see logs/manager.log)")
            self.stopped.wait(0.2)

    # -- shutdown -------------------------------------------------------------------------------
    def shutdown(self, timeout: float = 30.0) -> dict:
        """`cluster down`: stop every task, let the workers exit, then stop serving."""
        deadline = time.monotonic() + timeout
        with self.lock:
            self.shutting_down = True
            for svc in self.services.values():
                if svc["status"] == "ACTIVE":
                    svc["status"] = "INACTIVE"
                    svc["desired"] = 0
                    self.store.put_service(svc)
            for t in self.tasks.values():
                if t["desired"] == "RUNNING":
                    self._stop(t, "cluster down")
            self.event("manager", "manager", "cluster down: stopping every task")
            self.changed.notify_all()
            while time.monotonic() < deadline:
                live = [w for w in self.workers.values() if w["status"] in ("ACTIVE", "DRAINING", "STARTING")]
                busy = [t for t in self.tasks.values() if t["status"] != "STOPPED" and t["worker"]]
                if not busy and not live:
                    break
                self.changed.wait(0.1)
            left = [t["id"] for t in self.tasks.values() if t["status"] != "STOPPED"]
        return {"stopped": True, "tasks_left": left}

    def worker_exited(self, wid: str) -> None:
        with self.lock:
            w = self.worker(wid)
            if w["status"] != "LOST":
                w["status"] = "STOPPED"
                self.store.put_worker(w)
                self.event("worker", wid, "stopped")
            self.changed.notify_all()

    # -- views for the API ------------------------------------------------------------------------
    def cluster_status(self) -> dict:
        with self.lock:
            views = self._views()
            workers = []
            for wid, w in sorted(self.workers.items(), key=lambda kv: _worker_order(kv[0])):
                v = views.get(wid)
                running = [t for t in self._tasks_on(wid) if t["status"] != "STOPPED"]
                workers.append({"id": wid, "status": w["status"], "pid": w["pid"], "cpu": w["cpu"],
                                "memory": w["memory"], "reservedCpu": v.reserved_cpu if v else 0,
                                "reservedMemory": v.reserved_memory if v else 0,
                                "runningTasks": sum(t["status"] == "RUNNING" for t in running),
                                "pendingTasks": sum(t["status"] == "PENDING" for t in running),
                                "attributes": w["attributes"],
                                "lastHeartbeat": round(time.time() - w["last_seen"], 1), "stats": w.get("stats", {})})
            return {"manager": {"pid": os.getpid(), "uptime": round(time.time() - self.started, 1),
                                "heartbeat": self.heartbeat, "lost_after": self.lost_after,
                                "metrics": self.paths.metrics_url(),
                                "dashboard": self.paths.dashboard_url()},
                    "workers": workers,
                    "tasks": {s: sum(t["status"] == s for t in self.tasks.values()) for s in ("PENDING", "RUNNING", "STOPPED")},
                    "services": sum(s["status"] == "ACTIVE" for s in self.services.values())}

    def metrics(self) -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        with self.lock:
            lines = []

            def metric(name: str, kind: str, help_: str, samples: list[tuple[dict, float]]) -> None:
                lines.append(f"# HELP minirun_{name} {help_}")
                lines.append(f"# TYPE minirun_{name} {kind}")
                for labels, value in samples:
                    lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
                    lines.append(f"minirun_{name}{{{lab}}} {value}" if lab else f"minirun_{name} {value}")

            counts: dict[tuple, int] = {}
            for t in self.tasks.values():
                key = (t["status"], t["service"] or "")
                counts[key] = counts.get(key, 0) + 1
            metric("tasks", "gauge", "Tasks by last status and service.",
                   [({"status": s, "service": svc}, n) for (s, svc), n in sorted(counts.items())])
            metric("workers", "gauge", "Workers by status.",
                   [({"status": s}, sum(w["status"] == s for w in self.workers.values()))
                    for s in ("ACTIVE", "DRAINING", "LOST", "STOPPED")])
            views = self._views()
            metric("worker_cpu_reserved_units", "gauge", "CPU units reserved on each worker.",
                   [({"worker": w}, v.reserved_cpu) for w, v in views.items()])
            metric("worker_memory_reserved_mib", "gauge", "Memory reserved on each worker (MiB).",
                   [({"worker": w}, v.reserved_memory) for w, v in views.items()])
            metric("worker_memory_usage_bytes", "gauge", "Memory used by each worker's containers (cgroups).",
                   [({"worker": w}, self.workers[w].get("stats", {}).get("memory_usage", 0))
                    for w in views])
            metric("worker_cpu_usage_seconds_total", "counter", "CPU time of each worker's containers (cgroups).",
                   [({"worker": w}, self.workers[w].get("stats", {}).get("cpu_seconds", 0))
                    for w in views])
            metric("service_desired_tasks", "gauge", "Desired count of each service.",
                   [({"service": s["name"]}, s["desired"]) for s in self.services.values() if s["status"] == "ACTIVE"])
            metric("placements_total", "counter", "Placement decisions made.", [({}, self.placements)])
            return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _worker_order(wid: str) -> int:
    """w1, w2, ..., w10: by number, not as text."""
    return int(wid[1:]) if wid[1:].isdigit() else 0


def remove_task_containers(root: Path, task_ids: set[str]) -> int:
    """Kill and remove every container of these tasks (by the name suffix the workers give)."""
    import shutil

    from minirun.runtime.containers import Runtime

    rt = Runtime(root)
    removed = 0
    for record in rt.store.list():
        if record.name.startswith("ecs-") and record.name.rsplit("-", 1)[-1] in task_ids:
            with contextlib.suppress(errors.ContainerNotFound):
                rt.remove(record, force=True)
                removed += 1
    volumes = ClusterPaths(root).volumes
    for tid in task_ids:
        if (volumes / tid).exists():
            shutil.rmtree(volumes / tid)
    return removed


# -- HTTP -------------------------------------------------------------------------------------
HTTP_STATUS = {ResourceNotFound: 404, errors.TaskDefinitionError: 400, UsageError: 400,
               placement.PlacementError: 400, ClusterError: 409}


def error_reply(e: Exception) -> tuple[int, dict]:
    """The HTTP status and body of an error (the Unix socket and the dashboard's port)."""
    if isinstance(e, placement.PlacementError):
        return 400, {"error": {"type": "UsageError", "message": str(e)}}
    if not isinstance(e, MinirunError):       # a malformed number in a request
        return 400, {"error": {"type": "UsageError", "message": f"bad request: {e}"}}
    status = next((s for cls, s in HTTP_STATUS.items() if isinstance(e, cls)), 400)
    payload = {"error": {"type": type(e).__name__, "message": str(e)}}
    if isinstance(e, errors.TaskDefinitionError):
        payload["error"]["problems"] = e.problems
    return status, payload


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # socketserver's default backlog is 5: the workers' long polls, their fetches of task
    # definitions and the CLI's --wait polls arriving together overflowed it, and a connect()
    # with a timeout to a full Unix-socket backlog fails at once (EAGAIN) instead of waiting
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away mid-reply (a worker killed during its long poll) is normal
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    manager: Manager
    server_version = "minirun-manager"

    def log_message(self, format: str, *args: Any) -> None:    # noqa: A002 — the base's name
        pass

    def address_string(self) -> str:
        return "unix"

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        if not n:
            return {}
        try:
            return json.loads(self.rfile.read(n))
        except json.JSONDecodeError as e:
            raise UsageError(f"the request body is not JSON: {e}") from None

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        try:
            result = route(self.manager, method, parts, query, self._body() if method in ("POST", "PATCH") else {})
            if isinstance(result, tuple):
                self._send(200, result[1], result[0])
            else:
                self._send(200, result)
        except (MinirunError, placement.PlacementError) as e:
            self._send(*error_reply(e))
        if method == "POST" and parts[-2:] == ["cluster", "shutdown"]:
            self.manager.stopped.set()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


def route(m: Manager, method: str, p: list[str], q: dict[str, str], body: Any) -> Any:
    """The API table (docs/api/openapi.yaml describes each path)."""
    if p[:1] != ["v1"]:
        raise ResourceNotFound(f"no such path /{'/'.join(p)}")
    p = p[1:]
    n = len(p)
    if p == ["cluster"] and method == "GET":
        return m.cluster_status()
    if p == ["cluster", "shutdown"] and method == "POST":
        return m.shutdown(float(body.get("timeout", 30)))
    if p == ["events"] and method == "GET":
        return _events(m, q)
    if p[:1] == ["workers"]:
        if n == 1 and method == "POST":
            w = m.add_worker(int(body.get("cpu", 1024)), int(body.get("memory", 1024)), body.get("attributes", {}))
            return dict(w, pid=m.spawn_worker(w["id"])) if body.get("spawn") else w
        if n == 1 and method == "GET":
            return m.cluster_status()["workers"]
        if n == 3 and p[2] == "started" and method == "POST":
            return m.worker_started(p[1], int(body["pid"]), int(body.get("pid_start") or 0), body.get("attributes", {}))
        if n == 3 and p[2] == "heartbeat" and method == "POST":
            return m.heartbeat_from(p[1], body, float(body.get("wait", 0)))
        if n == 3 and p[2] == "exited" and method == "POST":
            m.worker_exited(p[1])
            return {}
        if n == 3 and p[2] == "drain" and method == "POST":
            return _public_worker(m.drain(p[1]))
    if p[:1] == ["task-definitions"]:
        if n == 1 and method == "POST":
            return m.register(body)
        if n == 1 and method == "GET":
            with m.lock:
                tds = sorted(m.taskdefs.values(), key=lambda td: (td["family"], td["revision"]))
                return [td for td in tds if q.get("all") or td["status"] == "ACTIVE"]
        if n == 2 and method == "GET":
            with m.lock:
                return m.taskdef(p[1])
        if n == 2 and method == "DELETE":
            return m.deregister(p[1])
    if p[:1] == ["tasks"]:
        if n == 1 and method == "POST":
            return m.run_tasks(body.get("taskDefinition", ""), int(body.get("count", 1)),
                               body.get("strategy"), body.get("constraints", []), body.get("group"))
        if n == 1 and method == "GET":
            with m.lock:
                tasks = sorted(m.tasks.values(), key=lambda t: t["created_at"])
                if q.get("service"):
                    tasks = [t for t in tasks if t["service"] == q["service"]]
                if q.get("status"):
                    tasks = [t for t in tasks if t["status"] == q["status"]]
                elif not q.get("all"):
                    tasks = [t for t in tasks if t["status"] != "STOPPED"]
                return tasks
        if n == 2 and method == "GET":
            with m.lock:
                t = m.task(p[1])
                w = m.workers.get(t["worker"] or "")
                stats = ((w or {}).get("stats") or {}).get("tasks", {}).get(t["id"])
                return dict(t, stats=stats) if stats and t["status"] != "STOPPED" else t
        if n == 3 and p[2] == "stop" and method == "POST":
            return m.stop_task(p[1], body.get("reason"))
        if n == 3 and p[2] == "explain" and method == "GET":
            with m.lock:
                t = m.task(p[1])
                return {"task": t["id"], "status": t["status"], "worker": t["worker"],
                        "pending_reason": t["pending_reason"], "decision": t["decision"]}
    if p[:1] == ["services"]:
        if n == 1 and method == "POST":
            return m.create_service(body)
        if n == 1 and method == "GET":
            with m.lock:
                return [_service_view(m, s) for s in m.services.values() if s["status"] == "ACTIVE" or q.get("all")]
        if n == 2 and method == "GET":
            with m.lock:
                return _service_view(m, m.service(p[1]))
        if n == 2 and method == "PATCH":
            return _service_view(m, m.update_service(p[1], body))
        if n == 2 and method == "DELETE":
            return m.remove_service(p[1])
    raise ResourceNotFound(f"no such path: {method} /v1/{'/'.join(p)}")


def _public_worker(w: dict) -> dict:
    return {k: v for k, v in w.items() if k != "stats"}


def _service_view(m: Manager, s: dict) -> dict:
    mine = [t for t in m.tasks.values() if t["service"] == s["name"]]
    return dict(s, running=sum(t["status"] == "RUNNING" for t in mine),
                pending=sum(t["status"] == "PENDING" for t in mine),
                tasks=[t["id"] for t in mine if t["status"] != "STOPPED"],
                events=m.store.events(since=m.cluster_since, subject=f"service/{s['name']}", limit=10_000)[-20:])


def _events(m: Manager, q: dict[str, str]) -> list[dict]:
    since = int(q.get("since", 0))
    if since < 0:
        since = max(0, m.store.last_seq() + since)
    wait = min(float(q.get("wait", 0)), 30.0)
    deadline = time.monotonic() + wait
    with m.lock:
        while True:
            found = m.store.events(since)
            if found or time.monotonic() >= deadline or m.stopped.is_set():
                return found
            m.changed.wait(min(0.5, deadline - time.monotonic()))


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    manager: Manager

    def log_message(self, format: str, *args: Any) -> None:    # noqa: A002
        pass

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        data = self.manager.metrics().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(m: Manager, metrics_port: int = 0, dashboard_host: str = "127.0.0.1",
          dashboard_port: int = 0) -> None:
    """Serve the API, /metrics and the dashboard until `cluster down` or SIGTERM."""
    from minirun.sched import dashboard

    token = m.paths.read_dashboard_token()
    dashboard.check_bind(dashboard_host, token)
    if token is None:
        token = dashboard.new_token()
        m.paths.write_dashboard_token(token)
    # before the socket: whoever sees the socket can read the dashboard's address
    board = dashboard.serve(functools.partial(route, m), error_reply, dashboard_host, dashboard_port,
                            token, m.paths.dashboard_url())
    m.paths.dashboard.write_text(json.dumps({"url": board.url()}) + "\n")
    sock = m.paths.socket
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    handler = type("Handler", (_Handler,), {"manager": m})
    server = _Server(str(sock), handler)
    os.chmod(sock, 0o600)
    metrics_handler = type("MetricsHandler", (_MetricsHandler,), {"manager": m})
    metrics = http.server.ThreadingHTTPServer(("127.0.0.1", metrics_port), metrics_handler)
    metrics.daemon_threads = True
    m.paths.metrics_port.write_text(f"{metrics.server_address[1]}\n")
    threads = [threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True),
               threading.Thread(target=metrics.serve_forever, args=(0.2,), daemon=True),
               threading.Thread(target=board.serve_forever, args=(0.2,), daemon=True),
               threading.Thread(target=m.loop, daemon=True)]
    for t in threads:
        t.start()
    signal.signal(signal.SIGTERM, lambda *_: m.stopped.set())
    signal.signal(signal.SIGINT, lambda *_: m.stopped.set())
    try:
        while not m.stopped.wait(0.5):
            pass
        time.sleep(0.1)                       # let the shutdown reply reach its caller
    finally:
        server.shutdown()
        metrics.shutdown()
        board.shutdown()
        server.server_close()
        metrics.server_close()
        board.server_close()
        m.paths.dashboard.unlink(missing_ok=True)
        m.paths.dashboard_token.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        m.paths.metrics_port.unlink(missing_ok=True)
        with m.lock:
            m.event("manager", "manager", "exited")
            m.store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="minirun-manager")
    ap.add_argument("--root", required=True)
    ap.add_argument("--heartbeat", type=float, default=1.0)
    ap.add_argument("--lost-after", type=float, default=5.0)
    ap.add_argument("--metrics-port", type=int, default=0)
    ap.add_argument("--dashboard-host", default="127.0.0.1")
    ap.add_argument("--dashboard-port", type=int, default=0)
    ap.add_argument("--backoff-base", type=float, default=1.0)
    ap.add_argument("--backoff-cap", type=float, default=60.0)
    ap.add_argument("--backoff-reset", type=float, default=30.0)
    args = ap.parse_args(argv)
    _name_process("minirun-manager", f"minirun-manager {args.root}")
    import prctl

    prctl.set_child_subreaper(True)
    threading.Thread(target=_reap_children, name="reaper", daemon=True).start()
    m = Manager(Path(args.root), args.heartbeat, args.lost_after,
                backoff.BackoffPolicy(base=args.backoff_base, cap=args.backoff_cap,
                                      reset_after=args.backoff_reset))
    m.paths.write_pid(m.paths.manager_pid, os.getpid())
    try:
        serve(m, args.metrics_port, args.dashboard_host, args.dashboard_port)
    finally:
        m.paths.manager_pid.unlink(missing_ok=True)
    return 0


def _reap_children() -> None:
    """Collect every child that exits: the workers we started, and the containers' monitors
    re-parented to us when their worker was killed. Nobody else here waits for a child."""
    while True:
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED)
        except ChildProcessError:
            time.sleep(0.2)
        except InterruptedError:
            pass


def _name_process(comm: str, title: str) -> None:
    """Name the process for ps/top: comm (15 bytes, prctl PR_SET_NAME) and the command line."""
    import prctl

    prctl.set_name(comm[:15])
    prctl.set_proctitle(title)


if __name__ == "__main__":
    sys.exit(main())
