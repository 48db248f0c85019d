"""Docker's security flags -> the OCI spec, and the effective settings `inspect` shows.

    --cap-add / --cap-drop    capabilities(7): the container's bounding, effective and permitted sets
    --privileged              every capability, no seccomp filter, no masked or read-only /proc
                              paths, /sys writable, every host device present and allowed
    --security-opt            seccomp=PROFILE.json|unconfined, no-new-privileges[=true|false]
    --sysctl NAME=VALUE       a namespaced kernel setting, written by the child (c_ext/spawn.c)
    --device HOST[:CTR][:rwm] a host device node in the container and in its devices allowlist

Everything a flag decides is written into the spec, so `start`, `exec` and the OCI path see
the same thing; what the user typed (privileged, cap-add/drop, devices) is kept in one
annotation for inspect. docs/security.md explains each default and control.
"""

from __future__ import annotations

import os
import stat

from minirun import lean
from minirun import spec as oci
from minirun.errors import UsageError

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

ANNOTATION = "org.minirun.security"     # what the user asked for, as JSON (for inspect)

# Host /dev entries --privileged does not copy: the container has its own pts, shm and mqueue,
# and its own console, ptmx and fd links (runc skips the same).
_HOST_DEV_SKIP_DIRS = {"pts", "shm", "mqueue", "fd", ".lxc", ".udev"}
_HOST_DEV_SKIP = {"console", "ptmx", "stdin", "stdout", "stderr"}


def apply(spec: dict[str, Any], *, cap_add: list[str], cap_drop: list[str], privileged: bool,
          security_opt: list[str], sysctls: list[str], devices: list[str]) -> None:
    """Change a spec built with Docker's defaults (spec.default_spec) as the flags say."""
    proc, linux = spec["process"], spec["linux"]
    caps = host_capabilities() if privileged else capabilities(cap_add, cap_drop)
    proc["capabilities"] = {"bounding": caps, "effective": list(caps), "permitted": list(caps),
                            "inheritable": [], "ambient": []}
    # the default filter follows the capabilities, as Docker's does (SYS_ADMIN allows mount)
    linux["seccomp"] = oci.default_seccomp(caps)
    for item in security_opt:
        _security_opt(spec, item)
    if privileged:
        _privileged(spec)
    for item in sysctls:
        name, value = _sysctl(item, {n["type"] for n in linux.get("namespaces", [])})
        linux.setdefault("sysctl", {})[name] = value
    asked_devices = [_device(spec, item) for item in devices]
    if privileged or cap_add or cap_drop or asked_devices:
        spec.setdefault("annotations", {})[ANNOTATION] = lean.dumps(
            {"privileged": privileged, "capAdd": [_cap_name(c, "--cap-add") if c.upper() != "ALL" else "ALL"
                                                  for c in cap_add],
             "capDrop": [_cap_name(c, "--cap-drop") if c.upper() != "ALL" else "ALL" for c in cap_drop],
             "devices": asked_devices})


def capabilities(add: list[str], drop: list[str]) -> list[str]:
    """Docker's rules: start from the default set; ALL in --cap-add means every capability
    this process holds (as --privileged: Docker ≥ 23 reads its bounding set too, where a name
    it cannot give would fail the container), ALL in --cap-drop means none; then the named ones
    are added or removed."""
    adds = {c.upper() for c in add}
    drops = {c.upper() for c in drop}
    if "ALL" in adds:
        base = host_capabilities()
    elif "ALL" in drops:
        base = []
    else:
        base = list(oci.DEFAULT_CAPS)
    removed = {_cap_name(c, "--cap-drop") for c in drop if c.upper() != "ALL"}
    added = [_cap_name(c, "--cap-add") for c in add if c.upper() != "ALL"]
    caps = {c for c in base if c not in removed} | set(added)
    return sorted(caps, key=oci.CAP_NUMBER.__getitem__)


