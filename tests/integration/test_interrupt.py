"""Ctrl-C (SIGINT to the command's process group, as a terminal sends it) during `logs -f`,
`image import`, `image load` and `build`: the command exits 130 without a traceback and leaves nothing
behind — no staging, no half image, no build container — and `logs -f` leaves the container
running. (`run -it` passes Ctrl-C to the container: tests/integration/test_lifecycle.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import IMAGE_TAR, MINIRUN
from tests.integration.test_faults_images import assert_no_garbage, assert_store_consistent

pytestmark = pytest.mark.root


def _start(clean, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([*MINIRUN, "--root", str(clean.root), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, **kw)


def _wait_for(what: str, check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _ctrl_c(proc: subprocess.Popen) -> tuple[int, str]:
    os.killpg(proc.pid, signal.SIGINT)                 # the terminal's foreground group
    out, err = proc.communicate(timeout=30)
    return proc.returncode, err.decode(errors="replace")


def _images(clean) -> set[str]:
    return {i["Id"] for i in json.loads(clean.out("image", "ls", "-a", "--format", "json"))}


def _staging(clean) -> list[str]:
    tmp = clean.root / "images" / "tmp"
    return os.listdir(tmp) if tmp.exists() else []


def test_ctrl_c_ends_logs_follow_and_the_container_runs_on(clean):
    with clean.detached("--name", "talker", "busybox", "sh", "-c",
                        "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.1; done"):
        proc = _start(clean, "logs", "-f", "talker")
        first = proc.stdout.readline()
        assert first.startswith(b"line "), first
        code, err = _ctrl_c(proc)
        assert code == 130, err
        assert "Traceback" not in err
        assert "talker" in clean.out("ps")
        time.sleep(0.3)
        assert len(clean.out("logs", "talker").splitlines()) >= 2      # it still writes its log


def test_ctrl_c_during_import_leaves_no_staging_and_no_image(clean):
    before = _images(clean)
    proc = _start(clean, "image", "import", "-", "interrupted:1", stdin=subprocess.PIPE)
    data = Path(IMAGE_TAR).read_bytes()
    proc.stdin.write(data[: len(data) // 2])             # half the archive, then the user gives up
    proc.stdin.flush()
    _wait_for("the import to stage the layer", lambda: any(
        (clean.root / "images" / "tmp" / s).is_dir() and any((clean.root / "images" / "tmp" / s).iterdir())
        for s in _staging(clean)))
    code, err = _ctrl_c(proc)
    proc.stdin.close()
    assert code == 130, err
    assert "Traceback" not in err
    assert _staging(clean) == [], "the interrupted import left its staging behind"
    assert _images(clean) == before, "an interrupted import left an image"
    assert_no_garbage(clean)


def test_ctrl_c_during_build_removes_the_step_container(clean, tmp_path):
    before = _images(clean)
    (tmp_path / "Containerfile").write_text("FROM busybox\nRUN echo started && sleep 30\n")
    proc = _start(clean, "build", "--no-cache", "-t", "interrupted:1", str(tmp_path))
    _wait_for("the RUN step's container", lambda: clean.out("ps", "-q") != "")
    code, err = _ctrl_c(proc)
    assert code == 130, err
    assert "Traceback" not in err
    assert clean.out("ps", "-a", "-q") == "", "the interrupted build left its step container"
    assert _staging(clean) == []
    assert _images(clean) == before, "an interrupted build left an image"
    assert_store_consistent(clean)
    assert clean.out("gc", "--grace", "0") == "", "the interrupted build left work for gc"


def test_ctrl_c_during_load_leaves_no_staging_and_no_image(clean, tmp_path):
    before = _images(clean)
    archive = tmp_path / "busybox-oci.tar"
    clean("image", "save", "-o", str(archive), "busybox")
    proc = _start(clean, "image", "load", "-q", stdin=subprocess.PIPE)
    data = archive.read_bytes()
    proc.stdin.write(data[: len(data) // 2])             # a slow stream: the load is spooling it
    proc.stdin.flush()
    _wait_for("the load to stage", lambda: _staging(clean) != [])
    code, err = _ctrl_c(proc)
    proc.stdin.close()
    assert code == 130, err
    assert "Traceback" not in err
    assert _staging(clean) == [], "the interrupted load left its staging behind"
    assert _images(clean) == before
    assert_no_garbage(clean)
