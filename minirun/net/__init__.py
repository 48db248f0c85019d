"""Container networking: bridges, veth pairs, address leases, published ports, names.

Docker's model (docs/networking.md explains it with the man pages to read):

    host                                           container (its own network namespace)
    minirun0 (bridge, 10.87.0.1/16) ── vethXXXX ═══ eth0 10.87.0.2/16, default via 10.87.0.1
    nftables table `ip minirun`: DNAT for published ports, masquerade, isolation between bridges

Who does what:
  settings.py   per data root: the default bridge's name and subnet, the pool of user subnets,
                the nft table's name (ROOT/net/config.json; tests give each root its own)
  networks.py   the network records (ROOT/networks/NAME.json): create, ls, inspect, rm
  ipam.py       address leases, one file per network, under a lock: never a duplicate
  ports.py      `-p` / `-P` parsing and the host-port registry (checked by binding first)
  etcfiles.py   the container's /etc/hosts, /etc/hostname, /etc/resolv.conf
  container.py  what the runtime calls: at create (leases, files), at start (attach the
                process's namespace), at rm (release everything, in reverse)
  client.py     talks to netd over a unix socket (starting it on first use)
  netd.py       the network helper: one warm process per data root that imports pyroute2 once
                and does every netlink and nftables change (links.py, nft.py)

The split exists for start-up time: importing pyroute2 costs ~100 ms, a `run` has ~15 ms to
spare for networking. `--network none` and `host` never touch any of this.
"""
