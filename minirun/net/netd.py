"""netd: the network helper, one warm process per data root (`minirun-netd ROOT` in ps).

Why a process: the netlink work of one container takes ~4 ms, but importing pyroute2 takes
~100 ms, more than a whole `run`. netd imports it once and then serves every `run`, `rm` and
`network` command of its data root over ROOT/net/netd.sock (one JSON request and one JSON reply
per connection, handled one at a time: changes to the host's network never interleave).

It is started by the first command that needs it (client.py) and holds ROOT/net/netd.lock for
its whole life, so there is never a second one; it exits after MINIRUN_NETD_IDLE seconds
(default 600) without a request (a "ping" does not count), when its data root disappears, or
when asked ("shutdown").
It keeps no state that matters: the records under ROOT and the kernel are the truth, so
killing it loses nothing.

    python -m minirun.net.netd --root ROOT
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path

from minirun import faults
from minirun.errors import MinirunError


class Server:
    def __init__(self, root: Path):
        from minirun.net.links import Links
        from minirun.net.nft import Nft
        from minirun.net.settings import Settings

        self.root = root
        self.links = Links()
        self.nft = Nft(Settings.load(root).table)
        self.ready_networks: dict[str, int] = {}    # network id -> its bridge's index (up, with rules)
        self.after_reply: list[str] = []            # veths to delete once the caller has its reply

    # -- requests ----------------------------------------------------------------------------
    def ensure_network(self, net: dict) -> int:
        """The network's bridge and rules, made once; then its index from memory (attach checks
        again if using it fails: someone may have deleted the bridge)."""
        if net["Id"] in self.ready_networks:
            return self.ready_networks[net["Id"]]
        if not self.nft.has_base():
            self.nft.ensure_base()
            self.ready_networks.clear()
        prefix = int(net["Subnet"].split("/")[1])
        idx = self.links.ensure_bridge(net["Bridge"], net["Gateway"], prefix)
        owner = f"net:{net['Name']}"
        self.nft.delete_owned(owner)             # the same rules, never twice
        self.nft.network_rules(owner, net["Bridge"], net["Subnet"])
        self.ready_networks[net["Id"]] = idx
        return idx

    def attach(self, req: dict) -> dict:
        """Give the process `pid` its interfaces (and the container its port rules)."""
        cid, pid = req["cid"], req["pid"]
        done: list[str] = []
        try:
            for i, link in enumerate(req["links"]):
                net = link["network"]
                args = (pid, link["host_ifname"], link["ifname"], link["ip"],
                        int(net["Subnet"].split("/")[1]),
                        net["Gateway"] if i == 0 and req.get("route", True) else None)
                done.append(link["host_ifname"])
                try:
                    self.links.attach(self.ensure_network(net), *args)
                except MinirunError:
                    if net["Id"] not in self.ready_networks:
                        raise
                    del self.ready_networks[net["Id"]]     # the bridge went away: make it again
                    self.links.delete(link["host_ifname"])
                    self.links.attach(self.ensure_network(net), *args)
                faults.point("net:veth-made", req.get("fault"), req.get("peer"))
            if req.get("ports"):
                try:
                    self.nft.publish(cid, req["ports"], req["links"][0]["ip"])
                except MinirunError:
                    if self.nft.has_base():
                        raise
                    self.ready_networks.clear()      # the table was deleted under us: remake
                    for link in req["links"]:
                        self.ensure_network(link["network"])
                    self.nft.publish(cid, req["ports"], req["links"][0]["ip"])
                faults.point("net:rules-added", req.get("fault"), req.get("peer"))
        except BaseException:
            for name in done:
                with contextlib.suppress(MinirunError):
                    self.links.delete(name)
            with contextlib.suppress(MinirunError):
                self.nft.delete_owned(cid)
            raise
        return {}

    def detach(self, req: dict) -> dict:
        """Undo attach: the container's rules now, the host ends of its veths (if its namespace
        has not taken them along already) right after the reply: deleting a link waits for an
        RCU grace period (10-20 ms) that `rm` need not wait for, and the next request is only
        read once they are gone. Safe to repeat."""
        if req.get("pid") and req.get("ifname"):
            with contextlib.suppress(OSError, MinirunError):
                self.links.detach_inside(req["pid"], req["ifname"])
        self.after_reply += req.get("host_ifnames", [])
        rules = 0
        if req.get("rules", True) and self.nft.has_base():
            rules = self.nft.delete_owned(req["cid"])
        return {"rules": rules}

    def remove_network(self, req: dict) -> dict:
        net = req["network"]
        self.nft.remove_network(f"net:{net['Name']}", net["Bridge"])
        self.links.delete(net["Bridge"])
        self.ready_networks.pop(net["Id"], None)
        return {}

    def teardown(self, req: dict) -> dict:
        """Every bridge of this root and the whole table (tests and benchmarks clean up)."""
        for bridge in req.get("bridges", []):
            self.links.delete(bridge)
        self.nft.drop_table()
        self.ready_networks.clear()
        return {}

    def gc(self, req: dict) -> dict:
        """Rules and veths of containers that no longer exist (ids not in req["alive"])."""
        import re

        alive = set(req["alive"])
        prefixes = {cid[:12] for cid in alive}
        rules = []
        if self.nft.has_base():
            for owner in self.nft.owners():
                if re.fullmatch(r"[0-9a-f]{64}", owner) and owner not in alive:
                    self.nft.delete_owned(owner)
                    rules.append(owner[:12])
        links = []
        for bridge in req.get("bridges", []):
            try:
                ports = os.listdir(f"/sys/class/net/{bridge}/brif")
            except FileNotFoundError:
                continue
            for name in ports:
                if re.fullmatch(r"mr[0-9a-f]{12}\d", name) and name[2:14] not in prefixes:
                    self.links.delete(name)
                    links.append(name)
        return {"rules": rules, "links": links}

    def state(self, req: dict) -> dict:
        """What exists in the kernel, for gc and the tests' leak check."""
        names = [link.get_attr("IFLA_IFNAME") for link in self.links.ipr.get_links()]
        owners = sorted(self.nft.owners()) if self.nft.has_base() else []
        return {"links": names, "rule_owners": owners, "pid": os.getpid()}

    def handle(self, req: dict) -> dict:
        op = req.get("op")
        fn = {"attach": self.attach, "detach": self.detach, "remove_network": self.remove_network,
              "teardown": self.teardown, "state": self.state, "gc": self.gc,
              "ping": lambda r: {}}.get(op)        # ping: also a barrier, work of earlier requests is done
        if fn is None:
            raise MinirunError(f"netd: unknown request {op!r}")
        return fn(req)


