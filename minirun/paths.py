"""Where minirun keeps its data: one root directory (default /var/lib/minirun).

    ROOT/images/       the image store (minirun.images)
    ROOT/containers/   one directory per container: state, spec, upper dir, log (minirun.runtime)
    ROOT/names/        name -> container id, one symlink each (atomic reservation)
    ROOT/events/       events.jsonl, the `minirun events` log (minirun.observe.events)

`--root` or MINIRUN_ROOT selects another root; the tests use a fresh one each. A user who is not
root (rootless, runtime/rootless.py) gets a root of their own: $XDG_DATA_HOME/minirun, by default
~/.local/share/minirun.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_ROOT = "/var/lib/minirun"

# The static programs setup.py builds beside the package: minirun-monitor, minirun-init.
# (A str: this module is on every container's start-up path, where pathlib is not imported.)
LIBEXEC = os.path.join(os.path.dirname(os.path.realpath(__file__)), "libexec")


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    from pathlib import Path

    root = Path(explicit or os.environ.get("MINIRUN_ROOT") or DEFAULT_ROOT)
    if os.geteuid() != 0:
        if not (explicit or os.environ.get("MINIRUN_ROOT")):
            base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
            root = Path(base) / "minirun"
        _private(root)
    return root


def _private(root: Path) -> None:
    """A user's data root is theirs alone (0700): image layers unpacked by a user keep their
    set-uid bits, on files the user owns, which nobody else may run."""
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = root.stat()
    except OSError:
        return                  # reported by whoever uses it, with the path
    if st.st_uid == os.geteuid() and st.st_mode & 0o077:
        root.chmod(0o700)

