"""cgroup v1: one hierarchy per controller (or a few co-mounted), one directory per group in each.

Concepts: cgroups(7) "Cgroups version 1"; the per-controller files are documented in the
kernel's Documentation/admin-guide/cgroup-v1/ (memory.rst, cpusets.rst, freezer-subsystem.rst,
pids.rst) and scheduler/sched-bwc.rst for CFS bandwidth (cpu.cfs_quota_us).

Kernel details a reader should know:
- a new cpuset group starts with empty cpuset.cpus/cpuset.mems and refuses tasks until they
  are filled in; we copy them from the nearest ancestor that has them;
- memory.memsw.limit_in_bytes (memory+swap) may never be below memory.limit_in_bytes, so the
  two are written in the order that keeps that true at every step;
- the freezer is asynchronous: freezer.state reads FREEZING until every task stopped.
"""

from __future__ import annotations

import os
import time

from minirun.errors import CgroupError

from . import _fs

TYPE_CHECKING = False     # typing costs start-up time
if TYPE_CHECKING:
    from . import Resources

# The controllers this driver knows how to use when they live in a v1 hierarchy.
# A bytes/s rule no device reaches (2^62 B/s): it turns on blkio's counting, never throttles
NO_THROTTLE_BPS = 1 << 62
CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "devices", "blkio")


