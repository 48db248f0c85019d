"""Crash `image import`, `image load` and `build` (SIGKILL via MINIRUN_FAULT) at every point of
the image store, then check what a user relies on: no half image is ever visible (every image
`image ls -a` shows runs, before gc and after), `minirun gc` releases the staging, the
unreferenced layers and blobs and a build's orphaned step container, and a second gc finds
nothing. The points are listed in minirun/faults.py."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

from minirun.faults import POINTS
from tests.conftest import IMAGE_TAR, MINIRUN

pytestmark = pytest.mark.root

STORE_POINTS = [p for p in POINTS if p.startswith("image:")]
SCENARIOS = ([("import", p) for p in STORE_POINTS] + [("load", p) for p in STORE_POINTS]
             + [("build", p) for p in [*STORE_POINTS, "build:step-running"]])


def test_every_image_point_has_a_scenario():
    covered = {p for _, p in SCENARIOS}
    assert covered | {"output:written"} == {p for p in POINTS if p.startswith(("image:", "build:", "output:"))}


def unique_rootfs(tag: str) -> bytes:
    """The busybox root filesystem plus one file of our own: a layer the store has not seen,
    so every step of an import is reached (a known layer is not unpacked again)."""
    out = io.BytesIO()
    with tarfile.open(IMAGE_TAR) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        data = f"{tag} {os.urandom(8).hex()}\n".encode()
        info = tarfile.TarInfo("fault-marker")
        info.size = len(data)
        dst.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _images(clean) -> list[dict]:
    return json.loads(clean.out("image", "ls", "-a", "--format", "json"))


def assert_store_consistent(clean) -> None:
    """Every image listed is whole: its config, layers and links exist, and it runs."""
    store = clean.root / "images"
    index = json.loads((store / "repositories.json").read_text())
    for hexid in index["layers"]:
        assert (store / "layers" / hexid / "diff").is_dir(), f"the index names a missing layer {hexid[:12]}"
        assert (store / "layers" / hexid / "layer.json").is_file(), f"layer {hexid[:12]} is half stored"
    for image in _images(clean):
        iid = image["Id"].removeprefix("sha256:")
        assert (store / "blobs" / "sha256" / iid).is_file(), f"image {iid[:12]} has no config"
        for diff_id in image["Layers"]:
            assert diff_id.removeprefix("sha256:") in index["layers"], f"image {iid[:12]}: layer missing"
        assert clean.out("run", "--rm", "--network", "none", iid, "true") == ""


def assert_no_garbage(clean) -> None:
    store = clean.root / "images"
    index = json.loads((store / "repositories.json").read_text())
    assert sorted(os.listdir(store / "tmp")) == [], "staging left after gc"
    assert sorted(os.listdir(store / "layers")) == sorted(index["layers"]), "layers no image names"
    assert sorted(os.listdir(store / "blobs" / "sha256")) == sorted(index["images"]), "blobs of no image"
    dangling = [p.name for p in (store / "l").iterdir() if not p.exists()]
    assert dangling == [], f"links to layers that are gone: {dangling}"


def _crash(clean, point: str, args: list[str], **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, MINIRUN_FAULT=point)
    return subprocess.run([*MINIRUN, "--root", str(clean.root), *args], env=env,
                          capture_output=True, timeout=120, **kw)


@pytest.mark.parametrize("verb,point", SCENARIOS, ids=[f"{v}-{p}" for v, p in SCENARIOS])
def test_gc_after_an_image_crash_leaves_a_whole_store(clean, tmp_path, verb, point):
    before = {i["Id"] for i in _images(clean)}
    try:
        if verb == "import":
            crashed = _crash(clean, point, ["image", "import", "-", "victim:1"],
                             input=unique_rootfs(point))
        elif verb == "load":
            # an archive of an image the store then forgets: the load unpacks its layer again
            clean("image", "import", "-", "victim:src", input=unique_rootfs(point))
            clean("image", "save", "-o", str(tmp_path / "victim.tar"), "victim:src")
            clean("image", "rm", "victim:src")
            crashed = _crash(clean, point, ["image", "load", "-q", "-i", str(tmp_path / "victim.tar")])
        else:
            (tmp_path / "Containerfile").write_text(
                "FROM busybox\n"
                f"RUN head -c 400000 /dev/urandom > /blob && echo {point} > /marker\n")
            crashed = _crash(clean, point, ["build", "--no-cache", "-t", "victim:1", str(tmp_path)])
        assert crashed.returncode == -9, f"did not reach {point}: {crashed.returncode} {crashed.stderr[-500:]}"

        assert_store_consistent(clean)            # before gc: no half image is visible
        released = clean.out("gc", "--grace", "0")
        assert "Traceback" not in released
        assert clean.out("gc", "--grace", "0") == "", "gc is not idempotent"
        assert_no_garbage(clean)
        assert_store_consistent(clean)
        assert clean.out("ps", "-a", "-q") == "", "a build's step container outlived gc"
        if point == "image:indexed" and verb != "build":   # it was whole: it stays
            assert any({"victim:1", "victim:src"} & set(i["RepoTags"]) for i in _images(clean))
        # the same command, not crashed, now works
        if verb == "import":
            clean("image", "import", "-", "victim:1", input=unique_rootfs(point))
        elif verb == "load":
            clean("image", "load", "-q", "-i", str(tmp_path / "victim.tar"))
        else:
            clean("build", "-q", "-t", "victim:1", str(tmp_path))
        clean("run", "--rm", "--network", "none", "victim:src" if verb == "load" else "victim:1", "true")
    finally:
        for iid in [i["Id"] for i in _images(clean) if i["Id"] not in before]:
            clean("image", "rm", iid, check=False)
        clean("gc", "--grace", "0", check=False)


@pytest.mark.parametrize("verb", ["save", "export"])
def test_a_save_or_export_killed_before_its_archive_is_named_leaves_nothing(clean, tmp_path, verb):
    """`image save -o` and `export -o` write an unnamed file (O_TMPFILE) and name it only when
    it is whole: SIGKILL just before that leaves neither the archive nor a temp file, and an
    older archive at the same path is untouched."""
    out = tmp_path / "out"
    out.mkdir()
    target = out / "archive.tar"
    target.write_bytes(b"an older archive")
    if verb == "save":
        args = ["image", "save", "-o", str(target), "busybox"]
    else:
        clean("create", "--name", "exported", "busybox", "true")
        args = ["export", "-o", str(target), "exported"]
    crashed = _crash(clean, "output:written", args)
    assert crashed.returncode == -9, crashed.stderr
    assert sorted(os.listdir(out)) == ["archive.tar"]
    assert target.read_bytes() == b"an older archive"
    done = subprocess.run([*MINIRUN, "--root", str(clean.root), *args], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == ["archive.tar"]
    assert tarfile.open(target).getmembers(), "the archive written after the crash is whole"
    if verb == "export":
        clean("rm", "exported")
