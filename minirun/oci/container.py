"""The OCI lifecycle over a state directory, the way runc keeps it.

    ROOT/ID/state.json   what `create` recorded: pid + start time, bundle, cgroup, created
    ROOT/ID/exec.fifo    exists from `create` until `start`; the container blocks opening it (sync 8)
    ROOT/.cache/seccomp/ built seccomp programs by profile hash (runtime/seccomp.py)

The status is derived from facts, never stored (runtime-spec runtime.md): "creating" until create
has recorded the pid, "created" while that process (pid + start time) lives and the fifo still
exists, "running" while it lives after `start` ("paused" while its cgroup is frozen, as runc
says), "stopped" once it is gone. Every operation is
one small function: load the state, check the status allows it, act, save.

No monitor: the container is a child of `create`, and when `create` exits it is reparented to the
caller's child subreaper (conmon, containerd's shim), which reaps it and so learns its exit status
— the contract runc keeps. `run` is the parent and waits itself. The container's stdio are exactly
the caller's fds 0, 1, 2.
Man pages: fifo(7), pidfd_open(2), pid_namespaces(7) (why SIGTERM can be ignored by a PID 1).
"""

from __future__ import annotations

import fcntl
import os
import select

# _signal, not signal: signal wraps these in IntEnums, and enum costs ~3 ms of start-up here
from _signal import SIGKILL, SIGSYS, SIGTERM

from minirun import lean, procfs
from minirun import spec as oci
from minirun.errors import ContainerNotFound, InvalidTransition, MinirunError, SpecError, UsageError
from minirun.records import asdict, field, fields, record
from minirun.runtime.state import check_transition, remove_tree
from minirun.storage import now_iso, write_atomic, write_json

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/minirun-oci"
# Without linux.cgroupsPath a container's group is CGROUP_PARENT/ID. The parent is made once and
# stays, as Docker's "docker" and podman's "libpod_parent" do: making and removing it with every
# container was half of the cgroup work of a start (a mkdir and an rmdir in every hierarchy).
CGROUP_PARENT = "minirun-oci"
# (No pathlib, re, json, contextlib or signal here: this module is on the start-up path of every
# container podman or containerd runs, and those imports cost more than the rest of it.)


def valid_id(cid: str) -> bool:
    """runc's rule, letters, digits and _+-. (\\w+-.), and no leading dot: ROOT/.cache is ours."""
    return bool(cid) and cid[0] != "." and all(ch.isalnum() or ch in "_+-." for ch in cid)


_SEMVER_TAG = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-")


def semver_1(version: str) -> bool:
    """runtime-spec config.md: ociVersion is SemVer 2.0.0; this runtime reads major version 1:
    1.MINOR.PATCH (no leading zeros), then an optional -PRERELEASE and +BUILD of [0-9A-Za-z.-]."""
    rest, plus, build = version.partition("+")
    core, dash, pre = rest.partition("-")
    for present, tag in ((plus, build), (dash, pre)):
        if present and not (tag and set(tag) <= _SEMVER_TAG):
            return False
    parts = core.split(".")
    return (len(parts) == 3 and parts[0] == "1"
            and all(p.isascii() and p.isdigit() and (p == "0" or p[0] != "0") for p in parts[1:]))

# Fields of config.json we cannot honour. Each is refused by name rather than skipped, since a
# caller that asked for it relies on it (minirun.spec.validate covers AppArmor and SELinux).
UNSUPPORTED = [
    "process/ioPriority", "process/scheduler", "process/execCPUAffinity",
    "linux/intelRdt",
    "linux/personality", "linux/resources/hugepageLimits",
    "linux/resources/network", "linux/resources/rdma", "linux/resources/unified",
]


@record
class Record:
    """state.json: what `create` saw. Everything else is derived when asked."""

    id: str
    bundle: str
    cgroup: str
    created: str
    pid: int | None = None
    pid_start: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    hooks: dict[str, list] = field(default_factory=dict)   # config.json's, checked (oci/hooks.py)
    # without a mount namespace the container's mounts are made on the host, under this root:
    # journaled before they exist, detached (with everything under it) on delete
    host_mounts: str | None = None


