"""Reading and writing cgroup files, with errors that name the file and the errno text.

Every cgroup interface file is a tiny text file: one write() sets a value, and the kernel
answers a bad one with an errno (EINVAL, EBUSY, ...). We keep that errno and the path in the
message so a user sees exactly which knob refused which value. See cgroups(7).

Paths are plain strings (any `str | os.PathLike` is accepted): pathlib and its imports cost
milliseconds of every container start (`minirun-oci run`, issue 7).
"""

from __future__ import annotations

import errno
import os
import time

from minirun.errors import CgroupError

# What v1 prints for "no limit" in memory.limit_in_bytes: LONG_MAX rounded down to a page.
UNLIMITED_V1 = 0x7FFFFFFFFFFFF000


def write(path: str | os.PathLike, value: str | int) -> None:
    """Write one value to a cgroup file (a single write(2), as the kernel expects)."""
    text = str(value)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as err:
        raise _error("write", text, path, err) from err
    try:
        os.write(fd, text.encode())
    except OSError as err:
        raise _error("write", text, path, err) from err
    finally:
        os.close(fd)


def read(path: str | os.PathLike) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as err:
        raise CgroupError(f"cgroup: read {path}: {os.strerror(err.errno or errno.EIO)}",
                          path=str(path)) from err


def read_int(path: str | os.PathLike) -> int:
    return int(read(path))


def read_keyed(path: str | os.PathLike) -> dict[str, int]:
    """A flat-keyed file ("key value" per line), e.g. memory.events or cpu.stat."""
    out: dict[str, int] = {}
    for line in read(path).splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def read_limit(path: str | os.PathLike) -> int | None:
    """A limit: None for "max" (v2, pids) or the v1 "unlimited" huge number."""
    text = read(path)
    if text == "max" or text == "-1":
        return None
    value = int(text)
    return None if value >= UNLIMITED_V1 else value


def read_procs(path: str | os.PathLike) -> list[int]:
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []
    except OSError as err:
        raise CgroupError(f"cgroup: read {path}: {os.strerror(err.errno or errno.EIO)}",
                          path=str(path)) from err


def rmdir(path: str | os.PathLike, timeout: float = 1.0) -> None:
    """Remove a cgroup directory; retry EBUSY briefly (exiting tasks still hold it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno == errno.EBUSY and time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            raise CgroupError(f"cgroup: rmdir {path}: {os.strerror(err.errno or errno.EIO)}",
                              path=str(path)) from err


def rmdir_if_empty(path: str | os.PathLike) -> None:
    """Remove a shared parent if nobody uses it; another container may, so don't insist. On a
    read-only hierarchy (EROFS) there is none of ours to remove: nothing could be made there."""
    try:
        os.rmdir(path)
    except OSError as err:
        if err.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.ENOENT, errno.EROFS):
            raise CgroupError(f"cgroup: rmdir {path}: {os.strerror(err.errno or errno.EIO)}",
                              path=str(path)) from err


def _error(op: str, value: str, path: str | os.PathLike, err: OSError) -> CgroupError:
    text = os.strerror(err.errno or errno.EIO)
    return CgroupError(f"cgroup: {op} '{value}' to {path}: {text}", path=str(path))


def oom_kills(events_file: str | os.PathLike | None) -> int:
    """The "oom_kill N" counter of memory.oom_control (v1) or memory.events (v2); 0 if none."""
    return read_keyed(events_file).get("oom_kill", 0) if events_file else 0
