"""The C side on its own: the step table Python reads, the init and monitor programs."""

from __future__ import annotations

import os
import subprocess

import pytest

from minirun._native import ffi, lib
from minirun.paths import LIBEXEC
from minirun.runtime.spawn import error_from_native, step_name

INIT = os.path.join(LIBEXEC, "minirun-init")
MONITOR = os.path.join(LIBEXEC, "minirun-monitor")


def test_every_step_has_a_name():
    names = [step_name(i) for i in range(lib.MR_STEP__COUNT)]
    assert "unknown step" not in names and len(set(names)) == len(names)
    assert step_name(lib.MR_STEP_EXEC) == "exec"
    assert step_name(lib.MR_STEP__COUNT) == "unknown step"


def test_native_errors_become_one_line_with_step_and_object():
    err = ffi.new("struct mr_err *")
    err.errno_, err.step, err.index = 2, lib.MR_STEP_EXEC, -1
    e = error_from_native(err, None, "nosuch")
    assert (type(e).__name__, e.exit_status, str(e)) == (
        "CommandNotFound", 127, "exec nosuch: executable file not found in $PATH")
    err.errno_, err.step = 1, [step_name(i) for i in range(lib.MR_STEP__COUNT)].index("pivot_root")
    assert str(error_from_native(err, None)) == "pivot_root: Operation not permitted"


@pytest.mark.parametrize("script, status", [("exit 3", 3), ("kill -TERM $$", 128 + 15), ("true", 0)])
def test_init_exits_with_the_commands_status(script, status):
    assert subprocess.run([INIT, "--", "sh", "-c", script], timeout=10).returncode == status


def test_init_and_monitor_explain_their_usage():
    for program in (INIT, MONITOR):
        r = subprocess.run([program], capture_output=True, text=True, timeout=10)
        assert r.returncode == 125 and r.stderr.startswith("usage: ")


def test_init_reports_a_missing_command():
    r = subprocess.run([INIT, "--", "/no/such/program"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 127 and "/no/such/program" in r.stderr
