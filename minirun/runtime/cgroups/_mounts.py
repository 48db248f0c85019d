"""Finding the cgroup hierarchies: which are mounted where, and which controllers each has.

Read once from /proc/self/mountinfo (proc(5), "mountinfo"): a line per mount, with the
filesystem type after the " - " separator and, for cgroup v1, the bound controllers in the
super options ("rw,cpu,cpuacct"). A cgroup2 mount is the unified hierarchy; the controllers
it lends to child groups are those in the mount root's cgroup.subtree_control. See cgroups(7).
"""

from __future__ import annotations

import re
from pathlib import Path

from minirun.errors import CgroupError
from minirun.records import field, record

SYSTEM_CGROUP_ROOT = Path("/sys/fs/cgroup")

# The controllers the kernel can bind to a v1 hierarchy; other super options ("rw",
# "name=systemd", "clone_children", "release_agent=...") are not controllers.
V1_CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio",
    "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc",
})


@record
class Mounts:
    v1: dict[str, Path] = field(default_factory=dict)   # controller -> mount point
    unified: Path | None = None                        # the cgroup2 mount point
    v2_enabled: frozenset[str] = frozenset()            # in the unified root's subtree_control


def parse_mountinfo(mountinfo: str | Path, cgroup_root: str | Path | None = None) -> Mounts:
    """The cgroup mounts listed in a mountinfo file.

    `cgroup_root`, for tests, stands for /sys/fs/cgroup: a mount point under /sys/fs/cgroup
    is looked up under cgroup_root instead (any other mount point under cgroup_root/<path>).
    """
    try:
        text = Path(mountinfo).read_text()
    except OSError as err:
        raise CgroupError(f"cgroup: read {mountinfo}: {err.strerror}", path=str(mountinfo)) from err
    mounts = Mounts()
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or sep < 5:
            continue
        fstype, super_opts = fields[sep + 1], fields[sep + 3]
        point = _relocate(Path(_unescape(fields[4])), cgroup_root)
        if fstype == "cgroup2" and mounts.unified is None:
            mounts.unified = point
        elif fstype == "cgroup":
            for ctl in super_opts.split(","):
                if ctl in V1_CONTROLLERS:
                    mounts.v1.setdefault(ctl, point)   # first mount of a hierarchy wins
    if mounts.unified is not None:
        try:
            enabled = (mounts.unified / "cgroup.subtree_control").read_text().split()
        except OSError:
            enabled = []
        mounts.v2_enabled = frozenset(enabled)
    return mounts


def _relocate(point: Path, cgroup_root: str | Path | None) -> Path:
    if cgroup_root is None:
        return point
    root = Path(cgroup_root)
    try:
        return root / point.relative_to(SYSTEM_CGROUP_ROOT)
    except ValueError:
        return root / str(point).lstrip("/")


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)
