"""Domain errors: what went wrong, where, and with which object.

Native failures become these in one place (runtime/spawn.py); the CLI maps them to exit
statuses in one place (cli/errors.py). Every message is one line a user can act on.
"""

from __future__ import annotations

import errno as _errno
import os


class MinirunError(Exception):
    """Base of every error minirun raises on purpose."""

    exit_status = 125

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(MinirunError):
    """A flag, value or argument that cannot be right (bad memory string, bad mount spec...)."""


class NotRoot(MinirunError):
    """The operation needs root (or the capabilities root has)."""


class RootlessUnsupported(MinirunError):
    """Asked of a user who is not root, and needing root (or a resource the user lacks: a
    writable cgroup, a subordinate id range): runtime/rootless.py."""


class ImageNotFound(MinirunError):
    """No image of that name or id in the store."""


class ImageFormatError(MinirunError):
    """An archive or image that is malformed, hostile, or not of a supported format."""


class ImageInUse(MinirunError):
    """An image a container still uses cannot be removed."""


class BuildError(MinirunError):
    """`minirun build` failed: a Containerfile error, a source outside the context, a RUN that
    exited non-zero. Exit status 1, as `docker build`."""

    exit_status = 1


class ContainerNotFound(MinirunError):
    """No container of that name or id (prefix)."""


class AmbiguousId(MinirunError):
    """A short id that matches more than one container."""


class NameInUse(MinirunError):
    """A container name that is already taken."""


class InvalidTransition(MinirunError):
    """The container's status does not allow that operation (e.g. start a running container)."""


class CgroupError(MinirunError):
    """A cgroup could not be created, joined, limited or removed."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class SpecError(MinirunError):
    """An OCI runtime spec (config.json) that is invalid or asks for what we do not support.

    `field` is the JSON pointer of the offending field, e.g. "process/args"."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field


class SpawnError(MinirunError):
    """The native child failed before execve: which step, which object, which errno."""

    def __init__(self, message: str, errno: int = 0, step: str = "", index: int = -1):
        super().__init__(message)
        self.errno = errno
        self.step = step
        self.index = index


class CommandNotFound(SpawnError):
    """The program to run does not exist in the container (exit 127, like a shell)."""

    exit_status = 127


class NotExecutable(SpawnError):
    """The program exists but cannot be executed (exit 126, like a shell)."""

    exit_status = 126


def os_error(what: str, err: OSError) -> str:
    """'what: strerror' for an OSError, the one-line form used in messages."""
    code = err.errno or _errno.EIO
    return f"{what}: {os.strerror(code)}"


class NetworkNotFound(MinirunError):
    """No network of that name or id."""


class NetworkInUse(MinirunError):
    """A network that containers are still attached to cannot be removed."""


class AddressInUse(MinirunError):
    """An IP address or a host port that is already taken."""


class NetworkError(MinirunError):
    """Setting up or tearing down a container's network failed (names the step and object)."""


class TaskDefinitionError(MinirunError):
    """An ECS task definition that is invalid. `problems` lists (JSON pointer, what is expected),
    every one found, not just the first; the message joins them."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{ptr}: {text}" for ptr, text in self.problems))


class ClusterError(MinirunError):
    """The cluster cannot do what was asked (not running, already up, a worker that did not
    start, a manager that answered with an error)."""


class ResourceNotFound(MinirunError):
    """No task, service, worker or task definition of that name or id."""


class StorageError(MinirunError):
    """A file system minirun writes to is full, over its quota or read-only: the data root, or
    the file an `image save -o` or `export -o` writes. Exit status 125; what the command had
    made so far is removed before this is raised."""


# the errnos that mean "this file system takes no more writes", not a bug of ours
STORAGE_ERRNOS = frozenset({_errno.ENOSPC, _errno.EDQUOT, _errno.EROFS})


class storage_errors:  # noqa: N801 — used as `with storage_errors(what):`, like a function
    """Turn a full or read-only file system met while doing `what` into one StorageError line.

    A class, not @contextlib.contextmanager: contextlib (with collections and functools) costs
    a few ms of every container start, and this module is imported on that path."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, e, tb) -> bool:
        if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
            raise StorageError(storage_message(self.what, e)) from None
        return False


def storage_message(what: str, err: OSError) -> str:
    hint = {_errno.ENOSPC: "free some space" + (" or choose another data root with --root"
                                                 if "store" in what or "container" in what else ""),
            _errno.EDQUOT: "the disk quota is used up",
            _errno.EROFS: "the file system is mounted read-only"}.get(err.errno, "")
    where = f" ({err.filename})" if err.filename else ""
    return f"{what}: {os.strerror(err.errno or _errno.EIO)}{where}" + (f"; {hint}" if hint else "")


class OverlayUnsupported(MinirunError):
    """The kernel cannot mount overlayfs, which every container's root filesystem is (125)."""
