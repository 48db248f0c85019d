"""Where a container's state lives, and how its status is derived from facts.

    ROOT/containers/ID/state.json   what minirun recorded (ids, pid + start time, times, flags)
    ROOT/containers/ID/config.json  the OCI spec the container runs
    ROOT/containers/ID/exit.json    written by the native monitor when the process exits
    ROOT/containers/ID/lock         flock(2) held by any command changing this container
    ROOT/names/NAME -> ID           a symlink: creating it is the atomic reservation of the name

The status is never trusted from a stored flag alone: a recorded pid counts as running only while
/proc shows a process with that pid *and* the same start time (see procfs.py), and the exit record
of the monitor says how it ended. Every write is temp file, fsync, rename (no fsync for records
that a power loss makes moot: live pids, and the spec of a container removed when it exits).
"""

from __future__ import annotations

import fcntl
import os

from minirun import faults, lean, procfs, storage
from minirun.errors import AmbiguousId, ContainerNotFound, InvalidTransition, NameInUse, UsageError
from minirun.records import asdict, field, record
from minirun.storage import NAME_CHARS, now_iso, write_json

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

# status -> the operations allowed in it, for both flavours of the lifecycle (runc's libcontainer
# keeps the same kind of table). A `minirun` container is created, running or exited; a
# `minirun-oci` one (runtime-spec runtime.md) creating, created, running, paused or stopped.
# The flavours' verbs: minirun's rm, stop, top, inspect, wait; the OCI's delete, ps, resume.
TRANSITIONS: dict[str, set[str]] = {
    "creating": {"delete"},
    "created": {"start", "rm", "delete", "update", "inspect", "kill", "exec", "ps"},
    "running": {"stop", "kill", "exec", "pause", "update", "top", "ps", "inspect", "wait"},
    "paused": {"kill", "resume", "update", "ps"},
    "exited": {"start", "rm", "inspect", "update", "wait"},
    "stopped": {"delete"},
}
# What needs a process to act on. Only OCI's "created" has one (it waits at the exec fifo, and
# may be signalled and entered); minirun's "created" has none until `start` makes it.
NEEDS_PROCESS = frozenset({"kill", "exec", "ps"})


def check_transition(name: str, status: str, operation: str, has_process: bool = True) -> str:
    """Refuse an operation the status does not allow (InvalidTransition); return the status."""
    if operation not in TRANSITIONS[status] or (not has_process and operation in NEEDS_PROCESS):
        raise InvalidTransition(f"cannot {operation} container {name}: it is {status}")
    return status


@record
class ContainerState:
    id: str
    name: str
    image: str = ""
    image_id: str = ""
    created: str = ""
    pid: int | None = None
    pid_start: int | None = None
    monitor_pid: int | None = None
    started_at: str | None = None
    auto_remove: bool = False
    detached: bool = False
    error: str = ""
    restart_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # the process a container was made for, when one owns it (a build's RUN step, a scheduler
    # worker's task): {"what", "pid", "start"}; gc removes the container once that process is gone
    owner: dict[str, Any] | None = None

    def orphaned(self) -> bool:
        """Whether the process that owns this container has died (without removing it)."""
        return owner_gone(self.owner)


def owner(what: str) -> dict[str, Any]:
    """This process as the owner of what it makes (ContainerState.owner, a task's volumes)."""
    pid = os.getpid()
    return {"what": what, "pid": pid, "start": procfs.start_time(pid)}


def owner_gone(recorded: dict[str, Any] | None) -> bool:
    """Whether the recorded owner process (owner()) has died; False when there is none."""
    return recorded is not None and not procfs.is_alive(recorded.get("pid"), recorded.get("start"))


