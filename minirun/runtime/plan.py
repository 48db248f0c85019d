"""Turn an OCI spec into the flat struct mr_plan the native child executes.

Policy lives here, in Python: which namespaces, which mounts in which order, which devices,
which capabilities. The C side (c_ext/spawn.c) only carries the plan out. Every C string and
array is allocated here with cffi and kept alive by the NativePlan until the call returns.
"""

from __future__ import annotations

import os
import stat

from minirun import spec as oci
from minirun._native import ffi, lib
from minirun.errors import SpecError
from minirun.paths import LIBEXEC
from minirun.records import field, record

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

CLONE_FLAGS = {
    "pid": 0x20000000, "network": 0x40000000, "mount": 0x00020000, "ipc": 0x08000000,
    "uts": 0x04000000, "user": 0x10000000, "time": 0x00000080,
}

# The limits process.rlimits may name (setrlimit(2)), numbered as <sys/resource.h> numbers them
# (read from the C extension, which is loaded anyway: the resource module would cost ~0.2 ms)
RLIMIT_NAMES = ("CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS",
                "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME")
RLIMITS = {f"RLIMIT_{name}": getattr(lib, f"RLIMIT_{name}") for name in RLIMIT_NAMES}

# The /dev entries every container has beside the devices (runc's defaults).
DEV_SYMLINKS = [
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
]



def _kcore_link() -> list[tuple[str, str]]:
    """/dev/core -> /proc/kcore where the kernel has one (CONFIG_PROC_KCORE), as runc makes it:
    the same /dev as under runc on such a host (the default masked paths hide what it names)."""
    return [("/proc/kcore", "/dev/core")] if os.path.exists("/proc/kcore") else []


@record
class Launch:
    """What one start adds to the spec: where the root is, how stdio and the monitor are wired."""

    rootfs: str                          # host path of the root mount point
    rootfs_fstype: str | None = None     # "overlay", or None to bind-mount rootfs onto itself
    rootfs_data: str | None = None
    bundle: str = "/"                    # relative bind sources resolve against it
    cgroup_procs_fds: list[int] = field(default_factory=list)
    monitor_argv: list[str] | None = None
    monitor_fds: tuple[int, int] = (-1, -1)
    stdio: tuple[int, int, int] = (0, 1, 2)
    sync_fd: int = -1
    parent_sync_fd: int = -1             # our end of the socketpair: the child closes its copy
    exec_fifo_fd: int = -1
    console: tuple[int, int] = (0, 0)
    trace: bool = False
    hooks_sync: bool = False             # stop before pivot_root for the OCI hooks (sync point 6b)
    share_memory: bool = False           # no GO (3'): cloned like posix_spawn, in our memory (spawn.c)
    host_mounts_allowed: bool = False    # no mount namespace: mount on the host under rootfs (OCI)
    set_caps: bool = True
    cache_dir: Path | None = None        # where built seccomp programs are kept between runs
    extra_mounts: list[dict[str, Any]] = field(default_factory=list)
    preserve_fds: int = 0                # keep fds 3 .. 3+N-1 open across execve (OCI --preserve-fds)
    cgroup_views: list[tuple[str, str]] = field(default_factory=list)  # Cgroup.views(), for "cgroup" mounts
    idmap_layers: list[tuple[int, str]] = field(default_factory=list)  # (idmapped mount fd, layer path)
    idmap_binds: dict[int, int] = field(default_factory=dict)  # spec mounts index -> idmapped mount fd


