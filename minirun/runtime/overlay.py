"""Is there an overlay filesystem? (overlayfs(7), filesystems(5))

A container's root is an overlay of its image's read-only layers and its own upper directory,
so images share their layers on disk and a container starts without copying anything. Without
overlayfs minirun refuses to create containers, with one line saying so, rather than falling
back to copying every layer into each container (Docker's "vfs" driver): that copy would make
each start cost seconds and the disk as much as the image, silently. The OCI command line
(`minirun-oci`) runs bundles whose rootfs is a plain directory and does not need it.

The kernel lists the filesystems it can mount in /proc/filesystems; one built as a module
appears there only once loaded, and mount(2) loads it on demand, so modules.dep is asked too.
Both paths are parameters: tests point them at files of their own.
"""

from __future__ import annotations

import os

FILESYSTEMS = "/proc/filesystems"


def modules_dep() -> str:
    return f"/lib/modules/{os.uname().release}/modules.dep"


def available(filesystems: str = FILESYSTEMS, modules: str | None = None) -> bool:
    try:
        with open(filesystems) as f:
            if any(line.split()[-1:] == ["overlay"] for line in f):
                return True
    except OSError:
        pass
    try:
        with open(modules or modules_dep()) as f:
            return any(line.split(":", 1)[0].rsplit("/", 1)[-1].startswith("overlay.ko") for line in f)
    except OSError:
        return False


def check(filesystems: str = FILESYSTEMS, modules: str | None = None) -> None:
    from minirun.errors import OverlayUnsupported

    if not available(filesystems, modules):
        raise OverlayUnsupported(
            f"this kernel has no overlay filesystem (not in {filesystems}, no overlay module in "
            f"{modules or modules_dep()}): containers' roots are overlays of their image layers; "
            "load it with `modprobe overlay` or use a kernel built with CONFIG_OVERLAY_FS")
