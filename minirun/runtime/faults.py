"""Fault injection for tests: `MINIRUN_FAULT=NAME` makes minirun kill itself (SIGKILL, so no
cleanup code runs) when it reaches the point NAME — the harshest crash there is, at the worst
moments. tests/integration/test_faults.py crashes at every point below and checks that
`minirun gc` then leaves the host clean and the state true (docs/reliability.md).

The variable is read once, when this module is imported; without it `point()` costs one
comparison.
"""

from __future__ import annotations

import os
import signal

# Every point, in the order a container's life reaches them.
POINTS = {
    "create:name-reserved": "the name symlink exists, the container directory does not",
    "create:dir-made": "the directory exists, state.json does not",
    "create:state-saved": "state.json exists, config.json (the spec) does not",
    "start:cgroup-created": "the cgroup exists, no process yet",
    "start:spawned": "the monitor and the child exist, the child waits for GO",
    "start:running": "the container runs, the pid is recorded",
    "run:exited": "a foreground `run --rm` container exited, not yet removed",
    "rm:cgroup-destroyed": "the cgroup is gone, the directory and name are not",
    "rm:renamed": "the directory is renamed to .removing-ID, not yet deleted",
}

_FAULT = os.environ.get("MINIRUN_FAULT")


def point(name: str) -> None:
    """Die here if MINIRUN_FAULT names this point."""
    if _FAULT is not None and _FAULT == name:
        os.kill(os.getpid(), signal.SIGKILL)
