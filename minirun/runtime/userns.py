"""User namespaces: root in the container is an unprivileged uid on the host (user_namespaces(7)).

    --uidmap CONTAINER:HOST:SIZE   (repeatable; podman's flag) a range of container ids -> host ids
    --gidmap CONTAINER:HOST:SIZE   the same for groups; without it, the uid map is used
    --userns auto                  65536 ids from the "minirun" entries of /etc/subuid and
                                   /etc/subgid (subuid(5)), a block no other container uses

The parent writes /proc/PID/uid_map and gid_map between clone and GO (sync step 4); the child
then becomes the namespace's root (c_ext/spawn.c: become_userns_root). Image layers belong to
the host's root, which the namespace does not map: inside, every file would be owned by
"nobody". So a container with a map runs on copies of its layers whose owners are shifted by the
map — made once per (layer, map) in ROOT/cache/idmap/ with `cp -a` and a walk of lchown — and
overlayfs, mounted by the namespace's root, is told to keep its own metadata in user.overlay.*
xattrs (`userxattr`), which the copies carry beside the trusted.overlay.* ones.
"""

from __future__ import annotations

import os

from minirun import lean
from minirun.errors import MinirunError, UsageError

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

AUTO_USER = "minirun"            # whose /etc/subuid and /etc/subgid ranges --userns=auto uses
AUTO_SIZE = 65536
OVERFLOW_ID = 65534              # what an unmapped id looks like inside (proc(5): overflowuid)


def parse_map(text: str, flag: str) -> dict[str, int]:
    try:
        container, host, size = (int(x) for x in text.split(":"))
        if min(container, host) < 0 or size <= 0 or max(container, host) + size > 0xFFFFFFFF:
            raise ValueError          # ids are 32-bit, and (uid_t)-1 is not an id
    except ValueError:
        raise UsageError(f"{flag} {text!r}: use CONTAINER_ID:HOST_ID:SIZE, e.g. 0:100000:65536") from None
    return {"containerID": container, "hostID": host, "size": size}


def apply(spec: dict[str, Any], *, userns: str | None, uidmaps: list[str], gidmaps: list[str],
          containers_dir: Path, subuid: str | None = None, subgid: str | None = None) -> None:
    """Give the spec a user namespace and its maps, as the flags say (nothing if none is given).
    The subordinate-id files are /etc/subuid and /etc/subgid, or MINIRUN_SUBUID/MINIRUN_SUBGID."""
    subuid = subuid or os.environ.get("MINIRUN_SUBUID", "/etc/subuid")
    subgid = subgid or os.environ.get("MINIRUN_SUBGID", "/etc/subgid")
    if userns in (None, "", "host") and not uidmaps and not gidmaps:
        return
    if userns not in (None, "", "auto"):
        raise UsageError(f"--userns {userns!r}: use auto (or host, the default), or give --uidmap")
    if userns == "auto" and (uidmaps or gidmaps):
        raise UsageError("--userns=auto chooses the maps itself: drop --uidmap/--gidmap")
    linux = spec["linux"]
    if not any(n["type"] == "network" for n in linux["namespaces"]):
        raise UsageError("a user namespace needs the container's own network namespace "
                         "(not with --network host): /sys cannot be mounted otherwise")
    if userns == "auto":
        uids, gids = auto(containers_dir, subuid, subgid)
    else:
        uids = [parse_map(m, "--uidmap") for m in uidmaps]
        gids = [parse_map(m, "--gidmap") for m in gidmaps] or [dict(m) for m in uids]
    for name, maps in (("--uidmap", uids), ("--gidmap", gids)):
        if not any(m["containerID"] == 0 for m in maps):
            raise UsageError(f"{name}: the map must give the container's root (id 0) a host id")
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"], linux["gidMappings"] = uids, gids


