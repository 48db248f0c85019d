"""cgroup v2: one unified tree; a group's controllers are those its parent lends it.

Concepts: cgroups(7) "Cgroups version 2" and the kernel's Documentation/admin-guide/cgroup-v2.rst.
A controller works in a group only if it is listed in every ancestor's cgroup.subtree_control.
We never change the host's root cgroup.subtree_control (that reshapes the whole machine); we
only pass on, in our own `minirun` parent, what the host root already enables. Everything else
in a v2 group (cgroup.procs, cgroup.freeze, cgroup.kill, cpu.stat) is core and always there,
so on a hybrid host a v2 group still tracks the container's processes.
"""

from __future__ import annotations

import os
import time

from minirun.errors import CgroupError

from . import _fs

TYPE_CHECKING = False     # typing costs start-up time
if TYPE_CHECKING:
    from . import Resources

KEY = "unified"    # the key of the unified tree in Cgroup.paths


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default 100), like runc."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) to io.weight (1..10000), like runc."""
    return 1 + ((weight - 10) * 9999) // 990


class V2Driver:
    version = "v2"

    def __init__(self, mount: str, owned: set[str], bpf_devices: bool = False):
        self.mount = mount
        self.owned = set(owned)     # controllers enabled at the mount root that we use here
        # enforce device rules with an eBPF program (devices_bpf.py): when no v1 devices
        # controller does it (a hybrid host like this one has both; v1's is used there)
        self.bpf_devices = bpf_devices

    def prepare_ancestor(self, directory: str) -> None:
        """Lend our controllers to the children of a parent we own (never the host root)."""
        if directory == self.mount or not self.owned:
            return
        have = set(_fs.read(f"{directory}/cgroup.subtree_control").split())
        missing = sorted(self.owned - have)
        if missing:
            _fs.write(f"{directory}/cgroup.subtree_control", " ".join("+" + c for c in missing))

    def init_group(self, paths: dict[str, str]) -> None:
        pass        # an empty cpuset.cpus in v2 means "the parent's": nothing to copy

    def apply(self, paths: dict[str, str], res: Resources) -> None:
        d = paths[KEY]
        if "memory" in self.owned:
            if res.memory_reservation is not None:
                _fs.write(f"{d}/memory.low", _max(res.memory_reservation))
            if res.memory is not None:
                _fs.write(f"{d}/memory.max", _max(res.memory))
            if res.memory_swap is not None:
                swap = f"{d}/memory.swap.max"
                if not os.path.exists(swap):
                    if res.memory_swap != -1 and res.memory_swap != res.memory:
                        raise CgroupError("cgroup: swap limit needs swap accounting "
                                          "(memory.swap.* missing)", path=str(swap))
                elif res.memory_swap == -1:
                    _fs.write(swap, "max")
                else:
                    # v2 limits swap alone; Docker's --memory-swap is memory + swap.
                    mem = res.memory
                    if mem is None or mem <= 0:
                        mem = _fs.read_limit(f"{d}/memory.max")
                        if mem is None:
                            raise CgroupError("cgroup: a memory+swap limit needs a memory limit",
                                              path=str(swap))
                    if res.memory_swap < mem:
                        raise CgroupError(f"cgroup: memory+swap limit {res.memory_swap} is "
                                          f"below the memory limit {mem}", path=str(swap))
                    _fs.write(swap, res.memory_swap - mem)
        if "cpu" in self.owned:
            if res.cpu_shares is not None:
                _fs.write(f"{d}/cpu.weight", shares_to_weight(res.cpu_shares))
            if res.cpu_quota is not None or res.cpu_period is not None:
                old_quota, _, old_period = _fs.read(f"{d}/cpu.max").partition(" ")
                quota = old_quota if res.cpu_quota is None else _max(res.cpu_quota)
                period = old_period if res.cpu_period is None else str(res.cpu_period)
                _fs.write(f"{d}/cpu.max", f"{quota} {period}")
            if res.cpu_idle is not None:
                _fs.write(f"{d}/cpu.idle", res.cpu_idle)
        if "cpuset" in self.owned:
            if res.cpuset_mems is not None:
                _fs.write(f"{d}/cpuset.mems", res.cpuset_mems)
            if res.cpuset_cpus is not None:
                _fs.write(f"{d}/cpuset.cpus", res.cpuset_cpus)
        if "pids" in self.owned and res.pids_limit is not None:
            _fs.write(f"{d}/pids.max", _max(res.pids_limit))
        if self.bpf_devices and res.devices is not None:
            from .devices_bpf import attach

            attach(d, res.devices)
        if "io" in self.owned and res.blkio_throttle:
            # io.max: one line per device, "MAJ:MIN rbps=N wbps=N riops=N wiops=N"
            keys = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops",
                    "write_iops": "wiops"}
            per_device: dict[str, list[str]] = {}
            for kind, devices in res.blkio_throttle.items():
                for major, minor, rate in devices:
                    per_device.setdefault(f"{major}:{minor}", []).append(f"{keys[kind]}={rate}")
            for device, limits in per_device.items():
                _fs.write(f"{d}/io.max", f"{device} {' '.join(limits)}")
        if "io" in self.owned and res.blkio_weight is not None:
            if os.path.exists(f"{d}/io.bfq.weight"):
                _fs.write(f"{d}/io.bfq.weight", res.blkio_weight)
            elif os.path.exists(f"{d}/io.weight"):
                _fs.write(f"{d}/io.weight", blkio_to_io_weight(res.blkio_weight))
            else:
                raise CgroupError(f"cgroup: blkio weight needs io.weight or io.bfq.weight in {d}",
                                  path=str(d))

    def stats(self, paths: dict[str, str], cpu_usage: bool) -> dict:
        d = paths[KEY]
        out: dict = {}
        if "memory" in self.owned:
            out["memory_usage"] = _fs.read_int(f"{d}/memory.current")
            out["memory_limit"] = _fs.read_limit(f"{d}/memory.max")
            if os.path.exists(f"{d}/memory.peak"):
                out["memory_max_usage"] = _fs.read_int(f"{d}/memory.peak")
            if os.path.exists(f"{d}/memory.swap.max"):
                out["memory_swap_max"] = _fs.read_limit(f"{d}/memory.swap.max")
            out["oom_kills"] = self.oom_kill_count(paths)
        if cpu_usage:
            stat = _fs.read_keyed(f"{d}/cpu.stat")
            out["cpu_usage_ns"] = stat.get("usage_usec", 0) * 1000
        if "cpu" in self.owned:
            quota, _, period = _fs.read(f"{d}/cpu.max").partition(" ")
            out["cpu_quota_us"] = None if quota == "max" else int(quota)
            out["cpu_period_us"] = int(period)
            out["cpu_weight"] = _fs.read_int(f"{d}/cpu.weight")
            out["cpu_throttled_periods"] = _fs.read_keyed(f"{d}/cpu.stat").get("nr_throttled", 0)
        if "cpuset" in self.owned:
            out["cpuset_cpus"] = _fs.read(f"{d}/cpuset.cpus.effective")
            out["cpuset_mems"] = _fs.read(f"{d}/cpuset.mems.effective")
        if "pids" in self.owned:
            out["pids_current"] = _fs.read_int(f"{d}/pids.current")
            out["pids_limit"] = _fs.read_limit(f"{d}/pids.max")
        if "io" in self.owned:
            read = write = 0
            for line in _fs.read(f"{d}/io.stat").splitlines():      # "MAJ:MIN rbytes=N wbytes=N ..."
                for field in line.split()[1:]:
                    key, _, value = field.partition("=")
                    if key == "rbytes":
                        read += int(value)
                    elif key == "wbytes":
                        write += int(value)
            out["io_read_bytes"], out["io_write_bytes"] = read, write
        return out

    def oom_events_file(self, paths: dict[str, str]) -> str | None:
        if "memory" not in self.owned:
            return None
        return f"{paths[KEY]}/memory.events"

    def oom_kill_count(self, paths: dict[str, str]) -> int:
        return _fs.oom_kills(self.oom_events_file(paths))

    def freeze(self, paths: dict[str, str], timeout: float = 5.0) -> None:
        d = paths[KEY]
        _fs.write(f"{d}/cgroup.freeze", "1")
        deadline = time.monotonic() + timeout
        while _fs.read_keyed(f"{d}/cgroup.events").get("frozen") != 1:
            if time.monotonic() > deadline:
                _fs.write(f"{d}/cgroup.freeze", "0")
                raise CgroupError(f"cgroup: {d} did not freeze within {timeout:g}s", path=str(d))
            time.sleep(0.01)

    def thaw(self, paths: dict[str, str]) -> None:
        _fs.write(f"{paths[KEY]}/cgroup.freeze", "0")

    def frozen(self, paths: dict[str, str]) -> bool:
        return _fs.read(f"{paths[KEY]}/cgroup.freeze") == "1"

    def kill_file(self, paths: dict[str, str]) -> str | None:
        """cgroup.kill (Linux 5.14+): SIGKILL the whole group in one write, race free."""
        path = f"{paths[KEY]}/cgroup.kill"
        return path if os.path.exists(path) else None


def _max(value: int) -> str:
    return "max" if value <= 0 else str(value)
