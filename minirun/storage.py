"""How minirun keeps its records on disk, for every part of it (containers, images, networks,
the scheduler's files): a file is replaced whole or not at all (write-temp, fsync, rename), a
file of records is changed by one command at a time (flock(2)), records are compact JSON, and a
tree is deleted through directory fds, never following a symlink.

A leaf: it imports the standard library, minirun.lean and (in output_file) the errors and the
fault points, nothing of the runtime, images or net that use it; and it sits on every
container's start-up path, so no pathlib, re or contextlib (the lean boundary, minirun/lean.py).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from minirun import lean

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

# what a container or network name may hold: each is one file name under the data root
# (ROOT/names/NAME, ROOT/networks/NAME.json)
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def now_iso() -> str:
    """The time a record carries (created, started_at): UTC, to the microsecond: 2026-11-26T01:55:04.123456Z (without datetime's import)."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns // 1000 % 1_000_000:06d}Z"


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644, durable: bool = True) -> None:
    """Readers see the old content or the new, never half: temp file, (fsync,) rename.

    durable=False skips the fsync: right for records of live processes (pid, start time), which
    a power loss makes stale anyway, since no container survives it; the rename alone already
    makes the write atomic for every crash of minirun itself."""
    if isinstance(data, str):
        data = data.encode()
    path = os.fspath(path)
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            if os.write(fd, data) != len(data):      # a short write: the file system is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        with lean.suppress(FileNotFoundError):     # a full disk leaves no temp file behind
            os.unlink(tmp)
        raise


@lean.contextmanager
def flocked(lock_path: Path):
    """Hold an exclusive flock(2) on `lock_path` (made if missing): a file of records read,
    changed and written by one command at a time (network leases, port claims)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_json(path: Path, missing: Any) -> Any:
    """A JSON file's content, or `missing` if there is no such file yet."""
    try:
        return lean.load_file(path)
    except FileNotFoundError:
        return missing


def write_json(path: Path, obj: Any, durable: bool = True) -> None:
    # compact on purpose: with indent, json falls back to its pure-Python encoder (~0.4 ms for a
    # spec); people read these through `minirun inspect`
    write_atomic(path, lean.dumps(obj) + "\n", durable=durable)


def remove_tree(path: str | Path) -> None:
    """Delete a directory whose content anyone may have written (a container's overlay upper
    dir: any names, modes, symlinks). Through directory fds, never following a symlink, as
    shutil.rmtree does; shutil itself is not imported, which would cost `run --rm` more (its
    archive formats bring bz2 and lzma) than the deletion."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _rm_contents(fd)
        finally:
            os.close(fd)
        os.rmdir(path)
    except PermissionError:
        if os.geteuid() == 0:
            raise
        # rootless: a directory the container made unreadable; rmtree opens it up (files of our
        # subordinate ids are still refused: the runtime deletes those, state.remove_tree)
        rmtree(path)


def _rm_contents(dir_fd: int) -> None:
    with os.scandir(dir_fd) as it:
        entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    for name, is_dir in entries:
        if not is_dir:
            os.unlink(name, dir_fd=dir_fd)
            continue
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            _rm_contents(sub)
        finally:
            os.close(sub)
        os.rmdir(name, dir_fd=dir_fd)


def rmtree(path: str | os.PathLike) -> None:
    """shutil.rmtree that also works for a user who is not root (rootless): a directory of ours
    without write or search permission (an image's 0555 /proc, a container's chmod 0) is made
    0700 first, as root needs not. Files of other ids (a rootless container's subordinate ids)
    stay a PermissionError: only the runtime knows the user namespace where they are ours."""
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

    shutil.rmtree(path, onerror=retry)


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
