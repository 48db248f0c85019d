"""rootfs/build.py: the default busybox image is reproducible and looks like a Unix root."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = Path("/bin/busybox")

if not BUSYBOX.is_file():
    print(f"skipping rootfs build tests: {BUSYBOX} is missing (apt-get install busybox-static)")
    pytest.skip(f"{BUSYBOX} is missing (apt-get install busybox-static)", allow_module_level=True)


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("rootfs_build", REPO / "rootfs" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build


def test_building_twice_gives_the_same_bytes(build, tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a = build(BUSYBOX, tmp_path / "a" / "busybox.tar")
    b = build(BUSYBOX, tmp_path / "b" / "busybox.tar")
    assert a == b
    assert (tmp_path / "a/busybox.tar").read_bytes() == (tmp_path / "b/busybox.tar").read_bytes()
    assert hashlib.sha256((tmp_path / "a/busybox.tar").read_bytes()).hexdigest() == a
    assert (tmp_path / "a/busybox.tar.sha256").read_text() == f"{a}  busybox.tar\n"
    assert sorted(os.listdir(tmp_path / "a")) == ["busybox.tar", "busybox.tar.sha256"]


def test_source_date_epoch_sets_every_mtime(build, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    build(BUSYBOX, tmp_path / "busybox.tar")
    with tarfile.open(tmp_path / "busybox.tar") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1700000000}


def test_the_tar_is_a_minimal_unix_root(build, tmp_path):
    build(BUSYBOX, tmp_path / "busybox.tar")
    with tarfile.open(tmp_path / "busybox.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        names = [m.name for m in tar.getmembers()]
        passwd = tar.extractfile("etc/passwd").read().decode()
        group = tar.extractfile("etc/group").read().decode()
        os_release = tar.extractfile("etc/os-release").read().decode()
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, "root", "root")}
    assert members["bin/busybox"].isreg() and members["bin/busybox"].mode == 0o755
    assert members["bin/busybox"].size == BUSYBOX.stat().st_size
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["usr/bin/env"].linkname == "../../bin/busybox"
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "root",
        "home",
        "proc",
        "sys",
        "dev",
        "var",
        "run",
    ):
        assert members[d].isdir(), d
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    assert members["var/tmp"].mode == 0o1777
    assert "root:x:0:0:root:/root:/bin/sh" in passwd and ":65534:" in passwd
    assert {line.split(":")[0] for line in group.split()} == {"root", "tty", "nogroup"}
    assert "etc/nsswitch.conf" in members and "minirun busybox" in os_release
    for name in ("etc/hostname", "etc/hosts", "etc/resolv.conf"):   # empty mount points for binds
        assert members[name].isfile() and members[name].size == 0
    applets = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True).stdout
    for applet in applets.split():
        assert applet.strip("/") in members, applet


def test_cli_prints_the_digest_and_the_tar_imports(tmp_path):
    out = tmp_path / "out.tar"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "rootfs/build.py"),
            "--busybox",
            str(BUSYBOX),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    digest, path = proc.stdout.split()
    assert path == str(out) and digest == hashlib.sha256(out.read_bytes()).hexdigest()

    from minirun.images.store import ImageStore

    img = ImageStore(tmp_path / "root").import_tarball(out, "busybox")
    layer = img.layers[0]
    assert img.diff_ids == [f"sha256:{digest}"]  # an uncompressed tar's diff_id is its sha256
    assert (layer / "bin/sh").resolve() == (layer / "bin/busybox")
    assert stat.S_IMODE((layer / "tmp").stat().st_mode) == 0o1777
    if os.geteuid() == 0:  # run the image's shell directly, no container needed
        res = subprocess.run([str(layer / "bin/sh"), "-c", "echo hi"], capture_output=True)
        assert res.stdout == b"hi\n"


def test_missing_busybox_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "rootfs/build.py"), "--busybox", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "no such file" in proc.stderr
