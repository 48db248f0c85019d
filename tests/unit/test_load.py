"""`image load`: OCI image layouts and docker-archives, multi-layer, verified, shared layers."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile

import pytest
from imagekit import (
    FakeImage,
    busybox_layer,
    layer,
    oci_files,
    sha,
    three_layer_image,
    write_docker,
    write_oci,
)

from minirun.errors import ImageFormatError
from minirun.images import tarsafe
from minirun.images.store import ImageStore

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and xattrs need root")


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "root")


def state(store: ImageStore):
    """Everything a failed load must leave as it was."""
    index = store.index_path.read_bytes() if store.index_path.exists() else b""
    ls = lambda d: sorted(os.listdir(d)) if d.exists() else []  # noqa: E731
    return index, ls(store.layers_dir), ls(store.blobs), ls(store.tmp)


def small_image(name="small:1", marker=b"x") -> FakeImage:
    return FakeImage([layer("etc/", ("etc/marker", marker)), layer(("top", b"t"))],
                     {"Cmd": ["/bin/true"]}, name)


@needs_root
@pytest.mark.parametrize("how", ["gzip", "zstd", "none"])
def test_oci_directory_loads_every_layer_with_its_whiteouts(store, tmp_path, how):
    img = three_layer_image()
    write_oci(tmp_path / "oci", [img], how)
    (loaded,) = store.load(tmp_path / "oci")
    assert loaded.id == img.id and loaded.names == ["layered:1"]
    assert loaded.diff_ids == [sha(t) for t in img.layers]
    base, mid, top = loaded.layers
    assert (mid / "data/gone").read_bytes() == b"gone\n"
    wh = (top / "data/gone").lstat()
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0  # overlayfs' whiteout
    assert os.getxattr(top / "data/dir", "trusted.overlay.opaque") == b"y"
    assert (top / "data/dir/new").read_bytes() == b"new\n"
    assert not (top / "data/dir/old").exists()
    assert loaded.config["Cmd"] == ["sh"]
    assert loaded.size == sum(json.loads((p.parent / "layer.json").read_text())["size"]
                              for p in loaded.layers)
    assert os.listdir(store.tmp) == []


@needs_root
def test_oci_tar_gzipped_tar_and_stream(store, tmp_path):
    img = small_image()
    write_oci(tmp_path / "oci.tar", [img], "zstd", as_tar=True)
    assert store.load(tmp_path / "oci.tar")[0].id == img.id
    (tmp_path / "oci.tar.gz").write_bytes(gzip.compress((tmp_path / "oci.tar").read_bytes()))
    other = small_image("other:2", b"y")
    write_oci(tmp_path / "o2.tar", [other], as_tar=True)
    assert store.load(tmp_path / "oci.tar.gz")[0].id == img.id
    with open(tmp_path / "o2.tar", "rb") as f:  # a pipe-like stream: read once, spooled
        r, w = os.pipe()
        os.write(w, f.read())
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            assert store.load(pipe)[0].names == ["other:2"]
    assert os.listdir(store.tmp) == []


@needs_root
def test_docker_archive_with_repo_tags(store, tmp_path):
    img = three_layer_image("docker.io/library/app:v1")
    write_docker(tmp_path / "d.tar", [img, small_image()])
    loaded = store.load(tmp_path / "d.tar")
    assert [i.names for i in loaded] == [["docker.io/library/app:v1"], ["small:1"]]
    assert loaded[0].id == img.id
    assert (loaded[0].layers[2] / "etc/motd").read_bytes() == b"hello from layer 3\n"


@needs_root
def test_layers_are_shared_and_a_reload_reads_no_layer(store, tmp_path):
    base = busybox_layer()
    a = FakeImage([base, layer(("a", b"a"))], {"Cmd": ["sh"]}, "a:1")
    b = FakeImage([base, layer(("b", b"b"))], {"Cmd": ["sh"]}, "b:1")
    write_oci(tmp_path / "ab", [a, b])
    store.load(tmp_path / "ab")
    assert len(os.listdir(store.layers_dir)) == 3  # busybox once
    df = store.disk_usage()
    base_size = json.loads((store.layers_dir / sha(base)[7:] / "layer.json").read_text())["size"]
    assert df["layers_size"] == base_size + 2
    assert df["images_size"] == 2 * base_size + 2  # what `ls` adds up: shared counted twice
    events = []
    store.load(tmp_path / "ab", progress=lambda ev, **kw: events.append((ev, kw.get("cached"))))
    assert [c for ev, c in events if ev == "layer"] == [True] * 4


@needs_root
def test_same_layer_whiteout_and_directory_make_it_opaque(tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    data = layer("etc/", "etc/.wh.conf.d", "etc/conf.d/", ("etc/conf.d/new", b"n"))
    res = tarsafe.extract_layer(io.BytesIO(data), dest)
    assert os.getxattr(dest / "etc/conf.d", "trusted.overlay.opaque") == b"y"
    assert (dest / "etc/conf.d/new").read_bytes() == b"n"
    assert res.opaque == ["etc/conf.d"]


def test_tar_split_rebuilds_the_exact_layer(tmp_path):
    for data in (busybox_layer(), three_layer_image().layers[2],
                 layer(("a", b"1" * 700), "d/", ("d/l", "->", "../a"),
                       fmt=tarfile.GNU_FORMAT) + b"\0" * 4096):
        dest = tmp_path / sha(data)[7:19]
        dest.mkdir()
        split = io.BytesIO()
        res = tarsafe.extract_layer(io.BytesIO(data), dest, split_to=split)
        assert res.reproducible and res.tar_size == len(data)
        out = bytearray()
        split.seek(0)
        tarsafe.reassemble(dest, split, out.extend)
        assert bytes(out) == data


# --- hostile or broken archives: a clear error, and nothing left -------------------------------


def _rewrite(files: dict[str, bytes], path: str, data: bytes) -> dict[str, bytes]:
    files = dict(files)
    files[path] = data
    return files


def _oci_with(files, tmp_path):
    d = tmp_path / "bad"
    for path, data in files.items():
        p = d / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return d


def _layer_blob(files):
    index = json.loads(files["index.json"])
    m = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    return m, "blobs/sha256/" + m["layers"][-1]["digest"][7:]


def _hostile_cases(tmp_path):
    img = small_image()
    good = oci_files([img])
    m, blob = _layer_blob(good)

    plain = oci_files([img], "none")
    _, plain_blob = _layer_blob(plain)

    def flip(path, files=good):
        data = bytearray(files[path])
        data[len(data) // 2] ^= 1
        return _rewrite(files, path, bytes(data))

    cfg_path = "blobs/sha256/" + m["config"]["digest"][7:]
    wrong_diff = json.loads(good[cfg_path])
    wrong_diff["rootfs"]["diff_ids"][-1] = "sha256:" + "0" * 64
    wrong_cfg = json.dumps(wrong_diff).encode()
    bad_cfg_files = oci_files([img])
    # a config whose bytes changed but keeps its file name: its digest no longer matches
    bad_cfg_files[cfg_path] = wrong_cfg
    escape = dict(good)
    esc_index = json.loads(good["index.json"])
    esc_index["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
    escape["index.json"] = json.dumps(esc_index).encode()
    evil_layer = FakeImage([layer(("../../escaped", b"pwned"))], {}, "evil:1")
    return {
        "layer digest mismatch": (flip(plain_blob, plain), "digest mismatch"),
        "corrupt gzip layer": (flip(blob), "corrupt compressed data"),
        "config digest mismatch": (bad_cfg_files, "digest mismatch"),
        "manifest digest mismatch": (
            flip("blobs/sha256/" + json.loads(good["index.json"])["manifests"][0]["digest"][7:]),
            "digest mismatch|not valid JSON"),
        "digest that is a path": (escape, "malformed digest"),
        "layer escaping the root": (oci_files([evil_layer]), "'../../escaped' leaves the image root"),
        "truncated layer": (_rewrite(good, blob, good[blob][:-9]), "truncated|digest mismatch|size"),
        "no index": ({"oci-layout": good["oci-layout"]}, "neither an OCI image layout"),
    }


@needs_root
@pytest.mark.parametrize("case", ["layer digest mismatch", "corrupt gzip layer", "config digest mismatch",
                                  "manifest digest mismatch", "digest that is a path",
                                  "layer escaping the root", "truncated layer", "no index"])
def test_hostile_oci_layout_is_refused_and_leaves_nothing(store, tmp_path, case):
    store.load(write_oci(tmp_path / "ok", [FakeImage([layer(("k", b"k"))], {}, "keep:1")]))
    before = state(store)
    files, message = _hostile_cases(tmp_path)[case]
    with pytest.raises(ImageFormatError, match=message):
        store.load(_oci_with(files, tmp_path))
    assert state(store) == before
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


@needs_root
def test_diff_id_mismatch_is_refused(store, tmp_path):
    img = small_image()
    img_bad = FakeImage(img.layers, img.config, img.name)
    blob = json.loads(img_bad.config_blob())
    blob["rootfs"]["diff_ids"][0] = sha(b"something else")
    files = oci_files([img])
    m, _ = _layer_blob(files)
    cfg = json.dumps(blob).encode()
    files.pop("blobs/sha256/" + m["config"]["digest"][7:])
    files["blobs/sha256/" + sha(cfg)[7:]] = cfg
    m["config"] = {"mediaType": m["config"]["mediaType"], "digest": sha(cfg), "size": len(cfg)}
    mbytes = json.dumps(m).encode()
    files["blobs/sha256/" + sha(mbytes)[7:]] = mbytes
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": m["mediaType"], "digest": sha(mbytes), "size": len(mbytes)}]}).encode()
    with pytest.raises(ImageFormatError, match="diff_id mismatch"):
        store.load(_oci_with(files, tmp_path))
    assert state(store)[1:] == ([], [], [])


@needs_root
def test_paths_and_symlinks_cannot_leave_the_archive(store, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text("[]")
    img = small_image()
    # a docker-archive whose manifest names files outside it, directly and through a symlink
    d = write_docker(tmp_path / "d", [img], as_tar=False)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest[0]["Config"] = "../secret.json"
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImageFormatError, match="missing"):
        store.load(d)
    manifest[0]["Config"] = "link.json"
    (d / "link.json").symlink_to(secret)  # absolute: resolved inside the archive
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImageFormatError, match="missing"):
        store.load(d)
    # an OCI blob that is a symlink to a file outside the layout
    o = write_oci(tmp_path / "o", [img])
    index = json.loads((o / "index.json").read_text())
    target = o / "blobs/sha256" / index["manifests"][0]["digest"][7:]
    (tmp_path / "outside").write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to("../../../outside")
    with pytest.raises(ImageFormatError, match="missing"):
        store.load(o)
    assert state(store)[1:3] == ([], [])


def test_docker_archive_symlinked_layers_resolve_inside(store, tmp_path):
    """`docker save` links a repeated layer to its first copy (../<id>/layer.tar)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    img = FakeImage([layer(("a", b"a")), layer(("b", b"b"))], {}, "links:1")
    d = write_docker(tmp_path / "d", [img], as_tar=False)
    manifest = json.loads((d / "manifest.json").read_text())
    first, second = manifest[0]["Layers"]
    (d / "alias").mkdir()
    (d / "alias/layer.tar").symlink_to("../" + second)
    manifest[0]["Layers"][1] = "alias/layer.tar"
    (d / "manifest.json").write_text(json.dumps(manifest))
    assert store.load(d)[0].id == img.id


