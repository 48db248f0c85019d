"""A deterministic simulation of a cluster: the scheduler's decisions on a virtual clock.

    minirun sim worker-loss --seed 1          (or a scenario file: minirun sim my.json)

The simulator runs the scheduler's own decision code — placement.place (filters and strategies),
reconcile.plan (a service's next step, deployments), backoff (restart delays) — against
simulated workers, with a virtual clock and a seeded random generator, and injects what the
scenario asks: workers killed (declared lost `lost_after` seconds after their last heartbeat,
as the manager does), containers that crash, slow starts, scaling, new deployments, workers
added. The same seed gives the same output, line for line, so it serves experiments ("how long
until the service is whole again when a zone dies?") and scale ("1,000 workers, 100,000 tasks")
that a 2-core machine could not run for real.

What is *not* the real thing: the manager's glue (SQLite, HTTP, threads, heartbeats as
messages) is replaced by events on a heap; a task's start takes a random time from the
scenario instead of a container's real start.

A scenario is JSON (the built-in ones are below, `minirun sim --list` shows them):

    {"workers": {"count": 12, "cpu": 2048, "memory": 4096, "attributes": {"zone": ["a", "b", "c"]}},
     "services": [{"name": "web", "desired": 36, "cpu": 128, "memory": 256,
                   "strategy": "spread(attribute:zone),spread(instanceId)",
                   "crash": {"probability": 0.1, "after": [5, 30]}}],
     "duration": 60, "heartbeat": 1, "lost_after": 5, "start_time": [0.3, 1.5],
     "events": [{"at": 20, "kill": ["w2"]}, {"at": 30, "scale": {"web": 48}},
                {"at": 35, "deploy": {"web": 2}}, {"at": 40, "add_workers": 2},
                {"at": 45, "slow_starts": {"factor": 4, "for": 10}},
                {"at": 50, "kill_attribute": {"zone": "b"}}]}
"""

from __future__ import annotations

import heapq
import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minirun.errors import UsageError
from minirun.sched import backoff, placement, reconcile

TICK = 0.2            # the manager's reconcile period: lost workers are noticed on a tick

BUILTIN: dict[str, dict[str, Any]] = {
    "worker-loss": {
        "description": "12 workers in 3 zones, a service of 36 spread by zone; one worker dies, then a whole zone",
        "workers": {"count": 12, "cpu": 2048, "memory": 4096, "attributes": {"zone": ["a", "b", "c"]}},
        "services": [{"name": "web", "desired": 36, "cpu": 128, "memory": 256,
                      "strategy": "spread(attribute:zone),spread(instanceId)"}],
        "duration": 60, "events": [{"at": 10, "kill": ["w2"]}, {"at": 30, "kill_attribute": {"zone": "b"}}],
    },
    "crash-loop": {
        "description": "a service whose tasks crash soon after they start: restarts back off",
        "workers": {"count": 4, "cpu": 2048, "memory": 4096},
        "services": [{"name": "flaky", "desired": 4, "cpu": 128, "memory": 128,
                      "crash": {"probability": 1.0, "after": [0.5, 1.5]}},
                     {"name": "steady", "desired": 4, "cpu": 128, "memory": 128}],
        "duration": 120, "events": [],
    },
    "rolling": {
        "description": "a rolling deployment bounded by minimumHealthyPercent 50 / maximumPercent 150, with slow starts",
        "workers": {"count": 6, "cpu": 2048, "memory": 4096},
        "services": [{"name": "api", "desired": 12, "cpu": 256, "memory": 256,
                      "minimumHealthyPercent": 50, "maximumPercent": 150}],
        "duration": 60, "events": [{"at": 10, "slow_starts": {"factor": 3, "for": 30}},
                                   {"at": 10, "deploy": {"api": 2}}, {"at": 40, "scale": {"api": 18}}],
    },
    "binpack": {
        "description": "binpack(memory) fills workers one by one; a task too big stays PENDING",
        "workers": {"count": 5, "cpu": 4096, "memory": 2048},
        "services": [{"name": "batch", "desired": 20, "cpu": 64, "memory": 300, "strategy": "binpack(memory)"},
                     {"name": "huge", "desired": 1, "cpu": 64, "memory": 4000}],
        "duration": 20, "events": [{"at": 10, "add_workers": 1}],
    },
    "scale": {
        "description": "1,000 workers and 100,000 tasks in 10 services; 20 workers die at once",
        "workers": {"count": 1000, "cpu": 16384, "memory": 65536, "attributes": {"zone": ["a", "b", "c", "d"]}},
        "services": [{"name": f"svc{i}", "desired": 10_000, "cpu": 32, "memory": 64,
                      "strategy": "spread(attribute:zone),spread(instanceId)" if i % 2 == 0 else "binpack(memory)"}
                     for i in range(10)],
        "duration": 120, "events": [{"at": 60, "kill": [f"w{i}" for i in range(1, 21)]}],
    },
}


@dataclass
class SimTask:
    id: str
    service: str
    revision: int
    req: placement.TaskRequest
    created: float
    worker: str | None = None
    status: str = "PENDING"      # PENDING, RUNNING, STOPPED
    started: float | None = None
    counted: bool = False        # part of its service's `ok`


@dataclass
class SimService:
    name: str
    desired: int
    cpu: int
    memory: int
    strategy: list
    constraints: list
    minimum_healthy: int = 100
    maximum: int = 200
    revision: int = 1
    crash: dict | None = None
    restart: backoff.RestartState = field(default_factory=backoff.RestartState)
    live: dict[str, SimTask] = field(default_factory=dict)       # desired RUNNING, not stopped
    max_pending: int = 0
    deploying: bool = False      # live tasks of an older revision exist
    ok: int = 0                  # tasks RUNNING, of the current revision, on a live worker


class Simulation:
    def __init__(self, scenario: dict[str, Any], seed: int = 0):
        self.sc = scenario
        self.rng = random.Random(seed)
        self.now = 0.0
        self.heap: list = []
        self.seq = 0
        self.policy = backoff.BackoffPolicy(**scenario.get("backoff", {}))
        self.heartbeat = float(scenario.get("heartbeat", 1.0))
        self.lost_after = float(scenario.get("lost_after", 5.0))
        self.start_time = scenario.get("start_time", [0.3, 1.5])
        self.slow = (1.0, 0.0)                                    # factor, until
        self.views: dict[str, placement.WorkerView] = {}
        self.alive: dict[str, bool] = {}
        self.phase: dict[str, float] = {}
        self.services: dict[str, SimService] = {}
        self.tasks: dict[str, SimTask] = {}
        self.timeline: list[str] = []
        self.decisions = 0
        self.place_seconds = 0.0
        self.task_seq = 0
        self.outages: list[dict] = []        # a kill, until every service is whole again
        self.pending_wake: set[float] = set()
        self.samples: list[tuple[float, dict[str, int]]] = []     # for the chart
        self.marks: list[float] = []
        w = scenario["workers"]
        self._add_workers(int(w["count"]), log=False)
        for s in scenario["services"]:
            self.services[s["name"]] = SimService(
                s["name"], int(s["desired"]), int(s.get("cpu", 0)), int(s.get("memory", 0)),
                placement.parse_strategy(s["strategy"]) if s.get("strategy") else list(placement.DEFAULT_STRATEGY),
                [placement.parse_constraint(c) for c in s.get("constraints", [])],
                int(s.get("minimumHealthyPercent", 100)), int(s.get("maximumPercent", 200)),
                crash=s.get("crash"))
        for e in scenario.get("events", []):
            self.at(float(e["at"]), "scenario", e)

    # -- the event heap -------------------------------------------------------------------
    def at(self, t: float, kind: str, data: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, data))

    def log(self, text: str) -> None:
        self.timeline.append(f"{self.now:8.2f}  {text}")

    def run(self) -> Simulation:
        self.begin()
        while self.step():
            pass
        self.now = float(self.sc.get("duration", 60))
        return self

    def begin(self) -> None:
        self.log(f"{len(self.views)} workers, {len(self.services)} services, "
                 f"{sum(s.desired for s in self.services.values())} tasks desired")
        self.reconcile()
        self.sample()

    def step(self) -> bool:
        """Handle every event of the next instant, then reconcile; False when the run is over."""
        if not self.heap or self.heap[0][0] > float(self.sc.get("duration", 60)):
            return False
        t = self.heap[0][0]
        self.now = t
        dirty = False
        while self.heap and self.heap[0][0] == t:
            _, _, kind, data = heapq.heappop(self.heap)
            dirty |= self.handle(kind, data)
        if dirty:
            self.reconcile()
        self.check_outages()
        self.sample()
        return True

    def sample(self) -> None:
        counts = {name: svc.ok for name, svc in self.services.items()}
        if not self.samples or self.samples[-1][1] != counts:
            self.samples.append((self.now, counts))

    def png(self) -> bytes:
        from minirun.sched.chart import draw

        return draw(self.samples, list(self.services), float(self.sc.get("duration", 60)), self.marks)

    # -- what happens -----------------------------------------------------------------------
    def handle(self, kind: str, data: Any) -> bool:
        if kind == "started":
            t = self.tasks.get(data)
            if t is None or t.status != "PENDING" or not self.alive.get(t.worker or ""):
                return False
            t.status, t.started = "RUNNING", self.now
            svc = self.services[t.service]
            if t.revision == svc.revision:
                t.counted = True
                svc.ok += 1
            if svc.crash and self.rng.random() < svc.crash.get("probability", 0):
                lo, hi = svc.crash.get("after", [1, 10])
                self.at(self.now + self.rng.uniform(lo, hi), "crash", t.id)
            # a running task matters to the plan only while a deployment is under way
            return svc.deploying
        if kind == "crash":
            t = self.tasks.get(data)
            if t is None or t.status != "RUNNING" or not self.alive.get(t.worker or ""):
                return False
            self.stop(t, failed=True)
            return True
        if kind == "lost":
            wid = data
            v = self.views[wid]
            if v.status == "LOST":
                return False
            v.status = "LOST"
            gone = [t for t in self.tasks.values() if t.worker == wid and t.status != "STOPPED"]
            for t in gone:
                self.stop(t, failed=False)
            self.log(f"{wid} lost (no heartbeat for {self.lost_after:g} s): {len(gone)} tasks stopped")
            return True
        if kind == "wake":
            self.pending_wake.discard(self.now)
            return True
        if kind == "scenario":
            return self.scenario_event(data)
        raise AssertionError(kind)

    def scenario_event(self, e: dict) -> bool:
        victims = list(e.get("kill", []))
        for attr, value in e.get("kill_attribute", {}).items():
            victims += [w for w, v in self.views.items() if v.attributes.get(attr) == value and self.alive[w]]
        for wid in victims:
            if wid not in self.views:
                raise UsageError(f"scenario: no worker {wid}")
            if not self.alive[wid]:
                continue
            self.alive[wid] = False
            # its last heartbeat was the latest one before now; the manager notices on a tick
            last = self.phase[wid] + math.floor((self.now - self.phase[wid]) / self.heartbeat) * self.heartbeat
            noticed = math.ceil((last + self.lost_after) / TICK - 1e-9) * TICK
            self.at(max(noticed, self.now), "lost", wid)
        if victims:
            self.marks.append(self.now)
            dead = set(victims)
            for t in self.tasks.values():
                if t.counted and t.worker in dead:
                    t.counted = False
                    self.services[t.service].ok -= 1
            self.log(f"killed {', '.join(victims)}")
            self.outages.append({"at": self.now, "what": f"kill {', '.join(victims[:3])}"
                                 + (f" (+{len(victims) - 3})" if len(victims) > 3 else ""), "whole": None})
        for name, desired in e.get("scale", {}).items():
            self.services[name].desired = int(desired)
            self.log(f"service {name}: desired count {desired}")
        for name, revision in e.get("deploy", {}).items():
            svc = self.services[name]
            svc.revision = int(revision)
            svc.restart = backoff.RestartState()
            svc.deploying = True
            for t in svc.live.values():
                if t.counted:
                    t.counted = False
                    svc.ok -= 1
            self.log(f"service {name}: deploying revision {revision}")
        if e.get("add_workers"):
            self._add_workers(int(e["add_workers"]))
        if e.get("slow_starts"):
            s = e["slow_starts"]
            self.slow = (float(s.get("factor", 3)), self.now + float(s.get("for", 10)))
            self.log(f"starts {self.slow[0]:g}× slower for {s.get('for', 10)} s")
        return True

    def _add_workers(self, n: int, log: bool = True) -> None:
        w = self.sc["workers"]
        attrs = w.get("attributes", {})
        first = len(self.views) + 1
        for i in range(first, first + n):
            wid = f"w{i}"
            self.views[wid] = placement.WorkerView(
                wid, int(w.get("cpu", 1024)), int(w.get("memory", 1024)),
                {k: vals[(i - 1) % len(vals)] for k, vals in attrs.items()})
            self.alive[wid] = True
            self.phase[wid] = self.rng.uniform(0, self.heartbeat)
        if log:
            self.log(f"added workers w{first}..w{first + n - 1}")

    def stop(self, t: SimTask, failed: bool) -> None:
        svc = self.services[t.service]
        if t.worker and self.views[t.worker].status != "LOST":
            self.views[t.worker].remove(t.req)
        t.status = "STOPPED"
        svc.live.pop(t.id, None)
        if t.counted:
            t.counted = False
            svc.ok -= 1
        if failed:
            ran = self.now - t.started if t.started is not None else None
            wait = svc.restart.failed(self.now, ran, self.policy, self.rng)
            self.log(f"service {svc.name}: task {t.id} crashed; next start in {wait:.2f} s "
                     f"(failure {svc.restart.failures})")

    # -- the scheduler's pass (the same decisions as the manager) -----------------------------
    def reconcile(self) -> None:
        listed = list(self.views.values())
        for svc in self.services.values():
            views = [reconcile.TaskView(t.id, str(t.revision), t.status, True, t.created)
                     for t in svc.live.values()]
            start, stop = reconcile.plan(reconcile.ServiceView(
                svc.name, str(svc.revision), svc.desired, svc.minimum_healthy, svc.maximum), views)
            for tid in stop:
                self.stop(self.tasks[tid], failed=False)
            if start and not svc.restart.may_start(self.now):
                if svc.restart.not_before not in self.pending_wake:
                    self.pending_wake.add(svc.restart.not_before)
                    self.at(svc.restart.not_before, "wake")
                start = 0
            for _ in range(start):
                self.task_seq += 1
                t = SimTask(f"t{self.task_seq}", svc.name, svc.revision,
                            placement.TaskRequest(svc.cpu, svc.memory, f"service:{svc.name}", (),
                                                  svc.strategy, svc.constraints), self.now)
                self.tasks[t.id] = t
                svc.live[t.id] = t
            if start or stop:
                self.log(f"service {svc.name}: +{start} -{len(stop)} (desired {svc.desired}, revision {svc.revision})")
            if svc.deploying:
                svc.deploying = any(t.revision != svc.revision for t in svc.live.values())
        placed: Counter = Counter()
        unplaced: dict[str, str] = {}
        for svc in self.services.values():
            for t in svc.live.values():
                if t.worker is not None:
                    continue
                t0 = time.perf_counter()
                d = placement.place(t.req, listed, self.rng)
                self.place_seconds += time.perf_counter() - t0
                self.decisions += 1
                if d.worker is None:
                    unplaced[svc.name] = d.reason
                    continue
                self.views[d.worker].add(t.req)
                t.worker = d.worker
                placed[svc.name] += 1
                factor = self.slow[0] if self.now < self.slow[1] else 1.0
                self.at(self.now + self.rng.uniform(*self.start_time) * factor, "started", t.id)
        for name, n in sorted(placed.items()):
            self.log(f"service {name}: placed {n} task(s)")
        for name, reason in sorted(unplaced.items()):
            svc = self.services[name]
            pending = sum(t.worker is None for t in svc.live.values())
            svc.max_pending = max(svc.max_pending, pending)
            self.log(f"service {name}: {pending} PENDING: {reason}")

    def check_outages(self) -> None:
        open_ = [o for o in self.outages if o["whole"] is None]
        if open_ and all(self.whole(s) for s in self.services.values()):
            for o in open_:
                o["whole"] = self.now
                self.log(f"every service whole again, {self.now - o['at']:.2f} s after: {o['what']}")

    @staticmethod
    def whole(svc: SimService) -> bool:
        """Really whole: its tasks of the current revision run, on workers that are alive."""
        return svc.ok >= svc.desired

    # -- the report ---------------------------------------------------------------------------
    def summary(self) -> list[str]:
        out = [f"at {self.now:g} s:"]
        for svc in self.services.values():
            running = sum(t.status == "RUNNING" for t in svc.live.values())
            pending = sum(t.status == "PENDING" for t in svc.live.values())
            per_worker = Counter(t.worker for t in svc.live.values() if t.worker)
            spread = f"{min(per_worker.values())}..{max(per_worker.values())} per worker on {len(per_worker)}" if per_worker else "nowhere"
            out.append(f"  service {svc.name}: desired {svc.desired}, running {running}, pending {pending}, "
                       f"revision {svc.revision}; {spread}; most pending {svc.max_pending}; "
                       f"failures in a row {svc.restart.failures}")
        attrs = sorted({k for v in self.views.values() for k in v.attributes})
        for a in attrs:
            per_value = Counter()
            for t in self.tasks.values():
                if t.status != "STOPPED" and t.worker:
                    per_value[self.views[t.worker].attributes.get(a, "")] += 1
            out.append(f"  tasks per {a}: " + ", ".join(f"{k}={n}" for k, n in sorted(per_value.items())))
        lost = sum(v.status == "LOST" for v in self.views.values())
        out.append(f"  workers: {len(self.views) - lost} active, {lost} lost; tasks made {len(self.tasks)}, "
                   f"placement decisions {self.decisions}")
        for o in self.outages:
            took = f"{o['whole'] - o['at']:.2f} s" if o["whole"] is not None else "not within the run"
            out.append(f"  recovery after {o['what']} at {o['at']:g} s: {took}")
        return out


def load(name_or_path: str) -> dict[str, Any]:
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path)
    if not path.exists():
        raise UsageError(f"no scenario {name_or_path!r}: give a JSON file or one of {', '.join(BUILTIN)}")
    try:
        sc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: not JSON: line {e.lineno} column {e.colno}: {e.msg}") from None
    for key in ("workers", "services"):
        if key not in sc:
            raise UsageError(f"{path}: {key}: required")
    return sc


def simulate(name_or_path: str, seed: int = 0) -> Simulation:
    try:
        return Simulation(load(name_or_path), seed).run()
    except placement.PlacementError as e:
        raise UsageError(f"scenario: {e}") from None
