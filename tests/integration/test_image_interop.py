"""Round trips through minirun's own save/load and through the tools people already use:
skopeo and umoci (Debian packages) and podman. A test whose tool is missing is skipped with
the reason; none is faked."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile

import pytest
from imagekit import three_layer_image, write_oci

pytestmark = pytest.mark.root


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name}; `make prereqs` does it)")
    return path


@pytest.fixture
def images(clean):
    names: list[str] = []
    yield names
    if names:
        clean("image", "rm", *names, check=False)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_save_load_round_trip_keeps_every_digest(clean, images, tmp_path, fmt):
    images += ["it-rt:1", "it-rt-copy:1"]
    clean("image", "load", "-q", "-t", "it-rt:1", "-i",
          str(write_oci(tmp_path / "src", [three_layer_image("it-rt-src:1")])))
    images.append("it-rt-src:1")
    before = json.loads(clean.out("image", "inspect", "it-rt:1"))[0]
    saved = tmp_path / "saved.tar"
    clean("image", "save", "-q", "--format", fmt, "-o", str(saved), "it-rt:1")
    again = tmp_path / "again.tar"
    clean("image", "save", "-q", "--format", fmt, "-o", str(again), "it-rt:1")
    assert digest(saved) == digest(again)  # deterministic output
    clean("image", "rm", "it-rt:1", "it-rt-src:1")
    out = clean.out("image", "load", "-q", "-i", str(saved))
    assert out == "Loaded image: it-rt:1"
    after = json.loads(clean.out("image", "inspect", "it-rt:1"))[0]
    assert after["Id"] == before["Id"] and after["RootFS"] == before["RootFS"]
    assert clean.out("run", "--rm", "it-rt:1", "cat", "/etc/motd") == "hello from layer 3"
    # via stdout, and under another name
    piped = subprocess.run(f"{' '.join(clean_cmd(clean))} image save --format {fmt} it-rt:1",
                           shell=True, capture_output=True, check=True).stdout
    assert hashlib.sha256(piped).hexdigest() == digest(saved)
    clean("image", "tag", "it-rt:1", "it-rt-copy:1")
    assert clean.out("image", "inspect", "--", "it-rt-copy:1").count(before["Id"]) == 1


def clean_cmd(mr) -> list[str]:
    from tests.conftest import MINIRUN

    return [*MINIRUN, "--root", str(mr.root)]


def test_skopeo_written_layouts_load_and_run(clean, images, tmp_path):
    skopeo = tool("skopeo")
    images += ["it-skopeo:1", "it-skopeo-d:1"]
    src = write_oci(tmp_path / "src", [three_layer_image("x:1")])
    # skopeo recompresses as it copies: gzip into an OCI layout, zstd into a docker-archive
    subprocess.run([skopeo, "copy", "-q", "--dest-compress", f"oci:{src}:x:1",
                    f"oci:{tmp_path}/sk:it-skopeo:1"], check=True)
    subprocess.run([skopeo, "copy", "-q", f"oci:{src}:x:1",
                    f"docker-archive:{tmp_path}/sk.tar:it-skopeo-d:1"], check=True)
    assert clean.out("image", "load", "-q", "-i", str(tmp_path / "sk")) == \
        "Loaded image: it-skopeo:1"
    out = clean.out("image", "load", "-q", "-i", str(tmp_path / "sk.tar"))
    images.append(out.split(": ")[1])
    assert clean.out("run", "--rm", "it-skopeo:1", "sh", "-c", "cat /etc/motd; ls /data") == \
        "hello from layer 3\ndir\nkeep"
    # and what minirun saves, skopeo reads
    clean("image", "save", "-q", "-o", str(tmp_path / "mine.tar"), "it-skopeo:1")
    subprocess.run([skopeo, "inspect", "--raw", f"oci-archive:{tmp_path}/mine.tar"], check=True,
                   capture_output=True)


def test_umoci_repacked_layer_with_deletions_loads(clean, images, tmp_path):
    umoci = tool("umoci")
    images += ["it-umoci:1", "it-umoci:2"]
    layout = write_oci(tmp_path / "um", [three_layer_image("it-umoci:1")])
    bundle = tmp_path / "bundle"
    subprocess.run([umoci, "unpack", "--image", f"{layout}:it-umoci:1", str(bundle)],
                   check=True, capture_output=True)
    rootfs = bundle / "rootfs"
    (rootfs / "data/keep").unlink()
    shutil.rmtree(rootfs / "data/dir")
    (rootfs / "data/dir").mkdir()
    (rootfs / "data/dir/fresh").write_text("fresh\n")
    subprocess.run([umoci, "repack", "--image", f"{layout}:it-umoci:2", str(bundle)], check=True)
    subprocess.run([umoci, "config", "--image", f"{layout}:it-umoci:2", "--config.cmd",
                    "/bin/greet", "--config.label", "made.by=umoci"], check=True)
    clean("image", "load", "-q", "-i", str(layout))
    assert clean.out("run", "--rm", "it-umoci:2") == "greetings"
    assert clean.out("run", "--rm", "it-umoci:2", "sh", "-c", "ls /data /data/dir") == \
        "/data:\ndir\n\n/data/dir:\nfresh"


def test_podman_loads_and_runs_what_minirun_saves(clean, images, tmp_path):
    podman = tool("podman")
    runc = tool("runc")
    images.append("it-podman:1")
    clean("image", "load", "-q", "-i",
          str(write_oci(tmp_path / "src", [three_layer_image("it-podman:1")])))
    runroot = tempfile.mkdtemp(prefix="mr-pm-")  # podman wants a runroot under 50 characters
    pm = [podman, "--root", str(tmp_path / "pm"), "--runroot", runroot, "--storage-driver", "vfs"]
    try:
        _podman_round_trip(clean, pm, runc, tmp_path)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def _podman_round_trip(clean, pm, runc, tmp_path):
    for fmt in ("oci", "docker-archive"):
        clean("image", "save", "-q", "--format", fmt, "-o", str(tmp_path / f"{fmt}.tar"),
              "it-podman:1")
        load = subprocess.run([*pm, "load", "-i", str(tmp_path / f"{fmt}.tar")],
                              capture_output=True, text=True)
        assert load.returncode == 0, load.stderr
        assert "it-podman:1" in load.stdout
    # crun refuses this host's hybrid cgroups; runc runs it
    run = subprocess.run([*pm, "run", "--runtime", runc, "--rm", "--network", "none",
                          "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                          "it-podman:1", "sh", "-c", "cat /etc/motd; ls /data/dir"],
                         capture_output=True, text=True, timeout=120)
    if run.returncode != 0 and "cgroup" in run.stderr:
        pytest.skip(f"podman cannot run containers on this host: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["hello", "from", "layer", "3", "new"]
