"""Call the native hot path, and turn its failures into domain errors — the only place that does.

`spawn()` starts a container from a NativePlan (runtime/plan.py); `enter()` runs a process in a
running container. A failure inside the child arrives as {errno, step, index}; the plan knows
which mount or path an index means, so the user reads `mount proc on /proc: Operation not
permitted` rather than a bare errno.
"""

from __future__ import annotations

import errno as errno_mod
import os

from minirun._native import ffi, lib
from minirun.errors import CommandNotFound, NotExecutable, SpawnError
from minirun.paths import LIBEXEC
from minirun.runtime.plan import NativePlan

MONITOR = str(LIBEXEC / "minirun-monitor")


def monitor_argv(container_id: str, exit_file: str, oom_file: str | None = None,
                 log_file: str | None = None, log_fds: tuple[int, int] = (-1, -1),
                 on_exit: list[str] | None = None) -> list[str]:
    """The monitor's command line (c_ext/monitor.c), "-" for what is not wanted:
    minirun-monitor ID EXIT_FILE OOM_FILE LOG_FILE OUT_FD ERR_FD [ON_EXIT_COMMAND...]"""
    logging = log_file is not None and log_fds[0] >= 0
    return [MONITOR, container_id, exit_file, oom_file or "-", log_file if logging else "-",
            str(log_fds[0]) if logging else "-", str(log_fds[1]) if logging else "-",
            *(on_exit or [])]


def step_name(step: int) -> str:
    return ffi.string(lib.mr_step_name(step)).decode()


def error_from_native(err, plan: NativePlan | None, program: str = "") -> SpawnError:
    step = step_name(err.step)
    code = err.errno_
    text = ffi.string(err.text).decode(errors="replace")
    if err.step == lib.MR_STEP_EXEC:
        name = program or text
        if code == errno_mod.ENOENT:
            return CommandNotFound(f"exec {name}: executable file not found in $PATH"
                                   if "/" not in name else f"exec {name}: no such file or directory",
                                   code, step)
        if code in (errno_mod.EACCES, errno_mod.ENOEXEC, errno_mod.EPERM):
            return NotExecutable(f"exec {name}: {os.strerror(code)}", code, step)
    what = plan.describe(step, err.index, text) if plan else (f"{step} {text}" if text else step)
    return SpawnError(f"{what}: {os.strerror(code)}", code, step, err.index)


def spawn(np: NativePlan) -> tuple[int, int]:
    """(2) Fork the monitor and clone the container. Returns (container pid, monitor pid)."""
    err = ffi.new("struct mr_err *")
    monitor = ffi.new("int *")
    pid = lib.mr_spawn(np.plan, monitor, err)
    if pid < 0:
        raise error_from_native(err, np)
    return pid, monitor[0]


def enter(np: NativePlan, ex) -> int:
    """Run a process inside a container's namespaces; returns its pid (our child)."""
    err = ffi.new("struct mr_err *")
    pid = lib.mr_enter(ex, err)
    if pid < 0:
        raise error_from_native(err, np, np.program)
    return pid