@needs_root
def test_user_lookup_honours_whiteouts_and_opaque_dirs(tmp_path):
    from minirun.errors import UsageError
    from minirun.runtime.options import resolve_user

    low, top = tmp_path / "low", tmp_path / "top"
    (low / "etc").mkdir(parents=True)
    (low / "etc/passwd").write_text("app:x:1000:1000::/:/bin/sh\n")
    (top / "etc").mkdir(parents=True)
    assert resolve_user("app", [top, low]) == {"uid": 1000, "gid": 1000}
    os.mknod(top / "etc/passwd", stat.S_IFCHR, 0)  # the top layer deleted it
    with pytest.raises(UsageError, match="unable to find user app"):
        resolve_user("app", [top, low])
    os.unlink(top / "etc/passwd")
    os.setxattr(top / "etc", "trusted.overlay.opaque", b"y")  # or replaced the whole of /etc
    with pytest.raises(UsageError, match="unable to find user app"):
        resolve_user("app", [top, low])


@needs_root
def test_docker_25_save_output_is_read_as_docker_archive(store, tmp_path):
    """Docker 25+ writes an OCI layout *and* a manifest.json whose paths point into blobs/."""
    img = small_image("new-docker:1")
    files = oci_files([img], "none", ref_key="io.containerd.image.name")
    index = json.loads(files["index.json"])
    m = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    files["manifest.json"] = json.dumps([{
        "Config": "blobs/sha256/" + m["config"]["digest"][7:],
        "RepoTags": ["new-docker:1", "new-docker:latest"],
        "Layers": ["blobs/sha256/" + d["digest"][7:] for d in m["layers"]]}]).encode()
    loaded = store.load(_oci_with(files, tmp_path))
    assert [i.names for i in loaded] == [["new-docker:1", "new-docker:latest"]]
    assert loaded[0].id == img.id