class NativePlan:
    """A struct mr_plan and everything it points to, plus names for the error messages."""

    def __init__(self):
        self._keep: list[Any] = []
        self.plan = ffi.new("struct mr_plan *")
        self.fsop_names: list[str] = []
        self.masked: list[str] = []
        self.readonly: list[str] = []
        self.rlimit_names: list[str] = []
        self.sysctl_names: list[str] = []
        self.joined_names: list[str] = []
        self.fsop_labels: list[str] = []   # "mount proc on /proc", "mknod /dev/null": trace rows
        self.fds: list[int] = []         # namespace files to join: closed by close() after spawn
        self.program = ""

    def close(self) -> None:
        """Close the fds the plan holds (the child has its own copies until execve)."""
        while self.fds:
            os.close(self.fds.pop())

    def cstr(self, value: str | bytes | None):
        if value is None:
            return ffi.NULL
        buf = ffi.new("char[]", value.encode() if isinstance(value, str) else value)
        self._keep.append(buf)
        return buf

    def cstr_array(self, values: list[str]):
        items = [self.cstr(v) for v in values] + [ffi.NULL]
        arr = ffi.new("char *[]", items)
        self._keep.append(arr)
        return arr

    def array(self, ctype: str, values: list):
        arr = ffi.new(f"{ctype}[]", values or [0])
        self._keep.append(arr)
        return arr

    def describe(self, step: str, index: int, text: str) -> str:
        """The object a failed step was working on, for `mount proc on /proc: ...`."""
        lists = {"mount": self.fsop_names, "create mount point": self.fsop_names,
                 "mknod": self.fsop_names, "symlink": self.fsop_names,
                 "mask path": self.masked, "make path read-only": self.readonly,
                 "setrlimit": self.rlimit_names, "write sysctl": self.sysctl_names,
                 "join namespace": self.joined_names}
        names = lists.get(step)
        if names is not None and 0 <= index < len(names):
            return f"{step} {names[index]}" + (f" ({text})" if text and step != "mount" and text not in names[index] else "")
        return f"{step} {text}" if text else step


def build(spec: dict[str, Any], launch: Launch) -> NativePlan:
    np = NativePlan()
    p = np.plan
    linux = spec.get("linux", {})
    proc = spec["process"]

    if not any(ns["type"] == "mount" for ns in linux.get("namespaces", [])):
        # no mount namespace: pivot_root would move the root of every process on the host, so
        # the child chroots, and its mounts land on the host under the root (only a bind of a
        # bundle's root can have that: the caller journals it and detaches it on delete)
        if launch.rootfs_fstype is not None or not launch.host_mounts_allowed:
            raise SpecError("linux/namespaces", "needs a mount namespace (new, or joined by path)")
        p.host_mount_ns = 1
    flags = 0
    for ns in linux.get("namespaces", []):
        if ns.get("path"):
            continue                 # joined, not made: _join_namespaces
        if ns["type"] == "cgroup":
            p.unshare_cgroupns = 1   # after joining the cgroup, so the container sees it as "/"
        else:
            flags |= CLONE_FLAGS[ns["type"]]
    if flags & CLONE_FLAGS["user"] and not linux.get("uidMappings"):
        raise SpecError("linux/uidMappings", "a user namespace needs uid and gid maps")
    p.clone_flags = flags
    _join_namespaces(np, spec)

    if launch.monitor_argv:
        p.monitor_path = np.cstr(launch.monitor_argv[0])
        p.monitor_argv = np.cstr_array(launch.monitor_argv)
    p.monitor_keep_fds = list(launch.monitor_fds)
    p.cgroup_procs_fds = np.array("int", launch.cgroup_procs_fds)
    p.n_cgroup_procs_fds = len(launch.cgroup_procs_fds)

    p.rootfs = np.cstr(launch.rootfs)
    p.rootfs_fstype = np.cstr(launch.rootfs_fstype)
    p.rootfs_data = np.cstr(launch.rootfs_data)
    p.idmap_fds = np.array("int", [fd for fd, _ in launch.idmap_layers])
    p.idmap_targets = np.cstr_array([path for _, path in launch.idmap_layers])
    p.n_idmap = len(launch.idmap_layers)
    # "/" is made private (or slave) before the root is built, so nothing propagates to the host;
    # the spec's rootfsPropagation is applied again to the new "/" after pivot_root, the only
    # point where shared and unbindable can be (fs.c, spawn.c)
    wanted = oci.propagation_flags(linux.get("rootfsPropagation") or "rprivate")
    late = oci.MS["SHARED"] | oci.MS["UNBINDABLE"]
    p.root_propagation = oci.MS["REC"] | oci.MS["PRIVATE"] if wanted & late else wanted
    p.root_propagation_after = wanted if linux.get("rootfsPropagation") else 0
    p.rootfs_readonly = int(bool(spec["root"].get("readonly")))
    _fsops(np, spec, launch)
    np.masked = list(linux.get("maskedPaths", []))
    np.readonly = list(linux.get("readonlyPaths", []))
    p.masked_paths = np.cstr_array(np.masked)
    p.n_masked_paths = len(np.masked)
    p.readonly_paths = np.cstr_array(np.readonly)
    p.n_readonly_paths = len(np.readonly)

    sysctl = linux.get("sysctl", {})
    np.sysctl_names = [f"{name}={value}" for name, value in sysctl.items()]
    p.sysctl_paths = np.cstr_array([oci.sysctl_path(name) for name in sysctl])
    p.sysctl_values = np.cstr_array(list(sysctl.values()))
    p.n_sysctls = len(sysctl)

    p.loopback_up = int(bool(flags & CLONE_FLAGS["network"]))
    p.hostname = np.cstr(spec.get("hostname") or None)
    p.domainname = np.cstr(spec.get("domainname") or None)
    _rlimits(np, proc.get("rlimits", []))
    if "oomScoreAdj" in proc:
        p.oom_score_adj = np.cstr(str(int(proc["oomScoreAdj"])))
    p.setgroups_denied = int(setgroups_denied(spec))
    set_process(np, p.process, proc, stdio=launch.stdio, console=launch.console,
                set_caps=launch.set_caps, seccomp_bpf=seccomp_program(spec, launch.cache_dir),
                setgroups=not p.setgroups_denied)
    p.process.preserve_fds = launch.preserve_fds
    p.sync_fd = launch.sync_fd
    p.parent_sync_fd = launch.parent_sync_fd
    p.exec_fifo_fd = launch.exec_fifo_fd
    p.trace = int(launch.trace)
    p.hooks_sync = int(launch.hooks_sync)
    p.share_memory = int(launch.share_memory)
    return np


