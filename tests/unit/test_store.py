"""The image store: import, look up, share layers, remove, survive concurrency."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import multiprocessing
import os
import stat
import subprocess
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer

from minirun.errors import ImageFormatError, ImageNotFound, UsageError
from minirun.images.reference import parse_reference
from minirun.images.store import DEFAULT_PATH, ImageStore


def rootfs_tar(marker: str = "one", pad: int = 0) -> bytes:
    """A tiny root filesystem: enough to look like an image."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, linkname=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, 1_600_000_000, linkname
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data) if data else None)

        for d, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777)):
            add(d, tarfile.DIRTYPE, mode=mode)
        add("bin/sh", data=b"#!/bin/true\n" + b"#" * pad, mode=0o755)
        add("bin/ls", tarfile.SYMTYPE, linkname="sh", mode=0o777)
        add("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
        add("etc/marker", data=marker.encode())
    return buf.getvalue()


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path)


def leftovers(store: ImageStore) -> list[str]:
    return os.listdir(store.tmp)


COMPRESS = {
    "none": lambda d: d,
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "bzip2": bz2.compress,
}


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_import_from_a_path_in_each_compression(store, tmp_path, kind):
    src = tmp_path / f"rootfs.{kind}"
    src.write_bytes(COMPRESS[kind](rootfs_tar()))
    img = store.import_tarball(src, "busybox")
    assert img.names == ["busybox:latest"]
    assert len(img.id) == 64 and img.diff_ids[0].startswith("sha256:")
    assert img.config == {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["sh"]}
    assert img.created.endswith("Z") and img.size == len(b"#!/bin/true\n") + 30 + 3
    (layer,) = img.layers
    assert (layer / "etc/marker").read_text() == "one"
    assert os.readlink(layer / "bin/ls") == "sh"
    assert stat.S_IMODE((layer / "tmp").stat().st_mode) == 0o1777
    # the id is the sha256 of the config blob, which lists the layer by diff_id
    blob = (store.blobs / img.id).read_bytes()
    import hashlib

    assert hashlib.sha256(blob).hexdigest() == img.id
    assert json.loads(blob)["rootfs"] == {"type": "layers", "diff_ids": img.diff_ids}
    assert leftovers(store) == []


def test_every_compression_shares_one_layer(store, tmp_path):
    ids = set()
    for kind, pack in COMPRESS.items():
        img = store.import_tarball(io.BytesIO(pack(rootfs_tar())), f"img:{kind}")
        ids.add(img.diff_ids[0])
    assert len(ids) == 1
    assert len(os.listdir(store.layers_dir)) == 1
    assert len(store.list()) == 4


def test_get_by_name_tag_id_and_prefix(store):
    a = store.import_tarball(io.BytesIO(rootfs_tar("a")), "busybox")
    b = store.import_tarball(io.BytesIO(rootfs_tar("b")), "busybox:1.36")
    assert store.get("busybox").id == a.id
    assert store.get("busybox:latest").id == a.id
    assert store.get("busybox:1.36").id == b.id
    assert store.get(b.id).id == b.id
    assert store.get("sha256:" + b.id).id == b.id
    assert store.get("sha256:" + b.id[:8]).id == b.id
    prefix = next(b.id[:n] for n in range(4, 64) if not a.id.startswith(b.id[:n]))
    assert store.get(prefix).names == ["busybox:1.36"]
    for ref in ("nope", "busybox:nope", "ffff" if not a.id.startswith("ffff") else "eeee", "abc"):
        if any(i.id.startswith(ref) for i in (a, b)):
            continue
        with pytest.raises(ImageNotFound, match=f"no such image: {ref}"):
            store.get(ref)


def test_ambiguous_prefix_is_not_found(store):
    a = store.import_tarball(io.BytesIO(rootfs_tar("a")), "a")
    # Ids are hashes, so a 4-hex-digit collision takes ~300 imports; plant a second image
    # record that shares a's prefix instead (same config, so it is a valid image).
    twin = a.id[:4] + ("0" if a.id[4] != "0" else "1") * 60
    (store.blobs / twin).write_bytes((store.blobs / a.id).read_bytes())
    index = json.loads(store.index_path.read_text())
    index["images"][twin] = index["images"][a.id]
    store.index_path.write_text(json.dumps(index))
    with pytest.raises(ImageNotFound, match="ambiguous"):
        store.get(a.id[:4])
    assert store.get(a.id[:5]).id == a.id


def test_list_is_newest_first_and_dangling_images_stay(store):
    first = store.import_tarball(io.BytesIO(rootfs_tar("a")), "x")
    second = store.import_tarball(io.BytesIO(rootfs_tar("b")), "x")  # takes the name
    third = store.import_tarball(io.BytesIO(rootfs_tar("c")), "y")
    listed = store.list()
    assert [i.id for i in listed] == [third.id, second.id, first.id]
    assert listed[2].names == []  # like Docker's <none>:<none>
    assert store.get(first.id).names == []