def host_capabilities() -> list[str]:
    """--privileged: every capability this process holds in its bounding set (Docker gives the
    host's; the --cap-add/--cap-drop flags are ignored then, as in Docker)."""
    held = oci.host_cap_bounding()
    return [name for name, bit in oci.CAP_NUMBER.items() if held >> bit & 1]


def _cap_name(name: str, flag: str) -> str:
    key = name.strip().upper()
    key = key if key.startswith("CAP_") else f"CAP_{key}"
    if key not in oci.CAP_NUMBER:
        raise UsageError(f"{flag} {name}: unknown capability (see capabilities(7); e.g. NET_ADMIN "
                         "or CAP_NET_ADMIN)")
    return key


def _security_opt(spec: dict[str, Any], item: str) -> None:
    """Docker's --security-opt: seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false]."""
    key, _, value = item.partition("=" if "=" in item else ":")
    if key == "seccomp" and value == "unconfined":
        spec["linux"].pop("seccomp", None)
    elif key == "seccomp" and value:
        from minirun.runtime import seccomp

        caps = spec["process"]["capabilities"]["bounding"]
        spec["linux"]["seccomp"] = seccomp.load_docker(value, caps)
    elif key == "no-new-privileges" and value in ("", "true", "false"):
        spec["process"]["noNewPrivileges"] = value != "false"
    else:
        raise UsageError(f"--security-opt {item!r}: use seccomp=unconfined, seccomp=PROFILE.json "
                         "or no-new-privileges[=true|false]")


def _privileged(spec: dict[str, Any]) -> None:
    """Docker's --privileged: the container's root is the host's root in all but the namespaces.
    It can load kernel modules, write any sysctl, reach every device, remount anything."""
    linux = spec["linux"]
    linux.pop("seccomp", None)
    linux["maskedPaths"] = []
    linux["readonlyPaths"] = []
    linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    for m in spec["mounts"]:
        if m["destination"] == "/sys":
            m["options"] = [o for o in m["options"] if o != "ro"]
    present = {d["path"] for d in linux.get("devices", [])}
    linux.setdefault("devices", []).extend(d for d in host_devices() if d["path"] not in present)


def host_devices(top: str = "/dev") -> list[dict[str, Any]]:
    """Every character and block device node under /dev (symlinks skipped), as OCI devices."""
    found = []
    for directory, dirs, files in os.walk(top):
        if directory == top:
            dirs[:] = [d for d in dirs if d not in _HOST_DEV_SKIP_DIRS]
        for name in sorted(files):
            path = os.path.join(directory, name)
            if directory == top and name in _HOST_DEV_SKIP:
                continue
            try:
                st = os.lstat(path)
            except OSError:                  # gone meanwhile (udev)
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append(_oci_device(path, st))
    return found


