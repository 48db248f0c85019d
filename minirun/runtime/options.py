"""From Docker-style flags and an image's config to an OCI spec.

This is where `run`'s familiar semantics live: the image gives defaults (Env, Cmd, Entrypoint,
WorkingDir, User) and flags override them exactly as in Docker (`--entrypoint` also drops the
image's Cmd; `-e KEY` alone copies the caller's value; `-u name` is looked up in the image's
/etc/passwd).
"""

from __future__ import annotations

import os

from minirun import lean
from minirun import spec as oci
from minirun.errors import UsageError
from minirun.paths import LIBEXEC
from minirun.records import field, record
from minirun.runtime import rootless, security, userns

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from minirun.net.ports import PortMapping

INIT_PATH_IN_CONTAINER = "/dev/init"


@record
class Mount:
    """A bind mount of a host path (`-v HOST:CONTAINER[:ro]`); both paths absolute. A missing
    host directory is made when the container is created, as Docker's -v does."""
    source: str
    destination: str
    read_only: bool = False

    @staticmethod
    def parse(text: str) -> Mount:
        """`-v`'s text -> a Mount: the one place the flag is split (the CLI's edge)."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise UsageError(f"invalid volume {text!r}: use /host/path:/container/path[:ro]")
        host, target = parts[0], parts[1]
        mode = parts[2] if len(parts) == 3 else "rw"
        if not host.startswith("/"):
            raise UsageError(f"invalid volume {text!r}: named volumes are not supported; give an absolute host path")
        if not target.startswith("/"):
            raise UsageError(f"invalid volume {text!r}: the container path must be absolute")
        if mode not in ("ro", "rw"):
            raise UsageError(f"invalid volume {text!r}: mode must be ro or rw")
        return Mount(host, target, mode == "ro")


_ULIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as"}
UNLIMITED = 2**64 - 1             # RLIM_INFINITY


@record
class Ulimit:
    """A resource limit (`--ulimit NAME=SOFT[:HARD]`): name as setrlimit's RLIMIT_NAME lower-cased,
    values as setrlimit takes them (UNLIMITED for Docker's -1)."""
    name: str
    soft: int
    hard: int

    @staticmethod
    def parse(text: str) -> Ulimit:
        """`--ulimit`'s text -> a Ulimit: the one place the flag is split (the CLI's edge)."""
        name, _, values = text.partition("=")
        soft, _, hard = values.partition(":")
        try:
            if name not in _ULIMITS:
                raise ValueError
            limits = [UNLIMITED if v == "-1" else int(v) for v in (soft, hard or soft)]
            if limits[0] > limits[1] or min(limits) < 0:
                raise ValueError
        except ValueError:
            raise UsageError(f"invalid --ulimit {text!r}: use NAME=SOFT[:HARD], e.g. nofile=1024:2048") from None
        return Ulimit(name, limits[0], limits[1])

    def to_oci(self) -> dict[str, Any]:
        """The OCI process.rlimits entry."""
        return {"type": f"RLIMIT_{self.name.upper()}", "soft": self.soft, "hard": self.hard}


@record
class RunOptions:
    image: str
    command: list[str] = field(default_factory=list)
    entrypoint: str | None = None
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    name: str | None = None
    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    ulimits: list[Ulimit] = field(default_factory=list)
    volumes: list[Mount] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    read_only: bool = False
    init: bool = False
    interactive: bool = False
    tty: bool = False
    network: str | None = None            # None: bridge, or none when rootless (runtime/rootless.py)
    ip: str | None = None
    network_aliases: list[str] = field(default_factory=list)
    publish: list[PortMapping] = field(default_factory=list)   # net/ports.py parses -p
    publish_all: bool = False
    dns: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)
    auto_remove: bool = False
    detach: bool = False
    # security (runtime/security.py)
    security_opt: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    sysctls: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    userns: str | None = None             # user namespace (runtime/userns.py)
    uidmaps: list[str] = field(default_factory=list)
    gidmaps: list[str] = field(default_factory=list)
    owner: dict[str, Any] | None = None   # the process it is made for (state.owner): gc's journal

    @staticmethod
    def security_opt_of(spec: dict[str, Any]) -> list[str]:
        """The effective --security-opt of a spec, for inspect: seccomp=default|custom|unconfined."""
        profile = spec.get("linux", {}).get("seccomp")
        if not profile:
            return ["seccomp=unconfined"]
        caps = spec.get("process", {}).get("capabilities", {}).get("bounding", [])
        return ["seccomp=default" if profile == oci.default_seccomp(caps) else "seccomp=custom"]