class Container:
    def __init__(self, root: str, record: Record):
        self.dir = os.path.join(root, record.id)
        self.record = record
        self.warnings: list[str] = []    # what create left undone and did not refuse (the CLI says it)

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, "exec.fifo")

    def seccomp_cache(self) -> str:
        """ROOT/.cache/seccomp: built seccomp programs, shared by the containers of a root."""
        return os.path.join(os.path.dirname(self.dir), ".cache", "seccomp")

    def save(self) -> None:
        write_json(os.path.join(self.dir, "state.json"), asdict(self.record), durable=False)

    def alive(self) -> bool:
        return procfs.is_alive(self.record.pid, self.record.pid_start)

    def status(self) -> str:
        """runc's statuses: the spec's four, and "paused" while the freezer holds the group."""
        if self.record.pid is None:
            return "creating"
        if not self.alive():
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        return "paused" if self.cgroup().frozen() else "running"

    def cgroup(self):
        from minirun.runtime.cgroups import detect

        cg = detect().open(self.record.cgroup)
        # parents stay: those of a cgroupsPath the caller gave are the caller's (the kubelet's pod
        # and QoS groups, podman's libpod_parent), as with runc; ours is shared (CGROUP_PARENT)
        cg.keep_parents = True
        return cg

    def require(self, operation: str) -> str:
        """The transitions table is the runtime's (runtime/state.py); "delete" of a running or
        paused container needs --force."""
        return check_transition(self.record.id, self.status(), operation)

    @lean.contextmanager
    def locked(self):
        """flock(2) on the state directory: operations on one container run one at a time."""
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)

    def oci_state(self, status: str | None = None) -> dict[str, Any]:
        """The state object of runtime-spec runtime.md, plus runc's "created". `status` names
        it where the facts cannot yet (hooks during create see "creating")."""
        status = status or self.status()
        return {
            "ociVersion": oci.OCI_VERSION, "id": self.record.id, "status": status,
            "pid": self.record.pid if status in ("creating", "created", "running") else 0,
            "bundle": self.record.bundle, "rootfs": self.rootfs(),
            "created": self.record.created, "annotations": self.record.annotations,
        }

    def rootfs(self) -> str:
        try:
            spec = lean.load_file(os.path.join(self.record.bundle, "config.json"))
            return os.path.join(self.record.bundle, spec["root"]["path"])
        except (OSError, ValueError, KeyError, TypeError):
            return ""


def load(root: str, cid: str) -> Container:
    try:
        data = lean.load_file(os.path.join(root, cid, "state.json"))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        raise ContainerNotFound(f"container {cid} does not exist") from None
    known = set(fields(Record))
    return Container(root, Record(**{k: v for k, v in data.items() if k in known}))


def list_all(root: str) -> list[Container]:
    out = []
    with lean.suppress(FileNotFoundError):
        for name in sorted(os.listdir(root)):
            if name.startswith("."):
                continue
            with lean.suppress(ContainerNotFound):
                out.append(load(root, name))
    return out


def load_spec(bundle: str) -> dict[str, Any]:
    """The bundle's config.json, validated; unsupported fields are refused by name."""
    try:
        spec = lean.load_file(os.path.join(bundle, "config.json"))
    except FileNotFoundError:
        raise MinirunError(f"{bundle}/config.json: no such file (make one with `minirun-oci spec`)") from None
    except ValueError as e:
        raise MinirunError(f"{bundle}/config.json: invalid JSON: {e}") from None
    oci.validate(spec)
    version = spec.get("ociVersion")
    if version is not None and not (isinstance(version, str) and semver_1(version)):
        raise SpecError("ociVersion", f"{version!r} is not a 1.x SemVer version like "
                                      f"{oci.OCI_VERSION!r}")
    if spec.get("hooks") in (None, {}):        # most bundles have none: oci/hooks.py not imported
        spec["hooks"] = {}
    else:
        from minirun.oci import hooks

        spec["hooks"] = hooks.validate(spec["hooks"])
    for pointer in UNSUPPORTED:
        value: Any = spec
        for key in pointer.split("/"):
            value = value.get(key) if isinstance(value, dict) else None
        if value:
            raise SpecError(pointer, "not supported by minirun-oci (refused, not ignored)")
    linux = spec.setdefault("linux", {})
    _check_id_mappings(linux)
    if (linux.get("uidMappings") or linux.get("gidMappings")) and not any(
            n["type"] == "user" and not n.get("path") for n in linux.get("namespaces", [])):
        raise SpecError("linux/uidMappings", "needs a new user namespace (linux.namespaces has no "
                                             "user entry without a path)")
    return spec


