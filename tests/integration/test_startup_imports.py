"""`minirun run` is the command people time: when its flags are run's own, it runs without
importing typer or click (cli/fastrun.py), and still behaves as the typer command does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import MINIRUN

pytestmark = pytest.mark.usefixtures("clean")

HEAVY = {"typer", "click", "rich", "pyroute2", "dataclasses", "typing", "shutil", "tempfile",
         "datetime"}


def _imported(data_root, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", *MINIRUN, "--root", str(data_root),
                           *args], capture_output=True, text=True, timeout=60)
    mods = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}
    return proc, mods


def test_run_does_not_import_typer(mr, data_root):
    # the first container of a root builds its seccomp program (cffi, libseccomp) and caches it
    mr("run", "--rm", "--network", "none", "busybox", "true")
    proc, mods = _imported(data_root, "run", "--rm", "--network", "none", "-e", "X=1", "busybox",
                           "sh", "-c", "echo $X")
    assert proc.returncode == 0 and proc.stdout == "1\n", proc.stderr[-2000:]
    assert "minirun.cli.fastrun" in mods
    assert not {m.split(".")[0] for m in mods} & HEAVY, sorted({m.split(".")[0] for m in mods} & HEAVY)


def test_run_with_a_flag_only_typer_knows_is_still_answered_by_typer(mr, data_root):
    proc, mods = _imported(data_root, "run", "--rmm", "busybox", "true")
    assert proc.returncode == 125
    assert "No such option" in proc.stderr and "--rmm" in proc.stderr
    assert "typer" in mods
