"""Bridge networking as a user relies on it: an address and a route inside, names of peers,
published ports reachable from the host, networks kept apart, and nothing left after rm.

Each test session has its own bridge, subnets and nft table (tests/conftest.py), so test runs
never touch the host's interfaces or each other's.
"""

from __future__ import annotations

import _socket
import json
import os
import socket
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from minirun.net import client
from tests.conftest import cgroup_dirs, network_leftovers

pytestmark = pytest.mark.root

NET = ["--network", "bridge"]
HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"]


def free_port() -> int:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def retry(url: str) -> str:
    """A shell loop fetching url until the server in another container listens (busybox's
    wget -T crashes, hence timeout(1))."""
    return f"for i in $(seq 50); do timeout 2 wget -qO- {url} && exit 0; sleep 0.1; done; exit 1"


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode().strip()


def address_of(mr, ref: str, network: str = "bridge") -> str:
    return json.loads(mr.out("inspect", ref))[0]["NetworkSettings"]["Networks"][network]["IPAddress"]


@pytest.fixture
def user_net(clean):
    """Make networks by name for one test and remove them after it."""
    made = []

    def make(name: str) -> str:
        clean("network", "create", name)
        made.append(name)
        return name
    yield make
    for name in made:
        clean("network", "rm", name, check=False)


def test_bridge_gives_an_address_a_route_and_the_etc_files(clean, data_root):
    settings = json.loads((data_root / "net" / "config.json").read_text())
    prefix = settings["subnet"].rsplit(".", 1)[0]                 # e.g. 10.201.0
    out = clean.out("run", "--rm", *NET, "--name", "inside", "--add-host", "db:10.9.9.9",
                    "--dns", "10.0.0.53", "busybox", "sh", "-c",
                    "ip -4 -o addr show eth0; ip route; cat /etc/hosts; cat /etc/resolv.conf; "
                    "ip link show lo | grep -c UP")
    assert f"inet {prefix}." in out
    assert f"default via {prefix}.1 dev eth0" in out
    assert "10.9.9.9\tdb" in out
    hosts_line = next(ln for ln in out.splitlines() if ln.startswith(prefix) and "\t" in ln)
    assert hosts_line.split("\t")[1].split()[-1] == "inside"
    assert "nameserver 10.0.0.53" in out
    assert out.splitlines()[-1] == "1"                            # loopback is up too


def test_resolv_conf_has_no_loopback_nameserver(clean):
    out = clean.out("run", "--rm", *NET, "busybox", "cat", "/etc/resolv.conf")
    servers = [ln.split()[1] for ln in out.splitlines() if ln.startswith("nameserver")]
    assert servers and not any(s.startswith("127.") or s == "::1" for s in servers)


def test_containers_reach_each_other_by_name_and_alias(clean, user_net):
    net = user_net("talk")
    with clean.detached("--network", net, "--name", "srv", "--network-alias", "web", "busybox",
                        *HTTPD):
        with clean.detached("--network", net, "--name", "cli", "busybox", "sleep", "60") as cli:
            clean("exec", cli, "sh", "-c", retry("http://srv/") + " >/dev/null")
            out = clean.out("exec", cli, "sh", "-c",
                            "ping -c1 -W2 srv >/dev/null && echo ping-ok; "
                            "wget -qO- http://srv/; wget -qO- http://web/; "
                            "echo over-tcp | nc srv 80 | head -1")
            lines = out.splitlines()
            assert lines[0] == "ping-ok"
            assert lines[1] == lines[2] and lines[1].startswith("hello-")
            assert lines[3].startswith("HTTP/1.")                     # raw TCP reached httpd
            # the peer learned the newcomer's name ...
            assert "\tcli" in clean.out("exec", "srv", "cat", "/etc/hosts")
        # ... and forgot it once it was removed
        hosts = clean.out("exec", "srv", "cat", "/etc/hosts").splitlines()
        assert hosts[-1].endswith("srv web") and len(hosts) == 3


