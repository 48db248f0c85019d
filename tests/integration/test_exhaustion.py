"""Resource exhaustion (issue 9, item 4): a full disk, a read-only data root, a missing cgroup
controller and a kernel without overlayfs each give one clear line, exit status 125, and leave
nothing half-made. (OOM → 137 and the fork bomb are in test_limits.py.)"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    IMAGE_TAR,
    Minirun,
    cgroup_dirs,
    network_leftovers,
    private_network_settings,
    requires,
)
from tests.integration.test_errors import one_line

pytestmark = pytest.mark.root


@contextlib.contextmanager
def mounted(*mount_args: str, target: Path):
    """A mount of the test's own under tmp_path, always unmounted again."""
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *mount_args, str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def fill(directory: Path) -> Path:
    """Write zeros until the file system says ENOSPC."""
    path = directory / "filler"
    with open(path, "wb") as f:
        chunk = b"\0" * (1 << 16)
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return path


@contextlib.contextmanager
def small_disk(tmp_path: Path):
    """A data root with the busybox image on an 8 MiB tmpfs (`fill` then fills it): yields the
    tmpfs, the root and its Minirun; the root's network is torn down at the end."""
    from minirun.net.container import teardown

    with mounted("-t", "tmpfs", "-o", "size=8m", "tmpfs", target=tmp_path / "disk") as disk:
        root = disk / "root"
        m = Minirun(root)
        private_network_settings(root)
        try:
            m("image", "import", str(IMAGE_TAR), "busybox")
            yield disk, root, m
        finally:
            teardown(root)


def staged(root: Path) -> list[str]:
    """What a data root holds that no finished command should leave: container dirs and names,
    the image store's staging, temp files of atomic writes."""
    found = []
    for sub in ("containers", "names", "images/tmp"):
        d = root / sub
        if d.is_dir():
            found += [f"{sub}/{p}" for p in os.listdir(d)]
    found += [str(p) for p in root.rglob(".*.tmp")]
    return found


def test_a_full_data_root_gives_one_line_and_leaves_nothing(tmp_path):
    requires("root", "overlay", "busybox-image")
    with small_disk(tmp_path) as (disk, root, m):
        images = m.out("image", "ls", "-q")
        filler = fill(disk)
        try:
            for args in (["image", "import", str(IMAGE_TAR), "second"],
                         ["run", "--rm", "--network", "none", "busybox", "true"],
                         ["run", "-d", "--name", "web", "-p", "80", "busybox", "sleep", "60"],
                         ["create", "--name", "c1", "busybox", "true"],
                         ["image", "tag", "busybox", "other:1"]):
                r = m(*args, check=False)
                assert r.returncode == 125, (args, r.stderr)
                assert "No space left on device" in one_line(r)
            r = m("image", "save", "-q", "-o", str(disk / "out.tar"), "busybox", check=False)
            assert r.returncode == 125 and f"cannot write {disk / 'out.tar'}" in one_line(r)
            assert not (disk / "out.tar").exists()
            assert sorted(p.name for p in disk.iterdir()) == ["filler", "root"]
            assert m.out("image", "ls", "-q") == images
            assert m.out("ps", "-a", "-q") == ""
            assert staged(root) == []
            assert network_leftovers(root) == []
        finally:
            filler.unlink()
        # with room again, the same root works: nothing the failures left stands in the way
        assert m.out("run", "--rm", "--name", "web", "--network", "none", "busybox", "echo", "ok") == "ok"


def test_a_start_on_a_full_data_root_leaves_the_container_created_and_nothing_running(tmp_path):
    """The disk fills between create and start: start fails in one line, and the container is
    left as it was — created, with no cgroup, no process (GO may have gone out before the pid
    could be recorded), no veth or rule — and starts once there is room."""
    requires("root", "overlay", "busybox-image")
    with small_disk(tmp_path) as (disk, root, m):
        ids = [m.out("create", "--name", "quiet", "--network", "none", "busybox", "sleep", "86397"),
               m.out("create", "--name", "bridged", "busybox", "sleep", "86397")]
        try:
            filler = fill(disk)
            for name in ("quiet", "bridged"):
                r = m("start", name, check=False)
                assert r.returncode == 125 and f"cannot start container {name}" in one_line(r)
                assert "No space left on device" in one_line(r)
            assert all(c["State"] == "created" for c in json.loads(m.out("ps", "-a", "--format", "json")))
            for cid in ids:
                assert not cgroup_dirs(f"minirun/{cid}"), cid
            assert subprocess.run(["pgrep", "-f", "sleep 86397"], capture_output=True).stdout == b""
            assert network_leftovers(root) == [] and list(root.rglob(".*.tmp")) == []
            filler.unlink()
            m("start", "quiet")
            assert json.loads(m.out("inspect", "quiet"))[0]["State"]["Running"] is True
        finally:
            m("rm", "-f", *ids, check=False)


