"""The container lifecycle: create, start, stop, kill, exec, update, remove.

Each operation is one small function of the same shape: load the record, take its lock, refresh
the status from facts, check the transition is allowed (InvalidTransition otherwise), act, save.
The Runtime object is the public API; the CLI and the scheduler's workers both call it (the
workers keep one per process: the "warm path", with every import already done).
"""

from __future__ import annotations

import os
import sys
import time

# not signal, contextlib or pathlib: `minirun run` imports this module for every container, and
# signal wraps its numbers in IntEnums (enum), contextlib imports collections and functools;
# _signal and minirun.lean give what the run path uses
from _signal import SIGKILL

from minirun import faults, lean, procfs, records
from minirun.errors import ContainerNotFound, InvalidTransition, MinirunError, UsageError
from minirun.observe import events
from minirun.paths import data_root
from minirun.runtime import cgroup_warm as warm
from minirun.runtime import sync
from minirun.runtime.options import RunOptions
from minirun.runtime.state import ContainerRecord, StateStore
from minirun.storage import now_iso

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

# /proc/PID/ns/NAME and the spec's namespace type, in the order exec joins them: the mount
# namespace last, since entering it changes our root and the other files would be out of reach
_UNTRACED = lean.suppress()   # a phase marker when nobody traces (a null context): no clock read


@records.record
class Started:
    """A container that is running: its pid, its monitor, and the pty master for -t."""

    record: ContainerRecord
    pid: int
    monitor_pid: int
    tty_master: int | None = None
    stamps: list[int] | None = None


@records.record
class ExecProcess:
    pid: int
    tty_master: int | None = None


