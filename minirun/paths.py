"""Where minirun keeps its data: one root directory (default /var/lib/minirun).

    ROOT/images/       the image store (minirun.images)
    ROOT/containers/   one directory per container: state, spec, upper dir, log (minirun.runtime)
    ROOT/names/        name -> container id, one symlink each (atomic reservation)
    ROOT/events/       events.jsonl, the `minirun events` log (minirun.observe.events)

`--root` or MINIRUN_ROOT selects another root; the tests use a fresh one each.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/minirun")

# The static programs setup.py builds beside the package: minirun-monitor, minirun-init.
LIBEXEC = Path(__file__).resolve().parent / "libexec"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("MINIRUN_ROOT")
    return Path(env) if env else DEFAULT_ROOT
