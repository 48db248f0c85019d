"""Control groups: limit and account a container's processes (cgroups(7)).

One interface over both kernel designs. `detect()` reads /proc/self/mountinfo once and chooses,
per controller, the unified (v2) hierarchy when the host enables the controller there, else the
controller's v1 hierarchy; hybrid hosts (v1 controllers plus a mostly empty cgroup2 mount) are
the common case and work. `v1.py` and `v2.py` hold the version-specific file names and rules;
this module only creates the directories, dispatches, and cleans up.

    mgr = detect()
    cg = mgr.create("minirun/<id>", Resources(memory=64 << 20, pids_limit=100))
    ...the child joins by writing "0" to each of cg.procs_files()...
    cg.destroy()

`Cgroup.paths` maps each controller we use ("memory", "cpu", ...) to the group's directory that
holds that controller's files, plus "unified" for the group in the cgroup2 tree when one is
mounted (on a hybrid host it only tracks the processes).

Paths here are plain strings, and the package imports nothing heavier than os, errno and time:
`minirun-oci run` imports it for every container, and pathlib, re, signal (enum) or contextlib
would cost milliseconds of a start-up that should take about as long as runc's (issue 7).
"""

from __future__ import annotations

import errno
import os
import time

# _signal, not signal: signal wraps these numbers in IntEnums, and importing enum costs ms.
from _signal import SIGKILL

from minirun.errors import CgroupError
from minirun.records import fields, record, replace

from . import _fs
from ._mounts import Mounts, cgroup_mounts
from .v1 import CONTROLLERS as V1_CONTROLLERS
from .v1 import V1Driver
from .v2 import KEY as UNIFIED
from .v2 import V2Driver

__all__ = ["Cgroup", "CgroupManager", "Resources", "detect"]

DEFAULT_CPU_PERIOD = 100_000

# Which controller each Resources field needs, by hierarchy version.
_NEEDS = {
    "memory": ("memory", "memory"), "memory_swap": ("memory", "memory"),
    "memory_reservation": ("memory", "memory"),
    "cpu_quota": ("cpu", "cpu"), "cpu_period": ("cpu", "cpu"), "cpu_shares": ("cpu", "cpu"),
    "cpuset_cpus": ("cpuset", "cpuset"), "cpuset_mems": ("cpuset", "cpuset"),
    "pids_limit": ("pids", "pids"), "blkio_weight": ("blkio", "io"),
    "devices": ("devices", "devices"), "io_accounting": ("blkio", "io"),
    # None: cgroup v2 has no such knob, so only a v1 hierarchy can honour the field
    "memory_kernel": ("memory", None), "memory_kernel_tcp": ("memory", None),
    "memory_swappiness": ("memory", None), "memory_disable_oom_killer": ("memory", None),
    "cpu_rt_period": ("cpu", None), "cpu_rt_runtime": ("cpu", None), "cpu_idle": ("cpu", "cpu"),
    "blkio_leaf_weight": ("blkio", None), "blkio_weight_devices": ("blkio", None),
    "blkio_throttle": ("blkio", "io"),
}
# Enforced where the machine can; not a reason to refuse a container (see Resources.devices).
_BEST_EFFORT = {"devices", "io_accounting"}
# v1-only settings that a container without the v1 controller runs without, with a warning
# rather than a refusal, as runc does on cgroup v2: the kernel memory limits. v2 charges kernel
# and TCP buffer memory to memory.max with the rest, so there is nothing to set apart; refusing
# them turned away every bundle that carries one (the OCI validation suite's, older clients').
# The value is the OCI name, for the warning.
_SKIPPED_WITHOUT_V1 = {"memory_kernel": "linux.resources.memory.kernel",
                       "memory_kernel_tcp": "linux.resources.memory.kernelTCP"}

# A group name: "/"-separated components of these characters, none of them "." or "..".
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@+-")


