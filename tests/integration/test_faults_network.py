"""Crash a container's network set-up (SIGKILL via MINIRUN_FAULT) at every point: after the
address lease, after netd made the veth pair (the command and netd both die), after the DNAT
rules; in `run -d -p` and in `network connect`. Then check what a user relies on: after
`minirun gc` no nft rule, port claim or veth belongs to a container that does not run, every
lease belongs to a container whose record names it, a half-connected network is rolled back,
the container still starts and works, and a second gc finds nothing. After `rm` the `clean`
fixture checks that nothing at all is left (leases, ports, veths, rules)."""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest

from minirun.faults import POINTS
from tests.conftest import MINIRUN

pytestmark = pytest.mark.root

RUN = "run"          # `run -d -p PORT:80 ...`: create (lease), start (veth, rules)
CONNECT = "connect"  # `network connect fnet victim` on a running container
SCENARIOS = [(RUN, "net:leased"), (RUN, "net:veth-made"), (RUN, "net:rules-added"),
             (CONNECT, "connect:leased"), (CONNECT, "net:veth-made")]


def test_every_network_point_has_a_scenario():
    covered = {p for _, p in SCENARIOS} | {"network-rm:record-removed"}
    assert covered == {p for p in POINTS if p.startswith(("net:", "connect:", "network-rm:"))}


def test_gc_finishes_a_network_rm_that_died_before_its_bridge_went(clean):
    clean("network", "create", "fnet")
    clean("run", "--rm", "--network", "fnet", "busybox", "true")      # its bridge and rules exist now
    bridge = json.loads((clean.root / "networks" / "fnet.json").read_text())["Bridge"]
    assert os.path.isdir(f"/sys/class/net/{bridge}")
    crashed = _crash(clean, "network-rm:record-removed", ["network", "rm", "fnet"])
    assert crashed.returncode == -9, crashed.stderr
    assert "fnet" not in clean.out("network", "ls"), "a network half removed is still listed"
    assert os.path.isdir(f"/sys/class/net/{bridge}"), "the crash came too late to leave the bridge"

    assert clean.out("gc", "--grace", "0") == f"released network fnet ({bridge}) (its removal died half way)"
    assert clean.out("gc", "--grace", "0") == ""
    assert not os.path.exists(f"/sys/class/net/{bridge}"), "gc left the bridge of a removed network"
    assert "net:fnet" not in _kernel(clean.root)["rule_owners"], "gc left the rules of a removed network"
    assert list((clean.root / "networks").glob("fnet*")) == []
    clean("network", "create", "fnet")          # the name is free again
    clean("network", "rm", "fnet")


def _crash(clean, point: str, args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, MINIRUN_FAULT=point)
    return subprocess.run([*MINIRUN, "--root", str(clean.root), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def _kernel(root) -> dict:
    from minirun.net import client

    return client.call(root, {"op": "state"})


def _info(root, cid: str) -> dict:
    return json.loads((root / "containers" / cid / "network.json").read_text())


def assert_network_true(clean) -> None:
    """Records and kernel agree: nothing is attached for a container that does not run, every
    lease is named by its holder's record, every veth and rule belongs to a running container."""
    root = clean.root
    ids = {c["Id"]: c for c in json.loads(clean.out("ps", "-a", "--format", "json"))}
    running = {cid for cid, c in ids.items() if c["State"] == "running"}
    for leases in (root / "networks").glob("*.leases"):
        for ip, holder in json.loads(leases.read_text()).items():
            assert holder["id"] in ids, f"lease {ip} of a container that does not exist"
            entry = _info(root, holder["id"])["networks"].get(leases.stem)
            assert entry and entry["ip"] == ip and not entry.get("pending"), \
                f"lease {ip} on {leases.stem} is not in its container's record: {entry}"
    claims = json.loads((root / "net" / "ports.json").read_text()) if (root / "net" / "ports.json").exists() else {}
    assert [k for k, v in claims.items() if v["id"] not in running] == [], "ports claimed by a stopped container"
    kernel = _kernel(root)
    stray = [o for o in kernel["rule_owners"] if not o.startswith("net:") and o not in running]
    assert stray == [], f"nft rules of containers that do not run: {stray}"
    prefixes = {cid[:12] for cid in running}
    veths = []
    for record in (root / "networks").glob("*.json"):       # this root's bridges only
        brif = f"/sys/class/net/{json.loads(record.read_text())['Bridge']}/brif"
        veths += [n for n in (os.listdir(brif) if os.path.isdir(brif) else []) if n[2:14] not in prefixes]
    assert veths == [], f"veths of containers that do not run: {veths}"


@pytest.mark.parametrize("kind,point", SCENARIOS, ids=[f"{k}-{p}" for k, p in SCENARIOS])
def test_gc_after_a_network_crash_leaves_records_and_kernel_true(clean, kind, point):
    port = str(random.randint(20000, 40000))
    try:
        if kind == RUN:
            crashed = _crash(clean, point, ["run", "-d", "--name", "victim", "-p", f"{port}:80",
                                            "busybox", "sleep", "30"])
        else:
            clean("network", "create", "fnet")
            clean("run", "-d", "--name", "victim", "busybox", "sleep", "30")
            crashed = _crash(clean, point, ["network", "connect", "fnet", "victim"])
        assert crashed.returncode == -9, f"did not reach {point}: {crashed.returncode} {crashed.stderr}"

        released = clean.out("gc", "--grace", "0")
        assert "Traceback" not in released
        assert clean.out("gc", "--grace", "0") == "", "gc is not idempotent"
        assert_network_true(clean)

        cid = json.loads(clean.out("inspect", "victim"))[0]["Id"]
        if kind == CONNECT:
            # the half-made connection is gone, inside the container too; connecting works now
            assert "fnet" not in _info(clean.root, cid)["networks"]
            assert "eth1" not in clean.out("exec", "victim", "ip", "-o", "link")
            clean("network", "connect", "fnet", "victim")
            assert "eth1" in clean.out("exec", "victim", "ip", "-o", "link")
        else:
            # the container the crash left is whole: it starts, gets its address and its port
            assert clean.out("ps", "-q") == ""
            clean("start", "victim")
            ip = next(iter(_info(clean.root, cid)["networks"].values()))["ip"]
            assert ip in clean.out("exec", "victim", "ip", "-o", "addr")
            assert port in clean.out("port", "victim")
        assert_network_true(clean)
    finally:
        clean("rm", "-f", "victim", check=False)
        if kind == CONNECT:
            clean("network", "rm", "fnet", check=False)
