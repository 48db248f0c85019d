"""The manager's state in SQLite: desired and observed, so a restarted manager carries on.

One file, ROOT/cluster/state.db, in WAL mode (readers do not block the writer; a crash loses at
most the transaction in flight). Task definitions, workers, services and tasks are stored as
JSON documents keyed by their id, with the few columns queries need beside them; events are an
append-only log whose sequence number `cluster events -f` follows. Only the manager writes, one
thread at a time (it holds its lock), so there is one connection; `cluster down` writes once the
manager is gone.

One data root holds one cluster at a time. `cluster down` marks the state as ended (`ended`);
the next manager to start then forgets the ended cluster's workers, services and tasks
(`start_clean`), so `cluster up` begins with none, as a new ECS cluster does. Events are never
forgotten: they are the old cluster's history. Task definitions stay registered, as ECS's
outlive a cluster.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS task_definitions (
    family TEXT NOT NULL, revision INTEGER NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (family, revision));
CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, status TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, kind TEXT NOT NULL,
    subject TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")   # durable at checkpoints; WAL keeps it consistent
        self.db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    # -- documents ------------------------------------------------------------------------
    def load(self, table: str) -> list[dict[str, Any]]:
        return [json.loads(body) for (body,) in self.db.execute(f"SELECT body FROM {table}")]

    def put_task(self, task: dict[str, Any]) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO tasks (id, status, body) VALUES (?, ?, ?)",
                            (task["id"], task["status"], json.dumps(task)))

    def put_tasks(self, tasks: list[dict[str, Any]]) -> None:
        with self._lock:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO tasks (id, status, body) VALUES (?, ?, ?)",
                                [(t["id"], t["status"], json.dumps(t)) for t in tasks])
            self.db.execute("COMMIT")

    def put_worker(self, worker: dict[str, Any]) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO workers (id, body) VALUES (?, ?)",
                            (worker["id"], json.dumps(worker)))

    def put_service(self, service: dict[str, Any]) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO services (name, body) VALUES (?, ?)",
                            (service["name"], json.dumps(service)))

    def put_task_definition(self, td: dict[str, Any]) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO task_definitions (family, revision, status, body) "
                            "VALUES (?, ?, ?, ?)", (td["family"], td["revision"], td["status"], json.dumps(td)))

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- one cluster after another ---------------------------------------------------------
    def ended(self, now: float | None = None) -> None:
        """`cluster down` is done: the next manager starts a new cluster (start_clean)."""
        self.set_meta("down_at", repr(time.time() if now is None else now))

    def start_clean(self) -> dict[str, Any] | None:
        """If the last cluster went down, forget its workers, services and tasks (one
        transaction) and number workers from w1 again; what it forgot, or None if the last
        cluster did not go down (a manager restarted after a crash carries on instead)."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                row = self.db.execute("SELECT value FROM meta WHERE key = 'down_at'").fetchone()
                if row is None:
                    self.db.execute("COMMIT")
                    return None
                gone: dict[str, Any] = {"down_at": float(row[0])}
                for table in ("workers", "services", "tasks"):
                    gone[table] = self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    self.db.execute(f"DELETE FROM {table}")
                self.db.execute("DELETE FROM meta WHERE key IN ('down_at', 'worker_seq')")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return gone

    # -- events -----------------------------------------------------------------------------
    def event(self, kind: str, subject: str, message: str, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        with self._lock:
            cur = self.db.execute("INSERT INTO events (time, kind, subject, message) VALUES (?, ?, ?, ?)",
                                  (now, kind, subject, message))
        return {"seq": cur.lastrowid, "time": now, "kind": kind, "subject": subject, "message": message}

    def events(self, since: int = 0, limit: int = 1000, subject: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT seq, time, kind, subject, message FROM events WHERE seq > ?"
        args: list[Any] = [since]
        if subject:
            sql += " AND (subject = ? OR subject LIKE ?)"
            args += [subject, f"{subject}/%"]
        rows = self.db.execute(sql + " ORDER BY seq LIMIT ?", (*args, limit)).fetchall()
        return [dict(zip(("seq", "time", "kind", "subject", "message"), r, strict=True)) for r in rows]

    def last_seq(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
