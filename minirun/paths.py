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

import errno
import os

from minirun import lean

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


@lean.contextmanager
def output_file(path: str | os.PathLike):
    """A binary file that appears at `path` whole or not at all (`image save -o`, `export -o`).

    It is written as an O_TMPFILE: a file with no name in the target's directory, so a command
    killed while writing (even by SIGKILL) leaves nothing behind, and it is given its name only
    when complete: linked under a temp name beside the target, then renamed over it (link cannot
    replace a file). Where the file system has no O_TMPFILE, a named temp file stands in,
    removed on any error. A directory that cannot be written to, or a full or read-only file
    system, is one line: `cannot write PATH: ...`."""
    from minirun import faults
    from minirun.errors import UsageError, storage_errors

    target = os.fspath(path)
    what = f"cannot write {target}"
    directory = os.path.dirname(os.path.abspath(target))
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{os.getpid()}.tmp")
    named = False
    with storage_errors(what):
        try:
            try:
                fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
                fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644)
                named = True
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise
            raise UsageError(f"{what}: {os.strerror(e.errno or errno.EIO)}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                faults.point("output:written")
                f.flush()
                os.fsync(f.fileno())
                if not named:
                    # linkat(AT_SYMLINK_FOLLOW) through /proc: CPython calls plain link(2), which
                    # does not follow the magic link, unless a dir fd is given
                    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    try:
                        os.link(f"/proc/self/fd/{f.fileno()}", os.path.basename(tmp),
                                dst_dir_fd=dir_fd, follow_symlinks=True)
                    finally:
                        os.close(dir_fd)
                    named = True
            os.rename(tmp, target)
        except BaseException:
            if named:
                with lean.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise
