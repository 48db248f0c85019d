"""A worker: the long-lived process that plays one ECS container instance.

    python -m minirun.sched.worker --root ROOT --id w1      (started by `minirun cluster up`)

It imports the runtime once and starts every container through the library
(`Runtime.create/start`: the warm path, no CLI start-up per container). Three threads:

* the **poller** sends heartbeats — the worker's report (tasks, containers, health, cgroup stats)
  — and receives the tasks it should run (the manager holds the reply for up to one interval
  when nothing changed, so a new assignment arrives at once);
* the **reconciler** (main thread) makes the containers match: starts a task's containers in
  dependsOn order, notices exits, runs health checks, stops tasks no longer assigned (SIGTERM,
  SIGKILL after the container's stopTimeout), and sends a report at once when something changed;
* the **reaper** collects every child that exits. The worker is a *child subreaper*
  (prctl PR_SET_CHILD_SUBREAPER): the containers' monitors are its children, and if a monitor
  died, its orphaned container would be re-parented here rather than to PID 1 — so no zombie
  escapes, and health-check processes (exec'd into containers) are waited for here too.

If the manager is gone the worker keeps its containers running and retries (a restarted manager
takes it back); if the manager says this worker was declared LOST, it kills its containers and
exits, since the tasks already run elsewhere.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minirun import faults
from minirun.errors import ClusterError, InvalidTransition, MinirunError, ResourceNotFound
from minirun.sched import client, ecs_units, taskdef
from minirun.sched.manager import container_name
from minirun.sched.paths import ClusterPaths

if TYPE_CHECKING:
    from minirun.net.ports import PortMapping

TICK = 0.2


def _ports(td: dict, cd: dict) -> list[PortMapping]:
    """ECS portMappings as published ports: with networkMode bridge a hostPort (0: any free one)
    is published on 127.0.0.1, as `minirun run -p` does; with host the container's ports are the
    host's already, and with none there is nothing to publish to."""
    if td.get("networkMode") != "bridge":
        return []
    from minirun.net.ports import DEFAULT_HOST_IP, PortMapping

    return [PortMapping(m.get("protocol", "tcp"), DEFAULT_HOST_IP, m.get("hostPort") or 0, m["containerPort"])
            for m in cd.get("portMappings", [])]

