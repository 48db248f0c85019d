"""Call the native hot path, and turn its failures into domain errors — the only place that does.

`spawn()` starts a container from a NativePlan (runtime/plan.py); `enter()` runs a process in a
running container, and `enter_process()` is the whole of `exec` around it (the namespaces to join,
the cgroup, the plan, the report), shared by `minirun exec` and `minirun-oci exec`. A failure inside the child arrives as {errno, step, index}; the plan knows
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

MONITOR = os.path.join(LIBEXEC, "minirun-monitor")


def monitor_argv(container_id: str, exit_file: str, oom_file: str | None = None,
                 log_file: str | None = None, log_fds: tuple[int, int] = (-1, -1),
                 on_exit: list[str] | None = None, events_file: str | None = None,
                 event_attrs: dict[str, str] | None = None) -> list[str]:
    """The monitor's command line (c_ext/monitor.c), "-" for what is not wanted:
    minirun-monitor ID EXIT_FILE OOM_FILE LOG_FILE OUT_FD ERR_FD EVENTS_FILE EVENT_ATTRS
                    [ON_EXIT_COMMAND...]
    EVENT_ATTRS is the JSON members the monitor adds to its "oom" and "die" events' attributes
    (`"image":"busybox","name":"web"`), encoded here so the C side never escapes anything."""
    from minirun import lean  # json.dumps(separators=(",", ":")) without json, which imports re

    logging = log_file is not None and log_fds[0] >= 0
    attrs = lean.dumps({str(k): str(v) for k, v in (event_attrs or {}).items()})[1:-1]
    return [MONITOR, container_id, exit_file, oom_file or "-", log_file if logging else "-",
            str(log_fds[0]) if logging else "-", str(log_fds[1]) if logging else "-",
            events_file or "-", attrs or "-", *(on_exit or [])]


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
    try:
        pid = lib.mr_spawn(np.plan, monitor, err)
    finally:
        np.close()                   # the namespace files to join: the child has its copies
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


# The order setns(2) joins a container's namespaces: the mount namespace last, since after it
# the /proc/PID/ns paths of the others would no longer be reachable by their host names.
NS_JOIN_ORDER = [("user", "user"), ("ipc", "ipc"), ("uts", "uts"), ("net", "network"), ("pid", "pid"),
                 ("cgroup", "cgroup"), ("mnt", "mount")]


def _untraced(name: str):
    import contextlib

    return contextlib.nullcontext()


def enter_process(pid: int, ns_types: set[str], procs_files: list[str], process: dict, *,
                  stdio: tuple[int, int, int], console: tuple[int, int] = (0, 0),
                  seccomp_bpf: bytes | None = None, setgroups: bool = True,
                  tracer=None) -> tuple[int, int | None]:
    """Start `process` (an OCI process object) inside the namespaces of `pid` and in the cgroup
    whose cgroup.procs files are given. Returns (our child's pid, the pty master or None).
    With a `tracer` (observe/trace.py), the phases are timed and the child's stamps kept in
    `tracer.stamps` (`minirun trace exec`)."""
    from minirun.runtime import plan, sync

    phase = tracer.phase if tracer is not None else _untraced

    np = plan.NativePlan()
    ex = ffi.new("struct mr_enter *")
    np._keep.append(ex)
    with sync.Channel() as channel:
        for name, spec_type in NS_JOIN_ORDER:
            if spec_type in ns_types:
                channel.lend(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
        n_ns = len(channel.lent)
        for path in procs_files:
            channel.lend(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
        ex.ns_fds = np.array("int", channel.lent[:n_ns])
        ex.n_ns_fds = n_ns
        ex.cgroup_procs_fds = np.array("int", channel.lent[n_ns:])
        ex.n_cgroup_procs_fds = len(channel.lent) - n_ns
        ex.root_dir = ffi.NULL
        with phase("plan build"):
            plan.set_process(np, ex.process, process, stdio=stdio, console=console,
                             seccomp_bpf=seccomp_bpf, setgroups=setgroups)
        ex.sync_fd = channel.child.fileno()
        ex.trace = int(tracer is not None)
        with phase("mr_enter"):
            child = enter(np, ex)
    try:
        with phase("wait for the child"):
            report = sync.wait_ready(channel.parent)
    finally:
        channel.parent.close()
    if tracer is not None:
        tracer.stamps = report.stamps
        tracer.set_items("setns", report.items,
                         [f"setns {name}" for name, spec_type in NS_JOIN_ORDER if spec_type in ns_types])
    if report.error is not None:
        os.waitpid(child, 0)
        raise error_from_native(report.error, np, process["args"][0])
    return child, report.tty_master


# errnos that mean "this kernel or filesystem cannot idmap a mount" (mount_setattr(2)): the
# caller falls back (layers: shifted copies) or refuses clearly (OCI idmapped binds)
IDMAP_UNSUPPORTED = {errno_mod.EINVAL, errno_mod.ENOSYS, errno_mod.EOPNOTSUPP, errno_mod.EPERM}


def idmap_tree(path: str, userns_fd: int, *, recursive: bool = False, index: int = -1) -> int:
    """A detached, idmapped copy of the mount tree at `path` (c_ext/fs.c: mr_idmap_tree), as a
    close-on-exec fd for a container's child to attach. SpawnError names the step and path."""
    err = ffi.new("struct mr_err *")
    fd = lib.mr_idmap_tree(path.encode(), userns_fd, int(recursive), index, err)
    if fd < 0:
        step = step_name(err.step)
        raise SpawnError(f"{step} of {path}: {os.strerror(err.errno_)}", err.errno_, step, err.index)
    return fd
