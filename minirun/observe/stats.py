"""`minirun stats`: what a running container uses, read from the kernel's own counters.

Nothing here measures by sampling processes: the cgroup already sums every process of the
container (memory in use, CPU time, pids, block I/O — cgroups(7)), and the container's network
namespace keeps per-interface byte counters, which /proc/PID/net/dev shows for the namespace of
PID (proc(5)). A percentage needs two readings: CPU % is the CPU time the group used between
them divided by the wall time that passed, so 100 % is one full CPU (as `docker stats`).

    rt = Runtime()
    first = sample(rt, rt.get("web"))
    time.sleep(1)
    second = sample(rt, rt.get("web"))
    cpu_percent(first, second)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from minirun.errors import CgroupError


@dataclass(repr=False, eq=False)
class Sample:
    """One reading of one container's counters (bytes, nanoseconds; None where not offered)."""

    id: str
    name: str
    taken_ns: int                   # CLOCK_MONOTONIC when read
    cpu_ns: int | None
    memory_usage: int | None
    memory_limit: int | None        # None = no limit (Docker then shows the host's memory)
    pids: int | None
    net_rx: int
    net_tx: int
    block_read: int | None
    block_write: int | None

    def as_dict(self, cpu: float | None = None) -> dict:
        limit = self.memory_limit or host_memory()
        return {
            "id": self.id, "name": self.name,
            "cpu_percent": None if cpu is None else round(cpu, 2),
            "memory_usage": self.memory_usage, "memory_limit": limit,
            "memory_percent": (round(100 * self.memory_usage / limit, 2)
                               if self.memory_usage is not None and limit else None),
            "net_rx": self.net_rx, "net_tx": self.net_tx,
            "block_read": self.block_read, "block_write": self.block_write,
            "pids": self.pids,
        }


def sample(rt, record) -> Sample | None:
    """The counters of a running container now; None if it is not running (or just exited)."""
    if record.status() != "running":
        return None
    try:
        cg = rt.cgroups.open(f"minirun/{record.id}").stats()
    except CgroupError:
        return None                   # the group went away with the container
    rx, tx = net_bytes(record.state.pid)
    return Sample(
        id=record.id, name=record.name, taken_ns=time.monotonic_ns(),
        cpu_ns=cg.get("cpu_usage_ns"), memory_usage=cg.get("memory_usage"),
        memory_limit=cg.get("memory_limit"), pids=cg.get("pids_current"),
        net_rx=rx, net_tx=tx, block_read=cg.get("io_read_bytes"),
        block_write=cg.get("io_write_bytes"),
    )


def cpu_percent(before: Sample, after: Sample) -> float | None:
    """CPU used between two samples, in percent of one CPU."""
    if before.cpu_ns is None or after.cpu_ns is None or after.taken_ns <= before.taken_ns:
        return None
    return 100.0 * max(0, after.cpu_ns - before.cpu_ns) / (after.taken_ns - before.taken_ns)


def net_bytes(pid: int | None) -> tuple[int, int]:
    """(received, sent) bytes over every interface but loopback in PID's network namespace.

    With `--network host` that is the host's traffic, as `docker stats` shows it too."""
    if not pid:
        return 0, 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]          # two header lines
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0, 0
    rx = tx = 0
    for line in lines:
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = counters.split()
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


_HOST_MEMORY: int | None = None


def host_memory() -> int:
    """MemTotal in bytes: the limit shown for a container without one."""
    global _HOST_MEMORY
    if _HOST_MEMORY is None:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    _HOST_MEMORY = int(line.split()[1]) * 1024
                    break
            else:
                _HOST_MEMORY = 0
    return _HOST_MEMORY