def test_published_port_reaches_the_container_on_loopback_and_bridge(clean):
    local, anywhere = free_port(), free_port()
    with clean.detached(*NET, "--name", "pub", "-p", f"{local}:80", "-p", f"0.0.0.0:{anywhere}:80",
                        "busybox", *HTTPD) as cid:
        ports = clean.out("port", "pub")
        assert f"80/tcp -> 127.0.0.1:{local}" in ports and f"80/tcp -> 0.0.0.0:{anywhere}" in ports
        gateway = json.loads(clean.out("inspect", cid))[0]["NetworkSettings"]["Networks"]["bridge"]["Gateway"]
        expect = f"hello-{cid[:12]}"
        clean("exec", cid, "sh", "-c", retry("http://127.0.0.1/") + " >/dev/null")
        assert http_get(f"http://127.0.0.1:{local}/") == expect
        assert http_get(f"http://{gateway}:{anywhere}/") == expect
        assert http_get(f"http://127.0.0.1:{anywhere}/") == expect
        assert http_get(f"http://{address_of(clean, cid)}:80/") == expect
        # 127.0.0.1 only by default: the bridge address does not answer on that port
        with pytest.raises(OSError):
            http_get(f"http://{gateway}:{local}/", timeout=1)


def test_networks_are_isolated(clean, user_net):
    a, b = user_net("iso-a"), user_net("iso-b")
    with clean.detached("--network", b, "--name", "in-b", "busybox", *HTTPD) as target:
        ip_b = address_of(clean, target, b)
        ok = clean.out("run", "--rm", "--network", b, "busybox", "sh", "-c", retry(f"http://{ip_b}/"))
        assert ok.startswith("hello-")
        res = clean("run", "--rm", "--network", a, "busybox", "sh", "-c",
                    f"timeout 2 wget -qO- http://{ip_b}/ || echo unreachable; "
                    f"ping -c1 -W1 {ip_b} >/dev/null || echo no-ping; nslookup in-b >/dev/null 2>&1 || "
                    "grep -c in-b /etc/hosts", check=False)
        assert "unreachable" in res.stdout and "no-ping" in res.stdout
        assert res.stdout.strip().splitlines()[-1] == "0"           # and no name for it either


def test_fifty_concurrent_starts_get_fifty_addresses(clean):
    def start(i: int) -> str:
        return clean.out("run", "-d", *NET, "--name", f"many{i}", "busybox", "sleep", "60", timeout=180)

    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(start, range(50)))
    try:
        leases = json.loads(clean.out("network", "inspect", "bridge"))[0]["Containers"]
        addrs = {c["IPv4Address"] for c in leases.values() if c["Name"].startswith("many")}
        assert len(addrs) == 50
        inside = clean.out("exec", "many7", "ip", "-4", "-o", "addr", "show", "eth0").split()[3]
        assert inside == leases[ids[7]]["IPv4Address"]
    finally:
        clean("rm", "-f", *ids, timeout=180)


def test_released_addresses_are_reused_and_ip_is_honoured(clean, data_root):
    prefix = json.loads((data_root / "net" / "config.json").read_text())["subnet"].rsplit(".", 1)[0]
    first = clean.out("create", *NET, "busybox", "true")
    ip = address_of(clean, first)
    clean("rm", first)
    again = clean.out("create", *NET, "busybox", "true")
    assert address_of(clean, again) == ip
    fixed = clean.out("create", *NET, "--ip", f"{prefix}.200", "busybox", "true")
    assert address_of(clean, fixed) == f"{prefix}.200"
    dup = clean("create", *NET, "--ip", f"{prefix}.200", "busybox", "true", check=False)
    assert dup.returncode == 125 and "already in use" in dup.stderr
    clean("rm", again, fixed)


def test_removal_leaves_no_veth_rule_lease_or_hosts_entry(clean, data_root):
    port = free_port()
    cid = clean.out("run", "-d", *NET, "-p", f"{port}:80", "busybox", "sleep", "60")
    veth = f"mr{cid[:12]}0"
    assert Path(f"/sys/class/net/{veth}").exists()
    table = json.loads((data_root / "net" / "config.json").read_text())["table"]
    assert cid in subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout
    clean("rm", "-f", cid)
    client.running(data_root)            # the helper has finished what rm asked of it
    assert not Path(f"/sys/class/net/{veth}").exists()
    assert cid not in subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout
    assert cid not in (data_root / "networks" / "bridge.leases").read_text()
    # the leak check of the `clean` fixture also looks at leases, ports, bridge ports and rules


def test_detached_rm_container_releases_its_network_on_exit(clean, data_root):
    cid = clean.out("run", "-d", "--rm", *NET, "busybox", "true")
    for _ in range(200):                  # until the monitor's `rm` has finished
        if not any(cid in p.name for p in (data_root / "containers").iterdir()):
            break
        subprocess.run(["sleep", "0.05"])
    assert cid not in (data_root / "networks" / "bridge.leases").read_text()


