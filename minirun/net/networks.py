"""Network records: ROOT/networks/NAME.json, one per bridge network.

    bridge   the default network, made on first use from settings.py (its bridge: minirun0)
    NAME     user networks (`network create`): a bridge each (mr-<id>), a subnet from the pool

`host` and `none` are modes, not records: they appear in `network ls` as Docker shows them.
Creating or removing a record holds ROOT/networks/.lock, so two `network create` never get the
same subnet. A subnet that overlaps a route of the host (/proc/net/route) or another minirun
network is refused: traffic for it would go to the wrong place.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from minirun.errors import NetworkInUse, NetworkNotFound, UsageError
from minirun.net.addresses import host_mask, host_routes, int_to_ip, ip_to_int, overlaps, parse_cidr
from minirun.net.settings import Settings

DEFAULT = "bridge"
MODES = ("host", "none")             # network modes without a record (and without a bridge)
IFNAMSIZ = 15                        # the longest interface name the kernel accepts


class Network:
    """One network's record. (A plain class: @dataclass costs 3 ms of import on every `run`.)"""

    __slots__ = ("name", "id", "bridge", "subnet", "gateway", "created", "default")

    def __init__(self, name: str, id: str, bridge: str, subnet: str, gateway: str, created: str,
                 default: bool = False):
        self.name, self.id, self.bridge, self.subnet = name, id, bridge, subnet
        self.gateway, self.created, self.default = gateway, created, default

    @property
    def prefix(self) -> int:
        return int(self.subnet.split("/")[1])

    def to_json(self) -> dict:
        return {"Name": self.name, "Id": self.id, "Driver": "bridge", "Bridge": self.bridge,
                "Subnet": self.subnet, "Gateway": self.gateway, "Created": self.created,
                "Default": self.default}

    @classmethod
    def from_json(cls, data: dict) -> Network:
        return cls(name=data["Name"], id=data["Id"], bridge=data["Bridge"], subnet=data["Subnet"],
                   gateway=data["Gateway"], created=data["Created"], default=data.get("Default", False))