class Runtime:
    def __init__(self, root: str | os.PathLike | None = None, cgroups=None, tracer=None,
                 filesystems: str = "/proc/filesystems",
                 long_lived: bool = False):
        """`long_lived`: a process that starts and removes many containers (a scheduler
        worker, the warm path) keeps the shared cgroup parents between containers and deletes
        removed containers' directories in a background thread; `close()` (also at exit)
        finishes both. A short-lived command keeps the default: nothing outlives it."""
        self.root = data_root(root)
        self.filesystems = filesystems       # where overlay support is looked up (runtime/overlay.py)
        self.store = StateStore(self.root)
        self._cgroups = cgroups
        self._images = None
        # minirun/observe/trace.py's Tracer times the start-up phases (`minirun trace run`)
        self.tracer = tracer
        self.long_lived = long_lived
        if long_lived:
            import atexit

            self.store.defer_deletion()
            atexit.register(self.close)

    def close(self) -> None:
        """Finish deferred deletions, and remove the shared cgroup parents if they are empty."""
        self.store.drain()
        if self.long_lived and self._cgroups is not None:
            self._cgroups.remove_if_empty("minirun")

    def _phase(self, name: str):
        return _UNTRACED if self.tracer is None else self.tracer.phase(name)

    # -- collaborators, made on first use (the CLI's `ps` needs neither) --------------------
    @property
    def cgroups(self):
        if self._cgroups is None:
            from minirun.runtime import rootless
            from minirun.runtime.cgroups import detect, unavailable

            # rootless: no hierarchy is ours to write (runtime/rootless.py)
            self._cgroups = unavailable() if rootless.active() else detect()
            self._cgroups.keep_parents = self.long_lived
        return self._cgroups

    @property
    def images(self):
        if self._images is None:
            from minirun.images.store import ImageStore

            self._images = ImageStore(self.root)
        return self._images

    @property
    def seccomp_cache(self) -> Path:
        """Built seccomp programs, by profile hash (runtime/seccomp.py)."""
        return self.root / "cache" / "seccomp"

    def get(self, ref: str) -> ContainerRecord:
        return self.store.get(ref)

    def _event(self, action: str, record: ContainerRecord, **attributes) -> None:
        """One `minirun events` line (observe/events.py): Docker's image and name attributes."""
        events.emit(self.root, "container", action, record.id,
                    {"image": record.state.image, "name": record.name, **attributes})

    def list(self, all: bool = False) -> list[ContainerRecord]:
        found = self.store.list()
        return found if all else [r for r in found if r.status() == "running"]

    # -- create ---------------------------------------------------------------------------
    def create(self, opts: RunOptions) -> ContainerRecord:
        """`docker create`: the container's directory, spec and name; no process yet."""
        from minirun.errors import ImageNotFound
        from minirun.runtime import overlay

        overlay.check(self.filesystems, None if self.filesystems == overlay.FILESYSTEMS else os.devnull)
        with self._phase("image lookup"):
            try:
                image = self.images.get(opts.image)
            except ImageNotFound as e:
                raise ImageNotFound(f"{e} (import it first: minirun image import FILE {opts.image})") from None
        from minirun.errors import storage_errors

        with storage_errors(f"cannot create a container in {self.root}"):
            return self._create(opts, image)

    def _create(self, opts: RunOptions, image) -> ContainerRecord:
        from minirun.runtime.options import build_spec

        record = self.store.new(opts.name, image=opts.image, image_id=image.id,
                                auto_remove=opts.auto_remove, detached=opts.detach, owner=opts.owner)
        try:
            for sub in ("rootfs", "upper", "work"):
                (record.dir / sub).mkdir(mode=0o755)
            layers_top_first = [record.dir / "upper", *reversed(image.layers)]
            with self._phase("spec build"):
                spec = build_spec(opts, image.config, layers_top_first, record.dir, record.id)
                record.save_spec(spec, durable=not opts.auto_remove)
            if opts.network not in ("none", "host"):
                from minirun.net import container as net

                with self._phase("network leases"):
                    net.create(self.root, record, opts, image.config, spec["hostname"])
        except BaseException:
            self._release_network(record)
            self.store.forget(record)
            raise
        self._event("create", record)
        return record

    # -- start ----------------------------------------------------------------------------
    def start(self, ref: str | ContainerRecord, *, attach: bool = False, interactive: bool = False,
              console: tuple[int, int] = (0, 0), trace: bool = False) -> Started:
        """Start the process. Detached (the default), its output goes to the log through the
        monitor; attached, it uses our stdio and the caller waits for the monitor (our child)."""
        from minirun.errors import storage_errors

        record = ref if isinstance(ref, ContainerRecord) else self.store.get(ref)
        with record.locked(), storage_errors(f"cannot start container {record.name} in {self.root}"):
            record.require("start")
            record.state.detached = not attach
            return self._spawn(record, interactive=interactive, console=console,
                               trace=trace or self.tracer is not None)

    def _spawn(self, record: ContainerRecord, *, interactive: bool, console: tuple[int, int],
               trace: bool) -> Started:
        """Prepare the rootfs and the plan, launch, handshake (c_ext/sync.h). Each step pushes
        the undoing of what it made on `undo`; a start that goes through keeps it all."""
        if any(c in str(self.root) for c in ",:\\"):
            raise UsageError(f"the data root {self.root} contains ',', ':' or '\\', which "
                             "overlayfs mount options cannot carry: choose another --root")
        warm.start()            # the child's cgroup join must not wait for a grace period
        spec = record.spec()
        with self._phase("image lookup"):
            image = self.images.get(record.state.image_id)
        exit_file = record.dir / "exit.json"
        exit_file.unlink(missing_ok=True)
        cg = self._new_cgroup(record, spec)
        with lean.ExitStack() as undo:
            undo.callback(exit_file.unlink, True)   # (missing_ok) what a monitor may have written
            undo.callback(cg.destroy)
            faults.point("start:cgroup-created")
            # the channel closes its child end and the fds lent to the child/monitor (our copies)
            with sync.Channel() as channel:
                np, launch = self._plan(record, spec, image, cg, channel, interactive=interactive,
                                        console=console, trace=trace)
                pid, monitor_pid = self._launch(record, spec, np, launch)
            # last made, first undone: our end of the channel, the warmer, the container's
            # group (whatever it started), then its monitor, which ends with it
            undo.callback(procfs.reap, monitor_pid)
            undo.callback(cg.destroy)
            undo.callback(warm.linger)
            undo.callback(channel.parent.close)
            faults.point("start:spawned")
            self._before_go(record, spec, pid, launch)
            report = self._handshake(record, channel, np, launch, pid, monitor_pid)
            undo.pop_all()
        faults.point("start:running")
        return Started(record, pid, monitor_pid, report.tty_master, report.stamps or None)

    def _new_cgroup(self, record: ContainerRecord, spec: dict[str, Any]):
        """(1) The container's group, with its limits; the previous run's (kept for its stats)
        goes first."""
        from minirun.runtime.cgroups import Resources
        from minirun.runtime.options import DEFAULT_PIDS_ANNOTATION

        name = f"minirun/{record.id}"
        if record.state.started_at is not None:
            self.cgroups.open(name).destroy()
        with self._phase("cgroup create"):
            resources = Resources.from_oci(spec["linux"].get("resources", {}))
            if (spec.get("annotations", {}).get(DEFAULT_PIDS_ANNOTATION) == "default"
                    and "pids" not in self.cgroups.available()):
                resources.pids_limit = None      # our default needs the controller; asked-for limits do
            resources.io_accounting = _io_devices(self.root, spec)
            return self._create_cgroup(name, resources)

    def _lower_layers(self, record: ContainerRecord, spec: dict[str, Any], image,
                      channel: sync.Channel) -> tuple[str, str, list[tuple[int, str]]]:
        """The overlay's lowerdir, its extra options, and the idmapped layers to attach (their
        fds lent on `channel`): the image's layers as the container's user namespace sees them."""
        from minirun.runtime import rootless, userns

        lower = image.lowerdir()            # top layer first, by short links (store.py)
        if rootless.is_rootless(spec):
            # our own files (owners recorded, not applied): the map shows us as root
            with self._phase("user namespace layers"):
                for layer in image.layers:
                    rootless.check_layer_owners(spec, self.images.layer_owners(layer), record.state.image)
                if not rootless.single_id(spec):
                    layers = rootless.owned_layers(image.layers, spec, self.root / "cache" / "idmap",
                                                   self.images.layer_owners)
                    lower = ":".join(str(p) for p in reversed(layers))
            return lower, ",userxattr", []
        if userns.host_root(spec) is None:
            return lower, "", []
        idmap_layers: list[tuple[int, str]] = []
        with self._phase("user namespace layers"):
            idmapped = userns.idmapped_layers(image.layers, spec)
            if idmapped is not None:          # the layers as they are, seen through the map
                channel.lend(*idmapped)
                # attached where the mapped root can reach (the store is root's alone)
                points = userns.idmap_points(record.dir, len(idmapped))
                idmap_layers = list(zip(idmapped, [str(p) for p in points], strict=True))
                lower = ":".join(str(p) for p in reversed(points))
            else:                             # copies with shifted owners, cached
                layers = userns.shifted_layers(image.layers, spec, self.root / "cache" / "idmap")
                lower = ":".join(str(p) for p in reversed(layers))
            userns.prepare_container_dirs(record.dir, spec)
        return lower, ",userxattr", idmap_layers

    def _plan(self, record: ContainerRecord, spec: dict[str, Any], image, cg,
              channel: sync.Channel, *, interactive: bool, console: tuple[int, int], trace: bool):
        """(1) The plan: the overlay rootfs, the cgroup to join, stdio and the monitor."""
        from minirun.runtime import plan, userns

        for path in cg.procs_files():
            channel.lend(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
        procs = list(channel.lent)
        stdio, log_fds = _wire_stdio(record.state.detached, interactive, channel.lent)
        lower, extra, idmap_layers = self._lower_layers(record, spec, image, channel)
        upper, work = record.dir / "upper", record.dir / "work"
        maps = userns.host_root(spec) is not None       # (4) uid maps to write
        attach = (record.dir / "network.json").exists()  # (4) interfaces to move in
        launch = plan.Launch(
            rootfs=spec["root"]["path"], rootfs_fstype="overlay",
            rootfs_data=f"lowerdir={lower},upperdir={upper},workdir={work}{extra}",
            cgroup_procs_fds=procs, monitor_argv=self._monitor_argv(record, cg.oom_events_file(), log_fds),
            monitor_fds=log_fds, stdio=stdio,
            sync_fd=channel.child.fileno(), parent_sync_fd=channel.parent.fileno(),
            console=console, trace=trace, cache_dir=self.seccomp_cache, cgroup_views=cg.views(),
            idmap_layers=idmap_layers,
            # (3') nothing of ours is needed before the execve: the child runs straight
            # through, in our memory rather than a copy of it (c_ext/spawn.c)
            share_memory=not maps and not attach)
        with self._phase("plan build"):
            return plan.build(spec, launch), launch

    def _launch(self, record: ContainerRecord, spec: dict[str, Any], np, launch) -> tuple[int, int]:
        """(2) mr_spawn: the monitor and the container's first process; (pid, monitor's pid)."""
        from minirun.runtime import rootless, spawn

        if launch.share_memory:
            # "start" must be in the log before the monitor's "die", and this container
            # runs before mr_spawn returns: so before it (_handshake, for the others)
            self._event("start", record)
        with self._phase("mr_spawn"):
            try:
                return spawn.spawn(np)
            except MinirunError as e:
                if rootless.is_rootless(spec):
                    raise rootless.explain_clone_failure(e) from None
                raise

    def _before_go(self, record: ContainerRecord, spec: dict[str, Any], pid: int, launch) -> None:
        """(4) While the child waits for GO: its uid/gid maps, its network interfaces."""
        if launch.share_memory:
            return
        from minirun.runtime import rootless, userns

        with lean.ExitStack() as undo:
            undo.callback(procfs.kill_child, pid)      # it waits for GO: it never ran anything
            if userns.host_root(spec) is not None:
                (rootless if rootless.is_rootless(spec) else userns).write_maps(pid, spec)
            if (record.dir / "network.json").exists():
                from minirun.net import container as net

                with self._phase("network attach"):
                    net.attach(self.root, record, pid)
            undo.pop_all()

    def _handshake(self, record: ContainerRecord, channel: sync.Channel, np, launch, pid: int,
                   monitor_pid: int):
        """(5) GO and record the pid, (7) the child's report. A failure after GO leaves the
        undoing to the caller's stack: the container's group holds all it started."""
        from minirun.runtime import spawn

        def record_pid() -> None:
            record.state.pid = pid
            record.state.pid_start = procfs.start_time(pid)
            record.state.monitor_pid = monitor_pid
            record.state.started_at = now_iso()
            record.state.error = ""
            record.save()

        # "start" goes to the log before GO: the monitor's "die" can only come after it (a
        # container that exits at once would otherwise beat us to the log)
        if not launch.share_memory:
            self._event("start", record)
        try:
            report = sync.go_and_wait(channel.parent, record_pid, self._phase("wait for the child"),
                                      go=not launch.share_memory)
        finally:
            warm.linger()                  # joined; the next start, if soon, finds the lock warm
        if report.error is not None:
            err = spawn.error_from_native(report.error, np, np.program)
            record.state.pid = record.state.pid_start = record.state.monitor_pid = None
            record.state.started_at = None
            record.state.error = str(err)
            record.save()
            raise err
        if self.tracer is not None:
            self.tracer.stamps = report.stamps
            self.tracer.set_items("mount", report.items, np.fsop_labels)
        return report

    def _create_cgroup(self, name: str, resources):
        """A new group; one left by a start that crashed before its process ran (no process can
        be in it: the container's first process joins it) is removed and made afresh."""
        from minirun.errors import CgroupError

        try:
            return self.cgroups.create(name, resources)
        except CgroupError as err:
            if not isinstance(err.__cause__, FileExistsError):
                raise
            self.cgroups.open(name).destroy()
            return self.cgroups.create(name, resources)

    def _monitor_argv(self, record: ContainerRecord, oom_file: str | None,
                      log_fds: tuple[int, int]) -> list[str]:
        """Detached: log to container.log, and with --rm remove the container once it exits."""
        from minirun.runtime.spawn import monitor_argv

        detached = log_fds[0] >= 0
        on_exit = ([sys.executable, "-m", "minirun", "--root", str(self.root), "rm", "--force",
                    record.id] if detached and record.state.auto_remove else None)
        return monitor_argv(record.id, str(record.dir / "exit.json"), oom_file,
                            str(record.dir / "container.log"), log_fds, on_exit,
                            events_file=str(events.path(self.root)),
                            event_attrs={"image": record.state.image, "name": record.name})

    def run(self, opts: RunOptions, **start_args) -> Started:
        record = self.create(opts)
        try:
            return self.start(record, attach=not opts.detach, **start_args)
        except BaseException:
            if opts.auto_remove:
                self.remove(record, force=True)
            raise

    # -- signals, stop, wait --------------------------------------------------------------
    def kill(self, ref: str | ContainerRecord, sig: int = SIGKILL) -> ContainerRecord:
        record = ref if isinstance(ref, ContainerRecord) else self.store.get(ref)
        record.require("kill")
        self._event("kill", record, signal=int(sig))
        _signal(record, sig)
        return record

    def stop(self, ref: str | ContainerRecord, timeout: float = 10.0) -> ContainerRecord:
        """SIGTERM (or the image's StopSignal), then SIGKILL after `timeout` seconds."""
        record = ref if isinstance(ref, ContainerRecord) else self.store.get(ref)
        if record.status() != "running":
            return record                           # stopping a stopped container is not an error
        annotations = record.spec().get("annotations", {})
        sig = procfs.signal_number(annotations.get("org.opencontainers.image.stopSignal", "SIGTERM"))
        self._event("kill", record, signal=sig)
        _signal(record, sig)
        faults.point("stop:signalled")
        if not self.wait_exit(record, timeout):
            self._event("kill", record, signal=int(SIGKILL))
            _signal(record, SIGKILL)
            faults.point("stop:killed")
            self.wait_exit(record, 10.0)
        self._event("stop", record)
        return record

    def wait_exit(self, record: ContainerRecord, timeout: float | None = None) -> bool:
        """Wait until the process has exited and the monitor has recorded it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pid = record.state.pid
        if pid and record.is_running():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not procfs.wait_exited(pid, remaining):
                return False
        # the monitor writes exit.json right after reaping; give it a moment
        while not (record.dir / "exit.json").exists():
            if not procfs.is_alive(record.state.monitor_pid, procfs.start_time(record.state.monitor_pid or 0)):
                break
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def wait(self, ref: str | ContainerRecord) -> int:
        """`docker wait`: block until the container exits; its exit code."""
        record = ref if isinstance(ref, ContainerRecord) else self.store.get(ref)
        self.wait_exit(record)
        _reap_if_ours(record.state.monitor_pid)
        return record.exit_code()

    # -- remove -----------------------------------------------------------------------------
    def remove(self, ref: str | ContainerRecord, force: bool = False) -> str:
        record = ref if isinstance(ref, ContainerRecord) else self.store.get(ref)
        with self._phase("remove"), record.locked():
            status = record.status()
            if status == "running":
                if not force:
                    raise InvalidTransition(
                        f"cannot remove container {record.name}: it is running (stop it first, or use --force)")
                self._event("kill", record, signal=int(SIGKILL))
                _signal(record, SIGKILL)
                self.wait_exit(record, 10.0)
            self.cgroups.open(f"minirun/{record.id}", look=False).destroy()
            faults.point("rm:cgroup-destroyed")
            _reap_if_ours(record.state.monitor_pid)
            self._release_network(record)
            self.store.forget(record)
            self._event("destroy", record)
        return record.name

    def _release_network(self, record: ContainerRecord) -> None:
        """Veths, rules, ports, leases and hosts entries (minirun/net/container.py)."""
        if (record.dir / "network.json").exists():
            from minirun.net import container as net

            net.release(self.root, record)

    def remove_image(self, ref: str) -> list[str]:
        """`image rm`, refused while any container (running or not) was made from the image:
        its root is an overlay of the image's layers, which must outlive it."""
        from minirun.errors import ImageInUse

        image = self.images.get(ref)
        users = [r.name for r in self.store.list() if r.state.image_id == image.id]
        if users:
            raise ImageInUse(f"image {ref} is used by container {users[0]}"
                             + (f" and {len(users) - 1} more" if len(users) > 1 else "")
                             + ": remove the container first")
        removed = self.images.remove(ref)
        from minirun.runtime import userns

        userns.prune_copies(self.root / "cache" / "idmap", self.images.layers_dir)
        return removed

    def prune(self) -> list[str]:
        """Remove every container that is not running."""
        removed = []
        for record in self.store.list():
            if record.status() != "running":
                with lean.suppress(ContainerNotFound, InvalidTransition):
                    removed.append(self.remove(record))
        return removed

    # -- exec -------------------------------------------------------------------------------
    def exec(self, ref: str | ContainerRecord, args: list[str], *, env: list[str] = (),
             workdir: str | None = None, user: str | None = None, tty: bool = False,
             interactive: bool = False, console: tuple[int, int] = (0, 0)) -> ExecProcess:
        from minirun import spec as oci
        from minirun.runtime import plan, spawn
        from minirun.runtime.options import resolve_user

        with self._phase("container lookup"):
            record = ref if isinstance(ref, ContainerRecord) else self.store.get(ref)
            record.require("exec")
            spec = record.spec()
        if not args:
            raise MinirunError("exec needs a command")
        proc = dict(spec["process"], args=list(args), terminal=tty,
                    env=oci.merge_env(spec["process"].get("env", []), list(env)),
                    cwd=workdir or spec["process"].get("cwd", "/"))
        if user:
            with self._phase("user lookup"):
                image = self.images.get(record.state.image_id)
                proc["user"] = resolve_user(user, [record.dir / "upper", *reversed(image.layers)])
        ns_types = {n["type"] for n in spec["linux"].get("namespaces", [])}
        warm.start()
        with self._phase("cgroup open"):
            procs = self.cgroups.open(f"minirun/{record.id}").procs_files()
        with self._phase("seccomp program"):
            bpf = plan.seccomp_program(spec, self.seccomp_cache)
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            child, tty_master = spawn.enter_process(
                record.state.pid, ns_types, procs, proc,
                stdio=(0 if interactive else devnull, 1, 2), console=console,
                seccomp_bpf=bpf, setgroups=not plan.setgroups_denied(spec), tracer=self.tracer)
        finally:
            os.close(devnull)
            warm.linger()
        # Docker names the command in the action: "exec_start: sh -c date"
        self._event("exec_start: " + " ".join(args), record, execID=str(child))
        return ExecProcess(child, tty_master)

    # -- limits, processes, inspect --------------------------------------------------------
    def update(self, ref: str | ContainerRecord, changes: dict[str, Any]) -> ContainerRecord:
        """Change limits live (vertical scaling). `changes` is an OCI linux.resources object."""
        from minirun.runtime.cgroups import Resources

        record = ref if isinstance(ref, ContainerRecord) else self.store.get(ref)
        with record.locked():
            record.require("update")
            spec = record.spec()
            res = spec["linux"].setdefault("resources", {})
            for key, value in changes.items():
                res.setdefault(key, {}).update(value)
            if record.status() == "running":
                self.cgroups.open(f"minirun/{record.id}").apply(Resources.from_oci(changes))
            record.save_spec(spec)
        return record

    def top(self, ref: str | ContainerRecord) -> list[dict]:
        record = ref if isinstance(ref, ContainerRecord) else self.store.get(ref)
        record.require("top")
        pids = self.cgroups.open(f"minirun/{record.id}").pids()
        if not pids and record.state.pid:         # no cgroup (rootless): its pid namespace
            pids = procfs.in_pid_namespace(record.state.pid)
        infos = [procfs.process_info(p) for p in sorted(pids)]
        return [i for i in infos if i]

    def inspect(self, ref: str | ContainerRecord) -> dict[str, Any]:
        """Docker-shaped inspect output: config, state, limits; "Security" is the effective
        isolation (capabilities, filter, paths, devices) read back from the spec."""
        from minirun.runtime import security

        record = ref if isinstance(ref, ContainerRecord) else self.store.get(ref)
        spec = record.spec()
        st = record.state
        status = record.status()
        exit_rec = record.exit_record() or {}
        proc = spec["process"]
        res = spec["linux"].get("resources", {})
        cpu = res.get("cpu", {})
        mounts = [m for m in spec.get("mounts", []) if m.get("type") == "bind"
                  and not m["destination"].startswith(("/etc/host", "/etc/resolv", "/dev/"))]
        return {
            "Id": record.id,
            "Name": record.name,
            "Created": st.created,
            "Path": proc["args"][0],
            "Args": proc["args"][1:],
            "Image": st.image_id,
            "ImageName": st.image,
            "State": {
                "Status": status,
                "Running": status == "running",
                "Pid": st.pid if status == "running" else 0,
                "ExitCode": exit_rec.get("exit_code", 0) if status == "exited" else 0,
                "OOMKilled": bool(exit_rec.get("oom_killed", False)),
                "StartedAt": st.started_at,
                "FinishedAt": exit_rec.get("finished_at"),
                "Error": st.error,
            },
            "Config": {
                "Hostname": spec.get("hostname"),
                "User": f"{proc['user'].get('uid', 0)}:{proc['user'].get('gid', 0)}",
                "Env": proc.get("env", []),
                "Cmd": proc["args"],
                "WorkingDir": proc.get("cwd", "/"),
                "Tty": proc.get("terminal", False),
            },
            "HostConfig": {
                "Memory": res.get("memory", {}).get("limit", 0),
                "MemorySwap": res.get("memory", {}).get("swap", 0),
                "NanoCpus": int(cpu["quota"] * 1e9 / cpu["period"]) if cpu.get("quota") else 0,
                "CpuQuota": cpu.get("quota", 0),
                "CpuPeriod": cpu.get("period", 0),
                "CpuShares": cpu.get("shares", 0),
                "CpusetCpus": cpu.get("cpus", ""),
                "PidsLimit": res.get("pids", {}).get("limit", 0),
                "ReadonlyRootfs": spec["root"].get("readonly", False),
                "Binds": [f"{m['source']}:{m['destination']}" + (":ro" if "ro" in m.get("options", []) else "")
                          for m in mounts],
                "AutoRemove": st.auto_remove,
                "Init": proc["args"][0] == "/dev/init",
                "SecurityOpt": RunOptions.security_opt_of(spec),
                **security.host_config(spec),
                "NetworkMode": self._network_mode(record, spec),
                "PortBindings": self._port_bindings(record),
            },
            "NetworkSettings": self._network_settings(record),
            "Security": security.effective(spec),
            "LogPath": str(record.dir / "container.log"),
        }

    def _network_mode(self, record: ContainerRecord, spec: dict) -> str:
        if not any(n["type"] == "network" for n in spec["linux"]["namespaces"]):
            return "host"
        from minirun.net.etcfiles import load_info

        info = load_info(record.dir)
        return info["mode"] if info else "none"

    def _network_settings(self, record: ContainerRecord) -> dict:
        if not (record.dir / "network.json").exists():
            return {"Networks": {}, "Ports": {}}
        from minirun.net import container as net

        return net.settings_of(self.root, record)

    def _port_bindings(self, record: ContainerRecord) -> dict:
        from minirun.net.etcfiles import load_info

        info = load_info(record.dir) or {}
        out: dict[str, list] = {}
        for p in info.get("ports", []):
            out.setdefault(f"{p['container_port']}/{p['proto']}", []).append(
                {"HostIp": p["host_ip"], "HostPort": str(p["host_port"] or "")})
        return out

    def ports(self, ref: str | ContainerRecord) -> list[dict]:
        """`minirun port`: the published ports, as claimed at the last start."""
        record = ref if isinstance(ref, ContainerRecord) else self.store.get(ref)
        from minirun.net.etcfiles import load_info

        info = load_info(record.dir) or {}
        return list(info.get("published", []))


def _io_devices(root: Path, spec: dict) -> list[str]:
    """The disks a container writes to: the data root's (its overlay's upper layer) and its
    bind mounts' sources'; `stats` counts its block I/O there (Resources.io_accounting)."""
    from minirun.runtime.cgroups import block_devices

    return block_devices([root, *(m["source"] for m in spec.get("mounts", []) if m.get("type") == "bind")])


def _wire_stdio(detached: bool, interactive: bool, fds: list[int]):
    """The container's stdio (in, out, err), and the read ends the monitor logs from (or -1).
    Every fd opened here is appended to `fds`, the caller's to close once the child has them."""
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    fds.append(devnull)
    if not detached:
        return (0 if interactive else devnull, 1, 2), (-1, -1)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    fds += [out_r, out_w, err_r, err_w]
    return (devnull, out_w, err_w), (out_r, err_r)



def _signal(record: ContainerRecord, sig: int) -> None:
    """Signal the container's PID 1, if it is still the process the record names."""
    procfs.send_signal(record.state.pid, record.state.pid_start, sig)


def _reap_if_ours(monitor_pid: int | None, timeout: float = 1.0) -> None:
    """A process that starts detached containers (a worker) is their monitors' parent: collect
    the monitor, so no zombie is left behind. Callers come here once the container has exited,
    and its monitor ends right after it has recorded that: if it has not ended yet, give it
    `timeout` (a WNOHANG alone lost that race, leaving zombies). Not our child: no-op."""
    if not monitor_pid:
        return
    try:
        if os.waitpid(monitor_pid, os.WNOHANG)[0]:
            return
    except ChildProcessError:
        return                  # not ours (started by another process), or already collected
    procfs.wait_exited(monitor_pid, timeout)
    with lean.suppress(ChildProcessError):
        os.waitpid(monitor_pid, os.WNOHANG)
