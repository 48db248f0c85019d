"""Published ports: `-p [ip:][hostPort:]containerPort[/tcp|udp]` and `-P`.

The kernel forwards them (nftables DNAT, see nft.py), so no process of ours holds the host
port. To keep Docker's promise that a taken port is an error, a port is claimed in two ways
before any rule exists: in ROOT/net/ports.json (under a lock: two containers of this root
never get the same port) and by binding it ourselves, which fails if any program on the host
already listens there. The default host address is 127.0.0.1, not Docker's 0.0.0.0: a
published port is not opened to the network unless asked (`-p 0.0.0.0:8080:80`).
"""

from __future__ import annotations

import _socket as socket
import os
from pathlib import Path

from minirun.errors import AddressInUse, UsageError

DEFAULT_HOST_IP = "127.0.0.1"


class PortMapping:
    """One published port; host_port is 0 until a free one is chosen."""

    __slots__ = ("proto", "host_ip", "host_port", "container_port")

    def __init__(self, proto: str, host_ip: str, host_port: int, container_port: int):
        self.proto, self.host_ip = proto, host_ip
        self.host_port, self.container_port = host_port, container_port

    def key(self) -> str:
        return f"{self.proto}/{self.host_ip}:{self.host_port}"

    def __str__(self) -> str:
        return f"{self.container_port}/{self.proto} -> {self.host_ip}:{self.host_port}"

    def to_json(self) -> dict:
        return {"proto": self.proto, "host_ip": self.host_ip, "host_port": self.host_port,
                "container_port": self.container_port}


def _port(text: str, spec: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise UsageError(f"invalid port {text!r} in -p {spec!r}: a number from 1 to 65535")
    return int(text)


def parse(spec: str) -> PortMapping:
    """Docker's -p syntax (no ranges)."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise UsageError(f"invalid protocol {proto!r} in -p {spec!r}: tcp or udp")
    if "-" in body:
        raise UsageError(f"-p {spec!r}: port ranges are not supported; publish each port")
    parts = body.split(":")
    if len(parts) == 1:
        ip, host, ctr = DEFAULT_HOST_IP, "", parts[0]
    elif len(parts) == 2:
        ip, (host, ctr) = DEFAULT_HOST_IP, parts
    elif len(parts) == 3:
        ip, host, ctr = parts
    else:
        raise UsageError(f"invalid -p {spec!r}: use [ip:][hostPort:]containerPort[/tcp|udp]")
    ip = ip or "0.0.0.0"
    from minirun.net.addresses import ip_to_int

    try:
        ip_to_int(ip)
    except ValueError:
        raise UsageError(f"invalid host address {ip!r} in -p {spec!r} (IPv4 only)") from None
    return PortMapping(proto, ip, _port(host, spec) if host else 0, _port(ctr, spec))


def exposed(image_config: dict) -> list[PortMapping]:
    """-P: every port the image declares (ExposedPorts {"80/tcp": {}}), on a free host port."""
    out = []
    for key in sorted(image_config.get("ExposedPorts") or {}):
        number, _, proto = key.partition("/")
        out.append(parse(f"{number}/{proto or 'tcp'}"))
    return out


def _conflicts(a: PortMapping, b: PortMapping) -> bool:
    return (a.proto == b.proto and a.host_port == b.host_port
            and (a.host_ip == b.host_ip or "0.0.0.0" in (a.host_ip, b.host_ip)))


def _bind_check(m: PortMapping) -> int:
    """Bind the port as a server would; the port (the kernel's choice for port 0)."""
    kind = socket.SOCK_STREAM if m.proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    try:
        if m.proto == "tcp":         # a connection in TIME_WAIT does not hold a port for a server
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((m.host_ip, m.host_port))
        return s.getsockname()[1]
    except OSError as e:
        raise AddressInUse(f"cannot publish {m.host_ip}:{m.host_port}/{m.proto}: "
                           f"{os.strerror(e.errno or 98)} on the host") from None
    finally:
        s.close()


class PortRegistry:
    """ROOT/net/ports.json: {"tcp/127.0.0.1:8080": {"id": CID, "name": NAME, "container_port": 80}}"""

    def __init__(self, root: Path):
        self.path = root / "net" / "ports.json"
        self.lock_path = root / "net" / "ports.lock"

    def locked(self):
        from minirun.storage import flocked

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return flocked(self.lock_path)

    def read(self) -> dict[str, dict]:
        from minirun.storage import read_json

        return read_json(self.path, {})

    def claim(self, cid: str, name: str, wanted: list[PortMapping]) -> list[PortMapping]:
        """Claim every port or none: a taken one raises AddressInUse and nothing is recorded."""
        from minirun.storage import write_json

        with self.locked():
            table = self.read()
            held = [PortMapping(k.split("/")[0], k.split("/")[1].rsplit(":", 1)[0],
                                int(k.rsplit(":", 1)[1]), v["container_port"])
                    for k, v in table.items() if v["id"] != cid]
            got: list[PortMapping] = []
            for m in wanted:
                for other in [*held, *got]:
                    if m.host_port and _conflicts(m, other):
                        raise AddressInUse(f"cannot publish {m.host_ip}:{m.host_port}/{m.proto}: "
                                           "already published by another container")
                m = PortMapping(m.proto, m.host_ip, _bind_check(m), m.container_port)
                got.append(m)
            for m in got:
                table[m.key()] = {"id": cid, "name": name, "container_port": m.container_port}
            write_json(self.path, table, durable=False)
        return got

    def release(self, cid: str) -> None:
        from minirun.storage import write_json

        with self.locked():
            table = self.read()
            keep = {k: v for k, v in table.items() if v["id"] != cid}
            if len(keep) != len(table):
                write_json(self.path, keep, durable=False)
