"""`minirun cluster`: up, dashboard, status, add-worker, drain, down, events, stats.

A cluster is one manager and N worker processes on this machine (docs/scheduler.md).
"""

from __future__ import annotations

import json
import sys

import typer

from minirun.cli.api import call, check_format, mib
from minirun.cli.common import human_size, print_json, print_table, root

app = typer.Typer(help="Run a scheduler cluster: a manager and worker processes on this machine.",
                  no_args_is_help=True)


def _attributes(items: list[str] | None) -> dict[str, str]:
    from minirun.errors import UsageError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--attribute {item!r}: use KEY=VALUE")
        out[key] = value
    return out


def _units(cpus: float) -> int:
    from minirun.errors import UsageError

    if cpus <= 0:
        raise UsageError(f"--worker-cpus {cpus}: must be more than 0")
    return round(cpus * 1024)


@app.command()
def up(
    ctx: typer.Context,
    workers: int = typer.Option(2, "--workers", "-n", help="Workers to start (if none is running)."),
    worker_cpus: float = typer.Option(1.0, "--worker-cpus", help="CPUs each worker offers (1 = 1024 CPU units)."),
    worker_memory: str = typer.Option("1g", "--worker-memory", help="Memory each worker offers (e.g. 512m, 2g)."),
    attribute: list[str] = typer.Option(None, "--attribute", help="KEY=VALUE attribute of the workers (repeat)."),
    heartbeat: float = typer.Option(None, "--heartbeat", help="Seconds between heartbeats (default 1)."),
    lost_after: float = typer.Option(None, "--lost-after", help="Seconds without heartbeat before a worker is lost (default 5)."),
    metrics_port: int = typer.Option(None, "--metrics-port", help="Loopback port of /metrics (default: any free one)."),
    backoff_base: float = typer.Option(None, "--backoff-base", help="First restart delay of a failing service, s (default 1)."),
    dashboard_port: int = typer.Option(None, "--dashboard-port", help="TCP port of the dashboard (default: any free one)."),
    dashboard_host: str = typer.Option("127.0.0.1", "--dashboard-host", help="Address of the dashboard; not loopback needs --dashboard-token-file."),
    dashboard_token_file: str = typer.Option(None, "--dashboard-token-file", help="File holding the dashboard's token (16+ characters)."),
) -> None:
    """Start the manager and the workers in the background (again: restart what is missing)."""
    from pathlib import Path

    from minirun.sched import cluster, dashboard

    token = dashboard.read_token(Path(dashboard_token_file)) if dashboard_token_file else None
    started = cluster.up(root(ctx), workers, _units(worker_cpus), mib(worker_memory), _attributes(attribute),
                         dashboard_host=dashboard_host, dashboard_token=token,
                         heartbeat=heartbeat, lost_after=lost_after, metrics_port=metrics_port,
                         dashboard_port=dashboard_port, backoff_base=backoff_base)
    if started["manager"]:
        sys.stdout.write(f"manager started (pid {started['manager']})\n")
        sys.stdout.write(f"dashboard {cluster.dashboard_address(root(ctx))}\n")
    else:
        sys.stdout.write("manager already running\n")
    for w in started["workers"]:
        sys.stdout.write(f"worker {w['id']} started (pid {w['pid']}, {w['cpu']} cpu units, {w['memory']} MiB)\n")
    _status(ctx, "table")


def _status(ctx: typer.Context, format: str) -> None:
    st = call(ctx, "GET", "/v1/cluster")
    if format == "json":
        print_json(st)
        return
    m = st["manager"]
    sys.stdout.write(f"manager pid {m['pid']}, up {m['uptime']:.0f}s, heartbeat {m['heartbeat']:g}s, "
                     f"lost after {m['lost_after']:g}s, metrics {m['metrics']}\n")
    sys.stdout.write(f"tasks: {st['tasks']['RUNNING']} running, {st['tasks']['PENDING']} pending; "
                     f"services: {st['services']}\n")
    rows = []
    for w in st["workers"]:
        if w["status"] == "STOPPED":
            continue
        attrs = ",".join(f"{k}={v}" for k, v in w["attributes"].items() if not k.startswith("ecs."))
        rows.append((w["id"], w["status"], w["pid"], f"{w['reservedCpu']}/{w['cpu']}",
                     f"{w['reservedMemory']}/{w['memory']}MiB", w["runningTasks"], w["pendingTasks"],
                     f"{w['lastHeartbeat']}s ago", attrs))
    print_table(["WORKER", "STATUS", "PID", "CPU", "MEMORY", "RUNNING", "PENDING", "HEARTBEAT", "ATTRIBUTES"], rows)


