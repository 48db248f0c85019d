"""Finding the cgroup hierarchies: which are mounted where, and which controllers each has.

Read from /proc/self/mountinfo (proc(5), "mountinfo"): a line per mount, with the
filesystem type after the " - " separator and, for cgroup v1, the bound controllers in the
super options ("rw,cpu,cpuacct"). A cgroup2 mount is the unified hierarchy; the controllers
it lends to child groups are those in the mount root's cgroup.subtree_control. See cgroups(7).
"""

from __future__ import annotations

import os

from minirun.errors import CgroupError
from minirun.records import field, record

SYSTEM_CGROUP_ROOT = "/sys/fs/cgroup"

# The controllers the kernel can bind to a v1 hierarchy; other super options ("rw",
# "name=systemd", "clone_children", "release_agent=...") are not controllers.
V1_CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio",
    "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc",
})
_OCTAL = "01234567"

# (mountinfo, cgroup_root) -> (v1, unified): where the hierarchies are mounted, parsed once per
# process (`minirun-oci run` asks at create and again at delete). Safe because no minirun process
# mounts or unmounts a cgroup hierarchy in its own mount namespace (namespaces are changed only
# in children, which exec), and a long-lived Runtime keeps one manager for its whole life anyway.
# What can change while a process runs, the controllers the unified root lends its children
# (systemd enables them on demand), is read again by every call. A process that does mount or
# unmount a cgroup hierarchy and wants detect() to see it clears this dict.
_POINTS: dict[tuple[str, str | None], tuple[dict[str, str], str | None]] = {}


@record
class Mounts:
    v1: dict[str, str] = field(default_factory=dict)    # controller -> mount point
    unified: str | None = None                         # the cgroup2 mount point
    v2_enabled: frozenset[str] = frozenset()            # in the unified root's subtree_control


def parse_mountinfo(mountinfo: str | os.PathLike,
                    cgroup_root: str | os.PathLike | None = None) -> Mounts:
    """The cgroup mounts listed in a mountinfo file.

    `cgroup_root`, for tests, stands for /sys/fs/cgroup: a mount point under /sys/fs/cgroup
    is looked up under cgroup_root instead (any other mount point under cgroup_root/<path>).
    """
    try:
        with open(mountinfo) as f:
            text = f.read()
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
        if fstype == "cgroup2" and mounts.unified is None:
            mounts.unified = _relocate(_unescape(fields[4]), cgroup_root)
        elif fstype == "cgroup":
            point = _relocate(_unescape(fields[4]), cgroup_root)
            for ctl in super_opts.split(","):
                if ctl in V1_CONTROLLERS:
                    mounts.v1.setdefault(ctl, point)   # first mount of a hierarchy wins
    mounts.v2_enabled = _enabled(mounts.unified)
    return mounts


def cgroup_mounts(mountinfo: str | os.PathLike,
                  cgroup_root: str | os.PathLike | None = None) -> Mounts:
    """parse_mountinfo(), the mount points remembered for the process's life (see _POINTS)."""
    key = (os.path.abspath(mountinfo), None if cgroup_root is None else os.fspath(cgroup_root))
    points = _POINTS.get(key)
    if points is None:
        mounts = parse_mountinfo(mountinfo, cgroup_root)
        _POINTS[key] = (dict(mounts.v1), mounts.unified)
        return mounts
    v1, unified = points
    return Mounts(dict(v1), unified, _enabled(unified))     # a copy: callers may change theirs


def _enabled(unified: str | None) -> frozenset[str]:
    """The controllers the unified root lends its children (none without a cgroup2 mount)."""
    if unified is None:
        return frozenset()
    try:
        with open(unified + "/cgroup.subtree_control") as f:
            return frozenset(f.read().split())
    except OSError:
        return frozenset()


def _relocate(point: str, cgroup_root: str | os.PathLike | None) -> str:
    point = _normal(point)
    if cgroup_root is None:
        return point
    root = _normal(os.fspath(cgroup_root))
    if point == SYSTEM_CGROUP_ROOT:
        return root
    if point.startswith(SYSTEM_CGROUP_ROOT + "/"):
        rest = point[len(SYSTEM_CGROUP_ROOT) + 1:]
    else:
        rest = point.lstrip("/")
    return os.path.join(root, rest) if rest else root


def _normal(path: str) -> str:
    """`path` without empty and "." components, as pathlib would print it (".." is kept: it
    depends on symlinks). Mount points in mountinfo are already so; a test's root may not be."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/"):
        return "/" + "/".join(parts)
    return "/".join(parts) or "."


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo (three octal digits);
    a backslash not followed by three octal digits is kept as it is."""
    out = []
    start = 0
    i = text.find("\\")
    while i >= 0:
        code = text[i + 1:i + 4]
        if len(code) == 3 and code[0] in _OCTAL and code[1] in _OCTAL and code[2] in _OCTAL:
            out.append(text[start:i])
            out.append(chr(int(code, 8)))
            start = i + 4
            i = text.find("\\", start)
        else:
            i = text.find("\\", i + 1)
    out.append(text[start:])
    return "".join(out)