# Namespaces a container may join by path, and their files under /proc/PID/ns. A mount namespace
# is refused: the root would be built (mounted, pivoted) inside the other container's namespace,
# changing what that container sees; a user namespace would need the maps and ids reworked.
NS_FILE = {"network": "net", "ipc": "ipc", "uts": "uts", "cgroup": "cgroup", "pid": "pid",
           "mount": "mnt"}
NS_GET_NSTYPE = 0xB703           # ioctl_ns(2): _IO(0xb7, 0x3), the CLONE_NEW* type of an nsfs file
CLONE_NEWCGROUP = 0x02000000
NS_TYPE = {**{t: CLONE_FLAGS[t] for t in ("network", "ipc", "uts", "pid", "mount")},
           "cgroup": CLONE_NEWCGROUP}


def _join_namespaces(np: NativePlan, spec: dict[str, Any]) -> None:
    """Open each linux.namespaces[].path, check it is a namespace of the type it is listed as, and
    put it in the plan (pid: joined by the cloner; the rest: by the child, first thing). Joining
    the host's own UTS, IPC or network namespace is refused when the spec would change it
    (hostname, domainname, sysctls): that would change the host, as runc also refuses."""
    linux = spec.get("linux", {})
    fds, types = [], []
    np.plan.join_pid_fd = -1
    try:
        for i, ns in enumerate(linux.get("namespaces", [])):
            if not ns.get("path"):
                continue
            where, kind = f"linux/namespaces/{i}/path", ns["type"]
            if kind not in NS_FILE:
                raise SpecError(where, f"joining an existing {kind} namespace is not supported "
                                       "(only network, ipc, uts, cgroup, pid and mount)")
            fd = _open_namespace(ns["path"], kind, where)
            np.fds.append(fd)
            _refuse_host_changes(spec, kind, fd, where)
            if kind == "pid":
                np.plan.join_pid_fd = fd
            else:
                fds.append(fd)
                types.append(NS_TYPE[kind])
                np.joined_names.append(f"{kind} {ns['path']}")
    except BaseException:
        np.close()
        raise
    np.plan.join_ns_fds = np.array("int", fds)
    np.plan.join_ns_types = np.array("int", types)
    np.plan.n_join_ns = len(fds)


def _open_namespace(path: str, kind: str, where: str) -> int:
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise SpecError(where, f"{path}: {os.strerror(e.errno or 0)}") from None
    try:
        found = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        os.close(fd)
        raise SpecError(where, f"{path} is not a namespace file (like /proc/PID/ns/{NS_FILE[kind]} "
                               "or /run/netns/NAME)") from None
    if found != NS_TYPE[kind]:
        os.close(fd)
        actual = next((k for k, v in NS_TYPE.items() if v == found), "another")
        raise SpecError(where, f"{path} is a {actual} namespace, not a {kind} one")
    return fd


