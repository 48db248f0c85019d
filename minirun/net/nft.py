"""nftables through libnftables' JSON interface (libnftables-json(5)), called with ctypes: the
same library the `nft` command uses, without a fork and exec per change.

Everything minirun adds lives in one table of its own (family ip, name from settings.py):

    chain prerouting   nat, hook prerouting   DNAT of published ports for traffic from outside
    chain output       nat, hook output       the same for connections made on the host itself
    chain postrouting  nat, hook postrouting  masquerade: containers going out; 127.0.0.1-sourced
                                              connections DNATed onto a bridge (route_localnet)
    chain forward      filter, hook forward   drop traffic from one minirun bridge to another
    set bridges        ifname                 every minirun bridge (for the isolation rule)

Rules carry a comment naming their owner (a container id, or "net:NAME"), which is how they are
found again and deleted: `nft -a list table ip minirun` shows them.
"""

from __future__ import annotations

import ctypes
import json

from minirun.errors import NetworkError

_OUTPUT_HANDLE = 1 << 3
_OUTPUT_JSON = 1 << 4


class Nft:
    def __init__(self, table: str):
        self.table = table
        try:
            lib = ctypes.CDLL("libnftables.so.1")
        except OSError as e:
            raise NetworkError(f"libnftables is missing ({e}): install the nftables package") from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        self.lib = lib
        self.ctx = lib.nft_ctx_new(0)
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)
        lib.nft_ctx_output_set_flags(self.ctx, _OUTPUT_JSON | _OUTPUT_HANDLE)

    def run(self, commands: list[dict]) -> list[dict]:
        """One transaction: all of the commands or none."""
        text = json.dumps({"nftables": commands}).encode()
        rc = self.lib.nft_run_cmd_from_buffer(self.ctx, text)
        out = self.lib.nft_ctx_get_output_buffer(self.ctx) or b""
        err = self.lib.nft_ctx_get_error_buffer(self.ctx) or b""
        if rc != 0:
            first = err.decode(errors="replace").strip().splitlines()
            raise NetworkError(f"nftables: {first[0] if first else 'failed'}")
        return json.loads(out)["nftables"] if out.strip() else []

    # -- the table ---------------------------------------------------------------------------
    def _t(self, **more) -> dict:
        return {"family": "ip", "table": self.table, **more}

    def ensure_base(self) -> None:
        """The table, its chains and the set; `add` leaves existing ones as they are."""
        chains = [("prerouting", "nat", "prerouting", -100), ("output", "nat", "output", -100),
                  ("postrouting", "nat", "postrouting", 100), ("forward", "filter", "forward", 0)]
        cmds: list[dict] = [{"add": {"table": {"family": "ip", "name": self.table}}}]
        for name, kind, hook, prio in chains:
            cmds.append({"add": {"chain": {"family": "ip", "table": self.table, "name": name,
                                           "type": kind, "hook": hook, "prio": prio,
                                           "policy": "accept"}}})
        cmds.append({"add": {"set": {"family": "ip", "table": self.table, "name": "bridges",
                                     "type": "ifname"}}})
        self.run(cmds)

    def has_base(self) -> bool:
        try:
            self.run([{"list": {"table": {"family": "ip", "name": self.table}}}])
        except NetworkError:
            return False
        return True

    def drop_table(self) -> None:
        if self.has_base():
            self.run([{"delete": {"table": {"family": "ip", "name": self.table}}}])

    def rules(self) -> list[dict]:
        """Every rule of the table, with its handle and comment."""
        out = self.run([{"list": {"table": {"family": "ip", "name": self.table}}}])
        return [item["rule"] for item in out if "rule" in item]

    def delete_owned(self, owner: str) -> int:
        """Delete the rules whose comment is `owner`; how many there were."""
        doomed = [r for r in self.rules() if r.get("comment") == owner]
        if doomed:
            self.run([{"delete": {"rule": self._t(chain=r["chain"], handle=r["handle"])}}
                      for r in doomed])
        return len(doomed)

    def owners(self) -> set[str]:
        return {r["comment"] for r in self.rules() if r.get("comment")}

    # -- what a network and a container add ----------------------------------------------------
    def network_rules(self, owner: str, bridge: str, subnet: str) -> None:
        addr, plen = subnet.split("/")
        src_in = {"match": {"op": "==", "left": _payload("ip", "saddr"),
                            "right": {"prefix": {"addr": addr, "len": int(plen)}}}}
        oif = {"meta": {"key": "oifname"}}
        iif = {"meta": {"key": "iifname"}}
        self.run([
            {"add": {"element": {"family": "ip", "table": self.table, "name": "bridges",
                                 "elem": [bridge]}}},
            # containers reaching the world through the host's address
            {"add": {"rule": self._t(chain="postrouting", comment=owner, expr=[
                src_in, {"match": {"op": "!=", "left": oif, "right": bridge}},
                {"masquerade": None}])}},
            # 127.0.0.1:PORT DNATed to a container: the reply must come back to the host
            {"add": {"rule": self._t(chain="postrouting", comment=owner, expr=[
                {"match": {"op": "==", "left": oif, "right": bridge}},
                {"match": {"op": "==", "left": _payload("ip", "saddr"),
                           "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}},
                {"masquerade": None}])}},
            # isolation: nothing from this bridge to another minirun bridge
            {"add": {"rule": self._t(chain="forward", comment=owner, expr=[
                {"match": {"op": "==", "left": iif, "right": bridge}},
                {"match": {"op": "!=", "left": oif, "right": bridge}},
                {"match": {"op": "==", "left": oif, "right": "@bridges"}},
                {"drop": None}])}},
        ])

    def remove_network(self, owner: str, bridge: str) -> None:
        if not self.has_base():
            return
        self.delete_owned(owner)
        try:
            self.run([{"delete": {"element": {"family": "ip", "table": self.table,
                                              "name": "bridges", "elem": [bridge]}}}])
        except NetworkError:
            pass                          # not in the set (a half-made network)

    def publish(self, owner: str, ports: list[dict], container_ip: str) -> None:
        cmds = []
        for p in ports:
            match = [{"match": {"op": "==", "left": _payload(p["proto"], "dport"),
                                "right": p["host_port"]}}]
            if p["host_ip"] == "0.0.0.0":
                dest = {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}},
                                  "right": "local"}}
            else:
                dest = {"match": {"op": "==", "left": _payload("ip", "daddr"), "right": p["host_ip"]}}
            dnat = {"dnat": {"addr": container_ip, "port": p["container_port"]}}
            for chain in ("prerouting", "output"):
                cmds.append({"add": {"rule": self._t(chain=chain, comment=owner,
                                                     expr=[dest, *match, dnat])}})
        if cmds:
            self.run(cmds)


def _payload(protocol: str, field: str) -> dict:
    return {"payload": {"protocol": protocol, "field": field}}