def build_spec(opts: RunOptions, image_config: dict[str, Any], layers_top_first: list[Path],
               container_dir: Path, container_id: str) -> dict[str, Any]:
    if opts.network is None:
        opts.network = rootless.default_network()
    spec = oci.default_spec()
    proc = spec["process"]
    proc["args"] = _args(opts, image_config)
    proc["env"] = oci.merge_env(
        [f"PATH={oci.DEFAULT_PATH}", *image_config.get("Env", [])],
        [f"HOSTNAME={opts.hostname or container_id[:12]}", *_env(opts)],
    )
    proc["cwd"] = opts.workdir or image_config.get("WorkingDir") or "/"
    if not proc["cwd"].startswith("/"):
        raise UsageError(f"the working directory {proc['cwd']!r} must be an absolute path")
    proc["user"] = resolve_user(opts.user or image_config.get("User") or "", layers_top_first)
    proc["terminal"] = opts.tty
    if opts.ulimits:
        proc["rlimits"] = [u.to_oci() for u in opts.ulimits]
    spec["root"] = {"path": str(container_dir / "rootfs"), "readonly": opts.read_only}
    spec["hostname"] = opts.hostname or container_id[:12]
    spec["mounts"].extend(_network_files(opts, container_dir, spec["hostname"]))
    spec["mounts"].extend(_volumes(opts.volumes))
    spec["mounts"].extend(_tmpfs(opts.tmpfs))
    if opts.init:
        spec["mounts"].append({"destination": INIT_PATH_IN_CONTAINER, "type": "bind",
                               "source": os.path.join(LIBEXEC, "minirun-init"), "options": ["bind", "ro"]})
        proc["args"] = [INIT_PATH_IN_CONTAINER, "--", *proc["args"]]
    if opts.network == "host":
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    if opts.network in ("none", "host"):
        if opts.publish or opts.publish_all:
            raise UsageError(f"published ports need a bridge network, not --network {opts.network}")
        if opts.ip or opts.network_aliases:
            raise UsageError(f"--ip and --network-alias need a bridge network, not --network {opts.network}")
    elif not opts.network or opts.network.startswith("container:"):
        raise UsageError(f"--network {opts.network!r}: use bridge, none, host or a network name")
    spec["linux"]["resources"] = dict(resources(opts), devices=spec["linux"]["resources"]["devices"])
    if opts.pids_limit is None:          # ours, not the user's: dropped where no pids controller is
        spec.setdefault("annotations", {})[DEFAULT_PIDS_ANNOTATION] = "default"
    security.apply(spec, cap_add=opts.cap_add, cap_drop=opts.cap_drop, privileged=opts.privileged,
                   security_opt=opts.security_opt, sysctls=opts.sysctls, devices=opts.devices)
    if rootless.active():
        rootless.apply(spec, opts)
    else:
        userns.apply(spec, userns=opts.userns, uidmaps=opts.uidmaps, gidmaps=opts.gidmaps,
                     containers_dir=container_dir.parent)
    if image_config.get("StopSignal"):
        spec.setdefault("annotations", {})["org.opencontainers.image.stopSignal"] = image_config["StopSignal"]
    return oci.validate(spec)


def resources(opts: RunOptions) -> dict[str, Any]:
    """The OCI linux.resources object for the limit flags (also used by `update`)."""
    res: dict[str, Any] = {}
    if opts.memory is not None:
        res.setdefault("memory", {})["limit"] = opts.memory
    if opts.memory_swap is not None:
        res.setdefault("memory", {})["swap"] = opts.memory_swap
    if opts.cpus is not None:
        from minirun.units import parse_cpus

        quota, period = parse_cpus(str(opts.cpus))
        res.setdefault("cpu", {}).update(quota=quota, period=period)
    if opts.cpu_shares is not None:
        res.setdefault("cpu", {})["shares"] = opts.cpu_shares
    if opts.cpuset_cpus is not None:
        res.setdefault("cpu", {})["cpus"] = opts.cpuset_cpus
    limit = oci.DEFAULT_PIDS_LIMIT if opts.pids_limit is None else opts.pids_limit
    res["pids"] = {"limit": limit}
    return res


def _args(opts: RunOptions, cfg: dict[str, Any]) -> list[str]:
    if opts.entrypoint is not None:
        import shlex

        entry = shlex.split(opts.entrypoint) if opts.entrypoint else []
        cmd = list(opts.command)            # --entrypoint drops the image's Cmd, as in Docker
    else:
        entry = list(cfg.get("Entrypoint") or [])
        cmd = list(opts.command) or list(cfg.get("Cmd") or [])
    args = entry + cmd
    if not args:
        raise UsageError(f"no command specified: the image {opts.image} has no Cmd or Entrypoint")
    return args


