"""What the scheduler's verb groups share: calling the manager, and a few formats.

The scheduler's verbs are clients of the manager's API (minirun/sched/client.py: HTTP over the
Unix socket ROOT/cluster/manager.sock); they import nothing else of the scheduler.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from minirun.cli.common import root


def call(ctx: typer.Context, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    from minirun.sched import client

    return client.call(root(ctx), method, path, body, timeout=timeout)


def age(t: float | None) -> str:
    if not t:
        return ""
    s = max(0, time.time() - t)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s // 60:.0f}m"
    return f"{s // 3600:.0f}h"


def mib(value: str) -> int:
    """"128" (MiB) or a size with a unit ("128m", "1g") -> MiB."""
    from minirun.errors import UsageError
    from minirun.units import parse_bytes

    text = str(value).strip()
    if text.isdigit():
        return int(text)
    n = parse_bytes(text)
    if n % (1 << 20):
        raise UsageError(f"{value}: give a whole number of MiB")
    return n >> 20


def check_format(format: str) -> None:
    if format not in ("table", "json"):
        from minirun.errors import UsageError

        raise UsageError(f"--format {format}: use table or json")