def _check_id_mappings(linux: dict[str, Any]) -> None:
    """linux.uidMappings / gidMappings: [{containerID, hostID, size}], both or neither."""
    for key in ("uidMappings", "gidMappings"):
        maps = linux.get(key)
        if maps is None:
            continue
        if not isinstance(maps, list):
            raise SpecError(f"linux/{key}", "must be a list of {containerID, hostID, size}")
        for i, m in enumerate(maps):
            if not isinstance(m, dict) or any(f not in m for f in ("containerID", "hostID", "size")):
                raise SpecError(f"linux/{key}/{i}", "must be an object with containerID, hostID and size")
            for f in ("containerID", "hostID", "size"):
                oci._uint(m, f, f"linux/{key}/{i}")
    if bool(linux.get("uidMappings")) != bool(linux.get("gidMappings")):
        raise SpecError("linux/gidMappings", "a user namespace needs both uid and gid mappings")


def add_runtime_defaults(spec: dict[str, Any]) -> None:
    """What the runtime spec says a runtime MUST supply whatever config.json lists (config-linux.md
    "Default Devices"), and what runc adds the same way: the default device nodes when /dev is not
    a bind of the host's, and the cgroup rules that let them be opened (after the spec's own rules,
    so a deny-all there still leaves /dev/null, /dev/pts/*... usable, as podman expects)."""
    linux = spec.setdefault("linux", {})
    if not any(m.get("destination") == "/dev" and m.get("type") == "bind"
               for m in spec.get("mounts", [])):
        listed = {d.get("path") for d in linux.get("devices", [])}
        linux["devices"] = [*linux.get("devices", []),
                            *(dict(d, fileMode=0o666, uid=0, gid=0)
                              for d in oci.DEFAULT_DEVICES if d["path"] not in listed)]
    resources = linux.setdefault("resources", {})
    resources["devices"] = [*resources.get("devices", []),
                            *(dict(r) for r in oci.DEFAULT_DEVICE_RULES if r.get("allow"))]


def _default_home(spec: dict[str, Any], rootfs: str) -> None:
    """HOME, when config.json's env has none: the user's home in the root's /etc/passwd, else
    "/" — what runc sets, and what shells and many programs expect to find. The file is read
    only if neither it nor /etc is a symlink (which could point at the host's)."""
    env = spec["process"].setdefault("env", [])
    if any(e.startswith("HOME=") for e in env):
        return
    uid, home = str(spec["process"].get("user", {}).get("uid", 0)), "/"
    etc = os.path.join(rootfs, "etc")
    passwd = os.path.join(etc, "passwd")
    with lean.suppress(OSError):
        if not os.path.islink(etc) and not os.path.islink(passwd) and os.path.isfile(passwd):
            with open(passwd, errors="replace") as f:
                lines = f.read().splitlines()
            for line in lines:
                fields = line.split(":")
                if len(fields) > 5 and fields[2] == uid and fields[5].startswith("/"):
                    home = fields[5]
                    break
    env.append(f"HOME={home}")


def cgroup_name(spec: dict[str, Any], cid: str) -> str:
    path = spec["linux"].get("cgroupsPath")
    if not path:
        return f"{CGROUP_PARENT}/{cid}"
    if ":" in path:
        raise SpecError("linux/cgroupsPath",
                        f"{path!r} is a systemd slice:prefix:name path; --systemd-cgroup is not supported")
    return path.strip("/")


