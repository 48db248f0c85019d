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
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/minirun")

# The static programs setup.py builds beside the package: minirun-monitor, minirun-init.
LIBEXEC = Path(__file__).resolve().parent / "libexec"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
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


def rmtree(path: str | os.PathLike) -> None:
    """shutil.rmtree that also works for a user who is not root (rootless): a directory of ours
    without write or search permission (an image's 0555 /proc, a container's chmod 0) is made
    0700 first, as root needs not."""
    import shutil

    def retry(func, name, exc_info):
        if not isinstance(exc_info[1], PermissionError) or os.geteuid() == 0:
            raise exc_info[1]
        if func in (os.rmdir, os.unlink):
            os.chmod(os.path.dirname(name), 0o700)
            func(name)
        else:                   # scandir/open of an unreadable directory: open it up, go again
            os.chmod(name, 0o700)
            shutil.rmtree(name, onerror=retry)

    try:
        shutil.rmtree(path, onerror=retry)
    except PermissionError:
        # files a container made as one of our subordinate ids: ours to delete in our namespace
        from minirun.runtime import rootless

        if os.geteuid() == 0 or rootless.single_id({"linux": {"uidMappings": rootless.maps()[0]}}):
            raise
        rootless.run_in_userns(lambda: shutil.rmtree(path))
