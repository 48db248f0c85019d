"""Fixtures for driving `minirun-oci` as podman or containerd would: the real binary, as root,
on a bundle (BUNDLE/config.json + BUNDLE/rootfs from the busybox image), with its own --root."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IMAGE_TAR, cgroup_dirs, extract_trusted, requires, slow

OCI = str(Path(sys.executable).with_name("minirun-oci"))


class Oci:
    def __init__(self, root: Path, bundle: Path):
        self.root = root
        self.bundle = bundle

    def __call__(self, *args: str, check: bool = True, detached: bool = False,
                 timeout: float = 30) -> subprocess.CompletedProcess:
        """Run minirun-oci. `detached` (create): the container inherits our stdio, as from
        runc, so its stdout is a file, not a pipe we would wait on until the container ends."""
        cmd = [OCI, "--root", str(self.root), *args]
        if detached:
            with open(self.bundle / "create.out", "w+") as out:
                proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                      timeout=slow(timeout))
                out.seek(0)
                proc.stdout, proc.stderr = "", out.read()
        else:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=slow(timeout))
        if check and proc.returncode != 0:
            raise AssertionError(f"minirun-oci {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid).stdout)

    def wait_status(self, cid: str, status: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + slow(timeout)
        while True:
            st = self.state(cid)
            if st["status"] == status or time.monotonic() > deadline:
                return st
            time.sleep(0.02)

    def configure(self, args: list[str], **changes) -> dict:
        """config.json from `minirun-oci spec`, with args and any top-level process changes."""
        cfg_path = self.bundle / "config.json"
        cfg_path.unlink(missing_ok=True)
        subprocess.run([OCI, "spec", "--bundle", str(self.bundle)], check=True)
        spec = json.loads(cfg_path.read_text())
        spec["process"].update({"args": args, "terminal": False, **changes})
        cfg_path.write_text(json.dumps(spec))
        return spec

    def write(self, spec: dict) -> None:
        (self.bundle / "config.json").write_text(json.dumps(spec))


@pytest.fixture(scope="session")
def rootfs_tar():
    requires("root", "busybox-image")
    return IMAGE_TAR


@pytest.fixture
def oci(rootfs_tar, tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    extract_trusted(rootfs_tar, bundle / "rootfs")
    o = Oci(tmp_path / "state", bundle)
    yield o
    left = o("list", "-q", check=False).stdout.split()
    for cid in left:
        o("delete", "--force", cid, check=False)
    assert not left, f"the test left containers behind: {left}"
    assert_nothing_left(o, None)


def assert_nothing_left(o: Oci, cid: str | None) -> None:
    if cid is not None:
        assert not (o.root / cid).exists()
        assert not cgroup_dirs(f"minirun-oci/{cid}")
        monitors = subprocess.run(["pgrep", "-f", f"minirun-monitor {cid} "], capture_output=True)
        assert monitors.returncode == 1, "a monitor is still running"
    assert str(o.bundle) not in Path("/proc/self/mountinfo").read_text()


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {lines}"
    return lines[0]


@pytest.fixture
def rt(rootfs_tar, tmp_path):
    """minirun-oci driven as the OCI validation suite drives a runtime (conformance.py), on a
    bundle that is the root filesystem itself; nothing may be left after the test."""
    from tests.oci.conformance import Runtime

    r = Runtime(OCI, tmp_path / "state", tmp_path / "bundle", rootfs_tar)
    yield r
    left = [d.name for d in r.root.iterdir() if not d.name.startswith(".")] if r.root.exists() else []
    r.clean()
    assert not left, f"the test left containers behind: {left}"
    assert str(r.bundle) not in Path("/proc/self/mountinfo").read_text()