# -- create ---------------------------------------------------------------------------------
def create(root: str, cid: str, bundle: str | os.PathLike, *, pid_file: str | None = None,
           console_socket: str | None = None, preserve_fds: int = 0):
    """Set the container up to the exec fifo (sync points 1-7): it then waits for `start`.
    Returns the Container; its process is our child, which only `run` waits for."""
    from minirun.runtime import cgroup_warm

    if not valid_id(cid):
        raise UsageError(f"invalid container id {cid!r}: use letters, digits and _+-.")
    bundle = os.path.realpath(bundle)
    spec = load_spec(bundle)
    add_runtime_defaults(spec)
    _default_home(spec, os.path.join(bundle, spec["root"]["path"]))
    if spec["process"].get("terminal") and not console_socket:
        raise UsageError("process.terminal is true: pass --console-socket (minirun-oci does not "
                         "relay a terminal itself)")
    os.makedirs(root, mode=0o700, exist_ok=True)
    c = Container(root, Record(id=cid, bundle=str(bundle), cgroup=cgroup_name(spec, cid),
                               created=now_iso(), annotations=spec.get("annotations", {}),
                               hooks=spec["hooks"]))
    try:
        os.mkdir(c.dir, 0o711)
    except FileExistsError:
        raise MinirunError(f"container with id exists: {cid}") from None
    cgroup_warm.start()          # the container's cgroup join is then cheap (cgroup_warm.py)
    try:
        c.save()                 # journaled before the cgroup exists: `delete` can clean up
        _spawn(c, spec, bundle, console_socket, preserve_fds)
    except BaseException:
        _destroy(c)
        raise
    finally:
        cgroup_warm.stop()
    if pid_file:
        write_atomic(os.path.abspath(pid_file), str(c.record.pid), durable=False)
    return c


def _spawn(c: Container, spec: dict[str, Any], bundle: str, console_socket: str | None,
           preserve_fds: int) -> None:
    """Runtime._spawn's steps, with the rootfs bound onto itself and an exec fifo, and one
    change of order: the child is cloned first and *then* the cgroup is made and the child
    put in it (by us, writing its pid), before GO.

    Why: the first cgroup migration after a quiet spell waits for an RCU grace period, 5-25 ms
    here, and holds the kernel's cgroup_mutex meanwhile, so no cgroup can even be made until it
    passes (runtime/cgroup_warm.py). The warmer starts that wait as our first act; cloning first
    lets the plan and the clone run during it, instead of after it. The child does nothing of
    the container's until GO, and the cgroup namespace is unshared after GO, so the child's
    cgroup root is its own group, as before."""
    from minirun.runtime import spawn, sync
    from minirun.runtime.cgroups import Resources, detect

    rootfs = os.path.realpath(os.path.join(bundle, spec["root"]["path"]))
    if not any(ns["type"] == "mount" for ns in spec["linux"].get("namespaces", [])):
        c.record.host_mounts = rootfs
        c.save()
    resources = Resources.from_oci(spec["linux"].get("resources", {}))
    manager = detect()
    planned = manager.planned(c.record.cgroup, resources)   # checked; made after the clone
    c.warnings += manager.skipped(resources)
    os.mkfifo(c.fifo)
    os.chmod(c.fifo, 0o622)      # not mkfifo's mode, which the umask cuts: a non-root process opens it
    with sync.Channel() as channel:
        np = _plan(c, spec, bundle, rootfs, planned.views(), channel, preserve_fds)
        pid, _ = spawn.spawn(np)                   # (2) the child waits for GO
        with lean.ExitStack() as undo:             # it waits for GO: it never ran anything
            undo.callback(procfs.reap, pid)
            undo.callback(procfs.kill_child, pid)
            manager.create(c.record.cgroup, resources).add(pid)       # (1) and (3), by us
            if spec["linux"].get("uidMappings"):
                from minirun.runtime import userns

                userns.write_maps(pid, spec)           # (4), before GO
            undo.pop_all()
    _handshake(c, channel.parent, np, pid, console_socket)


def _plan(c: Container, spec: dict[str, Any], bundle: str, rootfs: str, cgroup_views,
          channel, preserve_fds: int):
    """(1) The plan: the bundle's rootfs bound onto itself, the exec fifo, idmapped binds."""
    from minirun.runtime import plan

    fifo_fd = os.open(c.fifo, os.O_PATH | os.O_CLOEXEC)
    channel.lend(fifo_fd)
    idmap_binds = {}
    if any("uidMappings" in m for m in spec.get("mounts", [])):   # idmapped mounts (OCI 1.1)
        from minirun.runtime import userns

        idmap_binds = userns.idmapped_binds(spec, bundle)
        channel.lend(*idmap_binds.values())
    launch = plan.Launch(rootfs=rootfs, rootfs_fstype=None, bundle=bundle,
                         cgroup_procs_fds=[], monitor_argv=None, stdio=(0, 1, 2),
                         sync_fd=channel.child.fileno(), parent_sync_fd=channel.parent.fileno(),
                         exec_fifo_fd=fifo_fd,
                         host_mounts_allowed=True,
                         hooks_sync=bool(c.record.hooks)
                         and any(c.record.hooks.get(k) for k in hooks_at_create()),
                         preserve_fds=preserve_fds, cache_dir=c.seccomp_cache(),
                         cgroup_views=cgroup_views,
                         idmap_binds=idmap_binds)
    return plan.build(spec, launch)


