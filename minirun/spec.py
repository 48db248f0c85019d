"""The OCI runtime spec (config.json): the one description of a container.

`minirun run` turns image config + flags into a spec (runtime/options.py); the runtime consumes
specs; the OCI command line (a later issue) reads them from bundles. This module holds the
defaults (Docker's: capabilities, mounts, masked and read-only paths) and the validation of the
subset we support, with errors that name the field by JSON pointer.

Reference: https://github.com/opencontainers/runtime-spec (config.md, config-linux.md).
"""

from __future__ import annotations

import os

from minirun.errors import SpecError

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.2.0"

# capabilities(7): bit numbers. The kernel's own table, so we can build masks for capset(2).
CAPABILITIES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
    "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
    "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME "
    "SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG "
    "WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"
).split()
CAP_NUMBER = {f"CAP_{name}": i for i, name in enumerate(CAPABILITIES)}

# Docker's default set: enough for ordinary programs (chown, bind to :80, setuid to a user),
# nothing that reaches the host (no SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE...).
DEFAULT_CAPS = [
    f"CAP_{c}"
    for c in (
        "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP "
        "NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE"
    ).split()
]

# Paths of the kernel that tell about or act on the host: hidden (masked) or made read-only.
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The devices every container gets (character devices, mode 0666), as in runc and Docker.
DEFAULT_DEVICES = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
]

# seccomp(2): the default filter. A deny-list (unlike Docker's allowlist, see docs/security.md):
# every syscall is allowed except those that reach past the container into the host's kernel
# state, which fail with EPERM as they do in Docker. Names the kernel lacks are skipped.
SECCOMP_DENIED = {
    "mounts and the root": "mount umount umount2 pivot_root fsopen fsmount fsconfig fspick "
                           "move_mount open_tree mount_setattr",
    "namespaces of others": "setns",
    "kernel code": "init_module finit_module delete_module create_module kexec_load "
                   "kexec_file_load bpf uselib",
    "the machine": "reboot swapon swapoff acct quotactl nfsservctl vhangup syslog iopl ioperm",
    "the clocks": "settimeofday clock_settime clock_settime64 clock_adjtime clock_adjtime64 "
                  "adjtimex stime",
    "the kernel keyring (not namespaced)": "keyctl add_key request_key",
    "other processes' memory": "ptrace process_vm_readv process_vm_writev kcmp",
    "file handles (escape a bind mount)": "open_by_handle_at name_to_handle_at",
    "profiling and fault handling": "perf_event_open userfaultfd lookup_dcookie",
}
# clone/unshare flags that make new namespaces: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
# NEWPID, NEWNET (Docker's mask 0x7E020000). One rule per bit: a rule compares an argument once.
CLONE_NEW_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                   0x40000000)
# personality(2) values programs use: PER_LINUX, PER_LINUX32, each with UNAME26, and the query.
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


# What a capability is for, the filter lets through (Docker's "includes": {"caps": [...]}): a
# container given --cap-add SYS_ADMIN can mount, as in Docker; the keyring, userfaultfd, kexec,
# swap and odd personalities stay refused whatever the capabilities.
SECCOMP_ALLOWED_BY_CAP = {
    "CAP_SYS_ADMIN": "mount umount umount2 pivot_root fsopen fsmount fsconfig fspick move_mount "
                     "open_tree mount_setattr setns name_to_handle_at quotactl lookup_dcookie "
                     "perf_event_open bpf syslog",
    "CAP_SYS_BOOT": "reboot",
    "CAP_SYS_MODULE": "init_module finit_module delete_module",
    "CAP_SYS_RAWIO": "iopl ioperm",
    "CAP_SYS_TIME": "settimeofday clock_settime clock_settime64 clock_adjtime clock_adjtime64 "
                    "adjtimex stime",
    "CAP_SYS_PTRACE": "ptrace process_vm_readv process_vm_writev kcmp",
    "CAP_SYS_PACCT": "acct",
    "CAP_DAC_READ_SEARCH": "open_by_handle_at",
    "CAP_SYS_TTY_CONFIG": "vhangup",
    "CAP_SYSLOG": "syslog",
    "CAP_BPF": "bpf",
    "CAP_PERFMON": "perf_event_open",
}