class V1Driver:
    version = "v1"

    def __init__(self, owned: set[str]):
        self.owned = set(owned)

    # -- creating ---------------------------------------------------------------------------
    def prepare_ancestor(self, controller: str, directory: str) -> None:
        """Make a shared parent (e.g. .../cpuset/minirun) usable by its children."""
        if controller == "cpuset":
            _fill_cpuset(directory)
            # children start with our cpus and mems (cpusets.rst: cgroup.clone_children), so
            # init_group finds them set and writes nothing
            _fs.write(f"{directory}/cgroup.clone_children", 1)

    def init_group(self, paths: dict[str, str]) -> None:
        """Make a new group able to take tasks (before any limit is applied)."""
        if "cpuset" in self.owned and "cpuset" in paths:
            _fill_cpuset(paths["cpuset"])

    # -- limits -----------------------------------------------------------------------------
    def apply(self, paths: dict[str, str], res: Resources) -> None:
        if "memory" in self.owned:
            self._memory(paths["memory"], res)
        if "cpu" in self.owned:
            d = paths["cpu"]
            if res.cpu_shares is not None:
                _fs.write(f"{d}/cpu.shares", res.cpu_shares)
            if res.cpu_period is not None:
                _fs.write(f"{d}/cpu.cfs_period_us", res.cpu_period)
            if res.cpu_quota is not None:
                _fs.write(f"{d}/cpu.cfs_quota_us", res.cpu_quota if res.cpu_quota > 0 else -1)
            # the period first: a runtime is checked against it (sched-rt-group.rst)
            if res.cpu_rt_period is not None:
                _fs.write(f"{d}/cpu.rt_period_us", res.cpu_rt_period)
            if res.cpu_rt_runtime is not None:
                _fs.write(f"{d}/cpu.rt_runtime_us", res.cpu_rt_runtime)
            if res.cpu_idle is not None:
                _fs.write(f"{d}/cpu.idle", res.cpu_idle)
        if "cpuset" in self.owned:
            d = paths["cpuset"]
            # mems first: a task must always have somewhere to allocate.
            if res.cpuset_mems is not None:
                _fs.write(f"{d}/cpuset.mems", res.cpuset_mems)
            if res.cpuset_cpus is not None:
                _fs.write(f"{d}/cpuset.cpus", res.cpuset_cpus)
        if "devices" in self.owned and res.devices is not None:
            _device_rules(paths["devices"], res.devices)
        if "pids" in self.owned and res.pids_limit is not None:
            limit = "max" if res.pids_limit <= 0 else str(res.pids_limit)
            _fs.write(f"{paths['pids']}/pids.max", limit)
        if "blkio" in self.owned:
            self._blkio(paths["blkio"], res)

    def _blkio(self, d: str, res: Resources) -> None:
        """Weights need a proportional I/O scheduler (CFQ's blkio.weight, or BFQ's); throttles
        (blk-throttle) work with any. blkio-controller.rst. The accounting rules come first, so a
        throttle the spec asks for on the same device overrides them."""
        for dev in res.io_accounting or []:
            for name in ("blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"):
                try:
                    _fs.write(f"{d}/{name}", f"{dev} {NO_THROTTLE_BPS}")
                except CgroupError:
                    pass       # a device without blk-throttle support: its I/O shows as 0

        def weight_file(kind: str) -> str:
            for name in (f"blkio.{kind}", f"blkio.bfq.{kind}"):
                if os.path.exists(f"{d}/{name}"):
                    return f"{d}/{name}"
            raise CgroupError(
                f"cgroup: blkio {kind} needs a proportional I/O scheduler (no blkio.{kind} "
                f"or blkio.bfq.{kind} in {d}; load bfq)", path=str(d))

        if res.blkio_weight is not None:
            _fs.write(weight_file("weight"), res.blkio_weight)
        if res.blkio_leaf_weight is not None:
            _fs.write(weight_file("leaf_weight"), res.blkio_leaf_weight)
        for major, minor, weight, leaf in res.blkio_weight_devices or []:
            if weight is not None:
                _fs.write(weight_file("weight_device"), f"{major}:{minor} {weight}")
            if leaf is not None:
                _fs.write(weight_file("leaf_weight_device"), f"{major}:{minor} {leaf}")
        for kind, devices in (res.blkio_throttle or {}).items():
            for major, minor, rate in devices:
                _fs.write(f"{d}/blkio.throttle.{kind}_device", f"{major}:{minor} {rate}")

    def _memory(self, d: str, res: Resources) -> None:
        self._memory_limits(d, res)
        for name, value in (("memory.kmem.limit_in_bytes", res.memory_kernel),
                            ("memory.kmem.tcp.limit_in_bytes", res.memory_kernel_tcp),
                            ("memory.swappiness", res.memory_swappiness)):
            if value is not None:
                _fs.write(f"{d}/{name}", value if value >= 0 else -1)
        if res.memory_disable_oom_killer is not None:
            _fs.write(f"{d}/memory.oom_control", int(res.memory_disable_oom_killer))

    def _memory_limits(self, d: str, res: Resources) -> None:
        if res.memory_reservation is not None:
            value = res.memory_reservation if res.memory_reservation > 0 else -1
            _fs.write(f"{d}/memory.soft_limit_in_bytes", value)
        memsw = f"{d}/memory.memsw.limit_in_bytes"
        swap = res.memory_swap
        if swap is not None and not os.path.exists(memsw):
            if swap != -1 and swap != res.memory:
                raise CgroupError("cgroup: swap limit needs swap accounting "
                                  "(memory.memsw.* missing)", path=str(memsw))
            swap = None      # memory+swap == memory, or unlimited: nothing to write
        limit = f"{d}/memory.limit_in_bytes"
        if swap is None:
            if res.memory is not None:
                _fs.write(limit, res.memory if res.memory > 0 else -1)
            return
        mem = res.memory
        if mem is None:
            _fs.write(memsw, swap)
            return
        # memsw >= limit must hold after each write: grow swap first if the new swap is above
        # the current limit (it then stays above both old and new limits), else shrink memory first.
        current = _fs.read_int(limit)
        new_swap = _fs.UNLIMITED_V1 if swap == -1 else swap
        if new_swap > current:
            _fs.write(memsw, swap)
            _fs.write(limit, mem if mem > 0 else -1)
        else:
            _fs.write(limit, mem if mem > 0 else -1)
            _fs.write(memsw, swap)

    # -- reading ----------------------------------------------------------------------------
    def stats(self, paths: dict[str, str]) -> dict:
        out: dict = {}
        if "memory" in self.owned:
            d = paths["memory"]
            out["memory_usage"] = _fs.read_int(f"{d}/memory.usage_in_bytes")
            out["memory_limit"] = _fs.read_limit(f"{d}/memory.limit_in_bytes")
            out["memory_max_usage"] = _fs.read_int(f"{d}/memory.max_usage_in_bytes")
            if os.path.exists(f"{d}/memory.memsw.limit_in_bytes"):
                out["memory_swap_limit"] = _fs.read_limit(f"{d}/memory.memsw.limit_in_bytes")
            out["oom_kills"] = self.oom_kill_count(paths)
        if "cpuacct" in self.owned:
            out["cpu_usage_ns"] = _fs.read_int(f"{paths['cpuacct']}/cpuacct.usage")
        if "cpu" in self.owned:
            d = paths["cpu"]
            quota = _fs.read_int(f"{d}/cpu.cfs_quota_us")
            out["cpu_quota_us"] = None if quota < 0 else quota
            out["cpu_period_us"] = _fs.read_int(f"{d}/cpu.cfs_period_us")
            out["cpu_shares"] = _fs.read_int(f"{d}/cpu.shares")
            stat = _fs.read_keyed(f"{d}/cpu.stat")
            out["cpu_throttled_periods"] = stat.get("nr_throttled", 0)
        if "cpuset" in self.owned:
            out["cpuset_cpus"] = _fs.read(f"{paths['cpuset']}/cpuset.cpus")
            out["cpuset_mems"] = _fs.read(f"{paths['cpuset']}/cpuset.mems")
        if "pids" in self.owned:
            out["pids_current"] = _fs.read_int(f"{paths['pids']}/pids.current")
            out["pids_limit"] = _fs.read_limit(f"{paths['pids']}/pids.max")
        if "blkio" in self.owned:
            # "MAJ:MIN Read N" lines per device; the throttle layer sees every bio, whatever
            # the I/O scheduler
            read = write = 0
            for line in _fs.read(f"{paths['blkio']}/blkio.throttle.io_service_bytes_recursive").splitlines():
                fields = line.split()
                if len(fields) == 3 and fields[1] in ("Read", "Write"):
                    if fields[1] == "Read":
                        read += int(fields[2])
                    else:
                        write += int(fields[2])
            out["io_read_bytes"], out["io_write_bytes"] = read, write
        return out

    def oom_events_file(self, paths: dict[str, str]) -> str | None:
        if "memory" not in self.owned:
            return None
        return f"{paths['memory']}/memory.oom_control"

    def oom_kill_count(self, paths: dict[str, str]) -> int:
        return _fs.oom_kills(self.oom_events_file(paths))

    # -- freezer ----------------------------------------------------------------------------
    def freeze(self, paths: dict[str, str], timeout: float = 5.0) -> None:
        state = f"{paths['freezer']}/freezer.state"
        deadline = time.monotonic() + timeout
        while True:
            # Writing FROZEN again retries tasks that were busy (e.g. in vfork) last time.
            _fs.write(state, "FROZEN")
            for _ in range(10):
                if _fs.read(state) == "FROZEN":
                    return
                time.sleep(0.01)
            if time.monotonic() > deadline:
                _fs.write(state, "THAWED")
                raise CgroupError(f"cgroup: {state} stuck in FREEZING after {timeout:g}s",
                                  path=str(state))

    def thaw(self, paths: dict[str, str]) -> None:
        _fs.write(f"{paths['freezer']}/freezer.state", "THAWED")

    def frozen(self, paths: dict[str, str]) -> bool:
        """FROZEN, or FREEZING on the way there (a pause in progress counts as paused)."""
        return _fs.read(f"{paths['freezer']}/freezer.state") in ("FROZEN", "FREEZING")


