"""The minirun-oci command is a native launcher (c_ext/launch.c): for create, run and exec it
forks a helper that starts the kernel's grace period for the first cgroup migration, then it
runs Python beside itself. The helper never outlives the command, its pid reaches neither the
container nor the hooks, and the command behaves as the Python script did."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.oci.conftest import OCI, assert_nothing_left, one_line


def test_the_command_is_the_native_launcher():
    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip(f"c_ext/nolibc.h has no port for {platform.machine()}")
    data = Path(OCI).read_bytes()
    assert data[:4] == b"\x7fELF", "minirun-oci is the Python script, not the launcher"
    assert len(data) < 64 * 1024, "the launcher was linked with libc (nolibc.h should build here)"


def _children_left_after(oci, argv: list[str]) -> str:
    """Run minirun-oci as a child subreaper would (conmon, containerd's shim): whatever it leaves
    unreaped becomes our child. What is left once it has exited: "none", or the pids."""
    script = f"""
import ctypes, os, subprocess
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)            # PR_SET_CHILD_SUBREAPER
subprocess.run([{OCI!r}, "--root", {str(oci.root)!r}, *{argv!r}], stdin=subprocess.DEVNULL,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
left = []
while True:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == 0:
        left.append("running")
        break
    left.append(str(pid))
print(" ".join(left) or "none")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_no_helper_outlives_the_command(oci):
    oci.configure(["true"])
    assert _children_left_after(oci, ["run", "--bundle", str(oci.bundle), "launched"]) == "none"
    assert_nothing_left(oci, "launched")
    # a verb that fails still waits for its helper
    assert _children_left_after(oci, ["run", "--bundle", "/nonexistent", "failed"]) == "none"


def test_the_helper_pid_reaches_neither_the_container_nor_the_hooks(oci, tmp_path):
    hook_env = tmp_path / "hook.env"
    spec = oci.configure(["env"])
    spec["hooks"] = {"createRuntime": [{"path": "/bin/sh",
                                         "args": ["sh", "-c", f"env > {hook_env}"]}]}
    oci.write(spec)
    out = oci("run", "--bundle", str(oci.bundle), "helperless")
    assert "PATH=" in out.stdout                                   # the container's env printed
    assert "MINIRUN_OCI_HELPER" not in out.stdout
    assert hook_env.exists() and "MINIRUN_OCI_HELPER" not in hook_env.read_text()


def test_a_symlink_to_the_command_finds_its_python(tmp_path):
    link = tmp_path / "minirun-oci"
    link.symlink_to(OCI)
    out = subprocess.run([str(link), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("minirun-oci version ")


def test_without_python_beside_it_the_launcher_says_so(tmp_path):
    if Path(OCI).read_bytes()[:4] != b"\x7fELF":
        pytest.skip("minirun-oci is the Python script here (no launcher built)")
    alone = tmp_path / "minirun-oci"
    shutil.copy(OCI, alone)
    out = subprocess.run([str(alone), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 127
    assert one_line(out.stderr) == (f"minirun-oci: {tmp_path}/python: cannot run it (minirun-oci "
                                    "looks for python beside itself, in a venv's bin/)")


def test_a_module_in_the_callers_directory_is_never_imported(tmp_path):
    """The runtime runs as root in its caller's directory (often a bundle someone else wrote):
    Python must not put that directory on sys.path (the launcher passes -P)."""
    planted = tmp_path / "minirun"
    planted.mkdir()
    (planted / "__init__.py").write_text("raise SystemExit('the planted package was imported')\n")
    out = subprocess.run([OCI, "--version"], capture_output=True, text=True, timeout=30,
                         cwd=tmp_path, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("minirun-oci version ")