def default_seccomp(caps: list[str] | None = None) -> dict[str, Any]:
    """The default linux.seccomp profile (OCI format) for a container holding `caps` (Docker's
    default set if None); docs/security.md explains each line."""
    held = {c if c.startswith("CAP_") else f"CAP_{c}" for c in (DEFAULT_CAPS if caps is None else caps)}
    allowed = {n for cap in held for n in SECCOMP_ALLOWED_BY_CAP.get(cap, "").split()}
    eperm = {"action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    rules: list[dict[str, Any]] = []
    for names in SECCOMP_DENIED.values():
        denied = [n for n in names.split() if n not in allowed]
        if denied:
            rules.append(dict(eperm, names=denied))
    if "CAP_SYS_ADMIN" not in held:     # new namespaces, as Docker allows them with SYS_ADMIN
        new_ns = [{"index": 0, "value": bit, "valueTwo": bit, "op": "SCMP_CMP_MASKED_EQ"}
                  for bit in CLONE_NEW_FLAGS]
        rules.append(dict(eperm, names=["clone", "unshare"], args=new_ns))
        # clone3 passes its flags in memory a filter cannot read: ENOSYS, and libc falls back to clone
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
    # "none of the allowed personalities", written as single-bit tests (all ORed): a disallowed
    # bit set while bit 31 is clear, or bit 31 set (only the query 0xffffffff) with a bit clear.
    allowed_bits = 0
    for value in PERSONALITY_ALLOWED[:-1]:
        allowed_bits |= value
    bad = [{"index": 0, "value": (1 << b) | 1 << 31, "valueTwo": 1 << b, "op": "SCMP_CMP_MASKED_EQ"}
           for b in range(31) if not allowed_bits >> b & 1]
    bad += [{"index": 0, "value": (1 << b) | 1 << 31, "valueTwo": 1 << 31, "op": "SCMP_CMP_MASKED_EQ"}
            for b in range(31)]
    rules.append(dict(eperm, names=["personality"], args=bad))
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}


# The devices cgroup allowlist (Docker's): deny everything, then allow creating any node (so
# images with device files unpack) but opening only the harmless ones and the terminals.
DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": d["major"], "minor": d["minor"], "access": "rwm"}
      for d in DEFAULT_DEVICES),
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},    # /dev/console
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},    # /dev/ptmx
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},              # /dev/pts/*
]

# sysctl(8) settings that belong to a namespace, so a container may set its own (runc's list):
# the IPC ones need an IPC namespace, net.* a network namespace. The rest of /proc/sys is the
# host's kernel: refused by name.
SYSCTL_IPC = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
              "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
SYSCTL_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.@")


def sysctl_problem(name: str, namespaces: set[str]) -> str | None:
    """Why `name` may not be set in a container with these namespaces, or None if it may."""
    parts = name.split(".")
    if not set(name) <= SYSCTL_NAME_CHARS or len(parts) < 2 or "" in parts:
        return "not a sysctl name (like net.ipv4.ip_forward)"
    if name in SYSCTL_IPC or name.startswith("fs.mqueue."):
        return None if "ipc" in namespaces else "needs the container's own IPC namespace"
    if name.startswith("net."):
        return None if "network" in namespaces else \
            "needs the container's own network namespace (not with --network host)"
    return ("not namespaced: it would change the host's kernel (allowed: kernel.msg*, kernel.sem, "
            "kernel.shm*, fs.mqueue.*, net.*)")


def sysctl_path(name: str) -> str:
    """Where the container's /proc shows a sysctl: net.ipv4.ip_forward -> /proc/sys/net/ipv4/ip_forward."""
    return "/proc/sys/" + name.replace(".", "/")


NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "cgroup", "user", "time")


