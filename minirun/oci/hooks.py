"""OCI hooks (runtime-spec config.md, "POSIX-platform Hooks"): programs the caller names in
config.json, run by the runtime at points of the lifecycle with the container's state JSON on
their stdin. podman's OCI hooks (e.g. GPU set-up) and CNI-style network set-up use them.

    create:  prestart, createRuntime  once the container is built and waits for `start`
    start:   poststart                once the program runs, before `start` returns
    delete:  poststop                 once the container is gone, before `delete` returns

They run in the runtime's namespaces, as the spec asks of these four. A failing prestart or
createRuntime hook fails `create` (the container is removed); poststart and poststop failures
are warnings (the spec's rule), returned to the caller to log. createContainer and
startContainer, which must run inside the container's namespaces before pivot_root / execve,
are refused by name (docs/oci.md). Man pages: execve(2), and the spec.
"""

from __future__ import annotations

import json
import os

from minirun.errors import MinirunError, SpecError

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

SUPPORTED = ("prestart", "createRuntime", "poststart", "poststop")
REFUSED = ("createContainer", "startContainer")


def validate(hooks: Any) -> dict[str, list[dict[str, Any]]]:
    """config.json's `hooks`, checked field by field; the supported kinds only."""
    if hooks is None:
        return {}
    if not isinstance(hooks, dict):
        raise SpecError("hooks", "must be an object")
    for kind, items in hooks.items():
        where = f"hooks/{kind}"
        if kind in REFUSED:
            if items:
                raise SpecError(where, "not supported by minirun-oci (refused, not ignored): it "
                                       "would run inside the container before pivot_root or exec")
            continue
        if kind not in SUPPORTED:
            raise SpecError(where, f"unknown hook kind (known: {', '.join(SUPPORTED + REFUSED)})")
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
    """Run every hook of `kind` in order, each with `state` (JSON) on stdin. The first that
    cannot start, exits non-zero or outlives its timeout raises MinirunError naming it."""
    data = json.dumps(state).encode()
    for i, h in enumerate(hooks.get(kind, [])):
        _run_one(h, f"hooks/{kind}/{i}", data)


def run_warn(hooks: dict[str, list[dict[str, Any]]], kind: str, state: dict[str, Any]) -> list[str]:
    """poststart and poststop: every hook runs; failures come back as messages, not errors."""
    data = json.dumps(state).encode()
    problems = []
    for i, h in enumerate(hooks.get(kind, [])):
        try:
            _run_one(h, f"hooks/{kind}/{i}", data)
        except MinirunError as e:
            problems.append(str(e))
    return problems


def _run_one(h: dict[str, Any], where: str, data: bytes) -> None:
    # only when there are hooks: the start-up of create is measured
    import subprocess

    path = h["path"]
    argv = h.get("args") or [path]
    env = dict(e.split("=", 1) for e in h.get("env", []) if "=" in e)
    try:
        proc = subprocess.run(argv, executable=path, input=data, env=env, capture_output=True,
                              timeout=h.get("timeout"), close_fds=True)
    except subprocess.TimeoutExpired:
        raise MinirunError(f"{where}: {path} did not finish within its timeout "
                           f"({h['timeout']} s): killed") from None
    except OSError as e:
        raise MinirunError(f"{where}: {path}: {os.strerror(e.errno or 0)}") from None
    if proc.returncode != 0:
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        status = (f"exited {proc.returncode}" if proc.returncode > 0
                  else f"was killed by signal {-proc.returncode}")
        raise MinirunError(f"{where}: {path} {status}" + (f": {said[-1]}" if said else ""))
