"""A container's network, over its life: what the runtime calls at create, start and rm.

    create  lease an address on each network (journaled in the lease file), write
            ROOT/containers/ID/network.json (what the container holds) and the /etc files;
            every container sharing a network gets the newcomer in its /etc/hosts
    start   (sync step 4: between clone and GO) claim the published ports, mark the record
            "attached" (the journal: rm and gc know there may be kernel objects to remove),
            then ask netd to make the veth pair, configure the container's side and add the
            DNAT rules; on failure everything made so far is undone
    rm      ask netd to remove the veth's host end and the rules, release ports and leases,
            take the container out of its peers' /etc/hosts

Each step is safe to repeat, so an interrupted one is finished by running rm (or gc) again.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from minirun import faults
from minirun.errors import MinirunError, UsageError
from minirun.net import etcfiles
from minirun.net.etcfiles import load_info
from minirun.net.networks import DEFAULT, MODES, NetworkStore


def is_bridge(mode: str) -> bool:
    return mode not in MODES and not mode.startswith("container:")


def _write_info(container_dir: Path, info: dict) -> None:
    from minirun.storage import write_json

    write_json(container_dir / "network.json", info, durable=False)


def _event(root: Path, action: str, cid: str, networks: dict) -> None:
    """`minirun events` (observe/events.py): Docker's network connect/disconnect, one per network,
    the network's id as the actor and the container's id and the network's name as attributes."""
    from minirun.observe import events

    for name, n in networks.items():
        events.emit(root, "network", action, n["id"], {"container": cid, "name": name, "type": "bridge"})


def _host_ifname(cid: str, n: int) -> str:
    return f"mr{cid[:12]}{n}"        # 15 characters: IFNAMSIZ - 1


def create(root: Path, record, opts, image_config: dict, hostname: str) -> dict:
    """Leases and files for a new container on a bridge network (`opts.network`)."""
    from minirun.net import ports as portmod
    from minirun.net.ipam import Leases

    store = NetworkStore(root)
    net = store.get(opts.network)
    wanted = list(opts.publish)
    if opts.publish_all:
        wanted += [p for p in portmod.exposed(image_config)
                   if all(p.container_port != w.container_port or p.proto != w.proto for w in wanted)]
    info = {"mode": net.name, "hostname": hostname,
            "add_hosts": [_add_host(h) for h in opts.add_hosts],
            "ports": [p.to_json() for p in wanted], "published": [], "attached": False,
            "networks": {}}
    aliases = list(opts.network_aliases) if net.name != DEFAULT else []
    if opts.network_aliases and net.name == DEFAULT:
        raise UsageError("--network-alias needs a user-defined network (network create NAME)")
    entry = {"id": net.id, "ip": "", "aliases": aliases, "ifname": "eth0",
             "host_ifname": _host_ifname(record.id, 0), "net": net.to_json()}
    info["networks"][net.name] = entry

    def written(leases: dict, ip: str) -> None:      # under the lease lock
        entry["ip"] = ip
        _write_info(record.dir, info)
        _refresh_members(root, net.name, leases)

    leases = Leases(root, net)
    try:
        leases.allocate(record.id, record.name, aliases, wanted=opts.ip, then=written)
    except BaseException:
        leases.release(record.id)            # a lease written before a later step failed
        raise
    faults.point("net:leased")
    return info


def _add_host(text: str) -> list[str]:
    """--add-host NAME:IP (Docker also accepts NAME=IP)."""
    sep = "=" if "=" in text else ":"
    name, _, ip = text.partition(sep)
    from minirun.net.addresses import ip_to_int

    try:
        ip_to_int(ip)
    except ValueError:
        raise UsageError(f"invalid --add-host {text!r}: use NAME:IPv4") from None
    if not name or any(c.isspace() for c in name):
        raise UsageError(f"invalid --add-host {text!r}: use NAME:IPv4")
    return [name, ip]


def refresh_hosts(root: Path, network: str) -> None:
    """Rewrite /etc/hosts of every container on `network` (under its lease lock)."""
    from minirun.net.ipam import Leases

    try:
        net = NetworkStore(root).get(network)
    except MinirunError:
        return
    leases = Leases(root, net)
    with leases.locked():
        _refresh_members(root, network, leases.read())


