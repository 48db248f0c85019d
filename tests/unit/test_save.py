"""`image save` (OCI / docker-archive), tag, history, prune, derive: at the store's level."""

from __future__ import annotations

import io
import os
import tarfile

import pytest
import typer
from imagekit import FakeImage, layer, three_layer_image, write_oci

from minirun.errors import ImageFormatError, ImageNotFound, UsageError
from minirun.images import save as saver
from minirun.images.store import ImageStore

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts need root")


@pytest.fixture
def store(tmp_path) -> ImageStore:
    s = ImageStore(tmp_path / "a")
    s.load(write_oci(tmp_path / "src", [three_layer_image("app:1")]))
    return s


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_save_then_load_elsewhere_gives_the_same_image(store, tmp_path, fmt):
    out = tmp_path / "out.tar"
    saver.save_to_path(store, ["app:1"], str(out), fmt)
    other = ImageStore(tmp_path / "b")
    (img,) = other.load(out)
    assert img.id == store.get("app:1").id and img.names == ["app:1"]
    assert img.diff_ids == store.get("app:1").diff_ids
    again = io.BytesIO()
    saver.save(other, ["app:1"], again, fmt)
    assert again.getvalue() == out.read_bytes()  # save -> load -> save: the same bytes


def test_save_refuses_a_layer_changed_on_disk_and_leaves_no_file(store, tmp_path):
    top = store.get("app:1").layers[1]
    (top / "etc/motd").write_bytes(b"tampered!!!!!!!!!!\n")  # same length, other bytes
    with pytest.raises(ImageFormatError, match="changed since it was unpacked"):
        saver.save_to_path(store, ["app:1"], str(tmp_path / "x.tar"), "oci")
    assert sorted(os.listdir(tmp_path)) == ["a", "src"]
    with pytest.raises(UsageError, match="cannot write"):
        saver.save_to_path(store, ["app:1"], str(tmp_path / "no/such/dir.tar"), "oci")
    with pytest.raises(UsageError, match="--format"):
        saver.save(store, ["app:1"], io.BytesIO(), "zip")


def test_a_layer_with_a_replaced_file_cannot_be_rebuilt(tmp_path):
    store = ImageStore(tmp_path / "a")
    dup = layer(("f", b"first"), ("f", b"second"))
    store.load(write_oci(tmp_path / "src", [FakeImage([dup], {}, "dup:1")]))
    assert (store.get("dup:1").layers[0] / "f").read_bytes() == b"second"
    with pytest.raises(ImageFormatError, match="cannot be rebuilt"):
        saver.save(store, ["dup:1"], io.BytesIO(), "oci")


def test_tag_history_and_prune(store, tmp_path):
    base = store.get("app:1")
    assert store.tag("app:1", "other") == "other:latest"
    assert store.get("other").id == base.id
    child = store.derive(base, config=dict(base.config, Cmd=["ls"]),
                         history={"created_by": "CMD ls"}, extra={"intermediate": True})
    grandchild = store.derive(child, names=["final:1"],
                              history={"created_by": "COPY x"},
                              write_layer=lambda f: f.write(layer(("x", b"x"))))
    assert grandchild.diff_ids[:3] == base.diff_ids and len(grandchild.diff_ids) == 4
    rows = store.history("final:1")
    assert [r["created_by"] for r in rows[:2]] == ["COPY x", "CMD ls"]
    assert rows[0]["size"] == 1 and rows[1]["size"] == 0 and rows[0]["id"] == grandchild.id
    dangling = store.derive(base, history={"created_by": "nothing"})
    store.tag(dangling.id, "tmp")
    store.remove("tmp")  # gone with its last name
    loose = store.derive(base, history={"created_by": "loose"})
    used = store.derive(base, history={"created_by": "used by a container"})
    removed = store.prune(keep={used.id})
    assert removed == [loose.id]  # child is final:1's parent: kept as its build cache
    assert store.get(child.id) and store.get(used.id)
    assert set(store.prune(keep=set(), all=True)) == {base.id, child.id, grandchild.id, used.id}
    with pytest.raises(ImageNotFound):
        store.get("app:1")
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.tmp) == []


def test_saved_docker_archive_has_docker_names(store):
    out = io.BytesIO()
    saver.save(store, ["app:1"], out, "docker-archive")
    out.seek(0)
    with tarfile.open(fileobj=out) as t:
        import json

        manifest = json.load(t.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == ["app:1"] and len(manifest[0]["Layers"]) == 3
        assert json.load(t.extractfile("repositories")) == {"app": {"1": store.get("app:1").id}}


def test_import_reports_progress_in_bytes(tmp_path):
    from imagekit import BUSYBOX_TAR

    events = []
    ImageStore(tmp_path / "p").import_tarball(
        BUSYBOX_TAR, "p", progress=lambda ev, **kw: events.append((ev, kw["done"], kw["total"])))
    size = BUSYBOX_TAR.stat().st_size
    assert events[-1] == ("bytes", size, size)
    assert [d for _, d, _ in events] == sorted(d for _, d, _ in events)


def test_ls_hides_intermediate_images_unless_all(store, tmp_path):
    from typer.testing import CliRunner

    from minirun.cli import image

    base = store.get("app:1")
    step = store.derive(base, history={"created_by": "ENV A=1"}, config={"Env": ["A=1"]},
                        extra={"intermediate": True})
    top = typer.Typer()

    @top.callback()
    def _root(ctx: typer.Context):
        ctx.obj = {"root": str(tmp_path / "a")}

    top.add_typer(image.app, name="image")
    shown = CliRunner().invoke(top, ["image", "ls", "-q", "--no-trunc"]).stdout.split()
    assert shown == [base.id]
    shown = CliRunner().invoke(top, ["image", "ls", "-a", "-q", "--no-trunc"]).stdout.split()
    assert sorted(shown) == sorted([base.id, step.id])
