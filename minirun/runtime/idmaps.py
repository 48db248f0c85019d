"""Id maps (user_namespaces(7)): a list of {"containerID", "hostID", "size"} ranges, as the OCI
spec's linux.uidMappings and gidMappings hold them, and which id one side sees for the other's.
Both user-namespace modules read maps through these: userns.py (the maps a container asked for)
and rootless.py (a user who is not root); each imports this, neither the other's arithmetic.
"""

from __future__ import annotations


def to_host(maps: list[dict], cid: int) -> int | None:
    """The host id a container id maps to, or None if the map leaves it out."""
    for m in maps:
        if m["containerID"] <= cid < m["containerID"] + m["size"]:
            return m["hostID"] + cid - m["containerID"]
    return None


def to_container(maps: list[dict], hid: int) -> int | None:
    """The container id a host id is, or None if the map leaves it out."""
    for m in maps:
        if m["hostID"] <= hid < m["hostID"] + m["size"]:
            return m["containerID"] + hid - m["hostID"]
    return None