def test_port_in_use_fails_cleanly(clean, data_root):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        res = clean("run", "--rm", *NET, "-p", f"{port}:80", "busybox", "true", check=False)
        assert res.returncode == 125
        assert res.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port}" in res.stderr
        assert "Traceback" not in res.stderr
    finally:
        holder.close()
    with clean.detached(*NET, "-p", f"{port}:80", "busybox", "sleep", "60"):
        res = clean("run", "--rm", *NET, "-p", f"{port}:80", "busybox", "true", check=False)
        assert res.returncode == 125 and "already published" in res.stderr


def test_unknown_network_fails_cleanly(clean):
    res = clean("run", "--rm", "--network", "nowhere", "busybox", "true", check=False)
    assert res.returncode == 125
    assert res.stderr.strip() == "minirun: network nowhere not found (see `minirun network ls`)"


def test_network_verbs(clean, user_net):
    name = user_net("verbs")
    listed = json.loads(clean.out("network", "ls", "--format", "json"))
    assert {"bridge", "host", "none", name} <= {n["Name"] for n in listed}
    with clean.detached("--network", name, "--name", "holder", "busybox", "sleep", "60"):
        res = clean("network", "rm", name, check=False)
        assert res.returncode == 125 and "in use by container holder" in res.stderr
        clean("network", "connect", "bridge", "holder")
        assert "eth1" in clean.out("exec", "holder", "ip", "-o", "link")
        clean("network", "disconnect", "bridge", "holder")
        assert "eth1" not in clean.out("exec", "holder", "ip", "-o", "link")
    bridge = json.loads(clean.out("network", "inspect", name))[0]["Bridge"]
    clean("network", "rm", name)
    assert not Path(f"/sys/class/net/{bridge}").exists()
    assert name not in clean.out("network", "ls")


