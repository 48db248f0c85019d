"""Where a cluster keeps its files: ROOT/cluster/ beside the containers and images it uses.

    state.db (+ -wal, -shm)   the manager's SQLite state (store.py)
    manager.sock              the API (HTTP + JSON on a Unix socket)
    manager.pid               "PID START_TIME" of the manager
    workers/wN.pid            the same for each worker
    metrics.port              the loopback TCP port of /metrics
    dashboard.json            the dashboard's address ({"url": ...}; docs/dashboard.md)
    dashboard.token           the token its API needs (0600)
    config.json               the flags `cluster up` was given (a restarted manager reuses them)
    logs/                     manager.log, wN.log (each process's stderr)
      previous/               the wN.log of the cluster before the last `cluster down`
    volumes/TASK/NAME         a task's scratch volumes (ECS volumes without a host path)

A pid file holds the start time too (field 22 of /proc/PID/stat), so a recycled pid is never
mistaken for the process that wrote it.
"""

from __future__ import annotations

import os
from pathlib import Path


class ClusterPaths:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / "cluster"
        self.db = self.dir / "state.db"
        self.socket = self.dir / "manager.sock"
        self.manager_pid = self.dir / "manager.pid"
        self.workers = self.dir / "workers"
        self.logs = self.dir / "logs"
        self.metrics_port = self.dir / "metrics.port"
        self.config = self.dir / "config.json"
        self.dashboard = self.dir / "dashboard.json"
        self.dashboard_token = self.dir / "dashboard.token"
        self.volumes = self.dir / "volumes"

    def worker_pid(self, wid: str) -> Path:
        return self.workers / f"{wid}.pid"

    def metrics_url(self) -> str | None:
        try:
            return f"http://127.0.0.1:{int(self.metrics_port.read_text())}/metrics"
        except (FileNotFoundError, ValueError):
            return None

    def dashboard_url(self) -> str | None:
        """The dashboard's address, without the token."""
        import json

        try:
            return json.loads(self.dashboard.read_text())["url"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def read_dashboard_token(self) -> str | None:
        try:
            return self.dashboard_token.read_text().strip() or None
        except FileNotFoundError:
            return None

    def write_dashboard_token(self, token: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dashboard_token.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        os.replace(tmp, self.dashboard_token)

    @staticmethod
    def write_pid(path: Path, pid: int) -> None:
        from minirun import procfs

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{pid} {procfs.start_time(pid)}\n")
        os.replace(tmp, path)

    @staticmethod
    def read_pid(path: Path) -> tuple[int, int] | None:
        """(pid, start time) if the file exists and its process is still that process."""
        from minirun import procfs

        try:
            pid, start = (int(x) for x in path.read_text().split())
        except (FileNotFoundError, ValueError):
            return None
        return (pid, start) if procfs.is_alive(pid, start) else None
