"""The files that tell a container who it is and who its neighbours are, as Docker makes them:
/etc/hostname, /etc/hosts and /etc/resolv.conf live in the container's directory and are
bind-mounted over the image's (see hosts(5), resolv.conf(5)).

/etc/hosts is how containers on one network find each other by name: it lists every container
on each of the container's networks (name, then --network-alias names), and it is rewritten in
place (the bind mount pins the inode, so never by rename) whenever a container joins or leaves.
"""

from __future__ import annotations

import json
from pathlib import Path

LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
DEFAULT_DNS = ["8.8.8.8", "8.8.4.4"]      # Docker's fallback when the host has only loopback ones


def resolv_conf(host_text: str, dns: list[str] = (), search: list[str] = ()) -> str:
    """The host's resolv.conf without loopback nameservers (they mean the host's own resolver,
    unreachable from another network namespace); `dns` replaces the nameservers."""
    out, servers = [], []
    for line in host_text.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            addr = words[1]
            if not (addr.startswith("127.") or addr == "::1"):
                servers.append(addr)
        elif words[:1] == ["search"] and search:
            continue
        else:
            out.append(line)
    if dns:
        servers = list(dns)
    elif not servers:
        servers = list(DEFAULT_DNS)
    if search:
        out.append("search " + " ".join(search))
    out += [f"nameserver {s}" for s in servers]
    return "\n".join(out).strip("\n") + "\n"


def host_resolv_conf() -> str:
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""


def hosts_text(info: dict, peers: list[tuple[str, str, list[str]]]) -> str:
    """info: the container's network.json; peers: (ip, name, aliases) of everyone sharing one of
    its networks, itself included."""
    lines = [LOCALHOST.rstrip("\n")]
    lines += [f"{ip}\t{host}" for host, ip in info.get("add_hosts", [])]
    own = {net["ip"] for net in info.get("networks", {}).values() if net.get("ip")}
    seen = set()
    for ip, name, aliases in peers:
        if (ip, name) in seen:
            continue
        seen.add((ip, name))
        names = [name, *aliases]
        if ip in own:
            names = [info["hostname"], *[n for n in names if n != info["hostname"]]]
        lines.append(f"{ip}\t{' '.join(dict.fromkeys(names))}")
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> None:
    """Rewrite a bind-mounted file without changing its inode."""
    with open(path, "r+" if path.exists() else "w") as f:
        f.write(text)
        f.truncate()


def load_info(container_dir: Path) -> dict | None:
    try:
        return json.loads((container_dir / "network.json").read_text())
    except FileNotFoundError:
        return None