@app.command()
def dashboard(
    ctx: typer.Context,
    open_: bool = typer.Option(False, "--open", help="Also open it in a browser (xdg-open)."),
) -> None:
    """Print the dashboard's address (with its token); --open opens it."""
    from minirun.sched import cluster

    url = cluster.dashboard_address(root(ctx))
    sys.stdout.write(url + "\n")
    if open_:
        import shutil
        import subprocess

        opener = shutil.which("xdg-open")
        if opener is None:
            sys.stderr.write("minirun: no xdg-open here: open the address above yourself\n")
            return
        subprocess.Popen([opener, url], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)


@app.command()
def status(ctx: typer.Context, format: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """The workers: capacity, reserved, tasks, heartbeat, attributes."""
    check_format(format)
    _status(ctx, format)


@app.command("add-worker")
def add_worker(
    ctx: typer.Context,
    count: int = typer.Option(1, "--count", "-n", help="How many."),
    cpus: float = typer.Option(1.0, "--cpus", help="CPUs it offers."),
    memory: str = typer.Option("1g", "--memory", help="Memory it offers."),
    attribute: list[str] = typer.Option(None, "--attribute", help="KEY=VALUE (repeat)."),
) -> None:
    """Start one more worker."""
    from minirun.sched import cluster

    for w in cluster.add_workers(root(ctx), count, _units(cpus), mib(memory), _attributes(attribute)):
        sys.stdout.write(f"worker {w['id']} started (pid {w['pid']})\n")


@app.command()
def drain(ctx: typer.Context, worker: str = typer.Argument(..., help="Worker id (w1, ...).")) -> None:
    """Take a worker out of placement; its service tasks move elsewhere."""
    call(ctx, "POST", f"/v1/workers/{worker}/drain", {})
    sys.stdout.write(f"{worker} draining\n")


@app.command()
def down(ctx: typer.Context, timeout: float = typer.Option(30.0, "--timeout", help="Seconds to let tasks stop.")) -> None:
    """Stop every task, the workers and the manager; leave nothing running."""
    from minirun.sched import cluster

    s = cluster.down(root(ctx), timeout)
    extra = f"; killed {', '.join(s['killed'])}" if s["killed"] else ""
    removed = f"; removed {s['containers_removed']} leftover container(s)" if s["containers_removed"] else ""
    sys.stdout.write(f"cluster down{extra}{removed}\n")


@app.command()
def events(
    ctx: typer.Context,
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new events."),
    since: int = typer.Option(0, "--since", help="After this sequence number (negative: the last N)."),
) -> None:
    """Events as JSON lines: placements, state changes, failures, deployments."""
    seq = since
    while True:
        found = call(ctx, "GET", f"/v1/events?since={seq}&wait={25 if follow else 0}", timeout=40)
        for e in found:
            sys.stdout.write(json.dumps(e) + "\n")
            seq = e["seq"]
        sys.stdout.flush()
        if not follow:
            return


@app.command()
def stats(ctx: typer.Context, format: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """Memory and CPU time per worker and per task, from the containers' cgroups."""
    check_format(format)
    st = call(ctx, "GET", "/v1/cluster")
    tasks = {t["id"]: t for t in call(ctx, "GET", "/v1/tasks")}
    if format == "json":
        print_json({w["id"]: w["stats"] for w in st["workers"]})
        return
    rows = []
    for w in st["workers"]:
        s = w.get("stats") or {}
        if w["status"] in ("STOPPED", "LOST"):
            continue
        rows.append((w["id"], "", "", human_size(s.get("memory_usage", 0)), f"{s.get('cpu_seconds', 0):.2f}s"))
        for tid, ts in sorted((s.get("tasks") or {}).items()):
            t = tasks.get(tid, {})
            rows.append(("", tid, t.get("service") or t.get("taskdef", ""), human_size(ts["memory_usage"]),
                         f"{ts['cpu_seconds']:.2f}s"))
    print_table(["WORKER", "TASK", "SERVICE", "MEMORY", "CPU TIME"], rows)


# `minirun dashboard` is also a top-level verb (cli/app.py's TOP_VERBS)
VERBS = {"dashboard": dashboard}


def register(top: typer.Typer, only: str | None = None) -> None:
    for name, function in VERBS.items():
        if only is None or only == name:
            top.command(name)(function)
