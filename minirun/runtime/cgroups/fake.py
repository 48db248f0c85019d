"""A recording stand-in for the cgroup manager, for unit tests of its callers (no root needed).

It keeps the real interface (create/open, procs_files, add, apply, freeze, stats, destroy...)
and records every call in `manager.calls` as (method, group name, argument) tuples, so a test
can assert "the runtime created the group with these limits before spawning, and destroyed it
after". Given a directory, it also creates real empty cgroup.procs files so code that opens
them O_WRONLY works; whatever is written there is ignored.

    mgr = FakeCgroupManager(tmp_path)
    runtime = Runtime(cgroups=mgr)
    ...
    assert ("create", "minirun/abc", Resources(memory=64 << 20)) in mgr.calls
    mgr.fail("apply", CgroupError("cgroup: write ..."))   # the next apply() raises it
"""

from __future__ import annotations

import signal
from pathlib import Path

from minirun.errors import CgroupError

from . import Resources

DEFAULT_AVAILABLE = {"cpu": "v1", "cpuacct": "v1", "cpuset": "v1", "memory": "v1",
                     "pids": "v1", "freezer": "v1", "devices": "v1", "blkio": "v1"}


class FakeCgroupManager:
    def __init__(self, root: str | Path | None = None, available: dict[str, str] | None = None):
        self.root = Path(root) if root is not None else None
        self._available = dict(available or DEFAULT_AVAILABLE)
        self.calls: list[tuple] = []
        self.groups: dict[str, FakeCgroup] = {}
        self._failures: dict[str, BaseException] = {}

    def available(self) -> dict[str, str]:
        return dict(self._available)

    def fail(self, method: str, error: BaseException) -> None:
        """Make the next call of `method` (e.g. "create", "add", "destroy") raise `error`."""
        self._failures[method] = error

    def _record(self, method: str, name: str, arg=None) -> None:
        self.calls.append((method, name, arg))
        error = self._failures.pop(method, None)
        if error is not None:
            raise error

    def create(self, name: str, resources: Resources | None = None) -> FakeCgroup:
        resources = resources or Resources()
        self._record("create", name, resources)
        if name in self.groups:
            raise CgroupError(f"cgroup: {name} already exists")
        group = FakeCgroup(self, name, resources)
        self.groups[name] = group
        return group

    def open(self, name: str) -> FakeCgroup:
        self._record("open", name)
        return self.groups.get(name) or FakeCgroup(self, name, Resources(), exists=False)


class FakeCgroup:
    def __init__(self, manager: FakeCgroupManager, name: str, resources: Resources,
                 exists: bool = True):
        self.manager = manager
        self.name = name
        self.resources = resources
        self.members: list[int] = []
        self._frozen = False
        self.destroyed = not exists
        self.oom_kills = 0
        self.paths: dict[str, str] = {}     # as Cgroup.paths: plain strings
        if manager.root is not None and exists:
            for controller in manager.available():
                d = manager.root / controller / name
                d.mkdir(parents=True, exist_ok=True)
                (d / "cgroup.procs").touch()
                self.paths[controller] = str(d)

    def procs_files(self) -> list[str]:
        return [f"{d}/cgroup.procs" for d in self.paths.values()]

    def add(self, pid: int) -> None:
        self.manager._record("add", self.name, pid)
        self.members.append(pid)

    def apply(self, res: Resources) -> None:
        self.manager._record("apply", self.name, res)
        for field in res.set_fields():
            setattr(self.resources, field, getattr(res, field))

    def pids(self) -> list[int]:
        return list(self.members)

    def freeze(self) -> None:
        self.manager._record("freeze", self.name)
        self._frozen = True

    def thaw(self) -> None:
        self.manager._record("thaw", self.name)
        self._frozen = False

    def frozen(self) -> bool:
        return self._frozen

    def stats(self) -> dict:
        r = self.resources
        return {"memory_usage": 0, "memory_limit": r.memory, "memory_max_usage": 0,
                "cpu_usage_ns": 0, "pids_current": len(self.members),
                "pids_limit": r.pids_limit if r.pids_limit and r.pids_limit > 0 else None,
                "oom_kills": self.oom_kills, "cpu_quota_us": r.cpu_quota,
                "cpu_period_us": r.cpu_period, "cpu_shares": r.cpu_shares,
                "cpuset_cpus": r.cpuset_cpus}

    def oom_kill_count(self) -> int:
        return self.oom_kills

    def oom_events_file(self) -> str | None:
        return None

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        self.manager._record("kill_all", self.name, sig)

    def destroy(self, timeout: float = 5.0) -> None:
        self.manager._record("destroy", self.name)
        self.destroyed = True
        self.members.clear()
        self.manager.groups.pop(self.name, None)