def _refuse_host_changes(spec: dict[str, Any], kind: str, fd: int, where: str) -> None:
    own = os.stat(f"/proc/self/ns/{NS_FILE[kind]}")
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino):
        return
    if kind == "mount":
        # the container's root is pivoted in the namespace it joins, and pivot_root(2) moves the
        # root of every process there: in ours, that would be the host's own processes
        raise SpecError(where, "is the host's own mount namespace: building the container's "
                               "root in it would change the root of every process on the host")
    changes = {
        "uts": [k for k in ("hostname", "domainname") if spec.get(k)],
        "network": [f"linux/sysctl/{k}" for k in spec.get("linux", {}).get("sysctl", {})
                    if k.startswith("net.")],
        "ipc": [f"linux/sysctl/{k}" for k in spec.get("linux", {}).get("sysctl", {})
                if not k.startswith("net.")],
    }.get(kind, [])
    if changes:
        raise SpecError(where, f"is the host's own {kind} namespace, and {changes[0]} would change "
                               "the host")


def seccomp_program(spec: dict[str, Any], cache_dir: Path | None = None) -> bytes | None:
    """The container's seccomp filter as BPF bytes (runtime/seccomp.py), or None: unconfined.
    Built programs are cached in memory, and in `cache_dir` when one is given."""
    profile = spec.get("linux", {}).get("seccomp")
    if not profile:
        return None
    from minirun.runtime import seccomp

    return seccomp.program(profile, cache_dir)


_trampoline: int | None = None