def _oci_device(path: str, st: os.stat_result) -> dict[str, Any]:
    return {"path": path, "type": "b" if stat.S_ISBLK(st.st_mode) else "c",
            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def _sysctl(item: str, namespaces: set[str]) -> tuple[str, str]:
    name, eq, value = item.partition("=")
    name = name.strip()
    if not eq or not name or not value:
        raise UsageError(f"--sysctl {item!r}: use NAME=VALUE, e.g. net.ipv4.ip_forward=1")
    problem = oci.sysctl_problem(name, namespaces)
    if problem:
        raise UsageError(f"--sysctl {name}: {problem}")
    return name, value


def _device(spec: dict[str, Any], item: str) -> str:
    """--device HOST[:CONTAINER][:PERMISSIONS]: the node in the container, and the rule that lets
    it be opened. Returns the normalized HOST:CONTAINER:PERMISSIONS."""
    parts = item.split(":")
    host, target, perms = parts[0], parts[0], "rwm"
    if len(parts) == 2:
        if _is_perms(parts[1]):
            perms = parts[1]
        else:
            target = parts[1]
    elif len(parts) == 3:
        target, perms = parts[1], parts[2]
    elif len(parts) != 1:
        raise UsageError(f"--device {item!r}: use HOST[:CONTAINER][:PERMISSIONS], e.g. /dev/fuse:/dev/fuse:rwm")
    if not host.startswith("/") or not target.startswith("/"):
        raise UsageError(f"--device {item!r}: both paths must be absolute")
    if not _is_perms(perms):
        raise UsageError(f"--device {item!r}: permissions are letters of rwm (read, write, mknod)")
    try:
        st = os.stat(host)                   # follows links, as Docker does (/dev/disk/by-id/...)
    except OSError as e:
        raise UsageError(f"--device {host}: {os.strerror(e.errno or 2)}") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise UsageError(f"--device {host}: not a character or block device")
    dev = dict(_oci_device(target, st))
    linux = spec["linux"]
    linux["devices"] = [d for d in linux.get("devices", []) if d["path"] != target] + [dev]
    linux["resources"]["devices"].append({"allow": True, "type": dev["type"], "major": dev["major"],
                                          "minor": dev["minor"], "access": perms})
    return f"{host}:{target}:{perms}"


def _is_perms(text: str) -> bool:
    return bool(text) and set(text) <= set("rwm") and len(set(text)) == len(text)


def effective(spec: dict[str, Any]) -> dict[str, Any]:
    """What a container really gets, read back from its spec: for `inspect` ("Security")."""
    proc, linux = spec["process"], spec.get("linux", {})
    caps = dict(proc.get("capabilities", {}))
    if proc.get("user", {}).get("uid", 0) != 0 and not caps.get("ambient"):
        # execve as a non-root user clears permitted and effective (capabilities(7)): what the
        # program runs with, unless its file carries capabilities, is the ambient set: nothing
        caps["effective"] = caps["permitted"] = []
    asked = lean.loads(spec.get("annotations", {}).get(ANNOTATION, "{}"))
    profile = linux.get("seccomp")
    if not profile:
        seccomp = {"Profile": "unconfined"}
    else:
        from minirun.runtime import seccomp as scmp

        name = "default" if profile == oci.default_seccomp(caps.get("bounding", [])) else "custom"
        seccomp = {"Profile": name, "Sha256": scmp.digest(profile)}
    return {
        "Privileged": bool(asked.get("privileged")),
        "Capabilities": {kind.capitalize(): [c.removeprefix("CAP_") for c in caps.get(kind, [])]
                         for kind in ("bounding", "effective", "permitted", "inheritable", "ambient")},
        "NoNewPrivileges": bool(proc.get("noNewPrivileges")),
        "Seccomp": seccomp,
        "MaskedPaths": len(linux.get("maskedPaths", [])),
        "ReadonlyPaths": len(linux.get("readonlyPaths", [])),
        "Sysctls": dict(linux.get("sysctl", {})),
        "Devices": [f"{d['path']} {d.get('type', 'c')} {d.get('major', 0)}:{d.get('minor', 0)}"
                    for d in linux.get("devices", [])],
        "UserNamespace": {"UidMap": [f"{m['containerID']}:{m['hostID']}:{m['size']}" for m in linux["uidMappings"]],
                          "GidMap": [f"{m['containerID']}:{m['hostID']}:{m['size']}" for m in linux["gidMappings"]]}
                         if linux.get("uidMappings") else None,
    }


def host_config(spec: dict[str, Any]) -> dict[str, Any]:
    """Docker's HostConfig keys for the security flags, as the user gave them."""
    asked = lean.loads(spec.get("annotations", {}).get(ANNOTATION, "{}"))
    devices = []
    for text in asked.get("devices", []):
        host, target, perms = text.split(":")
        devices.append({"PathOnHost": host, "PathInContainer": target, "CgroupPermissions": perms})
    return {"Privileged": bool(asked.get("privileged")),
            "CapAdd": [c.removeprefix("CAP_") for c in asked.get("capAdd", [])] or None,
            "CapDrop": [c.removeprefix("CAP_") for c in asked.get("capDrop", [])] or None,
            "Sysctls": dict(spec.get("linux", {}).get("sysctl", {})) or None,
            "Devices": devices}