def _refresh_members(root: Path, network: str, leases: dict) -> None:
    for cid in {holder["id"] for holder in leases.values()}:
        _write_hosts(root, root / "containers" / cid, {network: leases})


def _write_hosts(root: Path, container_dir: Path, known: dict[str, dict] = None) -> None:
    """A container's /etc/hosts from the leases of its networks (`known`: already read)."""
    from minirun.net.ipam import read_leases

    info = load_info(container_dir)
    if info is None or not (container_dir / "hosts").exists():
        return
    peers = []
    for name in info["networks"]:
        leases = (known or {}).get(name)
        for ip, holder in (read_leases(root, name) if leases is None else leases).items():
            peers.append((ip, holder["name"], holder.get("aliases", [])))
    etcfiles.write_in_place(container_dir / "hosts", etcfiles.hosts_text(info, peers))


# -- start ----------------------------------------------------------------------------------------
def attach(root: Path, record, pid: int) -> None:
    """Sync step 4 for a bridge network: the process `pid` (blocked before GO) gets its
    interfaces and the container its published ports."""
    from minirun.net import client

    info = load_info(record.dir)
    if info is None:
        return
    if info["attached"]:                      # a restart: the old rules go first
        _detach(root, record.id, info)
        _event(root, "disconnect", record.id, info["networks"])
    links = [{"network": n["net"], "ip": n["ip"], "ifname": n["ifname"], "host_ifname": n["host_ifname"]}
             for n in info["networks"].values()]
    if info["ports"]:
        from minirun.net.ports import PortMapping, PortRegistry

        registry = PortRegistry(root)
        published = registry.claim(record.id, record.name, [PortMapping(**p) for p in info["ports"]])
        info["published"] = [p.to_json() for p in published]
    info["attached"] = True
    _write_info(record.dir, info)             # journaled before anything exists in the kernel
    try:
        client.call(root, {"op": "attach", "cid": record.id, "pid": pid, "links": links,
                           "ports": info["published"]})
    except BaseException:
        undone = False
        with contextlib.suppress(MinirunError):
            _detach(root, record.id, info)
            undone = True
        if info["ports"]:
            registry.release(record.id)
        info["published"] = []
        info["attached"] = not undone        # if netd could not undo it, rm or gc will
        _write_info(record.dir, info)
        raise
    _event(root, "connect", record.id, info["networks"])


def _detach(root: Path, cid: str, info: dict) -> None:
    from minirun.net import client

    client.call(root, {"op": "detach", "cid": cid, "rules": bool(info["published"] or info["ports"]),
                       "host_ifnames": [n["host_ifname"] for n in info["networks"].values()]})


# -- rm -------------------------------------------------------------------------------------------
def release(root: Path, record) -> None:
    """Everything the container holds, in reverse order; safe to run again after a crash."""
    from minirun.net.ipam import Leases

    info = load_info(record.dir)
    if info is None:
        return
    if info["attached"]:
        _detach(root, record.id, info)
        _event(root, "disconnect", record.id, info["networks"])
    if info["ports"]:
        from minirun.net.ports import PortRegistry

        PortRegistry(root).release(record.id)
    store = NetworkStore(root)
    for name in list(info["networks"]):
        with contextlib.suppress(MinirunError):
            Leases(root, store.get(name)).release(
                record.id, then=lambda leases, name=name: _refresh_members(root, name, leases))


# -- what inspect and port show -------------------------------------------------------------------
def settings_of(root: Path, record) -> dict:
    """Docker's NetworkSettings for inspect."""
    info = load_info(record.dir)
    if info is None:
        return {"Networks": {}, "Ports": {}}
    store = NetworkStore(root)
    networks = {}
    for name, n in info["networks"].items():
        with contextlib.suppress(MinirunError):
            net = store.get(name)
            networks[name] = {"NetworkID": net.id, "IPAddress": n["ip"], "IPPrefixLen": net.prefix,
                              "Gateway": net.gateway, "Aliases": n["aliases"] or None}
    ports: dict[str, list] = {}
    for p in info["published"] or info["ports"]:
        ports.setdefault(f"{p['container_port']}/{p['proto']}", []).append(
            {"HostIp": p["host_ip"], "HostPort": str(p["host_port"])})
    return {"Networks": networks, "Ports": ports}


def published(record) -> list[dict]:
    info = load_info(record.dir)
    return list(info["published"]) if info else []