def default_mounts() -> list[dict[str, Any]]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        # the container's own cgroup, read-only, where programs look for their limits
        # (runtime/plan.py: _cgroup_mount expands it per hierarchy)
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def default_spec() -> dict[str, Any]:
    """A complete spec with Docker's defaults; callers fill in root, args, env, limits."""
    caps = list(DEFAULT_CAPS)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [f"PATH={DEFAULT_PATH}"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": list(caps), "permitted": list(caps),
                "inheritable": [], "ambient": [],
            },
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "minirun",
        "mounts": default_mounts(),
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "devices": [dict(d, fileMode=0o666, uid=0, gid=0) for d in DEFAULT_DEVICES],
            "resources": {"pids": {"limit": DEFAULT_PIDS_LIMIT},
                          "devices": [dict(r) for r in DEFAULT_DEVICE_RULES]},
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "seccomp": default_seccomp(),
        },
    }


# Docker sets no pids limit by default; podman sets 2048. A fork bomb should not take the host.
DEFAULT_PIDS_LIMIT = 2048

# Mount options (mount(8)) that are flags to mount(2) rather than data for the filesystem:
# name -> (set these MS_* bits, clear these).
MS = {
    "RDONLY": 1, "NOSUID": 2, "NODEV": 4, "NOEXEC": 8, "SYNCHRONOUS": 16, "REMOUNT": 32,
    "MANDLOCK": 64, "DIRSYNC": 128, "NOATIME": 1024, "NODIRATIME": 2048, "BIND": 4096,
    "REC": 16384, "UNBINDABLE": 1 << 17, "PRIVATE": 1 << 18, "SLAVE": 1 << 19, "SHARED": 1 << 20,
    "RELATIME": 1 << 21, "STRICTATIME": 1 << 24,
}
_FLAG_OPTIONS = {
    "ro": MS["RDONLY"], "nosuid": MS["NOSUID"], "nodev": MS["NODEV"], "noexec": MS["NOEXEC"],
    "sync": MS["SYNCHRONOUS"], "dirsync": MS["DIRSYNC"], "mand": MS["MANDLOCK"],
    "noatime": MS["NOATIME"], "nodiratime": MS["NODIRATIME"], "relatime": MS["RELATIME"],
    "strictatime": MS["STRICTATIME"], "bind": MS["BIND"], "rbind": MS["BIND"] | MS["REC"],
}
_CLEAR_OPTIONS = {"rw", "suid", "dev", "exec", "async", "nomand", "atime", "diratime",
                  "norelatime", "nostrictatime", "defaults"}
_PROPAGATION = {
    "private": MS["PRIVATE"], "rprivate": MS["PRIVATE"] | MS["REC"],
    "shared": MS["SHARED"], "rshared": MS["SHARED"] | MS["REC"],
    "slave": MS["SLAVE"], "rslave": MS["SLAVE"] | MS["REC"],
    "unbindable": MS["UNBINDABLE"], "runbindable": MS["UNBINDABLE"] | MS["REC"],
}


def mount_options(options: list[str]) -> tuple[int, int, str]:
    """mount(8)-style options -> (MS_* flags, propagation flags, data string for the fs)."""
    flags = propagation = 0
    data = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            flags |= _FLAG_OPTIONS[opt]
        elif opt in _PROPAGATION:
            propagation = _PROPAGATION[opt]
        elif opt in _CLEAR_OPTIONS:
            continue
        else:
            data.append(opt)
    return flags, propagation, ",".join(data)


def propagation_flags(name: str) -> int:
    try:
        return _PROPAGATION[name]
    except KeyError:
        raise SpecError("linux/rootfsPropagation", f"unknown propagation {name!r}") from None


def cap_mask(names: list[str], field: str) -> int:
    mask = 0
    for i, name in enumerate(names):
        key = name if name.startswith("CAP_") else f"CAP_{name}"
        if key.upper() not in CAP_NUMBER:
            raise SpecError(f"{field}/{i}", f"unknown capability {name!r}")
        mask |= 1 << CAP_NUMBER[key.upper()]
    return mask


