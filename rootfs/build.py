#!/usr/bin/env python3
"""Build the default image: a minimal busybox root filesystem, as a reproducible tar.

    .venv/bin/python rootfs/build.py [--busybox /bin/busybox] [--out rootfs/build/busybox.tar]

Reproducible means: the same busybox binary gives a byte-identical tar on any machine, any day.
So every entry is sorted, owned by 0:0 ("root"), stamped with one mtime (SOURCE_DATE_EPOCH, or 0;
see https://reproducible-builds.org/specs/source-date-epoch/), and written in PAX format by the
same code. Nothing is read from the host except the busybox binary and its applet list.

Only the standard library is used, so this runs before minirun is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "build" / "busybox.tar"

# (path, mode) — the skeleton of a Unix root. /tmp and /var/tmp are world-writable and sticky.
DIRS = [
    ("bin", 0o755),
    ("dev", 0o755),
    ("etc", 0o755),
    ("home", 0o755),
    ("proc", 0o555),
    ("root", 0o700),
    ("run", 0o755),
    ("sbin", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("var", 0o755),
    ("var/tmp", 0o1777),
]

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """\
root:x:0:
tty:x:5:
nogroup:x:65534:
"""
NSSWITCH = """\
passwd: files
group: files
shadow: files
hosts: files dns
networks: files
services: files
protocols: files
"""


def os_release(version: str) -> str:
    return (
        'NAME="minirun busybox"\n'
        "ID=minirun-busybox\n"
        f"VERSION_ID={version}\n"
        f'PRETTY_NAME="minirun busybox {version}"\n'
        'HOME_URL="https://busybox.net/"\n'
    )


def busybox_facts(busybox: Path) -> tuple[list[str], str]:
    """The applet paths (`bin/sh`, `usr/bin/env`, ...) and the version ("1.35.0")."""
    applets = subprocess.run(
        [str(busybox), "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    banner = subprocess.run([str(busybox)], capture_output=True, text=True).stdout
    words = banner.split()
    version = "unknown"
    if len(words) > 1 and words[0] == "BusyBox":
        version = words[1].lstrip("v")
    return sorted(set(a.strip("/") for a in applets if a.strip("/"))), version


def entries(busybox: Path, mtime: int):
    """Yield (TarInfo, data or None), in a fixed order."""
    applets, version = busybox_facts(busybox)
    body = busybox.read_bytes()
    files = {
        "bin/busybox": (body, 0o755),
        "etc/passwd": (PASSWD.encode(), 0o644),
        "etc/group": (GROUP.encode(), 0o644),
        "etc/nsswitch.conf": (NSSWITCH.encode(), 0o644),
        "etc/os-release": (os_release(version).encode(), 0o644),
        # mount points for the per-container files minirun binds over them: when the image has
        # them, overlayfs need not copy /etc up into every container's upper dir
        "etc/hostname": (b"", 0o644),
        "etc/hosts": (b"", 0o644),
        "etc/resolv.conf": (b"", 0o644),
    }
    dirs = dict(DIRS)
    links = {}
    for path in applets:
        if path in files or path in dirs:
            continue
        parent = os.path.dirname(path)
        while parent and parent not in dirs:  # an applet in a directory we did not list
            dirs[parent] = 0o755
            parent = os.path.dirname(parent)
        # relative, so the tree also makes sense when looked at from the host
        links[path] = os.path.relpath("bin/busybox", parent or ".")

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = kind, mode, mtime
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    every = sorted([*dirs, *files, *links], key=lambda p: p.split("/"))
    for name in every:
        if name in dirs:
            yield info(name, tarfile.DIRTYPE, dirs[name]), None
        elif name in files:
            data, mode = files[name]
            ti = info(name, tarfile.REGTYPE, mode)
            ti.size = len(data)
            yield ti, data
        else:
            ti = info(name, tarfile.SYMTYPE, 0o777)
            ti.linkname = links[name]
            yield ti, None


def build(busybox: Path, out: Path, mtime: int | None = None) -> str:
    """Write the tar atomically; return its sha256 (hex). Also writes OUT.sha256."""
    if mtime is None:
        mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # format and encoding fixed: the bytes must not depend on the Python defaults
            with tarfile.open(
                fileobj=f, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8"
            ) as tar:
                for ti, data in entries(busybox, mtime):
                    tar.addfile(ti, io.BytesIO(data) if data is not None else None)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        os.rename(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    side = out.with_name(out.name + ".sha256")
    side_tmp = side.with_name(f".{side.name}.{os.getpid()}")
    side_tmp.write_text(f"{digest}  {out.name}\n")
    os.rename(side_tmp, side)
    return digest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busybox", type=Path, default=Path("/bin/busybox"))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if not args.busybox.is_file():
        print(
            f"build.py: {args.busybox}: no such file (apt-get install busybox-static)",
            file=sys.stderr,
        )
        return 1
    digest = build(args.busybox, args.out)
    print(f"{digest}  {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