@record
class Resources:
    """Limits for a group; None means "leave as is" (on create: the kernel's default).

    memory_swap is memory + swap, like Docker's --memory-swap (-1 = unlimited swap);
    pids_limit -1 or 0 means unlimited; cpu_quota is µs of CPU time per cpu_period µs.
    """

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    # The rest are OCI linux.resources fields with no Docker flag (v1 names; runc's meaning):
    # kernel memory (a no-op in kernels >= 6.x, which accept and ignore it), TCP buffer memory,
    # swappiness 0-100, the OOM killer off, the realtime scheduler's budget (µs per period)...
    memory_kernel: int | None = None
    memory_kernel_tcp: int | None = None
    memory_swappiness: int | None = None
    memory_disable_oom_killer: bool | None = None
    cpu_rt_period: int | None = None
    cpu_rt_runtime: int | None = None
    cpu_idle: int | None = None          # 1: SCHED_IDLE for the whole group
    # ...and block I/O: the leaf weight, per-device weights [(major, minor, weight, leafWeight)]
    # (None: leave that one), and per-device throttles {"read_bps": [(major, minor, rate)], ...}
    blkio_leaf_weight: int | None = None
    blkio_weight_devices: list[tuple] | None = None
    blkio_throttle: dict[str, list[tuple]] | None = None
    # OCI linux.resources.devices rules ({"allow", "type", "major", "minor", "access"}), in
    # order. The v1 devices controller enforces them where the host has it; otherwise an eBPF
    # program attached to the group in cgroup2 does (devices_bpf.py).
    devices: list[dict] | None = None
    # Block devices ("MAJ:MIN", whole disks) whose I/O the group's stats must count. cgroup v1's
    # blkio counts a group's bios in blkio.throttle.io_service_bytes only on devices where the
    # group has a throttle rule (kernel 6.x), so v1 sets a rule too high to ever bite; v2's
    # io.stat counts every device anyway (`minirun stats`' BLOCK I/O, observe/stats.py).
    io_accounting: list[str] | None = None

    @classmethod
    def from_cpus(cls, cpus: float, **fields) -> Resources:
        """Docker's --cpus: 0.5 -> quota 50000 µs per 100000 µs period."""
        from minirun.units import cpus_to_quota
        quota, period = cpus_to_quota(cpus)
        return cls(cpu_quota=quota, cpu_period=period, **fields)

    @classmethod
    def from_oci(cls, res: dict) -> Resources:
        """OCI linux.resources -> Resources (only the fields that are set).

        A weight or cpu.shares of 0 is "unset", as runc reads it (`if r.BlkioWeight != 0`, fs
        and fs2): dockerd 20.10 writes `"blockIO": {"weight": 0}` and `"cpu": {"shares": 0}`
        for every container that did not ask for one. Written, a 0 weight failed on hosts
        without a proportional I/O scheduler, and a 0 in cpu.shares is taken as 2, the least
        CPU a group can get. So is `"disableOOMKiller": false`, which dockerd writes too: it is
        every group's state (runc writes memory.oom_control only for true), and as a v1-only
        setting it refused the container where memory is a cgroup v2 controller."""
        mem, cpu, pids = res.get("memory", {}), res.get("cpu", {}), res.get("pids", {})
        blkio = res.get("blockIO", {})
        weight_devices = [(d["major"], d["minor"], d.get("weight") or None, d.get("leafWeight") or None)
                          for d in blkio.get("weightDevice", [])]
        throttle = {kind: [(d["major"], d["minor"], d["rate"]) for d in blkio[key]]
                    for kind, key in (("read_bps", "throttleReadBpsDevice"),
                                      ("write_bps", "throttleWriteBpsDevice"),
                                      ("read_iops", "throttleReadIOPSDevice"),
                                      ("write_iops", "throttleWriteIOPSDevice")) if blkio.get(key)}
        return cls(
            memory=mem.get("limit"), memory_swap=mem.get("swap"),
            memory_reservation=mem.get("reservation"), memory_kernel=mem.get("kernel"),
            memory_kernel_tcp=mem.get("kernelTCP"), memory_swappiness=mem.get("swappiness"),
            memory_disable_oom_killer=mem.get("disableOOMKiller") or None,
            cpu_quota=cpu.get("quota"), cpu_period=cpu.get("period"), cpu_shares=cpu.get("shares") or None,
            cpuset_cpus=cpu.get("cpus"), cpuset_mems=cpu.get("mems"),
            cpu_rt_period=cpu.get("realtimePeriod"), cpu_rt_runtime=cpu.get("realtimeRuntime"),
            cpu_idle=cpu.get("idle"),
            pids_limit=pids.get("limit"), devices=res.get("devices"),
            blkio_weight=blkio.get("weight") or None, blkio_leaf_weight=blkio.get("leafWeight") or None,
            blkio_weight_devices=[d for d in weight_devices if d[2:] != (None, None)] or None,
            blkio_throttle=throttle or None,
        )

    def set_fields(self) -> list[str]:
        return [name for name in fields(self) if getattr(self, name) is not None]


