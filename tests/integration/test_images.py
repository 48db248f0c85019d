"""Images from the outside: a container of a multi-layer OCI image or docker-archive sees the top
layer's files and not the whited-out ones; the image config gives `run` its defaults and flags
override them as in Docker; what `image ls` / `image df` report."""

from __future__ import annotations

import json
import time

import pytest
from imagekit import FakeImage, layer, three_layer_image, write_docker, write_oci

pytestmark = pytest.mark.root


@pytest.fixture
def loaded(clean, tmp_path):
    """Load archives into the session's store; remove the images again afterwards."""
    names: list[str] = []

    def load(path, *extra):
        out = clean.out("image", "load", "-q", "-i", str(path), *extra)
        got = [line.split(": ", 1)[1] for line in out.splitlines()]
        names.extend(got)
        return got

    yield load
    if names:
        clean("image", "rm", *names, check=False)


def test_container_sees_the_union_of_layers_with_whiteouts_applied(clean, loaded, tmp_path):
    (name,) = loaded(write_oci(tmp_path / "oci", [three_layer_image("it-layered:1")]))
    out = clean.out("run", "--rm", name, "sh", "-c",
                    "cat /etc/motd; ls /data; ls /data/dir; test -e /data/gone || echo no-gone; "
                    "ls /data/dir/old 2>&1; greet layer2; busybox | head -1 | cut -c1-7")
    assert out.splitlines() == [
        "hello from layer 3",  # the top layer's file wins
        "dir", "keep",  # data/gone is whited out
        "new",  # data/dir is opaque: layer 2's data/dir/old is hidden
        "no-gone",
        "ls: /data/dir/old: No such file or directory",
        "greetings layer2",  # a file only the middle layer has
        "BusyBox",  # the bottom layer
    ]


def test_writes_go_to_the_container_not_the_shared_layers(clean, loaded, tmp_path):
    (name,) = loaded(write_docker(tmp_path / "d.tar", [three_layer_image("it-docker:1")]))
    clean.out("run", "--rm", name, "sh", "-c", "echo changed > /etc/motd; rm /data/keep")
    # a second container starts from the image again
    assert clean.out("run", "--rm", name, "sh", "-c", "cat /etc/motd /data/keep") == \
        "hello from layer 3\nkeep"
    inspect = json.loads(clean.out("image", "inspect", name))[0]
    assert len(inspect["RootFS"]["Layers"]) == 3
    assert len(inspect["GraphDriver"]["Data"]["LowerDirs"]) == 3


def test_image_config_gives_defaults_and_flags_override_them(clean, loaded, tmp_path):
    img = three_layer_image(
        "it-config:1", Entrypoint=["/bin/greet"], Cmd=["from-cmd"], WorkingDir="/data",
        User="1000:1000", Env=["PATH=/bin", "GREETING=image"], ExposedPorts={"80/tcp": {}},
        Labels={"org.example.team": "images"}, StopSignal="SIGUSR1")
    (name,) = loaded(write_oci(tmp_path / "oci", [img]))
    assert clean.out("run", "--rm", name) == "greetings from-cmd"
    assert clean.out("run", "--rm", name, "a", "b") == "greetings a b"  # args replace Cmd
    probe = "echo $(pwd) $(id -u):$(id -g) $GREETING"
    assert clean.out("run", "--rm", "--entrypoint", "sh", name, "-c", probe) == \
        "/data 1000:1000 image"
    assert clean.out("run", "--rm", "--entrypoint", "sh", "-w", "/etc", "-u", "0",
                     "-e", "GREETING=flag", name, "-c", probe) == "/etc 0:0 flag"
    inspect = json.loads(clean.out("image", "inspect", name))[0]["Config"]
    assert inspect["ExposedPorts"] == {"80/tcp": {}}
    assert inspect["Labels"] == {"org.example.team": "images"}
    # StopSignal: `stop` sends SIGUSR1, which this shell traps
    cid = clean.out("run", "-d", "--entrypoint", "sh", name, "-c",
                    "trap 'exit 7' USR1; while :; do sleep 0.1; done")
    try:
        time.sleep(0.3)
        clean("stop", "-t", "5", cid)
        assert clean.out("wait", cid) == "7"
    finally:
        clean("rm", "-f", cid, check=False)