def _idmapped_mount(m: dict[str, Any], i: int, options: list[str]) -> None:
    """OCI 1.1 idmapped mounts: uidMappings and gidMappings on a bind mount, both given."""
    given = [k for k in ("uidMappings", "gidMappings") if k in m]
    if not given:
        return
    if len(given) == 1:
        missing = ({"uidMappings", "gidMappings"} - set(given)).pop()
        raise SpecError(f"mounts/{i}/{missing}", f"required with {given[0]} (an idmapped mount)")
    if m.get("type") != "bind" and not {"bind", "rbind"} & set(options):
        raise SpecError(f"mounts/{i}/uidMappings", "idmapped mounts are bind mounts here")
    for key in given:
        maps = m[key]
        if not isinstance(maps, list) or not maps:
            raise SpecError(f"mounts/{i}/{key}", "must be a non-empty list")
        for j, e in enumerate(maps):
            if not isinstance(e, dict):
                raise SpecError(f"mounts/{i}/{key}/{j}", "must be an object")
            for f in ("containerID", "hostID", "size"):
                if not isinstance(e.get(f), int) or isinstance(e.get(f), bool) or e[f] < 0 \
                        or e[f] > 0xFFFFFFFF or (f == "size" and e[f] == 0):
                    raise SpecError(f"mounts/{i}/{key}/{j}/{f}", "must be an unsigned 32-bit integer"
                                    + (" > 0" if f == "size" else ""))


