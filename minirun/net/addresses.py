"""IPv4 addresses and networks as ints (a network is (address, prefix length)), and the host's
own routes, which a new network's subnet must not overlap. Plain arithmetic: the ipaddress module
costs 3 ms to import on every `run`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from minirun.errors import UsageError


def ip_to_int(text: str) -> int:
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(text)
    return int.from_bytes(bytes(int(p) for p in parts), "big")


def int_to_ip(value: int) -> str:
    return ".".join(str(b) for b in value.to_bytes(4, "big"))


def parse_cidr(text: str, what: str = "subnet") -> tuple[int, int]:
    """"10.87.0.0/16" -> (network address as int, prefix length); host bits must be zero."""
    addr, _, plen = text.partition("/")
    try:
        value, prefix = ip_to_int(addr), int(plen)
        if not 8 <= prefix <= 30:
            raise ValueError
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}: use an IPv4 network like 10.90.0.0/24 "
                         "(prefix length 8 to 30)") from None
    if value & host_mask(prefix):
        raise UsageError(f"invalid {what} {text!r}: the host bits are set "
                         f"(did you mean {int_to_ip(value & ~host_mask(prefix))}/{prefix}?)")
    return value, prefix


def host_mask(prefix: int) -> int:
    return (1 << (32 - prefix)) - 1


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    prefix = min(a[1], b[1])
    keep = 0xFFFFFFFF ^ host_mask(prefix)
    return (a[0] & keep) == (b[0] & keep)


def host_routes(exclude_ifaces: set[str] = frozenset()) -> list[tuple[str, tuple[int, int]]]:
    """The host's IPv4 routes (main table) as (interface, (network, prefix)); default routes
    (0.0.0.0/0) are left out: every subnet 'overlaps' them and that is fine."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            cols = line.split()
            if len(cols) < 8 or cols[0] in exclude_ifaces:
                continue
            dest = int.from_bytes(bytes.fromhex(cols[1])[::-1], "big")
            mask = int.from_bytes(bytes.fromhex(cols[7])[::-1], "big")
            prefix = bin(mask).count("1")
            if prefix:
                out.append((cols[0], (dest, prefix)))
    return out
