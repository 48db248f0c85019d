"""`minirun run` is the command people time: when its flags are run's own, it runs without
importing typer or click (cli/fastrun.py), and still behaves as the typer command does.

What it and `minirun --help` import is counted here, deterministically (`-X importtime` lists
each module the process imports, on any machine, however loaded): the slow stdlib modules stay
off the run path, and the number of modules each command imports stays within a budget, so a
new import at module level fails here rather than as a slower `make bench` weeks later."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import MINIRUN
from tests.unit.test_lean_imports import HEAVY as SLOW_STDLIB

pytestmark = pytest.mark.usefixtures("clean")

HEAVY = {"typer", "click", "rich", "pyroute2", "dataclasses", "typing", "shutil", "tempfile",
         "datetime", "argparse", "inspect"}
# pathlib is still on the run path, and with it re, enum, functools and collections: the data
# root, the container records and the image store are Path objects (minirun-oci's path, which
# has none of these, uses str). Every other slow stdlib module is kept off it: contextlib,
# signal, json, threading, array, hashlib (minirun.lean, _signal, _sha256 instead).
PATHLIB_BRINGS = {"pathlib", "re", "enum", "functools", "collections"}
RUN_FORBIDDEN = HEAVY | (set(SLOW_STDLIB) - PATHLIB_BRINGS)
# How many modules (ours, the stdlib's and cffi's) each command imports, with a few to spare.
# Measured with Debian's python3.11 (the Makefile's): `run` 97, `--help` 160 (before: 107 with
# contextlib, signal and json on the run path; 323 when --help drew with rich; 95 before issue
# 19's layers split minirun/storage.py out of runtime/state.py and images/reference.py out of the
# image store, code the run path loaded already: two module loads, ~0.1 ms). A new import on
# these paths must either replace one or raise the budget here, with its cost in the commit.
RUN_BUDGET = 100
HELP_BUDGET = 170


def _imported(data_root, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """What the command imports: `python -v` names every module as it is loaded ("import 'x'
    # ..."), those loaded with importlib.import_module too (the verbs' modules), which
    `-X importtime` does not list."""
    proc = subprocess.run([sys.executable, "-v", *MINIRUN, "--root", str(data_root), *args],
                          capture_output=True, text=True, timeout=60)
    mods = {line.split("'")[1] for line in proc.stderr.splitlines() if line.startswith("import '")}
    proc.stderr = "\n".join(line for line in proc.stderr.splitlines()
                            if not line.startswith(("import ", "# ")))
    return proc, mods


def test_run_does_not_import_typer(mr, data_root):
    # the first container of a root builds its seccomp program (cffi, libseccomp) and caches it
    mr("run", "--rm", "--network", "none", "busybox", "true")
    proc, mods = _imported(data_root, "run", "--rm", "--network", "none", "-e", "X=1", "busybox",
                           "sh", "-c", "echo $X")
    assert proc.returncode == 0 and proc.stdout == "1\n", proc.stderr[-2000:]
    assert "minirun.cli.fastrun" in mods
    bad = sorted(m for m in mods if m.split(".")[0] in RUN_FORBIDDEN)
    assert not bad, f"minirun run imported {bad}"
    assert len(mods) <= RUN_BUDGET, f"minirun run imported {len(mods)} modules (budget {RUN_BUDGET})"


def test_help_stays_within_its_import_budget(data_root):
    proc, mods = _imported(data_root, "--help")
    assert proc.returncode == 0 and "Usage: minirun" in proc.stdout, proc.stderr[-2000:]
    assert "minirun.cli.container" in mods           # the measurement saw the whole command tree
    assert "rich" not in {m.split(".")[0] for m in mods}
    assert len(mods) <= HELP_BUDGET, f"minirun --help imported {len(mods)} modules (budget {HELP_BUDGET})"


def test_run_with_a_flag_only_typer_knows_is_still_answered_by_typer(mr, data_root):
    proc, mods = _imported(data_root, "run", "--rmm", "busybox", "true")
    assert proc.returncode == 125
    assert "No such option" in proc.stderr and "--rmm" in proc.stderr
    assert "typer" in mods