def validate(spec: Any) -> dict[str, Any]:
    """Check every field the runtime reads; SpecError names the first bad one by JSON pointer.

    Fields that would weaken isolation if silently ignored are refused, not skipped. The shape
    checks are deliberately plain (a fuzz test feeds this arbitrary JSON): each field is looked
    at once, with the type the plan builder (runtime/plan.py) will read it as."""
    if not isinstance(spec, dict):
        raise SpecError("/", "the spec must be a JSON object")
    proc = _field(spec, "process", dict, "process", required=True)
    args = proc.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise SpecError("process/args", "must be a non-empty list of strings")
    env = _field(proc, "env", list, "process/env")
    if not all(isinstance(e, str) and "=" in e for e in env):
        raise SpecError("process/env", 'must be a list of "KEY=value" strings')
    cwd = proc.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise SpecError("process/cwd", "must be an absolute path")
    for key in ("terminal", "noNewPrivileges"):
        _field(proc, key, bool, f"process/{key}")
    _field(proc, "oomScoreAdj", int, "process/oomScoreAdj")
    size = _field(proc, "consoleSize", dict, "process/consoleSize")
    for key in ("height", "width"):
        _uint(size, key, "process/consoleSize", bits=16)
    user = _field(proc, "user", dict, "process/user")
    for key in ("uid", "gid"):
        _uint(user, key, "process/user")
    if user.get("umask") is not None:
        _uint(user, "umask", "process/user")
    gids = _field(user, "additionalGids", list, "process/user/additionalGids")
    for i, _ in enumerate(gids):
        _uint(gids, i, "process/user/additionalGids")
    caps = _field(proc, "capabilities", dict, "process/capabilities")
    for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        names = _field(caps, kind, list, f"process/capabilities/{kind}")
        if not all(isinstance(n, str) for n in names):
            raise SpecError(f"process/capabilities/{kind}", "must be a list of capability names")
        cap_mask(names, f"process/capabilities/{kind}")
    for i, rl in enumerate(_field(proc, "rlimits", list, "process/rlimits")):
        where = f"process/rlimits/{i}"
        if not isinstance(rl, dict) or not isinstance(rl.get("type"), str):
            raise SpecError(where, 'must be {"type": "RLIMIT_...", "soft": N, "hard": N}')
        for key in ("soft", "hard"):
            _uint(rl, key, where, bits=64)
    for key in ("apparmorProfile", "selinuxLabel"):
        if proc.get(key):
            raise SpecError(f"process/{key}", "not supported by minirun (refused, not ignored)")
    root = _field(spec, "root", dict, "root", required=True)
    if not isinstance(root.get("path"), str) or not root["path"]:
        raise SpecError("root/path", "must be a path")
    _field(root, "readonly", bool, "root/readonly")
    for key in ("hostname", "domainname"):
        _field(spec, key, str, key)
    annotations = _field(spec, "annotations", dict, "annotations")
    if not all(isinstance(v, str) for v in annotations.values()):
        raise SpecError("annotations", "values must be strings")
    for i, m in enumerate(_field(spec, "mounts", list, "mounts")):
        if not isinstance(m, dict) or not isinstance(m.get("destination"), str) \
                or not m["destination"].startswith("/"):
            raise SpecError(f"mounts/{i}/destination", "must be an absolute path")
        for key in ("type", "source"):
            _field(m, key, str, f"mounts/{i}/{key}")
        options = _field(m, "options", list, f"mounts/{i}/options")
        if not all(isinstance(o, str) for o in options):
            raise SpecError(f"mounts/{i}/options", "must be a list of strings")
        _idmapped_mount(m, i, options)
    linux = _field(spec, "linux", dict, "linux")
    for i, ns in enumerate(_field(linux, "namespaces", list, "linux/namespaces")):
        if not isinstance(ns, dict) or ns.get("type") not in NAMESPACES:
            raise SpecError(f"linux/namespaces/{i}/type",
                            f"unknown namespace {ns.get('type') if isinstance(ns, dict) else ns!r}")
        _field(ns, "path", str, f"linux/namespaces/{i}/path")
    for i, d in enumerate(_field(linux, "devices", list, "linux/devices")):
        where = f"linux/devices/{i}"
        if not isinstance(d, dict) or not isinstance(d.get("path"), str) or not d["path"].startswith("/"):
            raise SpecError(f"{where}/path", "must be an absolute path")
        if d.get("type", "c") not in ("c", "u", "b", "p"):
            raise SpecError(f"{where}/type", 'must be "c", "b", "u" or "p"')
        for key in ("major", "minor", "fileMode", "uid", "gid"):
            if d.get(key) is not None:
                _uint(d, key, where)
    for key in ("maskedPaths", "readonlyPaths"):
        paths = _field(linux, key, list, f"linux/{key}")
        if not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise SpecError(f"linux/{key}", "must be a list of absolute paths")
    for key in ("cgroupsPath", "rootfsPropagation"):
        _field(linux, key, str, f"linux/{key}")
    if linux.get("rootfsPropagation") and linux["rootfsPropagation"] not in _PROPAGATION:
        raise SpecError("linux/rootfsPropagation", f"must be one of {', '.join(sorted(_PROPAGATION))}")
    _validate_resources(_field(linux, "resources", dict, "linux/resources"))
    seccomp = linux.get("seccomp")
    if seccomp is not None and not isinstance(seccomp, dict):
        raise SpecError("linux/seccomp", "must be an object")
    # a namespace joined by path counts too (a pod's shared one); runtime/plan.py refuses the
    # sysctl when the path is the host's own namespace
    own = {ns["type"] for ns in _field(linux, "namespaces", list, "linux/namespaces")}
    for key in ("hostname", "domainname"):
        if spec.get(key) and "uts" not in own:
            # without a UTS namespace of its own, sethostname would rename the host (runc refuses too)
            raise SpecError(key, "needs the container's own UTS namespace (linux.namespaces "
                                 "has no uts entry)")
    for name, value in _field(linux, "sysctl", dict, "linux/sysctl").items():
        problem = sysctl_problem(name, own) if isinstance(value, str) else "the value must be a string"
        if problem:
            raise SpecError(f"linux/sysctl/{name}", problem)
    if linux.get("mountLabel"):
        raise SpecError("linux/mountLabel", "SELinux is not supported by minirun")
    return spec


