"""Rootless: containers for a user who is not root (user_namespaces(7), subuid(5), newuidmap(1)).

An unprivileged user may create a user namespace and is then root *in it*: that is enough to make
the other namespaces, mount proc, sysfs, tmpfs and overlayfs (with `userxattr`), and pivot_root.
So when minirun runs as uid U (not 0), every container gets a user namespace whose root is U:

    0 -> U (1 id)                    always; written by us, after "deny" in /proc/PID/setgroups
    1 -> S (N ids)                   if /etc/subuid and /etc/subgid give U a range S..S+N-1;
                                     written by newuidmap/newgidmap (setuid root, Debian's uidmap),
                                     which check the ranges, since U may not map them itself

What needs root stays out, and asking for it fails with one line that says so:
  - networks: veths, bridges and nftables need the host's CAP_NET_ADMIN. The default network is
    `none` (a namespace with loopback); `--network bridge|host|NAME` and `-p` are refused.
  - cgroups: no hierarchy is writable by U here, so there are no limits (nor the default pids
    limit); `-m`, `--cpus`, `--pids-limit`, ... are refused.
  - ids: with the one-id map only root exists inside; an image user, `--user`, or image files owned
    by other ids need a subordinate range (the message names the file to add it to).

The data root is the user's own ($XDG_DATA_HOME/minirun, see paths.py): images, containers,
logs. Layers are unpacked without chown (tarsafe.py records the owners the tar asked for, in the
layer's owners.json); the user owns every file, which the map shows as root's inside.
"""

from __future__ import annotations

import os

from minirun.errors import MinirunError, RootlessUnsupported

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
# flags of `run` that set a cgroup limit, by RunOptions field
_LIMIT_FLAGS = {"memory": "-m/--memory", "memory_swap": "--memory-swap", "cpus": "--cpus",
                "cpu_shares": "--cpu-shares", "cpuset_cpus": "--cpuset-cpus",
                "pids_limit": "--pids-limit"}


def active() -> bool:
    """True when minirun runs as a user who is not root."""
    return os.geteuid() != 0


