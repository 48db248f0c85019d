"""The scheduler: placement decisions per second, 100 tasks on a real 4-worker cluster against
100 sequential `minirun run -d`, and the time from `kill -9` of a worker to its tasks running
elsewhere (with the default heartbeat 1 s and lost-after 5 s).

    .venv/bin/python benchmarks/scheduler.py [--tasks 100] [--workers 4] [--skip-real]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    IMAGE_NAME,
    Section,
    log,
    minirun,
    minirun_root,
    record_samples,
    run_standalone,
    verdict,
)

from minirun.sched import placement  # noqa: E402

TARGET_DECISIONS = 10_000        # per second, 100 workers
TARGET_100_TASKS = 10.0          # s, 4 workers
TARGET_RECOVERY = 7.0            # s, kill -9 -> tasks running elsewhere


def decisions_per_second(workers: int, strategy: str, seconds: float = 1.5) -> float:
    """Place tasks of one service one after the other on `workers` simulated workers."""
    ws = [placement.WorkerView(f"w{i}", 64 * 1024, 256 * 1024, {"zone": "abcd"[i % 4]})
          for i in range(1, workers + 1)]
    by_id = {w.id: w for w in ws}
    req = placement.TaskRequest(cpu=32, memory=64, group="service:bench",
                                strategy=placement.parse_strategy(strategy))
    rng = random.Random(1)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            d = placement.place(req, ws, rng)
            by_id[d.worker].add(req)
        n += 100
    return n / (time.perf_counter() - t0)


def placement_section() -> Section:
    sec = Section("scheduler: placement decisions per second (one core, no explain table)",
                  ["strategy", "100 workers", "1,000 workers", "target at 100"])
    data = {}
    for strategy in ("spread(instanceId)", "binpack(memory)", "spread(attribute:zone),spread(instanceId)"):
        rates = [decisions_per_second(n, strategy) for n in (100, 1000)]
        data[strategy] = {"100": rates[0], "1000": rates[1]}
        sec.rows.append([strategy, f"{rates[0]:,.0f}/s", f"{rates[1]:,.0f}/s",
                         f"≥ {TARGET_DECISIONS:,}/s {verdict(rates[0] >= TARGET_DECISIONS)}"])
    sec.notes.append("each decision filters every worker and ranks the ones left (placement.place); "
                     "`minirun sim` uses the same function")
    record_samples("scheduler_decisions", data)
    return sec


def wait_for(what: str, check, timeout: float, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def tasks(root: Path, *args: str) -> list[dict]:
    return json.loads(minirun(root, "task", "ls", "--format", "json", *args).stdout)


def real_section(n_tasks: int, n_workers: int) -> Section:
    sec = Section(f"scheduler: a real cluster ({n_workers} workers, busybox `sleep`)",
                  ["measure", "time", "target"])
    td = {"family": "sleeper", "containerDefinitions": [
        {"name": "main", "image": IMAGE_NAME, "cpu": 16, "memory": 16, "command": ["sleep", "3600"],
         "stopTimeout": 1}]}
    with minirun_root("sched") as root:
        try:
            minirun(root, "cluster", "up", "--workers", str(n_workers), "--worker-cpus", "2",
                    "--worker-memory", "4g")
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(td, f)
            minirun(root, "task-definition", "register", f.name)
            os.unlink(f.name)
            log(f"scheduler: a service of {n_tasks} tasks on {n_workers} workers")
            t0 = time.monotonic()
            minirun(root, "service", "create", "bench", "-t", "sleeper", "-n", str(n_tasks))
            ramp: list[tuple[float, int]] = []        # (s since create, tasks RUNNING)

            def all_running():
                n = len(tasks(root, "--status", "RUNNING"))
                ramp.append((round(time.monotonic() - t0, 3), n))
                return n == n_tasks
            wait_for(f"{n_tasks} running", all_running, 60, 0.1)
            cluster_s = time.monotonic() - t0
            sec.rows.append([f"{n_tasks} tasks RUNNING (service create → all RUNNING)", f"{cluster_s:.2f} s",
                             f"≤ {TARGET_100_TASKS:g} s {verdict(cluster_s <= TARGET_100_TASKS)}"])

            status = json.loads(minirun(root, "cluster", "status", "--format", "json").stdout)
            victim = status["workers"][1]
            on_victim = {t["id"] for t in tasks(root) if t["worker"] == victim["id"]}
            log(f"scheduler: kill -9 {victim['id']} (pid {victim['pid']}, {len(on_victim)} tasks)")
            t0 = time.monotonic()
            os.kill(victim["pid"], signal.SIGKILL)

            timeline: list[tuple[float, int, int]] = []   # (s since kill, RUNNING, of them on the victim)

            def recovered():
                now = tasks(root, "--status", "RUNNING")
                on = sum(t["worker"] == victim["id"] for t in now)
                timeline.append((round(time.monotonic() - t0, 3), len(now), on))
                return len(now) == n_tasks and on == 0
            wait_for("the tasks running elsewhere", recovered, 30, 0.05)
            recovery_s = time.monotonic() - t0
            record_samples("scheduler_real", {"tasks": n_tasks, "workers": n_workers, "ramp": ramp,
                                              "victim_tasks": len(on_victim), "recovery": timeline,
                                              "recovery_s": recovery_s})
            sec.rows.append([f"kill -9 of a worker → its {len(on_victim)} tasks RUNNING elsewhere",
                             f"{recovery_s:.2f} s", f"≤ {TARGET_RECOVERY:g} s {verdict(recovery_s <= TARGET_RECOVERY)}"])
        finally:
            minirun(root, "cluster", "down", "--timeout", "10", check=False)

    with minirun_root("sched-seq") as root:
        log(f"scheduler: {n_tasks} sequential `minirun run -d`")
        t0 = time.monotonic()
        for _ in range(n_tasks):
            minirun(root, "run", "-d", "-m", "16m", IMAGE_NAME, "sleep", "3600")
        seq_s = time.monotonic() - t0
        sec.rows.append([f"{n_tasks} sequential `minirun run -d` (for comparison)", f"{seq_s:.2f} s", ""])
    sec.notes.append("the workers start containers through the library (Runtime), with every import done "
                     "once; `minirun run -d` pays the CLI's start-up each time")
    sec.notes.append("recovery = lost-after (5 s, no heartbeat) + placement + a start; heartbeat 1 s")
    return sec


def main(argv: list[str] | None = None) -> list[Section]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--skip-real", action="store_true", help="only the placement rate")
    args = ap.parse_args(argv)
    log("scheduler: placement decisions per second")
    sections = [placement_section()]
    if not args.skip_real:
        sections.append(real_section(args.tasks, args.workers))
    return sections


if __name__ == "__main__":
    run_standalone(main)