# linux.resources: each object's fields and the type they must have
_RESOURCES = {
    "memory": {"limit": int, "reservation": int, "swap": int, "kernel": int, "kernelTCP": int,
               "swappiness": int, "disableOOMKiller": bool},
    "cpu": {"shares": int, "quota": int, "period": int, "realtimeRuntime": int,
            "realtimePeriod": int, "cpus": str, "mems": str, "idle": int},
    "pids": {"limit": int},
    "blockIO": {"weight": int, "leafWeight": int},
}
_BLKIO_DEVICE_LISTS = {"weightDevice": ("weight", "leafWeight"),
                       "throttleReadBpsDevice": ("rate",), "throttleWriteBpsDevice": ("rate",),
                       "throttleReadIOPSDevice": ("rate",), "throttleWriteIOPSDevice": ("rate",)}


def _validate_resources(res: dict[str, Any]) -> None:
    for group, fields in _RESOURCES.items():
        obj = _field(res, group, dict, f"linux/resources/{group}")
        for name, kind in fields.items():
            _field(obj, name, kind, f"linux/resources/{group}/{name}")
    blkio = _field(res, "blockIO", dict, "linux/resources/blockIO")
    for key, values in _BLKIO_DEVICE_LISTS.items():
        for i, dev in enumerate(_field(blkio, key, list, f"linux/resources/blockIO/{key}")):
            where = f"linux/resources/blockIO/{key}/{i}"
            if not isinstance(dev, dict):
                raise SpecError(where, "must be an object with major, minor and " + " or ".join(values))
            for name in ("major", "minor"):
                _uint(dev, name, where, bits=32)
                if dev.get(name) is None:
                    raise SpecError(f"{where}/{name}", "required")
            for name in values:
                if dev.get(name) is not None:
                    _uint(dev, name, where, bits=64)
            if values == ("rate",) and dev.get("rate") is None:
                raise SpecError(f"{where}/rate", "required")
    for i, rule in enumerate(_field(res, "devices", list, "linux/resources/devices")):
        where = f"linux/resources/devices/{i}"
        if not isinstance(rule, dict) or not isinstance(rule.get("allow"), bool):
            raise SpecError(f"{where}/allow", "must be true or false")
        if rule.get("type", "a") not in ("a", "c", "b"):
            raise SpecError(f"{where}/type", 'must be "a", "c" or "b"')
        for key in ("major", "minor"):
            if rule.get(key) is not None and (not isinstance(rule[key], int) or isinstance(rule[key], bool)):
                raise SpecError(f"{where}/{key}", "must be an integer")
        access = rule.get("access", "rwm")
        if not isinstance(access, str) or not access or set(access) - set("rwm"):
            raise SpecError(f"{where}/access", 'must be letters of "rwm"')


def _field(obj: Any, key: Any, kind: type, where: str, required: bool = False) -> Any:
    """obj[key] if it has the expected JSON type; its empty value when absent (or null)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        if required:
            raise SpecError(where, f"is required and must be {_KIND_NAMES[kind]}")
        return kind()
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SpecError(where, f"must be {_KIND_NAMES[kind]}")
    return value


_KIND_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer",
               bool: "true or false"}


def _uint(obj: Any, key: Any, where: str, bits: int = 32) -> None:
    """An integer in [0, 2**bits): what the C side stores it in (uid_t, rlim_t, ...)."""
    value = obj[key] if isinstance(obj, list) else obj.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2 ** bits:
        raise SpecError(f"{where}/{key}", f"must be an integer from 0 to {2 ** bits - 1}")


def env_value(env: list[str], key: str, default: str | None = None) -> str | None:
    for item in reversed(env):
        k, _, v = item.partition("=")
        if k == key:
            return v
    return default


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Later KEY=value pairs replace earlier ones, order kept (like Docker's -e over ENV)."""
    out: dict[str, str] = {}
    for item in [*base, *extra]:
        k, _, v = item.partition("=")
        out[k] = v
    return [f"{k}={v}" for k, v in out.items()]


def host_cap_bounding() -> int:
    """The capability bounding set of this process: we cannot give a container more."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return (1 << len(CAPABILITIES)) - 1