# -- the whole root -------------------------------------------------------------------------------
def teardown(root: Path) -> None:
    """Remove every bridge and the nft table of this data root and stop its netd (the tests and
    benchmarks clean up with this; networks' records stay)."""
    from minirun.net import client

    bridges = [n.bridge for n in NetworkStore(root).list()]
    if bridges or client.running(root):
        client.call(root, {"op": "teardown", "bridges": bridges})
    client.shutdown(root)


# -- network verbs --------------------------------------------------------------------------------
def remove_network(root: Path, ref: str):
    """`network rm`: refused while a container holds an address on it (NetworkInUse)."""
    from minirun.net.ipam import Leases

    store = NetworkStore(root)
    net = store.remove(ref, leases_of=lambda net: Leases(root, net))
    faults.point("network-rm:record-removed")
    _remove_bridge(root, net)
    store.removing(net.name).unlink()
    return net


def finish_removals(root: Path) -> list[str]:
    """Finish every `network rm` that died between its record and its bridge (gc, and `network
    create`, which may reuse the name and so the rules' owner tag): "NAME (BRIDGE)" each."""
    store = NetworkStore(root)
    done = []
    for net in store.half_removed():
        _remove_bridge(root, net)
        store.removing(net.name).unlink(missing_ok=True)
        done.append(f"{net.name} ({net.bridge})")
    return done


def _remove_bridge(root: Path, net) -> None:
    from minirun.net import client

    if Path(f"/sys/class/net/{net.bridge}").exists() or client.running(root):
        client.call(root, {"op": "remove_network", "network": net.to_json()})


def connect(root: Path, record, network: str, ip: str | None = None, aliases: list[str] = ()) -> None:
    """`network connect`: one more interface (eth1, ...) on another network, live if running.

    Under the container's lock. The new network is journaled in network.json as "pending" in
    the same step as its lease (under the lease lock), before any interface exists, and marked
    done last: gc rolls back a pending entry it finds (the command that wrote it died)."""
    with record.locked():
        _connect(root, record, network, ip, aliases)


def _connect(root: Path, record, network: str, ip: str | None, aliases: list[str]) -> None:
    from minirun.net import client
    from minirun.net.ipam import Leases

    info = load_info(record.dir)
    if info is None:
        raise UsageError(f"container {record.name} has no bridge network to add to "
                         "(it was created with --network none or host)")
    net = NetworkStore(root).get(network)
    if net.name in info["networks"]:
        raise UsageError(f"container {record.name} is already connected to network {net.name}")
    used = {n["host_ifname"][-1] for n in info["networks"].values()}
    n = next(i for i in range(10) if str(i) not in used)
    entry = {"id": net.id, "ip": "", "aliases": list(aliases), "ifname": f"eth{n}",
             "host_ifname": _host_ifname(record.id, n), "net": net.to_json(), "pending": True}

    def journaled(leases: dict, address: str) -> None:     # under the lease lock
        entry["ip"] = address
        info["networks"][net.name] = entry
        _write_info(record.dir, info)

    leases = Leases(root, net)
    address = leases.allocate(record.id, record.name, list(aliases), wanted=ip, then=journaled)
    if info["networks"].get(net.name) is not entry:     # a lease it held already (not written)
        journaled({}, address)
    faults.point("connect:leased")
    attached_now = record.status() == "running" and info["attached"]
    if attached_now:
        try:
            client.call(root, {"op": "attach", "cid": record.id, "pid": record.state.pid,
                               "route": False, "ports": [],
                               "links": [{"network": net.to_json(), "ip": address,
                                          "ifname": entry["ifname"], "host_ifname": entry["host_ifname"]}]})
        except BaseException:
            del info["networks"][net.name]
            _write_info(record.dir, info)
            leases.release(record.id)
            raise
    del entry["pending"]
    _write_info(record.dir, info)
    if attached_now:
        _event(root, "connect", record.id, {net.name: entry})
    for name in info["networks"]:
        refresh_hosts(root, name)


def disconnect(root: Path, record, network: str) -> None:
    """`network disconnect`: the interface goes, the address is released, peers forget the name."""
    with record.locked():
        _disconnect(root, record, network)