def test_shared_layers_are_stored_and_counted_once(clean, loaded, tmp_path):
    base = three_layer_image().layers[0]
    a = FakeImage([base, layer(("a", b"a" * 1000))], {"Cmd": ["sh"]}, "it-share-a:1")
    b = FakeImage([base, layer(("b", b"b" * 3000))], {"Cmd": ["sh"]}, "it-share-b:1")
    before = json.loads(clean.out("image", "df", "--format", "json"))
    loaded(write_oci(tmp_path / "ab.tar", [a, b], as_tar=True))
    after = json.loads(clean.out("image", "df", "--format", "json"))
    # busybox's layer was already there (the session's busybox image): only a and b are new
    assert after["layers"] - before["layers"] == 2
    assert after["layers_size"] - before["layers_size"] == 4000
    sizes = {i["names"][0]: i for i in after["images"] if i["names"]}
    assert sizes["it-share-a:1"]["unique"] == 1000
    assert sizes["it-share-a:1"]["shared"] == sizes["it-share-b:1"]["shared"] > 1_000_000
    assert clean.out("run", "--rm", "it-share-b:1", "cat", "/b") == "b" * 3000


def test_load_errors_are_one_line_and_leave_nothing(clean, tmp_path):
    bad = write_oci(tmp_path / "oci", [FakeImage([layer(("../../x", b"x"))], {}, "it-bad:1")])
    before = clean.out("image", "ls", "-q")
    proc = clean("image", "load", "-q", "-i", str(bad), check=False)
    assert proc.returncode == 125
    assert proc.stderr.count("\n") == 1 and "'../../x' leaves the image root" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert clean.out("image", "ls", "-q") == before
    proc = clean("image", "load", "-i", str(tmp_path / "missing.tar"), check=False)
    assert proc.returncode == 125 and "cannot open" in proc.stderr


def test_commit_turns_changes_into_a_layer_with_whiteouts(clean, loaded, tmp_path):
    (name,) = loaded(write_oci(tmp_path / "oci", [three_layer_image("it-commit-base:1")]))
    clean("run", "--name", "it-committer", name, "sh", "-c",
          "echo changed > /etc/motd; rm /data/keep; rm -rf /data/dir; mkdir /data/dir; "
          "echo z > /data/dir/z; mkdir /made; ln -s /etc/shadow /made/link")
    try:
        out = clean.out("commit", "-m", "my change", "it-committer", "it-committed:1")
        assert out.startswith("sha256:")
    finally:
        clean("rm", "it-committer")
    try:
        got = clean.out("run", "--rm", "it-committed:1", "sh", "-c",
                        "cat /etc/motd; ls /data; ls /data/dir; readlink /made/link")
        assert got.splitlines() == ["changed", "dir", "z", "/etc/shadow"]
        inspect = json.loads(clean.out("image", "inspect", "it-committed:1"))[0]
        assert len(inspect["RootFS"]["Layers"]) == 4
        history = json.loads(clean.out("image", "history", "--format", "json", "it-committed:1"))
        assert history[0]["comment"] == "my change" and history[0]["size"] > 0
        # the new layer speaks the OCI spec's whiteout notation once saved
        clean("image", "save", "-q", "-o", str(tmp_path / "c.tar"), "it-committed:1")
        import tarfile
        with tarfile.open(tmp_path / "c.tar") as outer:
            index = json.load(outer.extractfile("index.json"))
            manifest = json.load(outer.extractfile(
                "blobs/sha256/" + index["manifests"][0]["digest"][7:]))
            top = outer.extractfile("blobs/sha256/" + manifest["layers"][-1]["digest"][7:])
            with tarfile.open(fileobj=top) as layer_tar:
                names = layer_tar.getnames()
        assert "data/.wh.keep" in names and "data/dir/.wh..wh..opq" in names
        assert "etc/motd" in names and "bin/busybox" not in names
    finally:
        clean("image", "rm", "it-committed:1", check=False)


def test_export_writes_the_merged_filesystem(clean, loaded, tmp_path):
    import tarfile

    (name,) = loaded(write_oci(tmp_path / "oci", [three_layer_image("it-export:1")]))
    clean("create", "--name", "it-exported", name)
    try:
        clean("export", "-o", str(tmp_path / "fs.tar"), "it-exported")
    finally:
        clean("rm", "it-exported")
    with tarfile.open(tmp_path / "fs.tar") as t:
        names = set(t.getnames())
        assert t.extractfile("etc/motd").read() == b"hello from layer 3\n"
    assert {"bin/busybox", "data/keep", "data/dir/new", "bin/greet"} <= names
    assert not {"data/gone", "data/dir/old"} & names
    assert not [n for n in names if ".wh." in n]
    assert not list(tmp_path.glob("fs.tar.*"))


def test_an_image_of_sixty_layers_runs(clean, loaded, tmp_path):
    """The overlay's options must fit in a page: layers are named by short links."""
    base = three_layer_image().layers[0]
    layers = [base] + [layer(f"l{i}/", (f"l{i}/f", f"{i}".encode())) for i in range(59)]
    (name,) = loaded(write_oci(tmp_path / "oci", [FakeImage(layers, {"Cmd": ["sh"]},
                                                            "it-sixty:1")]))
    assert clean.out("run", "--rm", name, "cat", "/l0/f", "/l30/f", "/l58/f") == "03058"
