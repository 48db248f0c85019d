"""`minirun network`: create, ls, inspect, rm, connect, disconnect (Docker's verbs).

Thin: the records live in minirun/net/networks.py, the changes to the host in minirun/net/.
"""

import sys

import typer

from minirun.cli.common import print_json, print_table, root

app = typer.Typer(help="Manage networks (bridges containers share).", no_args_is_help=True)


def _store(ctx: typer.Context):
    from minirun.net.networks import NetworkStore

    return NetworkStore(root(ctx))


def _users(ctx: typer.Context, net) -> list[str]:
    from minirun.net.ipam import Leases

    return sorted(h["name"] for h in Leases(root(ctx), net).read().values())


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The network's name."),
    subnet: str = typer.Option(None, "--subnet", help="IPv4 subnet (default: a free /24 of the pool)."),
    gateway: str = typer.Option(None, "--gateway", help="The bridge's address (default: the first)."),
    driver: str = typer.Option("bridge", "-d", "--driver", help="Only bridge."),
) -> None:
    """Create a bridge network; print its id."""
    from minirun.errors import UsageError

    if driver != "bridge":
        raise UsageError(f"network driver {driver!r} is not supported: only bridge")
    from minirun.net.container import finish_removals

    finish_removals(root(ctx))           # a `network rm` that died must not leave its rules to us
    sys.stdout.write(_store(ctx).create(name, subnet, gateway).id + "\n")


@app.command("ls")
def ls(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only ids."),
    format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """List networks (bridge, host and none are always there)."""
    store = _store(ctx)
    store.get("bridge")                        # the default network exists from the start
    nets = store.list()
    if quiet:
        sys.stdout.write("".join(n.id[:12] + "\n" for n in nets))
        return
    rows = [(n.id[:12], n.name, "bridge", n.subnet, n.bridge) for n in nets]
    rows += [("host", "host", "host", "", ""), ("none", "none", "null", "", "")]
    if format == "json":
        print_json([dict(zip(["Id", "Name", "Driver", "Subnet", "Bridge"], r, strict=True)) for r in rows])
        return
    print_table(["NETWORK ID", "NAME", "DRIVER", "SUBNET", "BRIDGE"], rows)


@app.command("inspect")
def inspect(ctx: typer.Context, networks: list[str] = typer.Argument(...)) -> None:
    """Show networks as JSON, with the containers on them."""
    from minirun.net.ipam import Leases

    store = _store(ctx)
    out = []
    for ref in networks:
        net = store.get(ref)
        data = net.to_json()
        data["Containers"] = {h["id"]: {"Name": h["name"], "IPv4Address": f"{ip}/{net.prefix}",
                                        "Aliases": h.get("aliases") or None}
                              for ip, h in Leases(root(ctx), net).read().items()}
        out.append(data)
    print_json(out)


@app.command("rm")
def rm(ctx: typer.Context, networks: list[str] = typer.Argument(...)) -> None:
    """Remove networks (refused while containers are on them)."""
    from minirun.net.container import remove_network

    for ref in networks:
        remove_network(root(ctx), ref)
        sys.stdout.write(ref + "\n")


@app.command("prune")
def prune(ctx: typer.Context, force: bool = typer.Option(False, "-f", "--force", help="Do not ask.")) -> None:
    """Remove every user network no container is on (after sweeping what removed or crashed
    containers left behind: leases, port claims, rules, veths)."""
    from minirun.net.container import prune_networks

    if not force and sys.stdin.isatty() and not typer.confirm("Remove all unused networks?"):
        return
    for name in prune_networks(root(ctx)):
        sys.stdout.write(name + "\n")


@app.command("connect")
def connect(
    ctx: typer.Context,
    network: str = typer.Argument(...),
    container: str = typer.Argument(...),
    ip: str = typer.Option(None, "--ip", help="The address on this network."),
    alias: list[str] = typer.Option(None, "--alias", help="Another name peers can use."),
) -> None:
    """Connect a container to one more network (live, if it runs)."""
    from minirun.net.container import connect as do_connect
    from minirun.runtime.state import StateStore

    record = StateStore(root(ctx)).get(container)
    do_connect(root(ctx), record, network, ip, list(alias or []))


@app.command("disconnect")
def disconnect(ctx: typer.Context, network: str = typer.Argument(...),
               container: str = typer.Argument(...)) -> None:
    """Disconnect a container from a network."""
    from minirun.net.container import disconnect as do_disconnect
    from minirun.runtime.state import StateStore

    record = StateStore(root(ctx)).get(container)
    do_disconnect(root(ctx), record, network)
