"""Bringing a cluster up and down: the manager and worker processes, in the background.

No systemd: the manager is started the classic Unix daemon way (fork, setsid, fork again, so
it has no controlling terminal and is not the child of the command that started it), with its
stdin on /dev/null and its stderr appended to ROOT/cluster/logs/manager.log. The manager then
starts each worker as its own child (posix_spawn, a session of its own, logs/wN.log) and, as a
child subreaper, reaps them and whatever they leave orphaned. Each process writes its own pid
file ("PID START_TIME", paths.py) and removes it when it exits cleanly.

`down` asks the manager to stop every task and let the workers go; whatever does not go in time
is killed by pid (checked against its start time), and a last sweep removes any container of a
task recorded in the state, so nothing is left behind even after a `kill -9` of the manager.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from minirun.errors import ClusterError
from minirun.sched import client
from minirun.sched.paths import ClusterPaths

DEFAULTS = {"heartbeat": 1.0, "lost_after": 5.0, "metrics_port": 0, "dashboard_port": 0, "backoff_base": 1.0,
            "backoff_cap": 60.0, "backoff_reset": 30.0}


def daemonize(argv: list[str], log: Path) -> int:
    """Start `python ARGV` detached from us (double fork + setsid); its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:                            # the intermediate: a new session, then fork again
        try:
            os.close(r)
            os.setsid()
            pid = os.fork()
            if pid == 0:
                try:
                    null = os.open(os.devnull, os.O_RDONLY)
                    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                    os.dup2(null, 0)
                    os.dup2(out, 1)
                    os.dup2(out, 2)
                    os.close(w)
                    os.chdir("/")
                    os.execv(sys.executable, [sys.executable, *argv])
                finally:
                    os._exit(127)
            os.write(w, str(pid).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = os.read(r, 32)
    finally:
        os.close(r)
        os.waitpid(child, 0)
    if not data:
        raise ClusterError(f"could not start {' '.join(argv[:3])}")
    return int(data)


def _log_tail(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "no log"
    return lines[-1] if lines else "its log is empty"


def _wait_for(what: str, ready, pid: int | None, log: Path, timeout: float = 15.0) -> Any:
    from minirun import procfs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = ready()
        if result:
            return result
        if pid is not None and procfs.start_time(pid) is None:
            raise ClusterError(f"{what} exited at start-up: {_log_tail(log)} (see {log})")
        time.sleep(0.05)
    raise ClusterError(f"{what} did not become ready within {timeout:g} s (see {log})")


def config(root: Path, **given: Any) -> dict[str, Any]:
    """The cluster's settings: the flags given now, else those of the last `up`, else defaults."""
    paths = ClusterPaths(root)
    try:
        saved = json.loads(paths.config.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        saved = {}
    conf = {k: given.get(k) if given.get(k) is not None else saved.get(k, v) for k, v in DEFAULTS.items()}
    if conf["heartbeat"] <= 0 or conf["lost_after"] <= conf["heartbeat"]:
        from minirun.errors import UsageError

        raise UsageError("--lost-after must be longer than --heartbeat (and both more than 0)")
    paths.dir.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(json.dumps(conf) + "\n")
    return conf


def manager_running(root: Path) -> tuple[int, int] | None:
    return ClusterPaths(root).read_pid(ClusterPaths(root).manager_pid)


def start_manager(root: Path, conf: dict[str, Any], dashboard_host: str = "127.0.0.1") -> int:
    paths = ClusterPaths(root)
    argv = ["-m", "minirun.sched.manager", "--root", str(root), "--heartbeat", str(conf["heartbeat"]),
            "--dashboard-host", dashboard_host, "--dashboard-port", str(conf["dashboard_port"]),
            "--lost-after", str(conf["lost_after"]), "--metrics-port", str(conf["metrics_port"]),
            "--backoff-base", str(conf["backoff_base"]), "--backoff-cap", str(conf["backoff_cap"]),
            "--backoff-reset", str(conf["backoff_reset"])]
    log = paths.logs / "manager.log"
    pid = daemonize(argv, log)

    def answers():
        try:
            return client.call(root, "GET", "/v1/cluster", timeout=2)
        except ClusterError:
            return None

    _wait_for("the manager", answers, pid, log)
    return pid


def up(root: Path, workers: int, cpu: int, memory: int, attributes: dict[str, str],
       dashboard_host: str = "127.0.0.1", dashboard_token: str | None = None,
       **settings: Any) -> dict[str, Any]:
    """Start the manager unless it runs, then `workers` workers unless some are alive.
    The dashboard listens on loopback unless dashboard_host says otherwise, which needs a
    token of the user's (dashboard/__init__.py, docs/security.md)."""
    from minirun import procfs
    from minirun.sched import dashboard

    root = Path(root)
    if not 0 <= workers <= 64:
        from minirun.errors import UsageError

        raise UsageError("--workers must be from 0 to 64")
    dashboard.check_bind(dashboard_host, dashboard_token)
    port = settings.get("dashboard_port")
    if port is not None and not 0 <= port <= 65535:
        from minirun.errors import UsageError

        raise UsageError(f"--dashboard-port {port}: must be from 0 (any free port) to 65535")
    started = {"manager": None, "workers": []}
    if manager_running(root) is None:
        conf = config(root, **settings)
        if dashboard_token is not None:
            ClusterPaths(root).write_dashboard_token(dashboard_token)
        started["manager"] = start_manager(root, conf, dashboard_host)
    status = client.call(root, "GET", "/v1/cluster")
    alive = [w for w in status["workers"] if w["status"] in ("ACTIVE", "DRAINING", "STARTING")
             and w["pid"] and procfs.start_time(w["pid"]) is not None]
    if not alive and workers:
        started["workers"] = add_workers(root, workers, cpu, memory, attributes)
    return started


def add_workers(root: Path, n: int, cpu: int, memory: int, attributes: dict[str, str]) -> list[dict]:
    paths = ClusterPaths(root)
    made = []
    for _ in range(n):
        # the manager starts the worker as its own child (it reaps it, and the monitors of a
        # worker that was killed): see Manager.spawn_worker
        w = client.call(root, "POST", "/v1/workers",
                        {"cpu": cpu, "memory": memory, "attributes": attributes, "spawn": True})
        made.append((w, w["pid"], paths.logs / f"{w['id']}.log"))
    for w, pid, log in made:
        def active(wid=w["id"]):
            return any(x["id"] == wid and x["status"] == "ACTIVE"
                       for x in client.call(root, "GET", "/v1/workers"))
        _wait_for(f"worker {w['id']}", active, pid, log)
    return [dict(w, pid=pid) for w, pid, _ in made]


def _terminate(pid: int, start: int, timeout: float) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True if it had to be killed."""
    from minirun import procfs

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while procfs.is_alive(pid, start):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while procfs.is_alive(pid, start):
                time.sleep(0.02)
            return True
        time.sleep(0.02)
    return False


def down(root: Path, timeout: float = 30.0) -> dict[str, Any]:
    """Stop every task and every cluster process; remove the socket and pid files."""
    from minirun.sched.manager import remove_task_containers
    from minirun.sched.store import Store

    root = Path(root)
    paths = ClusterPaths(root)
    if not paths.dir.exists():
        raise ClusterError(f"there is no cluster under {root}")
    summary: dict[str, Any] = {"tasks_left": [], "killed": [], "containers_removed": 0}
    mgr = manager_running(root)
    if mgr is not None:
        try:
            reply = client.call(root, "POST", "/v1/cluster/shutdown", {"timeout": timeout}, timeout=timeout + 10)
            summary["tasks_left"] = reply.get("tasks_left", [])
        except ClusterError:
            pass
        if _terminate(*mgr, timeout=5.0):
            summary["killed"].append("manager")
    for pidfile in sorted(paths.workers.glob("*.pid")) if paths.workers.exists() else []:
        found = paths.read_pid(pidfile)
        if found is not None and _terminate(*found, timeout=5.0):
            summary["killed"].append(pidfile.stem)
        pidfile.unlink(missing_ok=True)
    if paths.db.exists():
        store = Store(paths.db)
        try:
            ids = {t["id"] for t in store.load("tasks")}
            if mgr is None or summary["killed"]:
                for w in store.load("workers"):
                    if w["status"] not in ("LOST", "STOPPED"):
                        w["status"] = "STOPPED"
                        store.put_worker(w)
                for t in store.load("tasks"):
                    if t["status"] != "STOPPED":
                        t.update(status="STOPPED", desired="STOPPED", stop_reason="cluster down",
                                 stopped_at=time.time())
                        store.put_task(t)
            # every process is gone: the next `cluster up` starts a new cluster (Store.start_clean)
            store.ended()
        finally:
            store.close()
        summary["containers_removed"] = remove_task_containers(root, ids)
    for leftover in (paths.socket, paths.manager_pid, paths.metrics_port, paths.dashboard,
                     paths.dashboard_token):
        leftover.unlink(missing_ok=True)
    return summary


def dashboard_address(root: Path) -> str:
    """The dashboard's URL with its token in the fragment (the browser never sends that part)."""
    paths = ClusterPaths(root)
    if manager_running(root) is None:
        raise ClusterError(f"the cluster is not running (no manager under {paths.dir}): "
                           "start it with minirun cluster up")
    url, token = paths.dashboard_url(), paths.read_dashboard_token()
    if url is None or token is None:
        raise ClusterError(f"the manager serves no dashboard (no {paths.dashboard.name}): restart it "
                           "with minirun cluster down && minirun cluster up")
    return f"{url}#token={token}"