def _handshake(c: Container, sock, np, pid: int, console_socket: str | None) -> None:
    """(5) GO and record the pid, (6b) the create hooks, (7) READY, the pty master handed on.
    On any failure the process is killed (through its checked pid, once recorded) and reaped."""
    from minirun.runtime import spawn, sync

    def record_pid() -> None:
        c.record.pid, c.record.pid_start = pid, procfs.start_time(pid)
        c.save()

    def run_hooks() -> None:
        # (6b) the namespaces and mounts exist, pivot_root has not happened (runtime-spec)
        from minirun.oci import hooks

        for kind in hooks.AT_CREATE:
            # prestart (runtime-spec 1.0: "after start is called") sees "created", as `state`
            # would say now; the kinds added in 1.0.2 see "creating", as runc passes them
            hooks.run(c.record.hooks, kind, c.oci_state("created" if kind == "prestart" else "creating"))

    with lean.ExitStack() as undo:
        undo.callback(procfs.reap, pid)
        undo.callback(_kill_pid, c, SIGKILL)
        report = sync.go_and_wait(sock, record_pid, on_hooks=run_hooks)   # (5), (6b), (7)
        if report.error is not None:
            raise spawn.error_from_native(report.error, np, np.program)
        if not report.ready:
            raise MinirunError(f"container {c.record.id}: the process ended before it was "
                               f"ready{_how_it_ended(pid)}")
        if report.tty_master is not None:
            _send_console(console_socket, report.tty_master)
        undo.pop_all()


def _how_it_ended(pid: int) -> str:
    """Why a child that closed its end with no report (neither READY nor an error) is gone, as
    far as its exit says: it reports every failure of its own, so only a seccomp filter that
    refuses even write(2), or kills (SIGSYS), leaves it without words. Waited for a moment: the
    socket closes as it exits. Reaped here; the caller's later reap finds nothing."""
    if not procfs.wait_exited(pid, 1.0):
        return ""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return ""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        why = ": a seccomp filter killed it for a system call it does not allow" if sig == SIGSYS else ""
        return f" (killed by signal {sig}{why})"
    return (f" (exit status {os.WEXITSTATUS(status)}, no report: does the seccomp filter refuse "
            f"write(2)?)")


def hooks_at_create() -> tuple[str, ...]:
    from minirun.oci import hooks

    return hooks.AT_CREATE


def _send_console(path: str | None, master: int) -> None:
    """Hand the pty master to the caller's socket (SCM_RIGHTS), as runc's --console-socket."""
    import array
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendmsg([b"/dev/ptmx"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                         array.array("i", [master]))])
    except OSError as e:
        raise MinirunError(f"console socket {path}: {os.strerror(e.errno or 5)}") from None
    finally:
        os.close(master)