def test_a_read_only_data_root_gives_one_line_and_reads_still_work(tmp_path):
    requires("root", "overlay", "busybox-image")
    writable = tmp_path / "rw"
    m = Minirun(writable)
    private_network_settings(writable)
    m("image", "import", str(IMAGE_TAR), "busybox")
    before = sorted(str(p.relative_to(writable)) for p in writable.rglob("*"))
    ro = tmp_path / "ro"
    with mounted("--bind", str(writable), target=ro):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        r_o = Minirun(ro)
        assert "busybox" in r_o.out("image", "ls")          # reading needs no write
        assert r_o("ps", "-a").returncode == 0
        assert r_o("image", "inspect", "busybox").returncode == 0
        assert r_o("gc").returncode == 0                       # nothing to release: nothing to write
        for args in (["run", "--rm", "--network", "none", "busybox", "true"],
                     ["run", "--rm", "busybox", "true"],
                     ["image", "import", str(IMAGE_TAR), "second"],
                     ["image", "rm", "busybox"]):
            r = r_o(*args, check=False)
            assert r.returncode == 125, (args, r.stderr)
            assert "Read-only file system" in one_line(r) and "mounted read-only" in one_line(r)
    after = sorted(str(p.relative_to(writable)) for p in writable.rglob("*"))
    assert after == before


def _mountinfo_without(controller: str, tmp_path: Path) -> Path:
    """The host's mountinfo minus the hierarchy of one controller: what detect() would see on a
    machine without it. Only minirun's view changes; the host's cgroup mounts are untouched."""
    from minirun.runtime.cgroups import detect

    if detect().available().get(controller) == "v2":
        pytest.skip(f"{controller} is cgroup2's here: only the root's cgroup.subtree_control "
                    "could hide it, and a test does not reshape the host's root")
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    kept = [ln for ln in lines
            if not (ln.split(" - ")[1].split()[0] in ("cgroup", "cgroup2")
                    and controller in ln.split(" - ")[1].split()[2].split(","))]
    assert len(kept) < len(lines), f"this host has no {controller} hierarchy to hide"
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(kept) + "\n")
    return path


def test_a_missing_cgroup_controller_refuses_its_limit_and_drops_the_default(clean, data_root, tmp_path):
    requires("cgroup:pids")
    from minirun.cli.errors import report
    from minirun.errors import CgroupError
    from minirun.runtime.cgroups import detect
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions

    mgr = detect(_mountinfo_without("pids", tmp_path))
    assert "pids" not in mgr.available()
    rt = Runtime(data_root, cgroups=mgr)
    # asked for: refused, with the controller named; the failed `run --rm` leaves nothing
    with pytest.raises(CgroupError, match="pids_limit needs the pids controller") as e:
        rt.run(RunOptions(image="busybox", command=["true"], network="none", pids_limit=50,
                          auto_remove=True))
    assert report(e.value) == 125
    created = rt.list(all=True)
    for record in created:                   # a failed start of a plain `run` leaves it created
        assert record.status() == "created"
        rt.remove(record)
    # minirun's own default (2048) is left out: the container runs, in no pids group
    st = rt.run(RunOptions(image="busybox", command=["true"], network="none"))
    assert rt.wait(st.record) == 0
    assert not [d for d in cgroup_dirs(f"minirun/{st.record.id}*") if "pids.max" in os.listdir(d)]
    rt.remove(st.record)


def test_no_overlayfs_is_refused_in_one_line_before_anything_is_made(clean, data_root, tmp_path):
    from minirun.cli.errors import report
    from minirun.errors import OverlayUnsupported
    from minirun.runtime import overlay
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions

    filesystems = tmp_path / "filesystems"
    filesystems.write_text("".join(ln + "\n" for ln in Path("/proc/filesystems").read_text().splitlines()
                                   if ln.split()[-1:] != ["overlay"]))
    assert not overlay.available(str(filesystems), os.devnull)
    assert overlay.available()                        # this machine has it (the other tests use it)
    rt = Runtime(data_root, filesystems=str(filesystems))
    with pytest.raises(OverlayUnsupported, match="no overlay filesystem") as e:
        rt.run(RunOptions(image="busybox", command=["true"], network="none", name="no-overlay"))
    assert report(e.value) == 125
    assert rt.list(all=True) == []
    assert not (data_root / "names" / "no-overlay").exists()


def test_a_real_fork_bomb_is_held_at_its_pids_limit_and_rm_ends_it_all(clean):
    """`f(){ f|f& }; f` — not a loop of sleeps: every process forks two more for ever. The pids
    controller holds the container at its limit, the host is not touched, and `rm -f` ends
    every process of it."""
    requires("cgroup:pids")
    import time

    from tests.conftest import cgroup_value

    cid = clean.out("run", "-d", "--pids-limit", "64", "--network", "none", "busybox",
                    "sh", "-c", "f(){ f|f& }; f; sleep 1000")
    try:
        deadline, seen, refused = time.monotonic() + 10, [], 0
        while time.monotonic() < deadline and (refused == 0 or len(seen) < 20):
            seen.append(int(cgroup_value(cid, "pids", "pids.current", "pids.current")))
            events = cgroup_value(cid, "pids", "pids.events", "pids.events").split()
            refused = int(events[events.index("max") + 1])     # forks the limit refused
            time.sleep(0.05)
        assert refused > 0 and max(seen) <= 64 and max(seen) > 32, (refused, seen)
        assert int(cgroup_value(cid, "pids", "pids.max", "pids.max")) == 64
        assert clean("ps", "-q").stdout.strip().startswith(cid[:12])   # the host still works
    finally:
        clean("rm", "-f", cid)
    out = subprocess.run(["pgrep", "-f", "f(){ f|f& }"], capture_output=True, text=True)
    assert out.stdout.strip() == ""
