"""Links and addresses through rtnetlink, with pyroute2 (rtnetlink(7), veth(4), bridge: ip-link(8)).

Only netd imports this module (pyroute2 costs ~100 ms to import). The container's side of a veth
pair is configured from a thread that has setns(2)-ed into the container's network namespace:
a namespace is a per-thread attribute, and a netlink socket opened there talks to that
namespace's kernel tables for as long as it lives, whatever thread uses it afterwards.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from minirun.errors import NetworkError

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _sysctl(iface: str, key: str, value: str) -> None:
    """A per-interface IPv4 setting of our own interface (never a host-wide one)."""
    Path(f"/proc/sys/net/ipv4/conf/{iface}/{key}").write_text(value)


class Links:
    def __init__(self):
        self.ipr = IPRoute()

    def close(self) -> None:
        self.ipr.close()

    def index(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def ensure_bridge(self, name: str, gateway: str, prefix: int) -> int:
        """The bridge with the gateway address, up; IPv4 forwarding from it (so the isolation
        rule, not a missing sysctl, is what keeps networks apart) and route_localnet (so
        127.0.0.1 can be DNATed onto it)."""
        idx = self.index(name)
        if idx is None:
            try:
                self.ipr.link("add", ifname=name, kind="bridge")
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise NetworkError(f"create bridge {name}: {os.strerror(e.code)}") from None
            idx = self.index(name)
        kind = self.ipr.get_links(idx)[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        if kind != "bridge":
            raise NetworkError(f"the host has an interface named {name} that is not a bridge "
                               f"({kind or 'no kind'}): minirun will not use it")
        have = {a.get_attr("IFA_ADDRESS") for a in self.ipr.get_addr(index=idx, family=2)}
        if gateway not in have:
            self.ipr.addr("add", index=idx, address=gateway, prefixlen=prefix)
        self.ipr.link("set", index=idx, state="up")
        _sysctl(name, "forwarding", "1")
        _sysctl(name, "route_localnet", "1")
        return idx

    def delete(self, name: str) -> bool:
        """Delete a link by name; False if there was none."""
        idx = self.index(name)
        if idx is None:
            return False
        try:
            self.ipr.link("del", index=idx)
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise NetworkError(f"delete link {name}: {os.strerror(e.code)}") from None
            return False
        return True

    def attach(self, bridge_idx: int, pid: int, host_name: str, ifname: str, address: str,
               prefix: int, gateway: str | None) -> None:
        """A veth pair: `host_name` on the bridge, `ifname` in the namespace of `pid`, with the
        address and (for the first network) the default route."""
        nsfd = _open_netns(pid)
        try:
            try:            # one request: the pair, the far end in the namespace, ours on the bridge, up
                self.ipr.link("add", ifname=host_name, kind="veth", master=bridge_idx, state="up",
                              peer={"ifname": ifname, "net_ns_fd": nsfd})
            except NetlinkError as e:
                raise NetworkError(f"create veth {host_name}: {os.strerror(e.code)}") from None
            _in_namespace(nsfd, lambda ns: _configure(ns, ifname, address, prefix, gateway))
        finally:
            os.close(nsfd)

    def detach_inside(self, pid: int, ifname: str) -> None:
        """Delete `ifname` inside the namespace of `pid` (`network disconnect`); its host end
        goes with it."""
        nsfd = _open_netns(pid)
        try:
            def remove(ns):
                found = ns.link_lookup(ifname=ifname)
                if found:
                    ns.link("del", index=found[0])
            _in_namespace(nsfd, remove)
        finally:
            os.close(nsfd)


def _open_netns(pid: int) -> int:
    try:
        return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetworkError(f"the container's network namespace (pid {pid}): {os.strerror(e.errno or 3)}") from None


def _configure(ns: IPRoute, ifname: str, address: str, prefix: int, gateway: str | None) -> None:
    idx = ns.link_lookup(ifname=ifname)[0]
    ns.addr("add", index=idx, address=address, prefixlen=prefix)
    ns.link("set", index=idx, state="up")
    if gateway:
        ns.route("add", dst="0.0.0.0/0", gateway=gateway)


def _in_namespace(nsfd: int, work) -> None:
    """Run work(IPRoute) with a netlink socket opened inside the namespace `nsfd`, from a
    short-lived thread (setns changes only the calling thread's namespace)."""
    failure: list[BaseException] = []

    def body():
        try:
            if _libc.setns(nsfd, CLONE_NEWNET) != 0:
                raise NetworkError(f"setns into the container: {os.strerror(ctypes.get_errno())}")
            with IPRoute() as ns:
                work(ns)
        except NetlinkError as e:
            failure.append(NetworkError(f"configure the container's interface: {os.strerror(e.code)}"))
        except BaseException as e:  # noqa: BLE001 — carried to the caller's thread
            failure.append(e)

    t = threading.Thread(target=body, name="netns")
    t.start()
    t.join()
    if failure:
        raise failure[0]
