"""The parts of networking that need no root: address leases (also from racing processes),
subnets, -p parsing, and the /etc files a container gets."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from minirun.errors import AddressInUse, NetworkNotFound, UsageError
from minirun.net import etcfiles, ports
from minirun.net.addresses import overlaps, parse_cidr
from minirun.net.ipam import Leases
from minirun.net.networks import NetworkStore
from minirun.net.settings import Settings


@pytest.fixture
def store(tmp_path, monkeypatch) -> NetworkStore:
    monkeypatch.setattr("minirun.net.networks.host_routes", lambda exclude_ifaces=(): [])
    Settings(bridge="mrunit0", subnet="10.250.0.0/29", pool="10.251.0.0/16", table="t").save(tmp_path)
    return NetworkStore(tmp_path)


def test_leases_are_the_lowest_free_and_reused(store, tmp_path):
    net = store.get("bridge")                              # made from the settings on first use
    assert (net.bridge, net.subnet, net.gateway) == ("mrunit0", "10.250.0.0/29", "10.250.0.1")
    leases = Leases(tmp_path, net)
    got = [leases.allocate(f"c{i}", f"n{i}") for i in range(5)]
    assert got == ["10.250.0.2", "10.250.0.3", "10.250.0.4", "10.250.0.5", "10.250.0.6"]
    with pytest.raises(AddressInUse, match="no free address"):     # .7 is the broadcast address
        leases.allocate("c5", "n5")
    assert leases.release("c1") == ["10.250.0.3"]
    assert leases.allocate("c6", "n6") == "10.250.0.3"
    assert leases.allocate("c6", "n6") == "10.250.0.3"             # asking again: the same lease


def test_a_wanted_address_is_checked(store, tmp_path):
    leases = Leases(tmp_path, store.get("bridge"))
    assert leases.allocate("a", "a", wanted="10.250.0.5") == "10.250.0.5"
    for wanted, error, text in [("10.250.0.5", AddressInUse, "already in use .*by container a"),
                                ("10.250.0.1", AddressInUse, "gateway"),
                                ("10.9.0.5", UsageError, "not in the subnet"),
                                ("10.250.0.7", UsageError, "not in the subnet"),
                                ("banana", UsageError, "invalid --ip")]:
        with pytest.raises(error, match=text):
            leases.allocate("b", "b", wanted=wanted)


def _grab(root: str, n: int, out) -> None:
    store = NetworkStore(Path(root))
    leases = Leases(Path(root), store.get("racers"))
    out.put([leases.allocate(f"p{n}-{i}", f"p{n}-{i}") for i in range(10)])


def test_racing_processes_never_get_the_same_address(store, tmp_path):
    store.create("racers", subnet="10.252.0.0/24")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_grab, args=(str(tmp_path), n, out)) for n in range(8)]
    for p in procs:
        p.start()
    got = [ip for _ in procs for ip in out.get(timeout=60)]
    for p in procs:
        p.join()
    assert len(got) == 80 and len(set(got)) == 80
    assert len(json.loads((tmp_path / "networks" / "racers.leases").read_text())) == 80


def test_networks_get_distinct_subnets_and_refuse_overlaps(store):
    a, b = store.create("a"), store.create("b")
    assert (a.subnet, b.subnet) == ("10.251.0.0/24", "10.251.1.0/24")
    assert a.bridge.startswith("mr-") and len(a.bridge) <= 15
    with pytest.raises(UsageError, match="overlaps network a"):
        store.create("c", subnet="10.251.0.128/25")
    with pytest.raises(UsageError, match="already exists"):
        store.create("a")
    with pytest.raises(UsageError, match="reserved"):
        store.create("host")
    with pytest.raises(UsageError, match="host bits"):
        store.create("d", subnet="10.253.0.1/24")
    store.remove("a", leases_of=lambda net: Leases(store.root, net))
    with pytest.raises(NetworkNotFound):
        store.get("a")
    with pytest.raises(UsageError, match="pre-defined"):
        store.remove("bridge", leases_of=lambda net: Leases(store.root, net))


def test_a_network_in_use_is_not_removed(store, tmp_path):
    from minirun.errors import NetworkInUse

    net = store.create("busy")
    Leases(tmp_path, net).allocate("cid", "web")
    with pytest.raises(NetworkInUse, match="in use by container web"):
        store.remove("busy", leases_of=lambda net: Leases(store.root, net))
    assert store.get("busy").id == net.id


def test_subnet_arithmetic():
    assert parse_cidr("10.0.0.0/8") == (10 << 24, 8)
    assert overlaps(parse_cidr("10.1.0.0/16"), parse_cidr("10.1.2.0/24"))
    assert not overlaps(parse_cidr("10.1.0.0/24"), parse_cidr("10.1.1.0/24"))


@pytest.mark.parametrize("spec, expect", [
    ("8080:80", ("tcp", "127.0.0.1", 8080, 80)),
    ("0.0.0.0:8080:80/udp", ("udp", "0.0.0.0", 8080, 80)),
    ("10.0.0.1::53/udp", ("udp", "10.0.0.1", 0, 53)),
    ("80", ("tcp", "127.0.0.1", 0, 80)),
    (":8080:80", ("tcp", "0.0.0.0", 8080, 80)),
])
def test_publish_syntax(spec, expect):
    m = ports.parse(spec)
    assert (m.proto, m.host_ip, m.host_port, m.container_port) == expect


@pytest.mark.parametrize("spec, text", [
    ("8080:80/sctp", "protocol"), ("70000:80", "invalid port"), ("8000-8010:80", "ranges"),
    ("a:b:c:d", "use \\[ip:\\]"), ("999.1.1.1:80:80", "host address"), ("8080:", "invalid port"),
])
def test_bad_publish_is_one_clear_error(spec, text):
    with pytest.raises(UsageError, match=text):
        ports.parse(spec)


def test_publish_all_takes_the_images_exposed_ports():
    got = ports.exposed({"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8443": {}}})
    assert [(m.proto, m.host_ip, m.host_port, m.container_port) for m in got] == [
        ("udp", "127.0.0.1", 0, 53), ("tcp", "127.0.0.1", 0, 80), ("tcp", "127.0.0.1", 0, 8443)]


def test_resolv_conf_drops_loopback_nameservers():
    host = "search example.org\nnameserver 127.0.0.53\nnameserver 10.1.1.1\noptions edns0\n"
    assert etcfiles.resolv_conf(host) == "search example.org\noptions edns0\nnameserver 10.1.1.1\n"
    assert "nameserver 8.8.8.8" in etcfiles.resolv_conf("nameserver 127.0.0.53\n")
    assert etcfiles.resolv_conf(host, dns=["1.1.1.1"]).endswith("nameserver 1.1.1.1\n")


def test_hosts_list_peers_with_the_own_hostname_first():
    info = {"hostname": "abc123", "add_hosts": [["db", "10.9.9.9"]],
            "networks": {"n": {"ip": "10.0.0.2"}}}
    text = etcfiles.hosts_text(info, [("10.0.0.2", "web", ["www"]), ("10.0.0.3", "other", [])])
    assert text.splitlines()[2:] == ["10.9.9.9\tdb", "10.0.0.2\tabc123 web www", "10.0.0.3\tother"]
