"""What `minirun-oci run` costs podman and containerd per container: it must not import the
typer CLI, pyroute2 or anything else the per-container contract does not need (issue 7), and
the container's cgroup join must not wait for an RCU grace period (runtime/cgroup_warm.py)."""

from __future__ import annotations

import os
import subprocess

from tests.oci.conftest import OCI
from tests.unit.test_lean_imports import HEAVY

# never on the per-container path: the CLI, the network stack, and the start-up hogs it avoids:
# the slow stdlib modules each lean module must not import (HEAVY), and what pathlib would
# bring besides (fnmatch, urllib.parse, ipaddress)
FORBIDDEN = {"typer", "click", "rich", "pyroute2", "minirun.cli", "minirun.net", "argparse",
             "dataclasses", "inspect", "shutil", "tempfile", "datetime",
             "fnmatch", "urllib", "ipaddress", *HEAVY}


def _imported(argv: list[str]) -> set[str]:
    """What the command as installed imports (the launcher, c_ext/launch.c, starts Python with
    our environment: PYTHONPROFILEIMPORTTIME is -X importtime)."""
    proc = subprocess.run([OCI, *argv], env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_run_imports_only_what_the_contract_needs(oci):
    oci.configure(["true"])
    # the first run of a root builds the seccomp program with libseccomp (cffi, ABI mode) and
    # caches it (runtime/seccomp.py): what every later container pays is measured after it
    oci("run", "--bundle", str(oci.bundle), "first")
    mods = _imported(["--root", str(oci.root), "run", "--bundle", str(oci.bundle), "lean"])
    assert "minirun.oci.container" in mods                 # the measurement saw the real path
    bad = sorted(m for m in mods if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN
                 or any(m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, f"minirun-oci run imported {bad}"


def test_state_and_delete_are_as_lean(oci):
    oci.configure(["sleep", "30"])
    oci("create", "--bundle", str(oci.bundle), "lean2", detached=True)
    try:
        for argv in (["state", "lean2"], ["kill", "lean2", "KILL"]):
            mods = _imported(["--root", str(oci.root), *argv])
            assert not (mods & FORBIDDEN), (argv, sorted(mods & FORBIDDEN))
    finally:
        oci("delete", "--force", "lean2")