def test_reimport_is_cheap_and_shares_the_layer(store, tmp_path):
    src = tmp_path / "big.tar"
    src.write_bytes(rootfs_tar(pad=30 << 20))
    t0 = time.perf_counter()
    a = store.import_tarball(src, "big:a")
    first = time.perf_counter() - t0
    layer_ino = a.layers[0].stat().st_ino
    t0 = time.perf_counter()
    b = store.import_tarball(src, "big:b")
    again = time.perf_counter() - t0
    assert a.layers == b.layers and a.id != b.id
    assert b.layers[0].stat().st_ino == layer_ino  # the first unpacked copy was kept
    assert os.listdir(store.layers_dir) == [a.diff_ids[0].removeprefix("sha256:")]
    assert leftovers(store) == []
    assert again < max(1.0, 3 * first), (first, again)


def test_remove_untags_then_deletes_and_frees_unused_layers(store):
    a = store.import_tarball(io.BytesIO(rootfs_tar("shared")), "a")
    store.get("a")
    b = store.import_tarball(io.BytesIO(rootfs_tar("shared")), "b")
    c = store.import_tarball(io.BytesIO(rootfs_tar("own")), "c")
    store.import_tarball(io.BytesIO(rootfs_tar("own")), "c:other")  # another image, same layer
    assert store.remove("c") == ["c:latest", "sha256:" + c.id]
    assert len(os.listdir(store.layers_dir)) == 2  # c:other still uses c's layer
    assert store.remove("a") == ["a:latest", "sha256:" + a.id]
    assert b.layers[0].is_dir()  # b still uses the shared layer
    assert store.remove("sha256:" + b.id) == ["b:latest", "sha256:" + b.id]
    assert not b.layers[0].exists()
    store.remove("c:other")
    assert store.list() == []
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.blobs) == []
    assert leftovers(store) == []
    with pytest.raises(ImageNotFound):
        store.remove("a")


def test_remove_by_name_keeps_an_image_that_has_another_name(store):
    img = store.import_tarball(io.BytesIO(rootfs_tar()), "a")
    index = json.loads(store.index_path.read_text())
    index["repositories"]["alias:1"] = img.id
    store.index_path.write_text(json.dumps(index))
    assert store.remove("a") == ["a:latest"]
    assert store.get("alias:1").id == img.id
    assert store.remove(img.id) == ["alias:1", "sha256:" + img.id]


def test_import_from_a_pipe(store):
    data = gzip.compress(rootfs_tar("piped", pad=3 << 20))
    r, w = os.pipe()

    def feed():
        with os.fdopen(w, "wb") as f:
            for i in range(0, len(data), 4096):
                f.write(data[i : i + 4096])

    t = threading.Thread(target=feed)
    t.start()
    with os.fdopen(r, "rb") as stream:
        img = store.import_tarball(stream, "piped")
    t.join()
    assert (img.layers[0] / "etc/marker").read_text() == "piped"


def _import_in_process(root: str, marker: str, name: str) -> str:
    return ImageStore(Path(root)).import_tarball(io.BytesIO(rootfs_tar(marker)), name).id