def exec_trampoline() -> int:
    """A sealed in-memory copy of minirun-exec (c_ext/exec.c), which every container process
    execs right before its program, so that /proc/self/exe inside is never the host's Python
    (CVE-2019-5736). Made once per process and kept open (close-on-exec), like a cache."""
    global _trampoline
    if _trampoline is None:
        import fcntl

        fd = os.memfd_create("minirun-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        src = os.open(os.path.join(LIBEXEC, "minirun-exec"), os.O_RDONLY | os.O_CLOEXEC)
        try:                         # copied by the kernel (10 KB: c_ext/nolibc.h)
            size, done = os.fstat(src).st_size, 0
            while done < size:
                done += os.sendfile(fd, src, done, size - done)
        except BaseException:
            os.close(fd)
            raise
        finally:
            os.close(src)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                    | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
        _trampoline = fd
    return _trampoline


def setgroups_denied(spec: dict[str, Any]) -> bool:
    """Rootless with the one-id map: /proc/PID/setgroups says "deny" (runtime/rootless.py)."""
    if not spec.get("linux", {}).get("uidMappings"):
        return False                # no user namespace of ours, so nothing denies setgroups
    from minirun.runtime import rootless

    return rootless.is_rootless(spec) and rootless.single_id(spec)


def set_process(np: NativePlan, pr, proc: dict[str, Any], *, stdio: tuple[int, int, int],
                console: tuple[int, int], set_caps: bool = True,
                seccomp_bpf: bytes | None = None, setgroups: bool = True) -> None:
    """Fill a struct mr_process from the spec's `process`: the same for the first process and
    for `exec` (user, groups, umask, capabilities, no_new_privs, seccomp filter, cwd, program,
    stdio, terminal)."""
    user = proc.get("user", {})
    pr.uid = user.get("uid", 0)
    pr.gid = user.get("gid", 0)
    groups = user.get("additionalGids", [])
    pr.groups = np.array("uint32_t", groups)
    pr.n_groups = len(groups) if setgroups else -1    # -1: leave them (rootless.single_id)
    pr.umask = user["umask"] if user.get("umask") is not None else -1
    caps = proc.get("capabilities", {})
    host = oci.host_cap_bounding()
    pr.set_caps = int(set_caps)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        pr.cap_last = min(len(oci.CAPABILITIES) - 1, int(f.read()))
    # We cannot hand out what we do not hold (CAP_SYS_RESOURCE is outside this VM's bounding
    # set): asked for, it fails here, naming it, as runc fails ("unable to apply caps") and
    # crun; dropping it silently ran the program without a capability its config relies on.
    # Ambient ones are the exception: the kernel raises only what is also permitted and
    # inheritable, and runc skips what it cannot raise (set_ids_and_caps in process.c).
    for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        mask = oci.cap_mask(caps.get(kind, []), f"process/capabilities/{kind}")
        if mask & ~host and kind != "ambient":
            missing = [name for name, bit in oci.CAP_NUMBER.items() if (mask & ~host) >> bit & 1]
            raise SpecError(f"process/capabilities/{kind}",
                            f"{', '.join(missing)} not in the runtime's bounding set (CapBnd in "
                            f"/proc/self/status): no process it starts can have "
                            f"{'it' if len(missing) == 1 else 'them'}")
        setattr(pr, f"cap_{kind}", mask & host)
    pr.no_new_privs = int(bool(proc.get("noNewPrivileges")))
    if seccomp_bpf:                  # struct sock_filter[]: 8 bytes an instruction
        buf = ffi.new("char[]", seccomp_bpf)
        np._keep.append(buf)
        pr.seccomp_filter = buf
        pr.seccomp_len = len(seccomp_bpf) // 8
    env = proc.get("env", [])
    args = proc["args"]
    np.program = args[0]
    pr.cwd = np.cstr(proc.get("cwd", "/"))
    pr.path = np.cstr(args[0])
    pr.search_path = np.cstr(oci.env_value(env, "PATH", oci.DEFAULT_PATH))
    pr.argv = np.cstr_array(args)
    pr.envp = np.cstr_array(env)
    pr.stdio = list(stdio)
    pr.terminal = int(bool(proc.get("terminal")))
    size = proc.get("consoleSize") or {}
    pr.console_rows = size.get("height", console[0])
    pr.console_cols = size.get("width", console[1])
    pr.preserve_fds = 0
    pr.exec_fd = exec_trampoline()


def _cgroup_mount(m: dict[str, Any], views: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """A mount of type "cgroup" as runc makes it: the container's own group in each hierarchy,
    bound read-only (by default) under a tmpfs at the destination, since mounting the hierarchies
    afresh is refused (EBUSY) on hybrid hosts and would show other groups' paths. On a host with
    cgroup2 alone, the one group directory is bound at the destination itself."""
    options = [o for o in m.get("options", []) if o not in ("rbind", "bind")]
    dest = m["destination"].rstrip("/") or "/"
    # "group": a directory the caller makes before GO, which may not exist yet (minirun-oci
    # makes the cgroup after the clone): _fsops knows its kind without looking
    if len(views) == 1 and views[0][0] == "":
        return [{"destination": dest, "type": "bind", "source": views[0][1], "group": True,
                 "options": ["rbind", *options]}]
    out = [{"destination": dest, "type": "tmpfs", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "mode=755"]}]
    for name, directory in views:
        out.append({"destination": f"{dest}/{name}", "type": "bind", "source": directory,
                    "group": True, "options": ["rbind", *options]})
    if "ro" in options:
        out.append({"destination": dest, "type": "remount", "options": ["ro", "nosuid", "noexec", "nodev"]})
    return out


def _fsops(np: NativePlan, spec: dict[str, Any], launch: Launch) -> None:
    ops: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    idmapped: dict[int, int] = {}              # index in `mounts` -> fd of its idmapped tree
    for i, m in enumerate([*spec.get("mounts", []), *launch.extra_mounts]):
        if i in launch.idmap_binds:
            idmapped[len(mounts)] = launch.idmap_binds[i]
        mounts += _cgroup_mount(m, launch.cgroup_views) if m.get("type") == "cgroup" else [m]
    for j, m in enumerate(mounts):
        options = list(m.get("options", []))
        flags, propagation, data = oci.mount_options(options)
        is_bind = m.get("type") == "bind" or flags & oci.MS["BIND"]
        source = m.get("source", "")
        op = {"kind": lib.MR_OP_MOUNT, "target": m["destination"], "flags": flags,
              "propagation": propagation, "data": data or None}
        if is_bind:
            source = os.path.join(launch.bundle, source) if not source.startswith("/") else source
            try:
                is_dir = m.get("group") or stat.S_ISDIR(os.stat(source).st_mode)
            except OSError as e:
                raise SpecError("mounts", f"bind source {source}: {os.strerror(e.errno)}") from None
            op.update(source=source, fstype=None, flags=flags | oci.MS["BIND"],
                      target_is_file=not is_dir)
            name = f"{source} on {m['destination']}"
            if j in idmapped:                    # attached, not mounted: userns.idmapped_binds
                op.update(kind=lib.MR_OP_MOVE_MOUNT, fd=idmapped[j])
                name += " (idmapped)"
        elif m.get("type") == "remount":               # only from _cgroup_mount: flags, no data
            op.update(source=None, fstype=None, flags=flags | oci.MS["REMOUNT"])
            name = f"remount of {m['destination']}"
        else:
            op.update(source=source or m.get("type"), fstype=m.get("type"))
            name = f"{m.get('type')} on {m['destination']}"
        ops.append(op)
        np.fsop_names.append(name)
    in_userns = any(n["type"] == "user" for n in spec.get("linux", {}).get("namespaces", []))
    hosts = _device_hosts(spec) if in_userns else {}
    dev_mounted = any(m["destination"] == "/dev" for m in spec.get("mounts", []))
    for d in spec.get("linux", {}).get("devices", []):
        if dev_mounted and d["path"] == "/dev/ptmx":
            continue     # the pts/ptmx link below replaces it, as in runc (privileged lists it)
        if in_userns:    # mknod(2) is not allowed in a user namespace: bind the host's node
            source = hosts.get(d["path"], d["path"])
            ops.append({"kind": lib.MR_OP_MOUNT, "target": d["path"], "source": source,
                        "flags": oci.MS["BIND"], "propagation": 0, "target_is_file": True})
            np.fsop_names.append(f"{source} on {d['path']}")
            continue
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.get("type", "c")]
        ops.append({"kind": lib.MR_OP_MKNOD, "target": d["path"], "mode": kind | d.get("fileMode", 0o666),
                    "major": d.get("major", 0), "minor": d.get("minor", 0),
                    "uid": d.get("uid", 0), "gid": d.get("gid", 0)})
        np.fsop_names.append(d["path"])
    if dev_mounted:
        listed = {d["path"] for d in spec.get("linux", {}).get("devices", [])} - {"/dev/ptmx"}
        for source, target in DEV_SYMLINKS + _kcore_link():
            if target in listed:
                continue     # a device node of that name is there already (runc keeps it too)
            ops.append({"kind": lib.MR_OP_SYMLINK, "source": source, "target": target})
            np.fsop_names.append(f"{target} -> {source}")
    verbs = {lib.MR_OP_MOUNT: "mount", lib.MR_OP_MKNOD: "mknod", lib.MR_OP_SYMLINK: "symlink",
             lib.MR_OP_MKDIR: "mkdir", lib.MR_OP_MOVE_MOUNT: "move_mount"}
    np.fsop_labels = [f"{verbs[op['kind']]} {name}" for op, name in zip(ops, np.fsop_names, strict=True)]
    arr = ffi.new("struct mr_fsop[]", max(len(ops), 1))
    np._keep.append(arr)
    for i, op in enumerate(ops):
        arr[i].kind = op["kind"]
        arr[i].source = np.cstr(op.get("source"))
        arr[i].target = np.cstr(op["target"])
        arr[i].fstype = np.cstr(op.get("fstype"))
        arr[i].data = np.cstr(op.get("data"))
        arr[i].flags = op.get("flags", 0)
        arr[i].propagation = op.get("propagation", 0)
        arr[i].mode = op.get("mode", 0)
        arr[i].major = op.get("major", 0)
        arr[i].minor = op.get("minor", 0)
        arr[i].uid = op.get("uid", 0)
        arr[i].gid = op.get("gid", 0)
        arr[i].target_is_file = int(op.get("target_is_file", False))
        arr[i].fd = op.get("fd", -1)
    np.plan.fsops = arr
    np.plan.n_fsops = len(ops)


def _device_hosts(spec: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the --device nodes (runtime/security.py keeps them)."""
    from minirun import lean  # not json: it imports re, and every start comes here

    asked = lean.loads(spec.get("annotations", {}).get("org.minirun.security", "{}"))
    return {text.split(":")[1]: text.split(":")[0] for text in asked.get("devices", [])}


def _rlimits(np: NativePlan, rlimits: list[dict[str, Any]]) -> None:
    arr = ffi.new("struct mr_rlimit[]", max(len(rlimits), 1))
    np._keep.append(arr)
    for i, rl in enumerate(rlimits):
        name = rl.get("type", "")
        if name not in RLIMITS:
            raise SpecError(f"process/rlimits/{i}/type", f"unknown rlimit {name!r}")
        arr[i].resource = RLIMITS[name]
        arr[i].soft = rl.get("soft", 0)
        arr[i].hard = rl.get("hard", 0)
        np.rlimit_names.append(name)
    np.plan.rlimits = arr
    np.plan.n_rlimits = len(rlimits)