def default_network() -> str:
    return "none" if active() else "bridge"


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def ranges(path: str, user: str, uid: int | None = None) -> list[tuple[int, int]]:
    """(start, count) of the subordinate ranges `path` (subuid(5), subgid(5)) gives the user, by
    name or by uid; a range of no ids is none."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    owners = {user} if uid is None else {user, str(uid)}
    out = []
    for line in lines:
        parts = line.strip().split(":")
        if (len(parts) == 3 and parts[0] in owners and parts[1].isdigit()
                and parts[2].isdigit() and int(parts[2]) > 0):
            out.append((int(parts[1]), int(parts[2])))
    return out


def maps() -> tuple[list[dict], list[dict]]:
    """The uid and gid maps of a rootless container: 0 -> us, then our subordinate ranges (both
    files must give some, and newuidmap/newgidmap must be installed, else only the one id)."""
    import shutil

    uid, gid, user = os.geteuid(), os.getegid(), _user()
    uids = [{"containerID": 0, "hostID": uid, "size": 1}]
    gids = [{"containerID": 0, "hostID": gid, "size": 1}]
    sub_u, sub_g = ranges(os.environ.get("MINIRUN_SUBUID", SUBUID), user, uid), \
        ranges(os.environ.get("MINIRUN_SUBGID", SUBGID), user, uid)
    if sub_u and sub_g and shutil.which("newuidmap") and shutil.which("newgidmap"):
        for out, subs in ((uids, sub_u), (gids, sub_g)):
            for start, count in subs:
                out.append({"containerID": out[-1]["containerID"] + out[-1]["size"],
                            "hostID": start, "size": count})
    return uids, gids


def single_id(spec: dict[str, Any]) -> bool:
    """Only our own id is mapped: setgroups is denied and no other id exists inside."""
    return len(spec["linux"]["uidMappings"]) == 1


def is_rootless(spec: dict[str, Any]) -> bool:
    return spec.get("annotations", {}).get("minirun.rootless") == "true"


def _missing_range(what: str) -> RootlessUnsupported:
    user = _user()
    return RootlessUnsupported(
        f"rootless: {what}, but only uid 0 (you, uid {os.geteuid()}) exists in the container: "
        f"{user} has no range in {SUBUID} and {SUBGID} (as root: usermod --add-subuids "
        f"100000-165535 --add-subgids 100000-165535 {user})")


def apply(spec: dict[str, Any], opts) -> None:
    """Make the spec one a user who is not root can run (see the module's docstring), or refuse
    with what is missing. `opts` is the RunOptions the spec was built from."""
    if opts.userns not in (None, "", "host") or opts.uidmaps or opts.gidmaps:
        raise RootlessUnsupported("rootless: --userns, --uidmap and --gidmap need root; as a user, "
                                  "root in the container is you (and your /etc/subuid range)")
    if opts.network != "none":
        raise RootlessUnsupported(f"rootless: --network {opts.network} needs root (veth, bridge, "
                                  "nftables): use --network none")
    asked = [flag for field, flag in _LIMIT_FLAGS.items() if getattr(opts, field) is not None]
    if asked:
        raise RootlessUnsupported(f"rootless: {', '.join(asked)} needs a cgroup you can write, "
                                  f"and none is delegated to uid {os.geteuid()} here: run as root "
                                  "or drop the limit")
    linux = spec["linux"]
    linux["resources"].pop("pids", None)       # the default limit: no cgroup to hold it
    uids, gids = maps()
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"], linux["gidMappings"] = uids, gids
    spec.setdefault("annotations", {})["minirun.rootless"] = "true"
    _drop_unmapped_mount_ids(spec)
    check_user(spec)


def _drop_unmapped_mount_ids(spec: dict[str, Any]) -> None:
    """devpts' gid=5 (tty) makes the mount fail with EINVAL when 5 is not mapped: without a
    range, the terminal then belongs to root's group, as with podman."""
    from minirun.runtime.idmaps import to_host

    linux = spec["linux"]
    for m in spec["mounts"]:
        keep = []
        for opt in m.get("options", []):
            key, _, value = opt.partition("=")
            maps_ = {"uid": linux["uidMappings"], "gid": linux["gidMappings"]}.get(key)
            if maps_ is not None and value.isdigit() and to_host(maps_, int(value)) is None:
                continue
            keep.append(opt)
        if "options" in m:
            m["options"] = keep


def explain_clone_failure(err: MinirunError) -> MinirunError:
    """clone(CLONE_NEWUSER) refused to a user: say that it is the kernel's policy, not a bug."""
    import errno

    if getattr(err, "step", "") == "clone" and getattr(err, "errno", 0) in (errno.EPERM, errno.ENOSPC, errno.EACCES):
        return RootlessUnsupported(f"rootless: this kernel does not let uid {os.geteuid()} create a "
                                   f"user namespace ({err}): see user.max_user_namespaces, "
                                   "kernel.unprivileged_userns_clone or an LSM's userns policy")
    return err


def check_user(spec: dict[str, Any]) -> None:
    """The process's ids must exist in the container (be mapped)."""
    from minirun.runtime.idmaps import to_host

    user = spec["process"]["user"]
    linux = spec["linux"]
    for kind, ids, maps_ in (("uid", [user.get("uid", 0)], linux["uidMappings"]),
                             ("gid", [user.get("gid", 0), *user.get("additionalGids", [])],
                              linux["gidMappings"])):
        for i in ids:
            if to_host(maps_, i) is None:
                if single_id(spec):
                    raise _missing_range(f"the process runs as {kind} {i}")
                raise RootlessUnsupported(f"rootless: {kind} {i} is outside the ids your "
                                          f"subordinate range maps (0-{maps_[-1]['containerID'] + maps_[-1]['size'] - 1})")


def check_layer_owners(spec: dict[str, Any], owners: dict[str, list[int]], image: str) -> None:
    """Image files owned by ids the map leaves out cannot keep their owners: refuse. (With the
    one-id map that is every id but 0.)"""
    from minirun.runtime.idmaps import to_host

    if owners and single_id(spec):
        path, (uid, gid) = next(iter(owners.items()))
        raise _missing_range(f"image {image} has files owned by other ids (/{path} is {uid}:{gid})")
    linux = spec["linux"]
    for path, (uid, gid) in owners.items():
        if to_host(linux["uidMappings"], uid) is None or to_host(linux["gidMappings"], gid) is None:
            top = linux["uidMappings"][-1]
            raise RootlessUnsupported(f"rootless: image {image} has /{path} owned by {uid}:{gid}, "
                                      f"outside the ids your subordinate range maps "
                                      f"(0-{top['containerID'] + top['size'] - 1}): ask for a "
                                      "larger range in /etc/subuid and /etc/subgid")


def write_maps(pid: int, spec: dict[str, Any]) -> None:
    """(4) The child's maps, as the user: the one-id map ourselves (setgroups denied first, as
    user_namespaces(7) requires of an unprivileged writer); ranges through newuidmap/newgidmap."""
    linux = spec["linux"]
    if single_id(spec):
        steps = [("setgroups", "deny")]
        steps += [(name, "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux[key]))
                  for name, key in (("uid_map", "uidMappings"), ("gid_map", "gidMappings"))]
        for name, text in steps:
            try:
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(text)
            except OSError as e:
                raise MinirunError(f"rootless: write {name} ({text.strip()}): "
                                   f"{os.strerror(e.errno or 5)}") from None
        return
    import subprocess

    for tool, key in (("newuidmap", "uidMappings"), ("newgidmap", "gidMappings")):
        argv = [tool, str(pid)] + [str(m[k]) for m in linux[key]
                                   for k in ("containerID", "hostID", "size")]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise MinirunError(f"rootless: {' '.join(argv)}: "
                               f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'failed'}")


def run_in_userns(fn, uids: list[dict] | None = None, gids: list[dict] | None = None) -> None:
    """Call fn() in a child process that is root of a new user namespace with our maps (with a
    subordinate range: what we may not do to those ids' files outside, we may do there — chown
    to them, delete their directories). Raises MinirunError with the child's error."""
    import ctypes
    import pickle

    if uids is None:
        uids, gids = maps()
    ready_r, ready_w = os.pipe()      # child -> us: unshared
    go_r, go_w = os.pipe()            # us -> child: maps written
    err_r, err_w = os.pipe()          # child -> us: the error, pickled, if any
    pid = os.fork()
    if pid == 0:                                                  # pragma: no cover (child)
        status = 1
        try:
            for fd in (ready_r, go_w, err_r):
                os.close(fd)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(0x10000000) != 0:                     # CLONE_NEWUSER
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
            os.write(ready_w, b"u")
            if os.read(go_r, 1) != b"g":
                os._exit(3)
            os.setresgid(0, 0, 0)
            if len(gids) > 1:
                os.setgroups([])
            os.setresuid(0, 0, 0)
            fn()
            status = 0
        except BaseException as e:  # noqa: BLE001 — carried to the parent, which raises it
            try:
                os.write(err_w, pickle.dumps(str(e)))
            finally:
                os._exit(status)
        os._exit(status)
    for fd in (ready_w, go_r, err_w):
        os.close(fd)
    try:
        if os.read(ready_r, 1) != b"u":
            raise MinirunError(f"rootless: a helper could not make a user namespace: {_read_all(err_r)}")
        write_maps(pid, {"linux": {"uidMappings": uids, "gidMappings": gids}})
        os.write(go_w, b"g")
    finally:
        os.close(go_w)
        os.close(ready_r)
        _, status = os.waitpid(pid, 0)
        message = _read_all(err_r)
        os.close(err_r)
    if status != 0:
        raise MinirunError(f"rootless: in the user namespace: {message or f'status {status}'}")


def _read_all(fd: int) -> str:
    import pickle

    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    return pickle.loads(data) if data else ""


def owned_layers(layers, spec: dict[str, Any], cache, owners_of) -> list:
    """With a subordinate range: each layer whose tar asked for owners other than root (its
    owners.json) replaced by a copy where those owners are applied, made once per (layer, map)
    inside a user namespace with the map (we may not chown to those ids outside it)."""
    from pathlib import Path

    linux = spec["linux"]
    key = "-".join(f"{m['containerID']}.{m['hostID']}.{m['size']}"
                   for m in [*linux["uidMappings"], {"containerID": "g", "hostID": 0, "size": 0},
                             *linux["gidMappings"]])
    out = []
    for layer in layers:
        owners = owners_of(layer)
        if not owners:
            out.append(layer)
            continue
        target = Path(cache) / key / "_".join(layer.parts[-2:])    # <diff_id>_diff
        if not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            run_in_userns(lambda layer=layer, target=target, owners=owners: _apply_owners(layer, target, owners),
                          linux["uidMappings"], linux["gidMappings"])
        out.append(target)
    return out


def _apply_owners(layer, target, owners: dict[str, list[int]]) -> None:
    """(in the user namespace) cp -a the layer, then chown what its tar owned to other ids."""
    import shutil
    import stat
    import subprocess

    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    r = subprocess.run(["cp", "-a", "--", str(layer), str(tmp)], capture_output=True, text=True)
    if r.returncode != 0:
        raise MinirunError(f"copy of layer {layer.parent.name[:12]}: {r.stderr.strip()}")
    try:
        for rel, (uid, gid) in owners.items():
            path = os.path.join(tmp, rel)
            st = os.lstat(path)
            os.lchown(path, uid, gid)
            if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o6000:
                os.chmod(path, stat.S_IMODE(st.st_mode))        # chown cleared set-uid/set-gid
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
