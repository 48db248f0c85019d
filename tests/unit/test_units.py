"""Sizes and CPUs as users type them, and detect()'s per-controller choice on fake hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirun.errors import CgroupError, UsageError
from minirun.runtime.cgroups import Resources, _valid_name, detect
from minirun.runtime.cgroups._mounts import _unescape
from minirun.runtime.cgroups.fake import FakeCgroupManager
from minirun.runtime.cgroups.v2 import blkio_to_io_weight, shares_to_weight
from minirun.units import format_bytes, parse_bytes, parse_cpus

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("512", 512), ("100b", 100), ("1k", KiB), ("1K", KiB), ("4kb", 4 * KiB),
    ("64m", 64 * MiB), ("64M", 64 * MiB), ("64MB", 64 * MiB), ("64mib", 64 * MiB),
    ("2g", 2 * GiB), ("1.5g", int(1.5 * GiB)), ("1t", 1 << 40), (" 8m ", 8 * MiB),
    (".5k", 512), (4096, 4096),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "12x", "m", "-1", "1.2.3", "64 mm", "ib", "1ib", "1e3", None])
def test_parse_bytes_rejects(text):
    with pytest.raises(UsageError, match="invalid size"):
        parse_bytes(text)


def test_parse_bytes_message():
    with pytest.raises(UsageError) as info:
        parse_bytes("12x")
    assert str(info.value) == "invalid size '12x': use a number with an optional unit b, k, m, g"


@pytest.mark.parametrize("n, text", [
    (0, "0B"), (512, "512B"), (KiB, "1KiB"), (64 * MiB, "64MiB"), (int(1.5 * GiB), "1.5GiB"),
    (None, "unlimited"),
])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize("text, expected", [
    ("0.5", (50000, 100000)), ("1", (100000, 100000)), ("2", (200000, 100000)),
    ("0.2", (20000, 100000)), ("1.25", (125000, 100000)), (0.01, (1000, 100000)),
])
def test_parse_cpus(text, expected):
    assert parse_cpus(text, ncpus=2) == expected


@pytest.mark.parametrize("text, message", [
    ("0", "must be more than 0"), ("-1", "must be more than 0"), ("abc", "invalid --cpus"),
    ("", "invalid --cpus"), ("nan", "must be more than 0"), ("0.001", "smallest is 0.01"),
    ("8", "--cpus 8: the machine has 2 CPUs"), ("2.5", "the machine has 2 CPUs"),
])
def test_parse_cpus_rejects(text, message):
    with pytest.raises(UsageError, match=message.replace(".", r"\.")):
        parse_cpus(text, ncpus=2)


def test_parse_cpus_counts_this_machine():
    import os
    with pytest.raises(UsageError, match=f"has {os.cpu_count()} CPU"):
        parse_cpus(str((os.cpu_count() or 1) + 1))


def test_resources_from_cpus():
    r = Resources.from_cpus(0.5, memory=64 * MiB)
    assert (r.cpu_quota, r.cpu_period, r.memory) == (50000, 100000, 64 * MiB)
    assert r.set_fields() == ["memory", "cpu_quota", "cpu_period"]


def test_v2_conversions_match_runc():
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000
    assert blkio_to_io_weight(10) == 1
    assert blkio_to_io_weight(1000) == 10000


# -- detect() on fake hosts ------------------------------------------------------------------

def _line(n, point, fstype, opts):
    return f"{n} 20 0:{n} / {point} rw,relatime shared:{n} - {fstype} {fstype} {opts}"


V1_LINES = [
    _line(30, "/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
    _line(31, "/sys/fs/cgroup/cpuset", "cgroup", "rw,cpuset,clone_children"),
    _line(32, "/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
    _line(33, "/sys/fs/cgroup/pids", "cgroup", "rw,pids"),
    _line(34, "/sys/fs/cgroup/freezer", "cgroup", "rw,freezer"),
    _line(35, "/sys/fs/cgroup/devices", "cgroup", "rw,devices"),
    _line(36, "/sys/fs/cgroup/blkio", "cgroup", "rw,blkio"),
    _line(37, "/sys/fs/cgroup/systemd", "cgroup", "rw,xattr,name=systemd"),
]


def fake_host(tmp_path: Path, lines, subtree_control: str | None = None,
              unified_dir: str = "unified") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    root.mkdir()
    if subtree_control is not None:
        (root / unified_dir).mkdir(parents=True, exist_ok=True)
        (root / unified_dir / "cgroup.subtree_control").write_text(subtree_control + "\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("\n".join([
        "22 27 0:21 / /proc rw,relatime - proc proc rw",
        "28 27 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
        *lines]) + "\n")
    return mountinfo, root


def test_detect_v1_only(tmp_path):
    mountinfo, root = fake_host(tmp_path, V1_LINES)
    mgr = detect(mountinfo, cgroup_root=root)
    assert mgr.available() == {c: "v1" for c in (
        "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids")}
    h = mgr.hierarchies()
    assert h["cpu"] == h["cpuacct"] == str(root / "cpu,cpuacct")      # plain strings
    assert h["memory"] == str(root / "memory")
    assert "unified" not in h


def test_detect_v2_only(tmp_path):
    lines = [_line(30, "/sys/fs/cgroup", "cgroup2", "rw,nsdelegate")]
    mountinfo, root = fake_host(tmp_path, lines, "cpuset cpu io memory hugetlb pids", "")
    mgr = detect(mountinfo, cgroup_root=root)
    assert mgr.available() == {"cpu": "v2", "cpuset": "v2", "hugetlb": "v2", "io": "v2",
                               "memory": "v2", "pids": "v2", "freezer": "v2"}
    assert mgr.hierarchies()["unified"] == str(root)
    assert mgr.hierarchies()["memory"] == str(root)


def test_detect_hybrid_like_this_host(tmp_path):
    """v1 controllers plus a cgroup2 mount whose root lends nothing to children."""
    lines = [*V1_LINES, _line(40, "/sys/fs/cgroup/unified", "cgroup2", "rw")]
    mountinfo, root = fake_host(tmp_path, lines, "")
    mgr = detect(mountinfo, cgroup_root=root)
    avail = mgr.available()
    assert avail["memory"] == avail["pids"] == avail["cpu"] == avail["freezer"] == "v1"
    assert "hugetlb" not in avail            # listed in cgroup.controllers but not enabled
    assert mgr.hierarchies()["unified"] == str(root / "unified")


def test_detect_hybrid_with_v2_controllers(tmp_path):
    """A host that moved memory and pids to the unified tree keeps cpu & co on v1."""
    v1 = [line for line in V1_LINES if "memory" not in line and "pids" not in line]
    lines = [*v1, _line(40, "/sys/fs/cgroup/unified", "cgroup2", "rw")]
    mountinfo, root = fake_host(tmp_path, lines, "memory pids")
    mgr = detect(mountinfo, cgroup_root=root)
    avail = mgr.available()
    assert avail["memory"] == avail["pids"] == "v2"
    assert avail["cpu"] == avail["cpuset"] == avail["freezer"] == "v1"
    assert mgr.hierarchies()["memory"] == str(root / "unified")


def test_detect_unescapes_mount_points(tmp_path):
    lines = [_line(30, r"/sys/fs/cgroup/my\040memory", "cgroup", "rw,memory")]
    mountinfo, root = fake_host(tmp_path, lines)
    assert detect(mountinfo, cgroup_root=root).hierarchies()["memory"] == str(root / "my memory")


def test_detect_reads_the_mount_points_once_and_the_lent_controllers_each_time(tmp_path):
    """What a process may rely on across detect() calls (_mounts._POINTS): the unified root
    lending one more controller is seen at once; where hierarchies are mounted is parsed once per
    mountinfo file; each manager gets its own Mounts."""
    v1 = [line for line in V1_LINES if "memory" not in line]
    lines = [*v1, _line(40, "/sys/fs/cgroup/unified", "cgroup2", "rw")]
    mountinfo, root = fake_host(tmp_path, lines, "")
    first = detect(mountinfo, cgroup_root=root)
    assert "memory" not in first.available()
    (root / "unified" / "cgroup.subtree_control").write_text("memory\n")     # systemd lends it
    second = detect(mountinfo, cgroup_root=root)
    assert second.available()["memory"] == "v2"
    assert second.hierarchies()["memory"] == str(root / "unified")
    mountinfo.write_text("")                    # not read again: the mounts are the process's
    assert detect(mountinfo, cgroup_root=root).hierarchies() == second.hierarchies()
    second.mounts.v1.clear()                    # one manager's Mounts is not the next one's
    assert detect(mountinfo, cgroup_root=root).hierarchies()["pids"] == str(root / "pids")
    with pytest.raises(CgroupError, match="no cgroup filesystem"):    # another root: parsed
        detect(mountinfo, cgroup_root=tmp_path / "elsewhere")         # (the file is empty now)


def test_detect_without_cgroups(tmp_path):
    mountinfo, root = fake_host(tmp_path, [])
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        detect(mountinfo, cgroup_root=root)


def test_limits_the_host_cannot_enforce_are_refused(tmp_path):
    v1 = [line for line in V1_LINES if "memory" not in line]
    mountinfo, root = fake_host(tmp_path, v1)
    with pytest.raises(CgroupError, match="memory controller"):
        detect(mountinfo, cgroup_root=root).create("minirun/x", Resources(memory=MiB))


@pytest.mark.parametrize("name", ["", "/abs", "minirun/../etc", "a//b", "minirun/x y"])
def test_bad_group_names(tmp_path, name):
    mountinfo, root = fake_host(tmp_path, V1_LINES)
    with pytest.raises(CgroupError, match="invalid group name"):
        detect(mountinfo, cgroup_root=root).open(name)


@pytest.mark.parametrize("name", [
    "minirun/0123abcd", "a", "kubepods/burstable/pod-1_2:3@x+y", "minirun/..x", "...", ".a/b.",
    "UPPER/lower.Case"])
def test_group_names_that_are_accepted(name):
    assert _valid_name(name)


@pytest.mark.parametrize("name", [
    "", "/", "/abs", "abs/", "a//b", ".", "..", "minirun/.", "minirun/../etc", "./minirun",
    "minirun/x y", "minirun/x\ty", "minirun/x\n", "minirun/\u00e9", "a\\b", "a*b", "a,b", "a=b"])
def test_group_names_that_are_refused(name):
    assert not _valid_name(name)


NAME_CHARS = st.sampled_from("Az09_.:@+-/ \n\\*é")


@settings(max_examples=500, deadline=None)
@given(st.text(NAME_CHARS, max_size=12))
def test_group_names_mean_what_the_old_regular_expression_meant(name):
    """The string check replaced `^[A-Za-z0-9_.:@+-]+(/[A-Za-z0-9_.:@+-]+)*$` minus "." and "..":
    same answers (except a trailing newline, which `$` let through and no group name wants)."""
    import re

    old = (re.fullmatch(r"[A-Za-z0-9_.:@+-]+(/[A-Za-z0-9_.:@+-]+)*", name) is not None
           and not any(p in (".", "..") for p in name.split("/")))
    assert _valid_name(name) == old


@pytest.mark.parametrize("escaped, plain", [
    ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory"),
    (r"/mnt/my\040memory", "/mnt/my memory"),               # space
    (r"/mnt/a\011b", "/mnt/a\tb"),                          # tab
    (r"/mnt/a\012b", "/mnt/a\nb"),                          # newline
    (r"/mnt/a\134b", "/mnt/a\\b"),                          # backslash
    (r"/mnt/a\134040", "/mnt/a\\040"),                      # an escaped backslash, then digits
    (r"\040\040x\040", "  x "),                             # at both ends, one after another
    (r"/mnt/a\04", r"/mnt/a\04"),                           # too short: kept as it is
    (r"/mnt/a\089", r"/mnt/a\089"),                         # 8 is not octal
    ("/mnt/a\\", "/mnt/a\\"),                               # a lone backslash at the end
])
def test_mountinfo_unescapes_octal_escapes(escaped, plain):
    assert _unescape(escaped) == plain


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from("\\0178 a/"), max_size=16))
def test_mountinfo_unescape_means_what_the_old_regular_expression_meant(text):
    import re

    assert _unescape(text) == re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def test_detect_unescapes_tabs_newlines_and_backslashes(tmp_path):
    lines = [_line(30, r"/sys/fs/cgroup/a\011b", "cgroup", "rw,memory"),
             _line(31, r"/sys/fs/cgroup/c\012d\134e", "cgroup", "rw,pids")]
    mountinfo, root = fake_host(tmp_path, lines)
    h = detect(mountinfo, cgroup_root=root).hierarchies()
    assert h["memory"] == f"{root}/a\tb" and h["pids"] == f"{root}/c\nd\\e"


def test_fake_records_calls(tmp_path):
    mgr = FakeCgroupManager(tmp_path)
    cg = mgr.create("minirun/a", Resources(memory=MiB))
    assert all(Path(f).exists() for f in cg.procs_files())
    cg.add(42)
    cg.apply(Resources(pids_limit=5))
    assert cg.stats()["pids_limit"] == 5 and cg.stats()["memory_limit"] == MiB
    mgr.fail("destroy", CgroupError("boom"))
    with pytest.raises(CgroupError, match="boom"):
        cg.destroy()
    cg.destroy()
    assert [c[0] for c in mgr.calls] == ["create", "add", "apply", "destroy", "destroy"]