class ContainerRecord:
    """One container's directory: its state, spec and exit record, and the status they imply."""

    def __init__(self, directory: Path, state: ContainerState, ref: str | None = None):
        self.dir = directory
        self.state = state
        self.ref = ref or state.name        # what the user called it, for "no such container"

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def name(self) -> str:
        return self.state.name

    def save(self) -> None:
        write_json(self.dir / "state.json", asdict(self.state), durable=False)

    def spec(self) -> dict:
        return lean.load_file(self.dir / "config.json")

    def save_spec(self, spec: dict, durable: bool = True) -> None:
        """durable=False for a container removed when it exits (--rm): after a power loss
        there is nothing to start again, and `minirun gc` removes what is left."""
        write_json(self.dir / "config.json", spec, durable=durable)

    def exit_record(self) -> dict | None:
        try:
            return lean.load_file(self.dir / "exit.json")
        except FileNotFoundError:
            return None

    def exit_code(self) -> int:
        """The recorded exit status (128+N for signal N); 255 when none was recorded, as Docker
        reports a container whose end nobody saw."""
        record = self.exit_record()
        return record["exit_code"] if record else 255

    def is_running(self) -> bool:
        return procfs.is_alive(self.state.pid, self.state.pid_start)

    def status(self) -> str:
        if self.is_running():
            return "running"
        if self.state.pid is None:
            return "created"
        return "exited"

    def require(self, operation: str) -> str:
        """Refuse an operation the current status does not allow; return the status."""
        return check_transition(self.name, self.status(), operation, self.state.pid is not None)

    @lean.contextmanager
    def locked(self):
        """Hold this container's lock (a flock on its directory): concurrent commands on it run
        one after the other, and one that waited for a removal finds the container gone."""
        try:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(f"no such container: {self.ref}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.reload()
            yield self
        finally:
            os.close(fd)

    def reload(self) -> None:
        try:
            data = lean.load_file(self.dir / "state.json")
        except FileNotFoundError:
            raise ContainerNotFound(f"no such container: {self.ref}") from None
        self.state = ContainerState(**data)


# a container directory being deleted is first renamed to this prefix + its id
REMOVING = ".removing-"


class StateStore:
    """All containers under ROOT: create, find by name, id or id prefix, list, remove."""

    def __init__(self, root: Path):
        self.root = root
        self.containers = root / "containers"
        self.names = root / "names"
        self._doomed = None          # a queue of renamed directories, when deletion is deferred
        self._deleter = None
        self._deleter_pid = 0

    def defer_deletion(self) -> None:
        """Delete removed containers' directories in a background thread: `forget` returns once
        the directory is renamed out of sight (atomic; lookups no longer find it). For a
        long-lived process only (a worker); `drain()` waits for the deletions, and a process
        that dies first leaves `.removing-ID` directories, which `minirun gc` removes."""
        import queue
        import threading

        if self._deleter is None or self._deleter_pid != os.getpid():
            self._deleter_pid = os.getpid()       # a forked child has no such thread
            self._doomed = queue.SimpleQueue()
            self._deleter = threading.Thread(target=self._delete_loop, name="minirun-rm",
                                             daemon=True)
            self._deleter.start()

    def _delete_loop(self) -> None:
        while True:
            path, done = self._doomed.get()
            if path is not None:
                with lean.suppress(OSError):
                    remove_tree(path)
            if done is not None:
                done.set()

    def drain(self) -> None:
        """Wait until every deferred deletion is done."""
        if self._deleter is not None and self._deleter_pid == os.getpid():
            import threading

            done = threading.Event()
            self._doomed.put((None, done))
            done.wait()

    def new(self, name: str | None, **fields) -> ContainerRecord:
        self.containers.mkdir(parents=True, exist_ok=True)
        self.names.mkdir(parents=True, exist_ok=True)
        cid = os.urandom(32).hex()
        name = name or _generated_name(cid)
        if not (set(name) <= NAME_CHARS) or not name[0].isalnum():
            raise UsageError(f"invalid container name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        try:
            os.symlink(cid, self.names / name)
        except FileExistsError:
            raise NameInUse(f"the container name {name!r} is already in use") from None
        faults.point("create:name-reserved")
        directory = self.containers / cid
        try:
            directory.mkdir(mode=0o700)
            faults.point("create:dir-made")
            record = ContainerRecord(directory, ContainerState(id=cid, name=name, created=now_iso(),
                                                               **fields))
            record.save()
        except BaseException:           # e.g. a full data root: neither directory nor name stays
            with lean.suppress(OSError):
                remove_tree(directory)
            with lean.suppress(FileNotFoundError):
                os.unlink(self.names / name)
            raise
        faults.point("create:state-saved")
        return record

    def get(self, ref: str) -> ContainerRecord:
        """A container by name, full id, or unique id prefix (like Docker)."""
        if not ref:
            raise ContainerNotFound("no such container: ''")
        link = self.names / ref
        cid = None
        if "/" not in ref and os.path.islink(link):
            cid = os.readlink(link)
        elif len(ref) == 64 and (self.containers / ref).is_dir():
            cid = ref
        elif all(c in "0123456789abcdef" for c in ref):
            matches = [p.name for p in self._dirs() if p.name.startswith(ref)]
            if len(matches) > 1:
                raise AmbiguousId(f"{ref!r} matches {len(matches)} containers: give more of the id")
            cid = matches[0] if matches else None
        if cid is None:
            raise ContainerNotFound(f"no such container: {ref}")
        return self._load(self.containers / cid, ref)

    def _load(self, directory: Path, ref: str) -> ContainerRecord:
        try:
            data = lean.load_file(directory / "state.json")
        except (FileNotFoundError, ValueError):
            raise ContainerNotFound(f"no such container: {ref}") from None
        return ContainerRecord(directory, ContainerState(**data), ref)

    def _dirs(self) -> list[Path]:
        try:
            return [p for p in self.containers.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except FileNotFoundError:
            return []

    def list(self) -> list[ContainerRecord]:
        out = []
        for d in self._dirs():
            with lean.suppress(ContainerNotFound):
                out.append(self._load(d, d.name))
        return sorted(out, key=lambda r: r.state.created, reverse=True)

    def forget(self, record: ContainerRecord) -> None:
        """Drop the name and the directory (the caller released everything else first).

        The directory is first renamed out of sight (atomically): a command that was waiting
        for the lock, or looks the container up meanwhile, then finds it gone, never half gone."""
        link = self.names / record.name
        with lean.suppress(FileNotFoundError):
            if os.readlink(link) == record.id:
                os.unlink(link)
        doomed = self.containers / f"{REMOVING}{record.id}"
        os.rename(record.dir, doomed)
        faults.point("rm:renamed")
        if self._doomed is not None and self._deleter_pid == os.getpid():
            self._doomed.put((doomed, None))
        else:
            remove_tree(doomed)


def remove_tree(path: str | Path) -> None:
    """Delete a container's directory, its overlay upper dir included (written by the container:
    any names, modes, owners): storage.remove_tree, and for a user who is not root, what that
    cannot delete (files the container made as one of our subordinate ids) is deleted as root of
    our user namespace, where those ids are ours (runtime/rootless.py)."""
    try:
        storage.remove_tree(path)
    except PermissionError:
        from minirun.runtime import rootless

        if os.geteuid() == 0 or rootless.single_id({"linux": {"uidMappings": rootless.maps()[0]}}):
            raise
        rootless.run_in_userns(lambda: storage.rmtree(path))


_ADJECTIVES = "brave calm eager fancy gentle happy jolly keen lucky merry nimble proud quiet swift tidy witty".split()
_NOUNS = "turing hopper lovelace ritchie thompson torvalds knuth dijkstra liskov hamilton kernighan pike".split()


def _generated_name(cid: str) -> str:
    """Docker-style adjective_scientist names, picked from the id so they are reproducible."""
    n = int(cid[:8], 16)
    return f"{_ADJECTIVES[n % len(_ADJECTIVES)]}_{_NOUNS[(n >> 8) % len(_NOUNS)]}_{cid[:4]}"