def serve(root: Path, listener, idle: float) -> None:
    server = Server(root)
    listener.settimeout(5.0)
    last = time.monotonic()
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if time.monotonic() - last > idle or not (root / "net").is_dir():
                return
            continue
        with contextlib.closing(conn):
            conn.settimeout(30.0)
            try:
                req = json.loads(_recv_all(conn))
            except (OSError, ValueError):
                continue
            if req.get("op") != "ping":          # "are you there?" is not work: no reason to stay
                last = time.monotonic()
            if req.get("fault"):                 # a test's crash point: the asker dies there too
                req["peer"] = _peer_pid(conn)
            if req.get("op") == "shutdown":
                for name in server.after_reply:
                    with contextlib.suppress(MinirunError):
                        server.links.delete(name)
                _reply(conn, {})
                return
            began = time.perf_counter()
            try:
                reply = server.handle(req)
                reply["netd_ms"] = round((time.perf_counter() - began) * 1000, 3)
            except MinirunError as e:
                reply = {"error": str(e), "kind": type(e).__name__}
            except Exception as e:  # noqa: BLE001 — a bug: say it to the caller and to the log
                traceback.print_exc()
                reply = {"error": f"netd: {type(e).__name__}: {e}", "kind": "NetworkError"}
            with contextlib.suppress(OSError):
                _reply(conn, reply)
        while server.after_reply:
            with contextlib.suppress(MinirunError):
                server.links.delete(server.after_reply.pop())


def _peer_pid(conn) -> int:
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[0]


def _recv_all(conn) -> bytes:
    chunks = []
    while True:
        data = conn.recv(65536)
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _reply(conn, obj: dict) -> None:
    conn.sendall(json.dumps(obj).encode())


def main(argv: list[str]) -> int:
    root = Path(argv[argv.index("--root") + 1]).resolve()
    netdir = root / "net"
    netdir.mkdir(parents=True, exist_ok=True)
    lock = os.open(netdir / "netd.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0                                  # another netd serves this root
    import minirun.net.links  # noqa: F401 — the expensive import, before anyone waits on us

    path = netdir / "netd.sock"
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(64)
    if os.fork() != 0:
        os._exit(0)                               # the caller's wait ends: the socket is ready
    _set_name("minirun-netd")
    try:
        serve(root, listener, float(os.environ.get("MINIRUN_NETD_IDLE", "600")))
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    return 0


def _set_name(name: str) -> None:
    """The name ps and top show (/proc/self/comm); the command line keeps the root."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name[:15])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
