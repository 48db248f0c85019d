"""An image reference: `name[:tag]`, Docker's grammar without digests (`busybox` is
`busybox:latest`). A module of its own because the store and the archive reader and writer
(archive.py, save.py) all check names, and the store imports the reader: it cannot import the
store back.
"""

from __future__ import annotations

import re

from minirun.errors import UsageError

_NAME = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"  # optional registry host[:port]/
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def parse_reference(ref: str) -> str:
    """'busybox' -> 'busybox:latest'; 'name:tag' stays. UsageError if it cannot be a name."""
    if "@" in ref:
        raise UsageError(f"invalid image name {ref!r}: digest references are not supported")
    name, tag = ref, "latest"
    colon, slash = ref.rfind(":"), ref.rfind("/")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1 :]
    if not _NAME.fullmatch(name) or len(name) > 255:
        raise UsageError(
            f"invalid image name {ref!r}: use lowercase letters, digits, '.', '_', '-' and '/'"
        )
    if not _TAG.fullmatch(tag):
        raise UsageError(f"invalid image tag {tag!r} in {ref!r}")
    if re.fullmatch(r"[0-9a-f]{64}", name):
        raise UsageError(f"invalid image name {ref!r}: a 64-hex-digit name looks like an id")
    return f"{name}:{tag}"