def test_concurrent_imports_stay_consistent(store, tmp_path):
    jobs = [("a" if i % 2 else "b", f"img{i % 2}:t{i}") for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        thread_ids = list(
            pool.map(lambda j: store.import_tarball(io.BytesIO(rootfs_tar(j[0])), j[1]).id, jobs)
        )
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        proc_ids = pool.starmap(
            _import_in_process, [(str(tmp_path), m, f"proc:{i}") for i, m in enumerate("abab")]
        )
    images = store.list()
    # content addressed: two imports of the same tar in the same clock tick are one image
    assert sorted(i.id for i in images) == sorted(set(thread_ids + proc_ids))
    assert len(os.listdir(store.layers_dir)) == 2
    assert sum(len(img.names) for img in images) == 16
    for img in images:
        assert img.layers[0].is_dir()
    index = json.loads(store.index_path.read_text())
    assert len(index["repositories"]) == 16
    assert leftovers(store) == []
    for img in images:
        store.remove(img.id)
    assert os.listdir(store.layers_dir) == []


def test_bad_names_are_usage_errors(store):
    for bad in ("UPPER", "a b", "x:", "x@sha256:abc", "-x", "a" * 64, "ok:bad/tag"):
        with pytest.raises(UsageError):
            store.import_tarball(io.BytesIO(rootfs_tar()), bad)
    assert parse_reference("localhost:5000/team/app") == "localhost:5000/team/app:latest"
    assert parse_reference("app:v1.2") == "app:v1.2"
    assert not store.layers_dir.exists() or os.listdir(store.layers_dir) == []


def test_missing_source_and_config_override(store, tmp_path):
    with pytest.raises(UsageError, match="cannot open"):
        store.import_tarball(tmp_path / "nope.tar", "x")
    img = store.import_tarball(
        io.BytesIO(rootfs_tar()), "x", config={"Cmd": ["/bin/ls"], "WorkingDir": "/tmp"}
    )
    assert img.config["Cmd"] == ["/bin/ls"] and img.config["WorkingDir"] == "/tmp"
    assert img.config["Env"] == [f"PATH={DEFAULT_PATH}"]


def test_failed_import_leaves_nothing(store):
    store.import_tarball(io.BytesIO(rootfs_tar()), "ok")
    before = (os.listdir(store.layers_dir), os.listdir(store.blobs), store.index_path.read_bytes())
    packed = gzip.compress(rootfs_tar("x") + os.urandom(100_000))
    with pytest.raises(ImageFormatError, match="truncated"):
        store.import_tarball(io.BytesIO(packed[: len(packed) // 2]), "bad")
    after = (os.listdir(store.layers_dir), os.listdir(store.blobs), store.index_path.read_bytes())
    assert before == after and leftovers(store) == []


def test_gc_sweeps_what_a_crash_leaves(store):
    img = store.import_tarball(io.BytesIO(rootfs_tar()), "keep")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (store.tmp / f"import-{dead.pid}-abc" / "layer").mkdir(parents=True)
    (store.tmp / f"import-{os.getpid()}-live").mkdir()  # an import in progress: kept
    (store.layers_dir / ("f" * 64) / "diff").mkdir(parents=True)
    (store.blobs / ("e" * 64)).write_text("{}")
    removed = store.gc()
    assert len(removed) == 3
    assert sorted(os.listdir(store.tmp)) == [f"import-{os.getpid()}-live"]
    assert os.listdir(store.layers_dir) == [img.diff_ids[0].removeprefix("sha256:")]
    assert store.get("keep").id == img.id


def test_empty_store_reads_without_creating_anything(tmp_path):
    store = ImageStore(tmp_path / "fresh")
    assert store.list() == []
    with pytest.raises(ImageNotFound):
        store.get("busybox")
    assert not (tmp_path / "fresh").exists()


def test_cli_verbs(tmp_path):
    from typer.testing import CliRunner

    from minirun.cli import image

    top = typer.Typer()

    @top.callback()
    def _root(ctx: typer.Context):
        ctx.obj = {"root": str(tmp_path)}

    top.add_typer(image.app, name="image")
    src = tmp_path / "rootfs.tar.gz"
    src.write_bytes(gzip.compress(rootfs_tar()))
    run = CliRunner().invoke
    out = run(top, ["image", "import", str(src), "demo:1"])
    assert out.exit_code == 0, out.output
    image_id = out.stdout.strip().removeprefix("sha256:")
    out = run(top, ["image", "ls"])
    assert out.stdout.split("\n")[0].split() == [
        "REPOSITORY",
        "TAG",
        "IMAGE",
        "ID",
        "CREATED",
        "SIZE",
    ]
    assert out.stdout.split("\n")[1].split()[:3] == ["demo", "1", image_id[:12]]
    assert run(top, ["image", "list", "-q"]).stdout == image_id[:12] + "\n"
    listed = json.loads(run(top, ["image", "ls", "--format", "json"]).stdout)
    assert listed[0]["RepoTags"] == ["demo:1"]
    inspected = json.loads(run(top, ["image", "inspect", "demo:1"]).stdout)
    assert inspected[0]["Id"] == "sha256:" + image_id
    assert inspected[0]["Config"]["Cmd"] == ["sh"]
    out = run(top, ["image", "rm", "demo:1"])
    assert out.stdout == f"Untagged: demo:1\nDeleted: sha256:{image_id}\n"
    out = run(top, ["image", "rm", "demo:1"])
    assert isinstance(out.exception, ImageNotFound)


def test_reimport_of_an_unchanged_file_reads_nothing(store, tmp_path):
    src = tmp_path / "root.tar"
    src.write_bytes(rootfs_tar(pad=1 << 20))
    events = []
    count = lambda ev, **kw: events.append(kw["done"])  # noqa: E731
    a = store.import_tarball(src, "a", progress=count)
    assert events and events[-1] == src.stat().st_size
    events.clear()
    b = store.import_tarball(src, "b", progress=count)
    assert events == [] and b.diff_ids == a.diff_ids  # known by its stat: not read at all
    src.write_bytes(rootfs_tar("changed", pad=1 << 20))  # same size, new contents
    c = store.import_tarball(src, "c", progress=count)
    assert events and c.diff_ids != a.diff_ids
    os.utime(src)  # a touched file is read again (and found to be the same layer)
    events.clear()
    assert store.import_tarball(src, "d", progress=count).diff_ids == c.diff_ids and events
    store.remove("c")
    store.remove("d")  # its layer is gone: the cache entry must not be trusted
    events.clear()
    assert store.import_tarball(src, "e", progress=count).diff_ids == c.diff_ids and events
    assert leftovers(store) == []