class CgroupManager:
    """The cgroup hierarchies of this machine and which one serves each controller."""

    def __init__(self, mounts: Mounts):
        self.mounts = mounts
        # A process that makes groups one after another (a worker) keeps the shared parents
        # ("minirun") instead of removing and re-making them (with cpuset's fill) each time:
        # remove_empty_parents() then removes them when it is done.
        self.keep_parents = False
        # ...and then makes and prepares each shared parent once: the ones it knows are ready.
        # Someone else may still remove one (a short-lived command removes the parents it left
        # empty): the group's mkdir then fails with ENOENT, and we forget them all and start again.
        self._ready: set[str] = set()
        self.v2_owned = set(mounts.v2_enabled) if mounts.unified is not None else set()
        self.v1_owned = {c for c in V1_CONTROLLERS if c in mounts.v1 and c not in self.v2_owned}
        # v1 and v2 name the block I/O controller differently.
        if "io" in self.v2_owned:
            self.v1_owned.discard("blkio")

    def available(self) -> dict[str, str]:
        """controller -> "v1" | "v2", for the controllers a minirun group can use."""
        out = {c: "v1" for c in sorted(self.v1_owned)}
        out.update({c: "v2" for c in sorted(self.v2_owned)})
        if self.mounts.unified is not None and "freezer" not in out:
            out["freezer"] = "v2"          # cgroup.freeze is core in v2
        return out

    def hierarchies(self) -> dict[str, str]:
        """Path key -> mount point, for every hierarchy a group is created in."""
        out = {c: self.mounts.v1[c] for c in sorted(self.v1_owned)}
        if self.mounts.unified is not None:
            out[UNIFIED] = self.mounts.unified
            for c in self.v2_owned:
                out[c] = self.mounts.unified
        return out

    def planned(self, name: str, resources: Resources | None = None) -> Cgroup:
        """The group `create(name, resources)` would make, without making it: its paths (what
        `views()` gives a container's mounts) and the check that these limits can be had."""
        _check_name(name)
        self._check_supported(resources or Resources())
        return Cgroup(self, name, {k: os.path.join(m, name) for k, m in self.hierarchies().items()})

    def create(self, name: str, resources: Resources | None = None) -> Cgroup:
        """Create the group in every hierarchy and apply limits, before any process joins."""
        resources = resources or Resources()
        if self._ready:
            try:
                return self._create(name, resources)
            except CgroupError:
                self._ready.clear()    # a parent we knew may have been re-made, not yet prepared
        return self._create(name, resources)

    def _create(self, name: str, resources: Resources) -> Cgroup:
        cg = self.planned(name, resources)
        made: list[str] = []
        try:
            for mount in _unique(self.hierarchies().values()):
                made.append(self._make(mount, name))
            for driver in cg._drivers():
                driver.init_group(cg.paths)
            cg.apply(resources)
        except BaseException:
            for d in reversed(made):
                _fs.rmdir(d)
            self._remove_parents(name)
            raise
        return cg

    def open(self, name: str, *, look: bool = True) -> Cgroup:
        """An existing group, in whichever hierarchies still have it (maybe none). look=False
        skips the stat of each: enough for destroy(), which passes over what is missing."""
        _check_name(name)
        paths = {k: os.path.join(m, name) for k, m in self.hierarchies().items()}
        paths = {k: d for k, d in paths.items() if not look or os.path.isdir(d)}
        return Cgroup(self, name, paths)

    def skipped(self, res: Resources) -> list[str]:
        """Warnings, one a setting, for what `create(name, res)` leaves unset here (and does not
        refuse): the v1-only kernel memory limits, on a machine whose memory controller is not
        v1. The caller says them (the library never prints)."""
        return [f"{oci} is ignored: cgroup v2 has no such limit (kernel memory counts in the "
                f"memory limit)" for field, oci in _SKIPPED_WITHOUT_V1.items()
                if getattr(res, field) is not None and not self._applies(field)]

    def _applies(self, field: str) -> bool:
        return _NEEDS[field][0] in self.v1_owned

    # -- internals --------------------------------------------------------------------------
    def _check_supported(self, res: Resources) -> None:
        for field in res.set_fields():
            if field in _BEST_EFFORT or (field in _SKIPPED_WITHOUT_V1 and not self._applies(field)):
                continue
            v1_name, v2_name = _NEEDS[field]
            if v2_name is None and v1_name not in self.v1_owned:
                raise CgroupError(
                    f"cgroup: {field} needs the v1 {v1_name} controller (cgroup v2 has no "
                    "such setting), which this machine does not offer")
            if v1_name not in self.v1_owned and v2_name not in self.v2_owned:
                raise CgroupError(
                    f"cgroup: {field} needs the {v1_name} controller, which this machine does "
                    f"not offer (no v1 hierarchy, not enabled in cgroup2)")

    def _make(self, mount: str, name: str) -> str:
        """mkdir the group under mount, creating and preparing shared parents on the way.

        Another container may rmdir an empty shared parent at any moment; if a parent vanishes
        under us we start again."""
        parts = name.split("/")
        controllers = [c for c, m in self.mounts.v1.items() if m == mount and c in self.v1_owned]
        for _attempt in range(50):
            d = mount
            try:
                for part in parts[:-1]:
                    d = os.path.join(d, part)
                    if d in self._ready:
                        continue
                    try:
                        os.mkdir(d)
                    except FileExistsError:
                        pass
                    self._prepare(mount, controllers, d)
                    if self.keep_parents:
                        self._ready.add(d)
                child = os.path.join(d, parts[-1])
                os.mkdir(child)
                return child
            except FileExistsError as err:
                child = os.path.join(d, parts[-1])
                raise CgroupError(f"cgroup: {child} already exists", path=child) from err
            except FileNotFoundError:
                self._ready.clear()
                continue
            except CgroupError as err:
                cause = err.__cause__
                if isinstance(cause, OSError) and cause.errno in (errno.ENOENT, errno.ENODEV):
                    self._ready.clear()
                    continue        # the parent went away while we prepared it
                raise
            except OSError as err:
                if err.errno == errno.ENODEV:
                    self._ready.clear()
                    continue        # mkdir inside a parent being removed
                raise CgroupError(f"cgroup: mkdir {d}: {os.strerror(err.errno or errno.EIO)}",
                                  path=str(d)) from err
        raise CgroupError(f"cgroup: {os.path.join(mount, name)}: parent keeps disappearing",
                          path=mount)

    def _prepare(self, mount: str, controllers: list[str], directory: str) -> None:
        if mount == self.mounts.unified:
            V2Driver(mount, self.v2_owned).prepare_ancestor(directory)
        else:
            driver = V1Driver(self.v1_owned)
            for c in controllers:
                driver.prepare_ancestor(c, directory)

    def remove_if_empty(self, group: str) -> None:
        """rmdir `group` (a shared parent, e.g. "minirun") in every hierarchy where it is empty:
        what a keep_parents manager does when it is done."""
        _check_name(group)
        self._ready.clear()
        for mount in _unique(self.hierarchies().values()):
            _fs.rmdir_if_empty(os.path.join(mount, group))

    def _remove_parents(self, name: str) -> None:
        """rmdir the shared parents (e.g. "minirun") that became empty, in every hierarchy."""
        if self.keep_parents:
            return
        parents = []          # "minirun/a/b" -> ["minirun/a", "minirun"]
        parent = name.rpartition("/")[0]
        while parent:
            parents.append(parent)
            parent = parent.rpartition("/")[0]
        for mount in _unique(self.hierarchies().values()):
            for parent in parents:
                _fs.rmdir_if_empty(os.path.join(mount, parent))