def _disconnect(root: Path, record, network: str) -> None:
    from minirun.net import client
    from minirun.net.ipam import Leases

    info = load_info(record.dir)
    net = NetworkStore(root).get(network)
    if info is None or net.name not in info["networks"]:
        raise UsageError(f"container {record.name} is not connected to network {net.name}")
    entry = info["networks"][net.name]
    if entry["ifname"] == "eth0" and info["published"]:
        raise UsageError(f"container {record.name} publishes ports through network {net.name}: "
                         "remove it instead")
    if record.status() == "running" and info["attached"]:
        client.call(root, {"op": "detach", "cid": "-", "pid": record.state.pid,
                           "ifname": entry["ifname"], "host_ifnames": [entry["host_ifname"]]})
        _event(root, "disconnect", record.id, {net.name: entry})
    del info["networks"][net.name]
    _write_info(record.dir, info)
    Leases(root, net).release(record.id)
    refresh_hosts(root, net.name)
    _write_hosts(root, record.dir)


def settle(root: Path, record, running: bool) -> list[str]:
    """gc of one container that exists (the caller holds its lock): roll back a `network
    connect` that died half way (an entry still "pending"), and, if the container does not
    run, release what its last start attached (rules, port claims, host veth ends), as its
    cgroup is released: a start that died after attaching leaves them, and so does an exit.
    The next start attaches again. The lines say what was released."""
    from minirun.net import client
    from minirun.net.ipam import Leases

    info = load_info(record.dir)
    if info is None:
        return []
    released = []
    for name, entry in list(info["networks"].items()):
        if not entry.get("pending"):
            continue
        if running and info["attached"]:
            with contextlib.suppress(MinirunError):
                client.call(root, {"op": "detach", "cid": "-", "pid": record.state.pid, "rules": False,
                                   "ifname": entry["ifname"], "host_ifnames": [entry["host_ifname"]]})
        del info["networks"][name]
        _write_info(record.dir, info)
        with contextlib.suppress(MinirunError):
            Leases(root, NetworkStore(root).get(name)).release(
                record.id, then=lambda leases, name=name: _refresh_members(root, name, leases))
        _write_hosts(root, record.dir)
        released.append(f"network {name} of {record.name} (its connect died half way)")
    if not running and info["attached"]:
        try:
            _detach(root, record.id, info)
        except MinirunError:                 # netd cannot do it now: the next gc (or rm) will
            return released
        if info["ports"]:
            from minirun.net.ports import PortRegistry

            PortRegistry(root).release(record.id)
        info["published"] = []
        info["attached"] = False
        _write_info(record.dir, info)
        released.append(f"network attachments of {record.name} (it is not running)")
    return released


def gc(root: Path) -> dict:
    """After a crash: release what containers that no longer exist still hold (leases, port
    claims, hosts entries, nft rules, veths on this root's bridges). Returns what was swept."""
    from minirun.net import client
    from minirun.net.ipam import Leases
    from minirun.net.ports import PortRegistry

    containers = root / "containers"
    alive = {p.name for p in containers.iterdir()} if containers.is_dir() else set()
    store = NetworkStore(root)
    swept: dict[str, list] = {"leases": [], "ports": [], "rules": [], "links": [],
                              "networks": finish_removals(root)}
    for net in store.list():
        leases = Leases(root, net)
        gone = {h["id"] for h in leases.read().values() if h["id"] not in alive}
        for cid in gone:
            swept["leases"] += leases.release(
                cid, then=lambda current, name=net.name: _refresh_members(root, name, current))
    registry = PortRegistry(root)
    stale = {v["id"] for v in registry.read().values() if v["id"] not in alive}
    for cid in stale:
        registry.release(cid)
        swept["ports"].append(cid[:12])
    if client.running(root) or any(Path(f"/sys/class/net/{n.bridge}").exists() for n in store.list()):
        reply = client.call(root, {"op": "gc", "alive": sorted(alive),
                                   "bridges": [n.bridge for n in store.list()]})
        swept["rules"], swept["links"] = reply["rules"], reply["links"]
    return swept


def prune_networks(root: Path) -> list[str]:
    """`network prune`: sweep what vanished containers left (gc), then remove every user network
    no container is on."""
    gc(root)
    removed = []
    for net in NetworkStore(root).list():
        if net.default:
            continue
        with contextlib.suppress(MinirunError):
            remove_network(root, net.name)
            removed.append(net.name)
    return removed