def _fill_cpuset(directory: str) -> None:
    """Copy cpuset.cpus/mems from the parent, if this group's are empty, filling the parent
    first when it is empty too: a racing command may have just re-made a shared parent and not
    filled it yet, and v1 refuses (EACCES) a child's set that is not within its parent's."""
    for name in ("cpuset.mems", "cpuset.cpus"):
        if _fs.read(f"{directory}/{name}"):
            continue
        parent = os.path.dirname(directory)
        if parent == directory or not os.path.exists(f"{parent}/{name}"):
            raise CgroupError(f"cgroup: no ancestor of {directory} has {name} set",
                              path=f"{directory}/{name}")
        if not _fs.read(f"{parent}/{name}"):
            _fill_cpuset(parent)
        _fs.write(f"{directory}/{name}", _fs.read(f"{parent}/{name}"))



def _device_rules(directory: str, rules: list[dict]) -> None:
    """Write OCI device rules in order: "a" on devices.deny first empties the allowlist, then
    each allow adds back one class of device ("c 1:3 rwm"). Creating a node (mknod, CAP_MKNOD)
    is then harmless: opening one the list does not name fails with EPERM."""
    for rule in rules:
        kind = rule.get("type", "a")
        major = "*" if rule.get("major") in (None, -1) else rule["major"]
        minor = "*" if rule.get("minor") in (None, -1) else rule["minor"]
        line = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.get('access', 'rwm')}"
        name = "devices.allow" if rule.get("allow") else "devices.deny"
        _fs.write(f"{directory}/{name}", line)