class Cgroup:
    """One group (e.g. "minirun/<id>") across all hierarchies."""

    # destroy() also removes the parents the group leaves empty ("minirun/"), unless they are
    # someone else's: an OCI caller's cgroupsPath (minirun-oci sets this)
    keep_parents = False

    def __init__(self, manager: CgroupManager, name: str, paths: dict[str, str]):
        self.manager = manager
        self.name = name
        self.paths = paths
        present = set(paths)
        self._v1 = V1Driver(manager.v1_owned & present)
        unified = manager.mounts.unified
        self._v2 = (V2Driver(unified, manager.v2_owned & present,
                             bpf_devices="devices" not in manager.v1_owned)
                    if unified is not None and UNIFIED in present else None)

    def _drivers(self) -> list:
        return [self._v1] + ([self._v2] if self._v2 else [])

    def _dirs(self) -> list[str]:
        return _unique(self.paths.values())

    def views(self) -> list[tuple[str, str]]:
        """What a container's /sys/fs/cgroup shows: (name, group directory) per hierarchy, the
        name being the mount point's (memory, cpu, unified...). [("", dir)] on a host with
        cgroup2 alone, whose one hierarchy is then shown at /sys/fs/cgroup itself."""
        mounts = self.manager.mounts
        if not mounts.v1 and mounts.unified is not None:
            return [("", d) for d in self._dirs()][:1]
        by_dir = {d: key for key, d in self.paths.items()}
        hierarchies = self.manager.hierarchies()
        return [(os.path.basename(hierarchies[by_dir[d]]), d) for d in self._dirs()]

    def procs_files(self) -> list[str]:
        """cgroup.procs in every hierarchy: writing "0" to each moves the writer in."""
        return [f"{d}/cgroup.procs" for d in self._dirs()]

    def add(self, pid: int) -> None:
        for path in self.procs_files():
            _fs.write(path, pid)

    def apply(self, res: Resources) -> None:
        """Write the limits that are set (not None); used on create and for live updates."""
        self.manager._check_supported(res)
        if res.cpu_quota is not None and res.cpu_quota > 0 and res.cpu_period is None:
            res = replace(res, cpu_period=DEFAULT_CPU_PERIOD)
        for driver in self._drivers():
            driver.apply(self.paths, res)

    def pids(self) -> list[int]:
        seen: set[int] = set()
        for d in self._dirs():
            seen.update(_fs.read_procs(f"{d}/cgroup.procs"))
        return sorted(seen)

    def _freezer(self):
        if "freezer" in self._v1.owned:
            return self._v1
        return self._v2

    def freeze(self) -> None:
        freezer = self._freezer()
        if freezer is None:
            raise CgroupError(f"cgroup: {self.name}: no freezer on this machine")
        freezer.freeze(self.paths)

    def thaw(self) -> None:
        freezer = self._freezer()
        if freezer is None:
            raise CgroupError(f"cgroup: {self.name}: no freezer on this machine")
        freezer.thaw(self.paths)

    def frozen(self) -> bool:
        """Whether the group is paused (False when the group or the freezer is missing)."""
        freezer = self._freezer()
        if freezer is None:
            return False
        try:
            return freezer.frozen(self.paths)
        except (CgroupError, KeyError):
            return False

    def stats(self) -> dict:
        out: dict = {
            "memory_usage": None, "memory_limit": None, "memory_max_usage": None,
            "cpu_usage_ns": None, "pids_current": None, "pids_limit": None, "oom_kills": 0,
            "cpu_quota_us": None, "cpu_period_us": None, "cpu_shares": None,
            "cpuset_cpus": None, "io_read_bytes": None, "io_write_bytes": None,
        }
        out.update(self._v1.stats(self.paths))
        if self._v2 is not None:
            out.update(self._v2.stats(self.paths, cpu_usage="cpuacct" not in self._v1.owned))
        return out

    def _memory_driver(self):
        if "memory" in self._v1.owned:
            return self._v1
        if self._v2 is not None and "memory" in self._v2.owned:
            return self._v2
        return None

    def oom_kill_count(self) -> int:
        driver = self._memory_driver()
        return driver.oom_kill_count(self.paths) if driver else 0

    def oom_events_file(self) -> str | None:
        driver = self._memory_driver()
        return driver.oom_events_file(self.paths) if driver else None

    def kill_all(self, sig: int = SIGKILL) -> None:
        """Signal every process; frozen meanwhile so none can fork a child we would miss."""
        if sig == SIGKILL and self._v2 is not None:
            kill_file = self._v2.kill_file(self.paths)
            if kill_file is not None:
                _fs.write(kill_file, "1")
        if not self.pids():
            return
        freezer = self._freezer()
        frozen = False
        if freezer is not None:
            try:
                freezer.freeze(self.paths)
                frozen = True
            except CgroupError:
                frozen = False       # a task stuck in D state: signal it anyway
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                freezer.thaw(self.paths)

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill everything, wait until empty, remove the group and the shared parents it leaves
        empty (unless keep_parents).

        The usual case is a group whose processes have all exited: rmdir succeeds at once, so
        we try that first and only read cgroup.procs and kill when the kernel says EBUSY."""
        if self._try_rmdir():
            if not self.keep_parents:
                self.manager._remove_parents(self.name)
            return
        # drivers again for the hierarchies that still have the group (rmdir may have removed some)
        self.__init__(self.manager, self.name,
                      {k: d for k, d in self.paths.items() if os.path.isdir(d)})
        deadline = time.monotonic() + timeout
        while self.pids():
            if time.monotonic() > deadline:
                raise CgroupError(f"cgroup: {self.name} still has processes {self.pids()} "
                                  f"after {timeout:g}s")
            self.kill_all(SIGKILL)
            time.sleep(0.02)
        for d in self._dirs():
            _fs.rmdir(d)
        if not self.keep_parents:
            self.manager._remove_parents(self.name)

    def _try_rmdir(self) -> bool:
        """rmdir the group everywhere; False (nothing forced) if a hierarchy still has tasks."""
        for d in self._dirs():
            try:
                os.rmdir(d)
            except FileNotFoundError:
                continue
            except OSError as err:
                if err.errno == errno.EBUSY:
                    return False
                raise CgroupError(f"cgroup: rmdir {d}: {os.strerror(err.errno or errno.EIO)}",
                                  path=str(d)) from err
        return True

    def __repr__(self) -> str:
        return f"Cgroup({self.name!r}, {sorted(self.paths)})"


def detect(mountinfo: str | os.PathLike = "/proc/self/mountinfo",
           cgroup_root: str | os.PathLike | None = None) -> CgroupManager:
    """Look at the mounted hierarchies and choose, per controller, v2 or v1. Where they are
    mounted is read once per process and mountinfo file; which controllers the cgroup2 root
    lends, on every call (_mounts._POINTS says why that is safe)."""
    mounts = cgroup_mounts(mountinfo, cgroup_root)
    if not mounts.v1 and mounts.unified is None:
        raise CgroupError(f"cgroup: no cgroup filesystem is mounted (see {mountinfo})")
    return CgroupManager(mounts)


class _Unavailable(CgroupManager):
    """No hierarchy at all (rootless: none is writable): groups are empty shells, so a container
    runs without limits, and asking for one is refused."""

    def _check_supported(self, res: Resources) -> None:
        for field in res.set_fields():
            if field not in _BEST_EFFORT:
                raise CgroupError(f"cgroup: {field} needs a cgroup this user can write, and "
                                  f"none is delegated to uid {os.geteuid()} (rootless)")


def unavailable() -> CgroupManager:
    return _Unavailable(Mounts())


def _check_name(name: str) -> None:
    if not _valid_name(name):
        raise CgroupError(f"cgroup: invalid group name {name!r} "
                          f"(a relative path like 'minirun/<id>')")


def _valid_name(name: str) -> bool:
    """A relative path ("minirun/<id>") whose components are made of letters, digits and
    _.:@+- only, none of them empty, "." or ".."."""
    return all(part and part not in (".", "..") and _NAME_CHARS.issuperset(part)
               for part in name.split("/"))


def _unique(paths) -> list[str]:
    """Distinct directories, in order (cpu and cpuacct may share one mount)."""
    return list(dict.fromkeys(paths))


def block_devices(paths) -> list[str]:
    """The whole disks ("MAJ:MIN") that hold these paths, for Resources.io_accounting: a
    partition's disk is its parent in /sys/dev/block (sysfs(5)); filesystems without a block
    device (tmpfs, overlay, anything with major 0) have none."""
    found: list[str] = []
    for p in paths:
        try:
            dev = os.stat(p).st_dev
        except OSError:
            continue
        if os.major(dev) == 0:
            continue
        node = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
        try:
            if os.path.exists(node + "/partition"):
                with open(os.path.realpath(node) + "/../dev") as f:
                    name = f.read().strip()
            else:
                name = f"{os.major(dev)}:{os.minor(dev)}"
        except OSError:
            continue
        if name not in found:
            found.append(name)
    return found