def auto(containers_dir: Path, subuid: str, subgid: str) -> tuple[list[dict], list[dict]]:
    """The first block of AUTO_SIZE ids, in both files' ranges for AUTO_USER, that no existing
    container's map overlaps."""
    from minirun.runtime.rootless import ranges as subordinate_ranges

    used = _used_host_ids(containers_dir)
    blocks = []
    for path in (subuid, subgid):
        ranges = subordinate_ranges(path, AUTO_USER)
        if not ranges:
            raise UsageError(f"--userns=auto: {path} has no range for {AUTO_USER!r} (add a line "
                             f"such as {AUTO_USER}:1000000:1000000 to /etc/subuid and /etc/subgid, "
                             "or give --uidmap)")
        blocks.append({start + i * AUTO_SIZE for start, count in ranges
                       for i in range(count // AUTO_SIZE)})
    free = sorted(b for b in blocks[0] & blocks[1] if not any(b < e and s < b + AUTO_SIZE for s, e in used))
    if not free:
        raise UsageError(f"--userns=auto: every {AUTO_SIZE}-id block of {subuid} for {AUTO_USER!r} is in use")
    block = {"containerID": 0, "hostID": free[0], "size": AUTO_SIZE}
    return [block], [dict(block)]


def _used_host_ids(containers_dir: Path) -> list[tuple[int, int]]:
    import json

    used = []
    for config in containers_dir.glob("*/config.json"):
        with lean.suppress(OSError, ValueError):
            linux = json.loads(config.read_text()).get("linux", {})
            for m in linux.get("uidMappings", []) + linux.get("gidMappings", []):
                used.append((m["hostID"], m["hostID"] + m["size"]))
    return used


def id_mapper(spec: dict[str, Any]):
    """(host uid, gid) -> (uid, gid) as the container sees them, for writing a container's files
    as a layer (`commit`, `build`, `export`); None without a user namespace. An id the map leaves
    out stays as it is: the image's own layers, under a root-run container's upper dir, are."""
    linux = spec.get("linux", {})
    if not linux.get("uidMappings"):
        return None
    from minirun.runtime.idmaps import to_container

    uids, gids = linux["uidMappings"], linux["gidMappings"]

    def ids(uid: int, gid: int) -> tuple[int, int]:
        u, g = to_container(uids, uid), to_container(gids, gid)
        return (uid if u is None else u, gid if g is None else g)
    return ids


def host_root(spec: dict[str, Any]) -> tuple[int, int] | None:
    """(uid, gid) on the host of the container's root, or None without a user namespace."""
    linux = spec.get("linux", {})
    if not linux.get("uidMappings"):
        return None
    # imported here: `run` calls this for every container, and only one with maps needs it
    from minirun.runtime.idmaps import to_host

    return to_host(linux["uidMappings"], 0), to_host(linux["gidMappings"], 0)


def write_maps(pid: int, spec: dict[str, Any]) -> None:
    """(4) The child's uid_map and gid_map, written by us (root) while it waits for GO."""
    linux = spec["linux"]
    for name, key in (("uid_map", "uidMappings"), ("gid_map", "gidMappings")):
        text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux[key])
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as e:
            raise MinirunError(f"write {name} ({text.strip()}): {os.strerror(e.errno or 5)}") from None


def shifted_layers(layers: list[Path], spec: dict[str, Any], cache: Path) -> list[Path]:
    """The image's layers with owners shifted by the container's maps (copies, cached)."""
    linux = spec["linux"]
    key = "-".join(f"{m['containerID']}.{m['hostID']}.{m['size']}"
                   for m in linux["uidMappings"] + [{"containerID": "g", "hostID": 0, "size": 0}]
                   + linux["gidMappings"])
    out = []
    for layer in layers:
        target = cache / key / "_".join(layer.parts[-2:])      # <diff_id>_diff
        if not target.is_dir():
            _shift_copy(layer, target, linux["uidMappings"], linux["gidMappings"])
        out.append(target)
    return out


def _shift_copy(layer: Path, target: Path, uids: list[dict], gids: list[dict]) -> None:
    import shutil
    import stat
    import subprocess

    from minirun.runtime.idmaps import to_host

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        # cp -a keeps what a layer holds: hardlinks, whiteouts (0:0 devices), xattrs, times
        r = subprocess.run(["cp", "-a", "--", str(layer), str(tmp)], capture_output=True, text=True)
        if r.returncode != 0:
            raise MinirunError(f"copy of layer {layer.name[:12]} for the user namespace: {r.stderr.strip()}")
        overflow_u, overflow_g = to_host(uids, OVERFLOW_ID), to_host(gids, OVERFLOW_ID)
        for directory, dirs, files in os.walk(tmp):
            for name in [*dirs, *files, *([None] if directory == str(tmp) else [])]:
                path = os.path.join(directory, name) if name else directory    # each entry once
                st = os.lstat(path)
                uid = to_host(uids, st.st_uid)
                gid = to_host(gids, st.st_gid)
                uid = overflow_u if uid is None else uid
                gid = overflow_g if gid is None else gid
                os.lchown(path, -1 if uid is None else uid, -1 if gid is None else gid)
                if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o6000:
                    os.chmod(path, stat.S_IMODE(st.st_mode))   # chown cleared set-uid/set-gid
                if name is None or name in dirs:
                    with lean.suppress(OSError):
                        if os.getxattr(path, "trusted.overlay.opaque") == b"y":
                            os.setxattr(path, "user.overlay.opaque", b"y")
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def helper_userns(uids: list[dict], gids: list[dict]) -> int:
    """An fd of a new user namespace with these maps, for mount_setattr(MOUNT_ATTR_IDMAP): a
    child unshares one and waits while we (root) write its maps; the fd keeps the namespace
    alive after the child has gone. (The container's own namespace does not exist yet when its
    mounts are prepared, before clone; the idmap copies the maps, not the namespace.)"""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    up_r, up_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:                                           # pragma: no cover (child)
        os.close(go_w)                                     # else our read would never see EOF
        os.close(up_r)
        ok = libc.unshare(0x10000000) == 0                 # CLONE_NEWUSER
        os.write(up_w, b"u" if ok else b"e")
        os.read(go_r, 1)
        os._exit(0)
    os.close(up_w)
    os.close(go_r)
    try:
        if os.read(up_r, 1) != b"u":
            raise MinirunError("idmapped mounts: cannot make a user namespace for the map")
        for name, maps in (("uid_map", uids), ("gid_map", gids)):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write("".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps))
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise MinirunError(f"idmapped mounts: the helper namespace: {os.strerror(e.errno or 5)}") from None
    finally:
        os.close(go_w)
        os.close(up_r)
        os.waitpid(pid, 0)


def idmapped_layers(layers: list[Path], spec: dict[str, Any]) -> list[int] | None:
    """Detached idmapped mounts of the layers, for the child to put over them (c_ext/fs.c), so
    the image's files show their owners through the container's map with nothing copied or
    chowned; None where the kernel or filesystem cannot (the caller copies: shifted_layers).
    MINIRUN_IDMAP=0 forces the copies."""
    from minirun.runtime import spawn

    if os.environ.get("MINIRUN_IDMAP") == "0":
        return None
    linux = spec["linux"]
    for layer in layers:
        _user_opaque(layer)
    ns = helper_userns(linux["uidMappings"], linux["gidMappings"])
    fds: list[int] = []
    try:
        for i, layer in enumerate(layers):
            fds.append(spawn.idmap_tree(str(layer), ns, index=i))
    except MinirunError as e:
        for fd in fds:
            os.close(fd)
        if getattr(e, "errno", None) in spawn.IDMAP_UNSUPPORTED:
            return None
        raise
    finally:
        os.close(ns)
    return fds


def _user_opaque(layer: Path) -> None:
    """An overlay mounted in a user namespace (`userxattr`) reads user.overlay.opaque, not the
    trusted.overlay.opaque root's import wrote: add it to the layer's opaque directories (its
    layer.json lists them), once. An xattr, not an owner: nothing is chowned."""
    import json

    try:
        opaque = json.loads((layer.parent / "layer.json").read_text()).get("opaque", [])
    except (OSError, ValueError):
        return
    for rel in opaque:
        path = layer / rel
        with lean.suppress(OSError):
            if os.getxattr(path, "user.overlay.opaque", follow_symlinks=False) == b"y":
                continue
        with lean.suppress(FileNotFoundError):
            os.setxattr(path, "user.overlay.opaque", b"y", follow_symlinks=False)


def idmapped_binds(spec: dict[str, Any], bundle: str | os.PathLike = "/") -> dict[int, int]:
    """OCI 1.1 idmapped bind mounts (mounts[i].uidMappings/gidMappings): index in the spec's
    mounts -> fd of a detached, idmapped copy of the source, for the child to attach
    (MR_OP_MOVE_MOUNT). A file owned by k on disk shows as the id the map gives k. Refused in
    one line where the kernel or the source's filesystem cannot idmap."""
    from minirun.errors import SpecError
    from minirun.runtime import spawn

    out: dict[int, int] = {}
    try:
        for i, m in enumerate(spec.get("mounts", [])):
            if "uidMappings" not in m:
                continue
            source = m.get("source", "")
            source = source if source.startswith("/") else os.path.join(bundle, source)
            ns = helper_userns(m["uidMappings"], m["gidMappings"])
            try:
                out[i] = spawn.idmap_tree(source, ns, recursive="rbind" in m.get("options", []), index=i)
            except MinirunError as e:
                if getattr(e, "errno", None) in spawn.IDMAP_UNSUPPORTED:
                    raise SpecError(f"mounts/{i}/uidMappings", f"{source} cannot be idmapped here "
                                    f"(the kernel or its filesystem refuses: {os.strerror(e.errno)})") from None
                raise
            finally:
                os.close(ns)
    except BaseException:
        for fd in out.values():
            os.close(fd)
        raise
    return out


def idmap_points(container_dir: Path, n: int) -> list[Path]:
    """CONTAINER/lower/0..n-1 (bottom layer first): where the child attaches the layers'
    idmapped mounts, in its own mount namespace, and what the overlay's lowerdir names."""
    points = [container_dir / "lower" / str(i) for i in range(n)]
    for p in points:
        p.mkdir(parents=True, exist_ok=True)
    return points


def prune_copies(cache: Path, layers_dir: Path) -> list[Path]:
    """Remove the shifted copies of layers the image store no longer has (after `image rm`)."""
    from minirun.runtime.state import remove_tree

    removed = []
    for copy in cache.glob("*/*_diff"):
        if not (layers_dir / copy.name.removesuffix("_diff")).is_dir():
            remove_tree(copy)        # rootless: copies owned by our subordinate ids
            removed.append(copy)
    return removed


def prepare_container_dirs(container_dir: Path, spec: dict[str, Any]) -> None:
    """The upper and work dirs and the mount point belong to the container's root on the host,
    who mounts the overlay, so it must also pass through the container's directory (0700): its
    group becomes the container root's and gets search permission (0710), nothing more."""
    ids = host_root(spec)
    if ids is None:
        return
    for parent in container_dir.resolve().parents:
        st = os.stat(parent)
        bit = 0o100 if st.st_uid == ids[0] else 0o010 if st.st_gid == ids[1] else 0o001
        if not st.st_mode & bit:
            raise UsageError(f"{parent} cannot be passed through by uid {ids[0]}, the container's "
                             f"root on the host, which mounts its root filesystem: chmod o+x {parent}")
    os.chown(container_dir, 0, ids[1])
    os.chmod(container_dir, 0o710)
    for sub in ("upper", "work", "rootfs"):
        path = container_dir / sub
        if path.exists():
            st = path.stat()
            if (st.st_uid, st.st_gid) != ids:
                os.chown(path, *ids)
