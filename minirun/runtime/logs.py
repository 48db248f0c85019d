"""Reading a container's log: the CRI format written by the native monitor.

Each line is `TIMESTAMP STREAM TAG TEXT`, e.g. `2026-11-25T21:00:00.123456789Z stdout F hello`,
where TAG is F for a full line and P for a partial one (a line longer than the monitor's buffer,
or the last output without a newline). The same format Kubernetes' kubelet reads.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LogEntry:
    time: str
    stream: str       # "stdout" | "stderr"
    text: bytes       # without the newline
    partial: bool


def parse(line: bytes) -> LogEntry | None:
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    text = parts[3] if len(parts) == 4 else b""
    return LogEntry(parts[0].decode(), parts[1].decode(), text, parts[2] == b"P")


def read(path: Path, tail: int | None = None, follow: bool = False,
         running: Callable[[], bool] = lambda: False, poll: float = 0.05) -> Iterator[LogEntry]:
    """The entries of a log; with follow, keep reading until running() is false."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        lines = f.readlines()
        if tail is not None:
            lines = list(deque(lines, maxlen=tail)) if tail > 0 else []
        pending = b""
        for line in lines:
            if not line.endswith(b"\n"):
                pending = line
                continue
            if (entry := parse(line)) is not None:
                yield entry
        while follow:
            chunk = f.readline()
            if chunk:
                pending += chunk
                if pending.endswith(b"\n"):
                    if (entry := parse(pending)) is not None:
                        yield entry
                    pending = b""
                continue
            if not running():
                # the monitor may still be writing the last lines; one last read
                rest = f.read()
                for line in (pending + rest).splitlines(keepends=True):
                    if (entry := parse(line)) is not None:
                        yield entry
                return
            time.sleep(poll)


def size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