# -- start ----------------------------------------------------------------------------------
def start(root: str, cid: str) -> tuple[Container, list[str]]:
    """(8) Open the fifo for reading: the container's open returns and it execs. EOF = the
    program runs; an mr_msg = execve failed, and the message says why. Then the poststart
    hooks; returns the container and their failures (warnings, as the spec has them)."""
    c = load(root, cid)
    with c.locked():
        c.require("start")
        if c.record.hooks.get("startContainer"):
            from minirun.oci import hooks

            try:
                hooks.run(c.record.hooks, "startContainer", c.oci_state("created"))
            except MinirunError:
                _kill_pid(c, SIGKILL)     # the spec: an error, and the container stopped
                raise
        fd = os.open(c.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            data = _read_fifo(fd, c)
        finally:
            os.close(fd)
            os.unlink(c.fifo)
    if data:
        from minirun._native import ffi, lib
        from minirun.runtime import spawn, sync

        msg = ffi.new("struct mr_msg *")
        ffi.memmove(msg, data, min(len(data), sync.MSG_SIZE))
        if msg.type == lib.MR_MSG_ERROR:
            err = ffi.new("struct mr_err *")
            err[0] = msg.err
            raise spawn.error_from_native(err, None, _program(c))
    if not c.record.hooks.get("poststart"):
        return c, []
    from minirun.oci import hooks

    return c, hooks.run_warn(c.record.hooks, "poststart", c.oci_state("running"))


def _read_fifo(fd: int, c: Container) -> bytes:
    """Everything written to the fifo until its writer closes it (execve, or exit)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks = []
    while True:
        if not poller.poll(100):
            if not c.alive():        # never opened its end: killed while created
                raise MinirunError(f"container {c.record.id}: its process is gone")
            continue
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _program(c: Container) -> str:
    with lean.suppress(OSError, ValueError, KeyError):
        return lean.load_file(os.path.join(c.record.bundle, "config.json"))["process"]["args"][0]
    return ""


# -- kill, delete, wait ---------------------------------------------------------------------
def kill(root: str, cid: str, sig: int = SIGTERM, all_processes: bool = False) -> None:
    c = load(root, cid)
    if all_processes:
        from minirun.runtime.cgroups import detect

        detect().open(c.record.cgroup).kill_all(sig)
        return
    c.require("kill")
    _kill_pid(c, sig)


def delete(root: str, cid: str, force: bool = False) -> list[str]:
    """Stop what is left (--force for a running or paused one), remove the cgroup and the state,
    then run the poststop hooks; returns their failures (warnings)."""
    c = load(root, cid)
    with c.locked():
        status = c.status()
        if status in ("running", "paused") and not force:
            raise InvalidTransition(f"cannot delete container {cid} that is not stopped: {status}")
        _destroy(c)
    if not c.record.hooks.get("poststop"):
        return []
    from minirun.oci import hooks

    return hooks.run_warn(c.record.hooks, "poststop", c.oci_state("stopped"))


# -- pause, resume, ps, update --------------------------------------------------------------
def pause(root: str, cid: str) -> None:
    """Freeze every process of the container (cgroup freezer): they stop being scheduled."""
    c = load(root, cid)
    with c.locked():
        c.require("pause")
        c.cgroup().freeze()


def resume(root: str, cid: str) -> None:
    c = load(root, cid)
    with c.locked():
        c.require("resume")
        c.cgroup().thaw()


def pids(root: str, cid: str) -> list[int]:
    """The host pids of every process in the container's cgroup."""
    c = load(root, cid)
    c.require("ps")
    return c.cgroup().pids()


def update(root: str, cid: str, resources: dict[str, Any]) -> None:
    """Apply an OCI linux.resources object to the running container's cgroup (runc update)."""
    from minirun.runtime.cgroups import Resources

    _check_resources(resources)
    c = load(root, cid)
    with c.locked():
        c.require("update")
        c.cgroup().apply(Resources.from_oci(resources))


# which resources update understands, and the type of each field
_RESOURCE_FIELDS = {
    "memory": {"limit": int, "reservation": int, "swap": int},
    "cpu": {"shares": int, "quota": int, "period": int, "cpus": str, "mems": str},
    "pids": {"limit": int},
}


def _check_resources(resources: Any) -> None:
    if not isinstance(resources, dict):
        raise SpecError("linux/resources", "must be an object")
    for key, value in resources.items():
        fields = _RESOURCE_FIELDS.get(key)
        if fields is None:
            raise SpecError(f"linux/resources/{key}", "not supported by minirun-oci update")
        if not isinstance(value, dict):
            raise SpecError(f"linux/resources/{key}", "must be an object")
        for name, v in value.items():
            kind = fields.get(name)
            if kind is None:
                raise SpecError(f"linux/resources/{key}/{name}", "not supported by minirun-oci update")
            if not isinstance(v, kind) or isinstance(v, bool):
                raise SpecError(f"linux/resources/{key}/{name}",
                                f"must be {'an integer' if kind is int else 'a string'}")


# -- exec -----------------------------------------------------------------------------------
def exec_process(root: str, cid: str, process: dict[str, Any], *, console_socket: str | None = None,
                 pid_file: str | None = None) -> int:
    """Start `process` in the container (runc exec): setns into its namespaces, join its cgroup,
    the same credentials, capabilities and seccomp steps as its first process. Returns the pid
    of our child; its stdio are ours (0, 1, 2), or a pty handed to --console-socket."""
    from minirun.runtime import plan, spawn

    oci.validate({"process": process, "root": {"path": "rootfs"}})
    c = load(root, cid)
    c.require("exec")
    if process.get("terminal") and not console_socket:
        raise UsageError("a terminal needs --console-socket (minirun-oci does not relay one itself)")
    spec = lean.load_file(os.path.join(c.record.bundle, "config.json"))
    ns_types = {n["type"] for n in spec.get("linux", {}).get("namespaces", [])}
    if c.record.host_mounts:
        # its first process is chrooted in the host's mount namespace; joining namespaces would
        # leave a new process on the host's root instead
        raise UsageError(f"cannot exec in container {cid}: it has no mount namespace of its own")
    child, master = spawn.enter_process(
        c.record.pid, ns_types, c.cgroup().procs_files(), process, stdio=(0, 1, 2),
        console=_console_size(process),
        seccomp_bpf=plan.seccomp_program(spec, c.seccomp_cache()))
    if master is not None:
        _send_console(console_socket, master)
    if pid_file:
        write_atomic(os.path.abspath(pid_file), str(child), durable=False)
    return child


def exec_defaults(root: str, cid: str) -> dict[str, Any]:
    """The container's own process object: what `exec ID ARGS` starts from, as in runc."""
    c = load(root, cid)
    spec = lean.load_file(os.path.join(c.record.bundle, "config.json"))
    return dict(spec["process"])


def _console_size(process: dict[str, Any]) -> tuple[int, int]:
    size = process.get("consoleSize") or {}
    return int(size.get("height", 0)), int(size.get("width", 0))


def _destroy(c: Container) -> None:
    cg = c.cgroup()
    if c.alive():
        _kill_pid(c, SIGKILL)
        if cg.frozen():
            cg.thaw()            # a frozen task acts on SIGKILL only once thawed (cgroup v1)
        _wait_pid(c.record.pid, 10.0)
    cg.destroy()
    if c.record.host_mounts:
        _detach(c.record.host_mounts)
    with lean.suppress(FileNotFoundError):
        remove_tree(c.dir)


def _detach(rootfs: str) -> None:
    """umount2(MNT_DETACH) of the root's bind and so of every mount under it (umount(2)), if the
    topmost mount there is still ours: the root bound onto itself, as c_ext/fs.c makes it."""
    import ctypes

    with open("/proc/self/mountinfo") as f:
        info = f.read().splitlines()
    if not any(line.split()[4] == rootfs for line in info):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(rootfs.encode(), 2) != 0:                   # 2 = MNT_DETACH
        err = ctypes.get_errno()
        raise MinirunError(f"unmount {rootfs}: {os.strerror(err)}")


def wait(c: Container) -> int:
    """The exit status of a container whose process is our child (`run`), 128+N for signal N."""
    try:
        _, status = os.waitpid(c.record.pid, 0)
    except ChildProcessError:
        return 255
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _kill_pid(c: Container, sig: int) -> None:
    procfs.send_signal(c.record.pid, c.record.pid_start, sig)


def _wait_pid(pid: int, timeout: float) -> None:
    procfs.wait_exited(pid, timeout)
    procfs.reap(pid, os.WNOHANG)


# -- spec, features -------------------------------------------------------------------------
def default_config() -> dict[str, Any]:
    """`runc spec`'s shape: rootfs "rootfs", `sh` on a terminal."""
    spec = oci.default_spec()
    spec["root"]["path"] = "rootfs"
    spec["process"]["args"] = ["sh"]
    spec["process"]["terminal"] = True
    return spec


def features() -> dict[str, Any]:
    """What this runtime supports, in the shape of runc's `features` (runtime-spec features.md)."""
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci.OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                  "poststop"],
        "mountOptions": sorted(oci._FLAG_OPTIONS) + sorted(oci._CLEAR_OPTIONS)
        + sorted(oci._PROPAGATION),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": sorted(oci.CAP_NUMBER),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},   # mounts[].uidMappings (bind)
        },
        "minirun": {"refused": UNSUPPORTED + ["process/apparmorProfile", "process/selinuxLabel",
                                              "linux/mountLabel", "linux/namespaces/{user}/path"]},
    }