class NetworkStore:
    def __init__(self, root: Path):
        self.root = root
        self.dir = root / "networks"
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.load(self.root)
        return self._settings

    @contextlib.contextmanager
    def locked(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def removing(self, name: str) -> Path:
        """The record of a network being removed (remove() renames it so)."""
        return self.dir / f"{name}.json.removing"

    def half_removed(self) -> list[Network]:
        """Networks whose removal died before their bridge and rules were gone."""
        return [Network.from_json(json.loads(p.read_text())) for p in sorted(self.dir.glob("*.json.removing"))]

    def _read(self, name: str) -> Network | None:
        try:
            return Network.from_json(json.loads(self._path(name).read_text()))
        except FileNotFoundError:
            return None

    def get(self, ref: str) -> Network:
        """A network by name or id (prefix); the default one is made on first use."""
        if ref in MODES:
            raise UsageError(f"{ref} is a network mode, not a bridge network")
        if "/" not in ref and not ref.startswith("."):
            net = self._read(ref)
            if net is not None:
                return net
        if ref == DEFAULT:
            return self._make_default()
        matches = [n for n in self.list() if n.id.startswith(ref)] if len(ref) >= 3 else []
        if len(matches) == 1:
            return matches[0]
        raise NetworkNotFound(f"network {ref} not found (see `minirun network ls`)")

    def list(self) -> list[Network]:
        try:
            names = sorted(p.stem for p in self.dir.glob("*.json"))
        except FileNotFoundError:
            return []
        return [n for n in (self._read(name) for name in names) if n is not None]

    def _make_default(self) -> Network:
        s = self.settings
        with self.locked():
            net = self._read(DEFAULT)
            if net is None:
                net = self._new(DEFAULT, s.bridge, s.subnet, None, default=True)
        return net

    def create(self, name: str, subnet: str | None = None, gateway: str | None = None) -> Network:
        from minirun.storage import NAME_CHARS

        if name in (DEFAULT, *MODES):
            raise UsageError(f"network name {name!r} is reserved (predefined network)")
        if not name or not set(name) <= NAME_CHARS or not name[0].isalnum():
            raise UsageError(f"invalid network name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        with self.locked():
            if self._read(name) is not None:
                raise UsageError(f"network with name {name} already exists")
            if subnet is None:
                subnet = self._free_subnet()
            net_id = os.urandom(32).hex()
            net = self._new(name, f"mr-{net_id[:12]}", subnet, gateway, net_id=net_id)
        self._event("create", net)
        return net

    def _event(self, action: str, net: Network) -> None:
        """`minirun events` (observe/events.py): Docker's network create and destroy."""
        from minirun.observe import events

        events.emit(self.root, "network", action, net.id, {"name": net.name, "type": "bridge"})

    def _new(self, name: str, bridge: str, subnet: str, gateway: str | None, *,
             default: bool = False, net_id: str | None = None) -> Network:
        """Validate and write a record (the caller holds the lock)."""
        from minirun.storage import now_iso, write_json

        if len(bridge) > IFNAMSIZ:
            raise UsageError(f"bridge name {bridge!r} is longer than {IFNAMSIZ} characters")
        net, prefix = parse_cidr(subnet)
        if gateway is None:
            gw = net + 1
        else:
            try:
                gw = ip_to_int(gateway)
            except ValueError:
                raise UsageError(f"invalid gateway {gateway!r}") from None
            if not (net < gw < net + host_mask(prefix)):
                raise UsageError(f"gateway {gateway} is not a host address of {subnet}")
        for other in self.list():
            if overlaps((net, prefix), parse_cidr(other.subnet)):
                raise UsageError(f"subnet {subnet} overlaps network {other.name} ({other.subnet})")
        for iface, route in host_routes(exclude_ifaces={bridge}):
            if overlaps((net, prefix), route):
                raise UsageError(f"subnet {subnet} overlaps the host's route "
                                 f"{int_to_ip(route[0])}/{route[1]} on {iface}: choose another")
        record = Network(name=name, id=net_id or os.urandom(32).hex(), bridge=bridge,
                         subnet=subnet, gateway=int_to_ip(gw), created=now_iso(), default=default)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self._path(name), record.to_json(), durable=False)
        return record

    def _free_subnet(self) -> str:
        s = self.settings
        pool, pool_prefix = parse_cidr(s.pool, "pool")
        taken = [parse_cidr(n.subnet) for n in self.list()] + [parse_cidr(s.subnet)]
        taken += [r for _, r in host_routes()]
        step = 1 << (32 - s.pool_prefix)
        for candidate in range(pool, pool + (1 << (32 - pool_prefix)), step):
            if not any(overlaps((candidate, s.pool_prefix), t) for t in taken):
                return f"{int_to_ip(candidate)}/{s.pool_prefix}"
        raise UsageError(f"no free /{s.pool_prefix} subnet left in the pool {s.pool}: "
                         "remove a network or give --subnet")

    def remove(self, ref: str, leases_of) -> Network:
        """Drop a record; refused for the default network and while any container holds a lease
        (leases_of(net): its ipam.Leases, given by the caller, since the leases of a network sit
        above its record). The caller (container.remove_network) takes the bridge down first."""
        net = self.get(ref)
        if net.default:
            raise UsageError(f"{net.name} is a pre-defined network and cannot be removed")
        leases = leases_of(net)
        with leases.locked():
            users = leases.read()
            if users:
                names = sorted(v["name"] for v in users.values())
                raise NetworkInUse(f"network {net.name} is in use by container {names[0]}"
                                   + (f" and {len(names) - 1} more" if len(names) > 1 else "")
                                   + ": remove or disconnect them first")
            # out of sight at once, but kept as the journal of the bridge and rules until they
            # are gone (container.remove_network unlinks it; gc finishes a removal that died)
            os.rename(self._path(net.name), self.removing(net.name))
        leases.path.unlink(missing_ok=True)
        leases.lock_path.unlink(missing_ok=True)
        self._event("destroy", net)
        return net
