"""Where a cluster keeps its files: ROOT/cluster/ beside the containers and images it uses.

    state.db (+ -wal, -shm)   the manager's SQLite state (store.py)
    manager.sock              the API (HTTP + JSON on a Unix socket)
    manager.pid               "PID START_TIME" of the manager
    workers/wN.pid            the same for each worker
    metrics.port              the loopback TCP port of /metrics
    config.json               the flags `cluster up` was given (a restarted manager reuses them)
    logs/                     manager.log, wN.log (each process's stderr)
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
        self.volumes = self.dir / "volumes"

    def worker_pid(self, wid: str) -> Path:
        return self.workers / f"{wid}.pid"

    def metrics_url(self) -> str | None:
        try:
            return f"http://127.0.0.1:{int(self.metrics_port.read_text())}/metrics"
        except (FileNotFoundError, ValueError):
            return None

    @staticmethod
    def write_pid(path: Path, pid: int) -> None:
        from minirun.runtime import procfs

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{pid} {procfs.start_time(pid)}\n")
        os.replace(tmp, path)

    @staticmethod
    def read_pid(path: Path) -> tuple[int, int] | None:
        """(pid, start time) if the file exists and its process is still that process."""
        from minirun.runtime import procfs

        try:
            pid, start = (int(x) for x in path.read_text().split())
        except (FileNotFoundError, ValueError):
            return None
        return (pid, start) if procfs.is_alive(pid, start) else None
