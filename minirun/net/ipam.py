"""Address management: which container holds which address of a network.

    ROOT/networks/NAME.leases       {"10.87.0.2": {"id": CID, "name": "web", "aliases": [...]}, ...}
    ROOT/networks/NAME.leases.lock  flock(2) held while the file is read and rewritten

Every allocation and release is read-modify-write under the lock, and the new file is renamed
into place before the address is used (a lease is journaled before the veth that uses it
exists), so concurrent `run`s never get the same address and a crash of minirun leaves a lease
that can be matched against the containers that still exist. (No fsync: like the pid records,
leases describe live processes, which a power loss ends anyway.) The lowest free address is
handed out, so released addresses are reused. The network address, the gateway and the
broadcast address are never handed out.
"""

from __future__ import annotations

import json
from pathlib import Path

from minirun.errors import AddressInUse, NetworkNotFound, UsageError
from minirun.net.addresses import host_mask, int_to_ip, ip_to_int
from minirun.net.networks import Network


class Leases:
    def __init__(self, root: Path, network: Network):
        self.network = network
        self.path = root / "networks" / f"{network.name}.leases"
        self.lock_path = root / "networks" / f"{network.name}.leases.lock"
        self.record_path = root / "networks" / f"{network.name}.json"

    def locked(self):
        from minirun.storage import flocked

        return flocked(self.lock_path)

    def read(self) -> dict[str, dict]:
        from minirun.storage import read_json

        return read_json(self.path, {})

    def _write(self, leases: dict[str, dict]) -> None:
        from minirun.storage import write_json

        write_json(self.path, leases, durable=False)

    def allocate(self, cid: str, name: str, aliases: list[str] = (), wanted: str | None = None,
                 then=None) -> str:
        """Lease an address to container `cid` (the lowest free one, or `wanted`); then(leases,
        ip), if given, runs still under the lock (the callers refresh /etc/hosts there)."""
        net = self.network
        base, prefix = (ip_to_int(net.subnet.split("/")[0]), net.prefix)
        first, last = base + 1, base + host_mask(prefix) - 1      # no network, no broadcast
        gateway = ip_to_int(net.gateway)
        with self.locked():
            if not self.record_path.exists():
                raise NetworkNotFound(f"network {net.name} not found (removed meanwhile)")
            leases = self.read()
            mine = [ip for ip, holder in leases.items() if holder["id"] == cid]
            if mine:                                               # already ours (a restart)
                return mine[0]
            if wanted is not None:
                try:
                    value = ip_to_int(wanted)
                except ValueError:
                    raise UsageError(f"invalid --ip {wanted!r}: use an IPv4 address") from None
                if not first <= value <= last:
                    raise UsageError(f"--ip {wanted} is not in the subnet {net.subnet} of network {net.name}")
                if value == gateway:
                    raise AddressInUse(f"--ip {wanted} is the gateway of network {net.name}")
                if wanted in leases:
                    raise AddressInUse(f"address {wanted} is already in use on network {net.name} "
                                       f"(by container {leases[wanted]['name']})")
                ip = wanted
            else:
                taken = {ip_to_int(ip) for ip in leases} | {gateway}
                value = next((v for v in range(first, last + 1) if v not in taken), None)
                if value is None:
                    raise AddressInUse(f"no free address left on network {net.name} ({net.subnet})")
                ip = int_to_ip(value)
            leases[ip] = {"id": cid, "name": name, "aliases": list(aliases)}
            self._write(leases)
            if then is not None:
                then(leases, ip)
        return ip

    def release(self, cid: str, then=None) -> list[str]:
        """Drop every lease of `cid`; the addresses it held. then(leases) as for allocate."""
        with self.locked():
            leases = self.read()
            mine = [ip for ip, holder in leases.items() if holder["id"] == cid]
            if mine:
                for ip in mine:
                    del leases[ip]
                self._write(leases)
                if then is not None:
                    then(leases)
        return mine


def read_leases(root: Path, network: str) -> dict[str, dict]:
    """A network's leases without the lock (a snapshot: for the hosts of other networks)."""
    try:
        return json.loads((root / "networks" / f"{network}.leases").read_text())
    except FileNotFoundError:
        return {}