def test_none_and_host_pay_nothing(clean, data_root):
    out = clean.out("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert "eth0" not in out
    # not one module of minirun.net (let alone pyroute2) is imported for --network none
    traced = subprocess.run([sys.executable, "-X", "importtime", "-m", "minirun", "--root", str(data_root),
                             "run", "--rm", "--network", "none", "busybox", "true"],
                            capture_output=True, text=True, timeout=60)
    assert traced.returncode == 0 and "minirun.runtime.containers" in traced.stderr
    assert "minirun.net" not in traced.stderr and "pyroute2" not in traced.stderr
    host = clean.out("run", "--rm", "--network", "host", "busybox", "cat", "/proc/net/dev")
    seen = {line.split(":")[0].strip() for line in host.splitlines()[2:]}
    assert set(os.listdir("/sys/class/net")) <= seen


def test_gc_sweeps_what_a_crashed_container_left(clean, data_root, user_net):
    """minirun killed mid-life: the container's directory is gone, its lease, port claim, rule
    and veth are not. `gc` finds them by what no longer exists; `network prune` then removes the
    network nobody is on."""
    import shutil
    import signal

    net = user_net("crashy")
    port = free_port()
    cid = clean.out("run", "-d", "--network", net, "-p", f"{port}:80", "busybox", "sleep", "60")
    state = json.loads((data_root / "containers" / cid / "state.json").read_text())
    os.kill(state["monitor_pid"], signal.SIGKILL)
    os.kill(state["pid"], signal.SIGKILL)
    for _ in range(100):                       # the init of the pid namespace is gone with its pid
        if not Path(f"/proc/{state['pid']}").exists():
            break
        subprocess.run(["sleep", "0.05"])
    for group in cgroup_dirs(f"minirun/{cid}"):
        group.rmdir()
    shutil.rmtree(data_root / "containers" / cid)            # the "crash"
    (data_root / "names" / state["name"]).unlink()
    assert network_leftovers(data_root)                        # the lease and the claim at least
    swept = clean.out("gc", "--grace", "0")
    assert "address lease" in swept and f"published ports of {cid[:12]}" in swept
    assert network_leftovers(data_root) == []
    assert clean.out("network", "prune", "-f") == net
    assert net not in clean.out("network", "ls")


def test_a_subnet_the_host_routes_is_refused(clean):
    from minirun.net.addresses import host_routes, int_to_ip

    routes = [(iface, r) for iface, r in host_routes() if not iface.startswith("mr")]
    if not routes:
        pytest.skip("the host has no route of its own (other than minirun's bridges) to clash with")
    iface, (net, prefix) = routes[0]
    res = clean("network", "create", "--subnet", f"{int_to_ip(net)}/{prefix}", "clash", check=False)
    assert res.returncode == 125
    assert res.stderr.strip() == (f"minirun: subnet {int_to_ip(net)}/{prefix} overlaps the host's route "
                                  f"{int_to_ip(net)}/{prefix} on {iface}: choose another")
    assert "clash" not in clean.out("network", "ls")


def test_a_restarted_container_keeps_its_address_and_one_set_of_rules(clean, data_root):
    port = free_port()
    table = json.loads((data_root / "net" / "config.json").read_text())["table"]
    with clean.detached(*NET, "-p", f"{port}:80", "busybox", *HTTPD) as cid:
        ip = address_of(clean, cid)
        clean("stop", "-t", "1", cid)
        clean("start", cid)
        assert address_of(clean, cid) == ip
        clean("exec", cid, "sh", "-c", retry("http://127.0.0.1/") + " >/dev/null")
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello-{cid[:12]}"
        rules = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout
        assert rules.count(cid) == 2                       # prerouting + output, not twice that


def test_a_killed_network_helper_is_replaced_and_nothing_is_lost(clean, data_root):
    import signal
    import time

    with clean.detached(*NET, "--name", "before", "busybox", *HTTPD) as first:
        old = client.call(data_root, {"op": "state"})["pid"]
        os.kill(old, signal.SIGKILL)
        for _ in range(100):
            if not Path(f"/proc/{old}").exists() or "Z" in Path(f"/proc/{old}/stat").read_text().split()[2]:
                break
            time.sleep(0.02)
        out = clean.out("run", "--rm", *NET, "busybox", "sh", "-c", retry(f"http://{address_of(clean, first)}/"))
        assert out == f"hello-{first[:12]}"
        assert client.call(data_root, {"op": "state"})["pid"] != old


def test_a_failure_at_attach_kills_the_child_and_leaves_nothing(clean, data_root, user_net):
    """netd fails between clone and GO (here: the network's bridge name is taken on the host by
    an interface that is not a bridge): the command fails in one line, the child never ran,
    and no container, veth, lease or cgroup is left."""
    from pyroute2 import IPRoute

    net = user_net("squatted")
    bridge = json.loads(clean.out("network", "inspect", net))[0]["Bridge"]
    with IPRoute() as ipr:
        ipr.link("add", ifname=bridge, kind="veth", peer=f"{bridge[:12]}p")
        try:
            res = clean("run", "--rm", "--network", net, "busybox", "true", check=False)
            assert res.returncode == 125
            assert res.stderr.strip() == (f"minirun: the host has an interface named {bridge} that "
                                          "is not a bridge (veth): minirun will not use it")
            assert not list((data_root / "containers").iterdir())
        finally:
            ipr.link("del", index=ipr.link_lookup(ifname=bridge)[0])


def test_bridge_networking_in_a_user_namespace(clean, data_root):
    prefix = json.loads((data_root / "net" / "config.json").read_text())["subnet"].rsplit(".", 1)[0]
    out = clean.out("run", "--rm", *NET, "--uidmap", "0:200000:65536", "busybox", "sh", "-c",
                    "cat /proc/self/uid_map; ip -4 -o addr show eth0; "
                    "ping -c1 -W2 $(ip route | awk '/default/ {print $3}') >/dev/null && echo gateway-ok")
    assert out.splitlines()[0].split() == ["0", "200000", "65536"]
    assert f"inet {prefix}." in out and out.endswith("gateway-ok")


def test_the_network_helper_goes_away_when_idle(tmp_path, monkeypatch):
    """netd is started on demand and exits by itself after MINIRUN_NETD_IDLE seconds without a
    request (checked every 5 s), leaving no socket behind."""
    import time

    from tests.conftest import requires

    requires("root")
    monkeypatch.setenv("MINIRUN_NETD_IDLE", "1")
    root = tmp_path / "idle-root"
    root.mkdir()
    pid = client.call(root, {"op": "state"})["pid"]
    assert Path(f"/proc/{pid}").exists() and client.running(root)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes() \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not client.running(root)        # a ping: it does not keep netd alive either
    assert not (root / "net" / "netd.sock").exists()