def _env(opts: RunOptions) -> list[str]:
    out = []
    for path in opts.env_files:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise UsageError(f"--env-file {path}: {os.strerror(e.errno or 5)}") from None
        out += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    out += opts.env
    result = []
    for item in out:
        key, eq, _ = item.partition("=")
        if not key:
            raise UsageError(f"invalid environment variable {item!r}: use KEY=value")
        if eq:
            result.append(item)
        elif key in os.environ:             # -e KEY copies the caller's value, like Docker
            result.append(f"{key}={os.environ[key]}")
    return result


def _volumes(volumes: list[Mount]) -> list[dict[str, Any]]:
    mounts = []
    for v in volumes:
        if not os.path.exists(v.source):
            os.makedirs(v.source, exist_ok=True)   # Docker's -v creates a missing host directory
        options = ["rbind", "rprivate"] + (["ro"] if v.read_only else [])
        mounts.append({"destination": v.destination, "type": "bind", "source": v.source, "options": options})
    return mounts


def _tmpfs(entries: list[str]) -> list[dict[str, Any]]:
    mounts = []
    for t in entries:
        target, _, opts = t.partition(":")
        if not target.startswith("/"):
            raise UsageError(f"invalid --tmpfs {t!r}: the path must be absolute")
        options = ["nosuid", "nodev", "noexec"] + ([o for o in opts.split(",") if o] if opts else [])
        mounts.append({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options})
    return mounts


def _network_files(opts: RunOptions, container_dir: Path, hostname: str) -> list[dict[str, Any]]:
    """/etc/hostname and /etc/hosts of the container's own (Docker's behaviour); with the host's
    network, its /etc/resolv.conf; on a bridge, the host's without loopback nameservers
    (minirun/net/etcfiles.py). The bridge's peers are added to hosts by minirun.net."""
    hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    if opts.add_hosts:
        from minirun.net.container import _add_host

        hosts += "".join(f"{ip}\t{name}\n" for name, ip in map(_add_host, opts.add_hosts))
    files = {"hostname": hostname + "\n", "hosts": hosts}
    if opts.network == "host" and not opts.dns:
        try:
            with open("/etc/resolv.conf") as f:
                files["resolv.conf"] = f.read()
        except OSError:
            pass
    elif opts.network != "none" or opts.dns:
        from minirun.net import etcfiles

        files["resolv.conf"] = etcfiles.resolv_conf(etcfiles.host_resolv_conf(), opts.dns)
    mounts = []
    for name, content in files.items():
        path = container_dir / name
        path.write_text(content)
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(path),
                       "options": ["rbind", "rprivate"]})
    return mounts


def resolve_user(user: str, layers_top_first: list[Path]) -> dict[str, Any]:
    """"uid", "uid:gid", "name" or "name:group" -> {"uid", "gid", "additionalGids"}.

    Names are looked up in the image's /etc/passwd and /etc/group, as the container would."""
    if not user:
        return {"uid": 0, "gid": 0}
    name, _, group = user.partition(":")
    passwd = _read_image_file(layers_top_first, "etc/passwd")
    uid = gid = None
    if name.isdigit():
        uid = int(name)
        for fields in passwd:
            if len(fields) > 3 and fields[2] == name:
                gid = int(fields[3])
    else:
        for fields in passwd:
            if len(fields) > 3 and fields[0] == name:
                uid, gid = int(fields[2]), int(fields[3])
        if uid is None:
            raise UsageError(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            matches = [f for f in _read_image_file(layers_top_first, "etc/group") if f and f[0] == group]
            if not matches:
                raise UsageError(f"unable to find group {group}: no matching entries in group file")
            gid = int(matches[0][2])
    return {"uid": uid, "gid": gid if gid is not None else 0}


def _read_image_file(layers_top_first: list[Path], rel: str) -> list[list[str]]:
    """The file as the container will see it: the topmost layer that has the name decides (a
    whiteout there, or an opaque directory on the way, hides the lower layers' copies)."""
    for layer in layers_top_first:
        path = layer / rel
        if os.path.lexists(path):
            if not path.is_file() or path.is_symlink():
                return []
            return [line.split(":") for line in path.read_text(errors="replace").splitlines()]
        for parent in path.relative_to(layer).parents:
            with lean.suppress(OSError):
                if os.getxattr(layer / parent, "trusted.overlay.opaque", follow_symlinks=False) == b"y":
                    return []
    return []


# marks a spec whose pids limit is minirun's default (2048), not asked for: on a host without the
# pids controller that default is left out, while an explicit --pids-limit is refused there
DEFAULT_PIDS_ANNOTATION = "io.minirun.pids-limit"