class Reaper:
    """Collects every exited child; others ask it for a pid's exit status."""

    def __init__(self) -> None:
        self.status: dict[int, int] = {}
        self.cond = threading.Condition()

    def run(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            except InterruptedError:
                continue
            if info is None:
                continue
            code = info.si_status if info.si_code == os.CLD_EXITED else 128 + info.si_status
            with self.cond:
                self.status[info.si_pid] = code
                if len(self.status) > 10_000:
                    self.status.pop(next(iter(self.status)))
                self.cond.notify_all()

    def wait(self, pid: int, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while pid not in self.status:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.status.pop(pid)


class Container:
    def __init__(self, task: Task, cdef: dict):
        self.task = task
        self.cdef = cdef
        self.name = cdef["name"]
        self.record = None
        self.status = "PENDING"             # PENDING, RUNNING, STOPPED
        self.exit_code: int | None = None
        self.reason = ""
        self.health = "UNKNOWN" if "healthCheck" in cdef else None
        self.failures = 0
        self.started = 0.0
        self.next_check = 0.0
        self.checking = False

    def report(self) -> dict:
        return {"name": self.name, "id": self.record.id if self.record else None,
                "status": self.status, "exitCode": self.exit_code, "health": self.health,
                "reason": self.reason or None}


class Task:
    def __init__(self, tid: str, definition: dict, overrides: dict):
        self.id = tid
        self.td = definition
        self.overrides = overrides
        self.containers = {c["name"]: Container(self, c) for c in definition["containerDefinitions"]}
        self.order = taskdef.start_order(definition)
        self.status = "PENDING"              # PENDING, RUNNING, STOPPING, STOPPED
        self.reason = ""
        self.started_at: float | None = None
        self.kill_at = 0.0
        self.reported_stopped = False

    @property
    def health(self) -> str:
        states = [c.health for c in self.containers.values() if c.cdef["essential"] and c.health]
        if not states:
            return "UNKNOWN"
        if "UNHEALTHY" in states:
            return "UNHEALTHY"
        return "HEALTHY" if all(s == "HEALTHY" for s in states) else "UNKNOWN"

    def report(self) -> dict:
        return {"status": "STOPPED" if self.status == "STOPPED" else
                ("RUNNING" if self.status in ("RUNNING", "STOPPING") and self.started_at else "PENDING"),
                "reason": self.reason, "started_at": self.started_at, "health": self.health,
                "containers": [c.report() for c in self.containers.values()]}


class Worker:
    def __init__(self, root: Path, wid: str):
        from minirun.runtime.containers import Runtime
        from minirun.runtime.state import owner

        self.root = Path(root)
        self.id = wid
        self.paths = ClusterPaths(self.root)
        self.rt = Runtime(self.root, long_lived=True)     # the warm path (containers.py)
        self.rt.cgroups                       # noqa: B018 — detect the cgroup layout now (warm)
        self.rt.images                        # noqa: B018
        self.tasks: dict[str, Task] = {}
        # its containers are journaled as ours: if this process dies, gc removes them
        self.owner = owner(f"worker {wid}")
        self.lock = threading.RLock()
        self.desired: dict[str, dict] | None = None
        self.definitions: dict[str, dict] = {}    # family:revision -> its validated definition
        self.generation = 0
        self.wake = threading.Event()
        self.dirty = threading.Event()
        self.state = "ACTIVE"                 # what the manager last said: ACTIVE, DRAINING, LOST, STOPPED
        self.grace: float | None = None
        self.reaper = Reaper()
        self.heartbeat = 1.0
        self.exiting = False
        self.report_seq = 0

    # -- talking to the manager ---------------------------------------------------------------------
    def report(self) -> dict:
        stats = self.stats()
        with self.lock:
            # numbered: two reports in flight (the poll and an urgent one) may arrive in either
            # order, and the manager must not let the older one undo the newer
            self.report_seq += 1
            tasks = {tid: t.report() for tid, t in self.tasks.items()}
            return {"tasks": tasks, "stats": stats, "generation": self.generation, "seq": self.report_seq}

    def exchange(self, wait: float) -> None:
        """One heartbeat: send the report, take the assignment."""
        sent = self.report()
        stopped_sent = {tid for tid, r in sent["tasks"].items() if r["status"] == "STOPPED"}
        sent["wait"] = wait
        reply = client.call(self.root, "POST", f"/v1/workers/{self.id}/heartbeat", sent,
                            timeout=wait + 10)
        with self.lock:
            for tid in stopped_sent:
                if tid in self.tasks:
                    self.tasks[tid].reported_stopped = True
            if reply["generation"] >= self.generation or reply["status"] in ("LOST", "STOPPED"):
                self.generation = reply["generation"]
                self.desired = {t["id"]: t for t in reply["tasks"]}
                self.state = reply["status"]
                self.grace = reply.get("grace")
        self.wake.set()

    def definition(self, ref: str) -> dict:
        """The task definition `ref` (family:revision), asked of the manager once: an assignment
        names it, and a registered revision never changes."""
        if ref not in self.definitions:
            self.definitions[ref] = client.call(self.root, "GET", f"/v1/task-definitions/{ref}", timeout=10)
        return self.definitions[ref]

    def poll(self) -> None:
        while not self.exiting:
            try:
                self.exchange(wait=self.heartbeat)
            except ResourceNotFound:
                self.forgotten()
            except ClusterError:
                time.sleep(self.heartbeat)    # the manager is away: keep the tasks, retry

    def send_now(self) -> None:
        try:
            self.exchange(wait=0)
        except ResourceNotFound:
            self.forgotten()
        except ClusterError:
            pass                              # the poller retries

    def forgotten(self) -> None:
        """The manager does not know this worker (its state was removed): nothing we run is
        wanted any more. Behave as if told LOST: remove the containers and exit."""
        with self.lock:
            self.state = "LOST"
        self.wake.set()
        time.sleep(self.heartbeat)

    # -- the reconciler -------------------------------------------------------------------------
    def run(self) -> None:
        while True:
            self.wake.wait(TICK)
            self.wake.clear()
            with self.lock:
                desired = self.desired
                state = self.state
            if state == "LOST":
                self.kill_everything()
                return
            if desired is not None:
                self.step(desired)
            if self.dirty.is_set():
                self.dirty.clear()
                self.send_now()
            self.forget_reported()
            with self.lock:
                done = all(t.status == "STOPPED" for t in self.tasks.values())
            if state == "STOPPED" and done:
                return

    def step(self, desired: dict[str, dict]) -> None:
        now = time.monotonic()
        for tid, spec in desired.items():
            if tid not in self.tasks:
                try:
                    definition = self.definition(spec["taskdef"])
                except (ClusterError, ResourceNotFound):
                    continue                  # the manager is away: the next pass asks again
                with self.lock:
                    self.tasks[tid] = Task(tid, definition, spec.get("overrides", {}))
            else:
                self.apply_overrides(self.tasks[tid], spec.get("overrides", {}))
        for task in list(self.tasks.values()):
            if task.status in ("PENDING", "RUNNING") and task.id not in desired:
                self.begin_stop(task, "stopped by the manager", now)
            self.advance(task, now)

    def advance(self, task: Task, now: float) -> None:
        if task.status == "STOPPED":
            return
        for c in task.containers.values():
            if c.status == "RUNNING" and c.record is not None and not c.record.is_running():
                self.rt.wait_exit(c.record, 1.0)
                c.status, c.exit_code = "STOPPED", c.record.exit_code()
                self.dirty.set()
        if task.status in ("PENDING", "RUNNING"):
            for c in task.containers.values():
                if c.cdef["essential"] and c.status == "STOPPED":
                    why = c.reason or f"{c.name} exited with code {c.exit_code}"
                    self.begin_stop(task, f"Essential container in task exited ({why})", now)
                    break
        if task.status in ("PENDING", "RUNNING"):
            for name in task.order:
                c = task.containers[name]
                if c.status == "PENDING":
                    ready = self.dependencies_met(task, c)
                    if ready is None:
                        c.status, c.reason = "STOPPED", "a dependency did not succeed"
                        self.dirty.set()
                    elif ready:
                        self.start_container(task, c)
            if task.status == "PENDING" and all(
                    c.status == "RUNNING" or (not c.cdef["essential"] and c.status == "STOPPED")
                    for c in task.containers.values() if c.cdef["essential"]):
                task.status = "RUNNING"
                task.started_at = time.time()
                self.dirty.set()
            for c in task.containers.values():
                if c.status == "RUNNING" and c.health is not None and not c.checking and now >= c.next_check:
                    c.checking = True
                    threading.Thread(target=self.health_check, args=(c,), daemon=True).start()
        if task.status == "STOPPING":
            running = [c for c in task.containers.values() if c.status == "RUNNING"]
            if running and now >= task.kill_at:
                for c in running:
                    self.signal(c, signal.SIGKILL)
            if not running:
                task.status = "STOPPED"
                self.dirty.set()

    def dependencies_met(self, task: Task, c: Container) -> bool | None:
        """True when c may start, False to wait, None when it never can."""
        for dep in c.cdef.get("dependsOn", []):
            d = task.containers[dep["containerName"]]
            cond = dep["condition"]
            if cond == "START" and d.status == "PENDING":
                return False
            if cond in ("COMPLETE", "SUCCESS") and d.status != "STOPPED":
                return False
            if cond == "SUCCESS" and d.exit_code != 0:
                return None
            if cond == "HEALTHY" and d.health != "HEALTHY":
                return None if d.status == "STOPPED" else False
        return True

    def start_container(self, task: Task, c: Container) -> None:
        from minirun.runtime.options import Mount, RunOptions, Ulimit

        cd, td = c.cdef, task.td
        memory = task.overrides.get("memory") if task.overrides.get("memory") else None
        memory = cd.get("memory") or memory or td.get("memory")
        cpu = task.overrides.get("cpu") or td.get("cpu")
        entry = cd.get("entryPoint") or []
        command = list(entry[1:]) + list(cd.get("command") or []) if entry else list(cd.get("command") or [])
        volumes = {}
        for v in td.get("volumes", []):
            # a host path, or scratch space shared by the task's containers (removed with them)
            source = (v.get("host") or {}).get("sourcePath")
            if not source:
                task_dir = self.paths.volumes / task.id
                if not (task_dir / ".owner").exists():     # the journal first: gc's if we die
                    from minirun.storage import write_json

                    task_dir.mkdir(parents=True, exist_ok=True)
                    write_json(task_dir / ".owner", self.owner, durable=False)
                scratch = task_dir / v["name"]
                scratch.mkdir(parents=True, exist_ok=True)
                source = str(scratch)
            volumes[v["name"]] = source
        opts = RunOptions(
            image=cd["image"], command=command, entrypoint=entry[0] if entry else None,
            env=[f"{e['name']}={e.get('value', '')}" for e in cd.get("environment", [])],
            workdir=cd.get("workingDirectory"), user=cd.get("user"), hostname=cd.get("hostname"),
            name=container_name(task.id, c.name),
            memory=ecs_units.mib_to_bytes(memory) if memory else None,
            cpu_shares=ecs_units.cpu_shares(cd["cpu"]) if cd.get("cpu") else None,
            cpus=ecs_units.cpus(cpu, os.cpu_count()) if cpu else None,
            ulimits=[Ulimit(u["name"], u["softLimit"], u["hardLimit"]) for u in cd.get("ulimits", [])],
            volumes=[Mount(volumes[m["sourceVolume"]], m["containerPath"], m["readOnly"])
                     for m in cd.get("mountPoints", [])],
            read_only=cd.get("readonlyRootFilesystem", False), network=td.get("networkMode", "none"),
            publish=_ports(td, cd), detach=True, owner=self.owner)
        try:
            c.record = self.rt.create(opts)
            faults.point("worker:container-created")
            self.rt.start(c.record)
            faults.point("worker:container-started")
        except MinirunError as e:
            c.status, c.exit_code = "STOPPED", None
            c.reason = f"CannotStartContainerError: {c.name}: {e}"
            self.dirty.set()
            return
        c.status = "RUNNING"
        c.started = time.monotonic()
        hc = cd.get("healthCheck")
        if hc:
            c.next_check = c.started + min(hc["interval"], max(hc["startPeriod"], 0.5))
        self.dirty.set()

    def apply_overrides(self, task: Task, overrides: dict) -> None:
        """Vertical scaling: new task-level cpu/memory applied to the running cgroups."""
        if overrides == task.overrides:
            return
        task.overrides = dict(overrides)
        from minirun.units import cpus_to_quota

        for c in task.containers.values():
            if c.status != "RUNNING" or c.record is None:
                continue
            changes: dict[str, Any] = {}
            if overrides.get("memory") and not c.cdef.get("memory"):
                changes["memory"] = {"limit": ecs_units.mib_to_bytes(overrides["memory"])}
            if overrides.get("cpu"):
                quota, period = cpus_to_quota(ecs_units.cpus(overrides["cpu"], os.cpu_count()))
                changes["cpu"] = {"quota": quota, "period": period}
            if changes:
                with contextlib.suppress(InvalidTransition):
                    self.rt.update(c.record, changes)

    def health_check(self, c: Container) -> None:
        """One run of the container's healthCheck command (Docker's semantics: exit 0 is healthy)."""
        hc = c.cdef["healthCheck"]
        cmd = hc["command"]
        args = list(cmd[1:]) if cmd[0] == "CMD" else ["/bin/sh", "-c", cmd[1]]
        ok = False
        try:
            proc = self.rt.exec(c.record, args)
            code = self.reaper.wait(proc.pid, hc["timeout"])
            if code is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                self.reaper.wait(proc.pid, 1.0)
            ok = code == 0
        except MinirunError:
            ok = False
        with self.lock:
            now = time.monotonic()
            before = c.health
            in_start_period = now - c.started < hc["startPeriod"]
            if ok:
                c.failures, c.health = 0, "HEALTHY"
            elif not in_start_period:
                c.failures += 1
                if c.failures >= hc["retries"]:
                    c.health = "UNHEALTHY"
            c.next_check = now + hc["interval"]
            c.checking = False
            if c.health != before:
                self.dirty.set()
                self.wake.set()

    def begin_stop(self, task: Task, reason: str, now: float) -> None:
        task.status = "STOPPING"
        task.reason = task.reason or reason
        grace = min((c.cdef.get("stopTimeout", 10) for c in task.containers.values()), default=10)
        if self.grace is not None:
            grace = min(grace, self.grace)
        task.kill_at = now + grace
        for c in task.containers.values():
            if c.status == "PENDING":
                c.status = "STOPPED"
            elif c.status == "RUNNING":
                self.signal(c, _stop_signal(c))
        self.dirty.set()

    def signal(self, c: Container, sig: int) -> None:
        with contextlib.suppress(InvalidTransition, MinirunError):
            self.rt.kill(c.record, sig)

    def forget_reported(self) -> None:
        """Stopped tasks the manager has seen as STOPPED: remove their containers."""
        with self.lock:
            done = [t for t in self.tasks.values() if t.status == "STOPPED" and t.reported_stopped
                    and (self.desired is None or t.id not in self.desired)]
        for t in done:
            self.remove_containers(t)
            with self.lock:
                self.tasks.pop(t.id, None)

    def remove_containers(self, t: Task) -> None:
        for c in t.containers.values():
            if c.record is not None:
                with contextlib.suppress(MinirunError):
                    self.rt.remove(c.record, force=True)
        if (self.paths.volumes / t.id).exists():
            shutil.rmtree(self.paths.volumes / t.id)

    def kill_everything(self) -> None:
        with self.lock:
            tasks = list(self.tasks.values())
            self.tasks.clear()
        for t in tasks:
            self.remove_containers(t)

    # -- stats from cgroups ------------------------------------------------------------------------
    def stats(self) -> dict:
        total = {"memory_usage": 0, "cpu_seconds": 0.0, "containers": 0, "tasks": {}}
        with self.lock:
            tasks = list(self.tasks.values())
        for t in tasks:
            mem, cpu = 0, 0.0
            for c in t.containers.values():
                if c.status != "RUNNING" or c.record is None:
                    continue
                try:
                    s = self.rt.cgroups.open(f"minirun/{c.record.id}").stats()
                except (MinirunError, OSError):
                    continue
                mem += s.get("memory_usage") or 0
                cpu += (s.get("cpu_usage_ns") or 0) / 1e9
                total["containers"] += 1
            total["tasks"][t.id] = {"memory_usage": mem, "cpu_seconds": round(cpu, 3)}
            total["memory_usage"] += mem
            total["cpu_seconds"] += cpu
        total["cpu_seconds"] = round(total["cpu_seconds"], 3)
        return total


def _stop_signal(c: Container) -> int:
    annotations = c.record.spec().get("annotations", {}) if c.record else {}
    from minirun.procfs import signal_number

    return signal_number(annotations.get("org.opencontainers.image.stopSignal", "SIGTERM"))


def builtin_attributes() -> dict[str, str]:
    """What every worker reports about itself, as ECS's agent does (ecs.os-type, ...)."""
    return {"ecs.os-type": "linux", "ecs.cpu-architecture": platform.machine()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="minirun-worker")
    ap.add_argument("--root", required=True)
    ap.add_argument("--id", required=True)
    args = ap.parse_args(argv)
    import prctl

    prctl.set_child_subreaper(True)
    prctl.set_name("minirun-worker")
    prctl.set_proctitle(f"minirun-worker {args.id} {args.root}")
    w = Worker(Path(args.root), args.id)
    w.paths.write_pid(w.paths.worker_pid(args.id), os.getpid())
    threading.Thread(target=w.reaper.run, name="reaper", daemon=True).start()
    from minirun import procfs

    reply = client.call(w.root, "POST", f"/v1/workers/{w.id}/started",
                        {"pid": os.getpid(), "pid_start": procfs.start_time(os.getpid()),
                         "attributes": builtin_attributes()})
    w.heartbeat = float(reply["heartbeat"])
    faults.point("worker:registered")

    def terminate(*_: Any) -> None:
        # SIGTERM (cluster down without a manager): stop every task, then exit
        with w.lock:
            w.desired = {}
            w.state = "STOPPED"
            w.grace = 1.0
        w.wake.set()

    signal.signal(signal.SIGTERM, terminate)
    threading.Thread(target=w.poll, name="poller", daemon=True).start()
    try:
        w.run()
    finally:
        w.exiting = True
        w.kill_everything()
        w.rt.close()                # deferred directory deletions, the shared cgroup parents
        with contextlib.suppress(ClusterError):
            client.call(w.root, "POST", f"/v1/workers/{w.id}/exited", {}, timeout=5)
        w.paths.worker_pid(args.id).unlink(missing_ok=True)
        sys.stderr.write(json.dumps({"worker": w.id, "exited": time.time()}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
