"""OCI hooks (runtime-spec config.md, "POSIX-platform Hooks"): programs the caller names in
config.json, run by the runtime at points of the lifecycle with the container's state JSON on
their stdin. podman's OCI hooks (e.g. GPU set-up) and CNI-style network set-up use them.

    create:  prestart, createRuntime   the namespaces and mounts exist, before pivot_root
                                       (sync point 6b, c_ext/sync.h), in the runtime's namespaces
             createContainer           the same point, in the container's namespaces
    start:   startContainer            in the container's namespaces (its root), before the program
             poststart                 once the program runs, before `start` returns
    delete:  poststop                  once the container is gone, before `delete` returns

A failing prestart, createRuntime or createContainer hook fails `create` (the container is
removed); a failing startContainer hook fails `start` and stops the container; poststart and
poststop failures are warnings (the spec's rule), returned to the caller to log. "In the
container's namespaces" is setns(2) into each of /proc/PID/ns/* of the container (mount last, which
also moves the hook's root), in the child between fork and exec. Man pages: execve(2), setns(2).
"""

from __future__ import annotations

import os

from minirun import lean
from minirun.errors import MinirunError, SpecError

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

SUPPORTED = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
             "poststop")
# the kinds that run at sync point 6b, in this order (runtime-spec runtime.md, lifecycle step 6)
AT_CREATE = ("prestart", "createRuntime", "createContainer")
IN_CONTAINER = ("createContainer", "startContainer")


def validate(hooks: Any) -> dict[str, list[dict[str, Any]]]:
    """config.json's `hooks`, checked field by field; the supported kinds only."""
    if hooks is None:
        return {}
    if not isinstance(hooks, dict):
        raise SpecError("hooks", "must be an object")
    for kind, items in hooks.items():
        where = f"hooks/{kind}"
        if kind not in SUPPORTED:
            raise SpecError(where, f"unknown hook kind (known: {', '.join(SUPPORTED)})")
        if not isinstance(items, list):
            raise SpecError(where, "must be a list of hooks")
        for i, h in enumerate(items):
            _check_hook(h, f"{where}/{i}")
    return {k: v for k, v in hooks.items() if k in SUPPORTED and v}


def _check_hook(h: Any, where: str) -> None:
    if not isinstance(h, dict):
        raise SpecError(where, "must be an object with path, args, env, timeout")
    if not isinstance(h.get("path"), str) or not h["path"].startswith("/"):
        raise SpecError(f"{where}/path", "required: an absolute path")
    for key in ("args", "env"):
        value = h.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise SpecError(f"{where}/{key}", "must be a list of strings")
    timeout = h.get("timeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0):
        raise SpecError(f"{where}/timeout", "must be an integer > 0 (seconds)")


def run(hooks: dict[str, list[dict[str, Any]]], kind: str, state: dict[str, Any]) -> None:
    """Run every hook of `kind` in order, each with `state` (JSON) on stdin; createContainer
    and startContainer in the namespaces of the container whose pid the state names. The first
    that cannot start, exits non-zero or outlives its timeout raises MinirunError naming it."""
    if not hooks.get(kind):
        return
    data = lean.dumps(state).encode()
    enter = _Namespaces(state["pid"]) if kind in IN_CONTAINER else None
    try:
        for i, h in enumerate(hooks[kind]):
            _run_one(h, f"hooks/{kind}/{i}", data, enter)
    finally:
        if enter is not None:
            enter.close()


class _Namespaces:
    """The container's namespaces, opened in the parent; `__call__` joins them in the forked
    child before exec (subprocess's preexec_fn). Types it shares with us are left alone."""

    ORDER = ("cgroup", "ipc", "uts", "net", "pid", "mnt")   # mnt last: it changes the root

    def __init__(self, pid: int):
        import ctypes

        # loaded here, not in the forked child: dlopen there could wait on a lock another
        # thread of ours held at fork time
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fds: list[int] = []
        try:
            for kind in self.ORDER:
                theirs, ours = os.stat(f"/proc/{pid}/ns/{kind}"), os.stat(f"/proc/self/ns/{kind}")
                if theirs.st_ino != ours.st_ino:
                    self.fds.append(os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC))
        except OSError as e:
            self.close()
            raise MinirunError(f"container process {pid}: its namespaces: {os.strerror(e.errno or 0)}") from None

    def __call__(self) -> None:
        import ctypes

        for fd in self.fds:
            if self.libc.setns(fd, 0) != 0:
                raise OSError(ctypes.get_errno(), "setns")

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def run_warn(hooks: dict[str, list[dict[str, Any]]], kind: str, state: dict[str, Any]) -> list[str]:
    """poststart and poststop: every hook runs; failures come back as messages, not errors."""
    data = lean.dumps(state).encode()
    problems = []
    for i, h in enumerate(hooks.get(kind, [])):
        try:
            _run_one(h, f"hooks/{kind}/{i}", data)
        except MinirunError as e:
            problems.append(str(e))
    return problems


def _run_one(h: dict[str, Any], where: str, data: bytes, enter: _Namespaces | None = None) -> None:
    # only when there are hooks: the start-up of create is measured
    import subprocess

    path = h["path"]
    argv = h.get("args") or [path]
    env = dict(e.split("=", 1) for e in h.get("env", []) if "=" in e)
    try:
        proc = subprocess.run(argv, executable=path, input=data, env=env, capture_output=True,
                              timeout=h.get("timeout"), close_fds=True, preexec_fn=enter,
                              cwd="/" if enter else None)
    except subprocess.TimeoutExpired:
        raise MinirunError(f"{where}: {path} did not finish within its timeout "
                           f"({h['timeout']} s): killed") from None
    except OSError as e:
        raise MinirunError(f"{where}: {path}: {os.strerror(e.errno or 0)}") from None
    except subprocess.SubprocessError:
        raise MinirunError(f"{where}: {path}: cannot enter the container's namespaces") from None
    if proc.returncode != 0:
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        status = (f"exited {proc.returncode}" if proc.returncode > 0
                  else f"was killed by signal {-proc.returncode}")
        raise MinirunError(f"{where}: {path} {status}" + (f": {said[-1]}" if said else ""))
