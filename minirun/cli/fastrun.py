"""`minirun run` without typer: the most frequent command, parsed by hand when it can be.

Importing typer and click costs ~40 ms, more than half of a `minirun run --rm ... true`. A run
command line spelled with the flags `run` knows is read here instead, exactly as click would
read it (options before the image, `--opt value` or `--opt=value`, clustered short flags like
`-it`, a short option's value attached or next, the last of a repeated value); anything else
(`--help`, an unknown or misspelled flag, a value of the wrong type, no image, `--`) returns
None and goes through typer as before, which reports it. `run_container` is the verb's body,
shared with the typer command (cli/container.py), so both paths do the same thing, and so is
the flag table, RUN_OPTIONS, from which cli/container.py makes the typer command's options;
tests/unit/test_cli_fastrun.py checks the command typer builds from it and the parse against
click's.
"""

from __future__ import annotations

import os
import sys

# run's (and create's) flags, the one table: parameter -> (kind, option names, help); kind: flag |
# str | list | int | float. parse() reads it here; cli/container.py makes typer's options of it.
RUN_OPTIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "detach": ("flag", ("-d", "--detach"), "Run in the background; print the id."),
    "rm": ("flag", ("--rm",), "Remove the container when it exits."),
    "name": ("str", ("--name",), "A name for the container."),
    "env": ("list", ("-e", "--env"), "Set KEY=value (or copy KEY)."),
    "env_file": ("list", ("--env-file",), "Read KEY=value lines from a file."),
    "workdir": ("str", ("-w", "--workdir"), "Working directory inside."),
    "user": ("str", ("-u", "--user"), "user[:group], by name or number."),
    "hostname": ("str", ("-h", "--hostname"), "Container host name."),
    "entrypoint": ("str", ("--entrypoint",), "Override the image's entrypoint."),
    "memory": ("str", ("-m", "--memory"), "Memory limit (e.g. 64m)."),
    "memory_swap": ("str", ("--memory-swap",), "Memory + swap limit (-1: unlimited)."),
    "cpus": ("float", ("--cpus",), "CPU quota in CPUs (e.g. 0.5)."),
    "cpu_shares": ("int", ("--cpu-shares",), "Relative CPU weight (default 1024)."),
    "cpuset_cpus": ("str", ("--cpuset-cpus",), "CPUs allowed (e.g. 0-1)."),
    "pids_limit": ("int", ("--pids-limit",), "Max processes (default 2048; -1: none)."),
    "ulimit": ("list", ("--ulimit",), "Resource limit NAME=SOFT[:HARD]."),
    "volume": ("list", ("-v", "--volume"), "Bind mount /host:/ctr[:ro]."),
    "tmpfs": ("list", ("--tmpfs",), "Mount a tmpfs at /path[:options]."),
    "read_only": ("flag", ("--read-only",), "Mount the root filesystem read-only."),
    "init": ("flag", ("--init",), "Run a tiny init as PID 1 (reaps, forwards signals)."),
    "interactive": ("flag", ("-i", "--interactive"), "Keep stdin attached."),
    "tty": ("flag", ("-t", "--tty"), "Allocate a terminal."),
    "network": ("str", ("--network", "--net"), "bridge (default; none when rootless), none, host or a network name."),
    "ip": ("str", ("--ip",), "The container's IPv4 address on its network."),
    "network_alias": ("list", ("--network-alias",), "Another name peers can use."),
    "publish": ("list", ("-p", "--publish"), "[ip:]hostPort:containerPort[/udp] (ip default 127.0.0.1)."),
    "publish_all": ("flag", ("-P", "--publish-all"), "Publish the image's exposed ports on free host ports."),
    "dns": ("list", ("--dns",), "A nameserver for /etc/resolv.conf."),
    "add_host": ("list", ("--add-host",), "NAME:IP line for /etc/hosts."),
    "security_opt": ("list", ("--security-opt",), "seccomp=PROFILE.json|unconfined, no-new-privileges[=false]."),
    "cap_add": ("list", ("--cap-add",), "Add a capability (NET_ADMIN, ..., ALL)."),
    "cap_drop": ("list", ("--cap-drop",), "Drop a capability (CHOWN, ..., ALL)."),
    "privileged": ("flag", ("--privileged",), "Every capability and device, no filter: host root."),
    "sysctl": ("list", ("--sysctl",), "Namespaced kernel setting NAME=VALUE."),
    "device": ("list", ("--device",), "Host device HOST[:CONTAINER][:rwm]."),
    "userns": ("str", ("--userns",), "auto: root inside is an unprivileged host uid (/etc/subuid)."),
    "uidmap": ("list", ("--uidmap",), "User namespace map CONTAINER:HOST:SIZE."),
    "gidmap": ("list", ("--gidmap",), "Group map CONTAINER:HOST:SIZE (default: the uid map)."),
}
DEFAULTS = {"flag": False, "str": None, "list": None, "int": None, "float": None}
_BY_NAME = {opt: (param, kind) for param, (kind, names, _) in RUN_OPTIONS.items() for opt in names}


def parse(argv: list[str]) -> tuple[str | None, dict] | None:
    """(the --root value, run's parameters as the typer command receives them), or None."""
    root = None
    i, n = 0, len(argv)
    while i < n and argv[i] != "run":             # global options: only --root is ours
        name, eq, value = argv[i].partition("=")
        if name != "--root":
            return None
        if not eq:
            if i + 1 >= n:
                return None
            value = argv[i + 1]
            i += 1
        root = value
        i += 1
    if i >= n:
        return None
    params = {param: DEFAULTS[kind] for param, (kind, _, _) in RUN_OPTIONS.items()}
    i += 1
    while i < n:
        arg = argv[i]
        if arg == "--" or arg == "-":
            return None
        if not arg.startswith("-"):
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name not in _BY_NAME:
                return None                       # --help, unknown, misspelled
            param, kind = _BY_NAME[name]
            if kind == "flag":
                if eq:
                    return None
                params[param] = True
            else:
                value, i = _value(argv, i, value if eq else None)
                if value is None or not _set(params, param, kind, value):
                    return None
        else:                                     # -d, -it, -e KEY=V, -eKEY=V, -ite KEY=V
            letters = arg[1:]
            for j, letter in enumerate(letters):
                if f"-{letter}" not in _BY_NAME:
                    return None
                param, kind = _BY_NAME[f"-{letter}"]
                if kind == "flag":
                    params[param] = True
                    continue
                value, i = _value(argv, i, letters[j + 1:] or None)
                if value is None or not _set(params, param, kind, value):
                    return None
                break
        i += 1
    if i >= n:
        return None                               # no image: click says so
    params["image"], params["command"] = argv[i], argv[i + 1:] or None
    return (root or os.environ.get("MINIRUN_ROOT") or None), params


def _value(argv: list[str], i: int, inline: str | None) -> tuple[str | None, int]:
    """An option's value and the index of the last argument it used: given inline (`--name=V`,
    `-eV`), else the next argument; None when there is none (click then says so)."""
    if inline is not None:
        return inline, i
    if i + 1 >= len(argv):
        return None, i
    return argv[i + 1], i + 1


def _set(params: dict, param: str, kind: str, value: str) -> bool:
    if kind == "list":
        params[param] = [*(params[param] or []), value]
        return True
    if kind in ("int", "float"):
        try:
            params[param] = int(value) if kind == "int" else float(value)
        except ValueError:
            return False                          # click's message for a bad number
        return True
    params[param] = value
    return True


def run_container(root: str | None, params: dict, *, creating: bool = False, tracer=None) -> int:
    """The body of `minirun run` (and `create`): returns the exit status to end with."""
    from minirun.errors import UsageError
    from minirun.paths import data_root
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import Mount, RunOptions, Ulimit

    def parse_bytes(text: str) -> int:
        from minirun.units import parse_bytes  # only for -m/--memory-swap: it imports re, math

        return parse_bytes(text)

    p = params
    detach, tty, rm = p["detach"], p["tty"], p["rm"]
    if detach and tty and not creating:
        raise UsageError("-t with -d is not supported yet (there is no attach): drop -t")
    swap = None
    if p["memory_swap"] is not None:
        swap = -1 if p["memory_swap"].strip() == "-1" else parse_bytes(p["memory_swap"])

    def many(name: str) -> list[str]:
        return list(p[name] or [])

    def ports(specs: list[str]) -> list:
        if not specs:
            return []
        from minirun.net import ports  # only with -p: it imports _socket and addresses

        return [ports.parse(s) for s in specs]

    opts = RunOptions(
        image=p["image"], command=many("command"), entrypoint=p["entrypoint"], env=many("env"),
        env_files=many("env_file"), workdir=p["workdir"], user=p["user"], hostname=p["hostname"],
        name=p["name"], memory=parse_bytes(p["memory"]) if p["memory"] else None,
        memory_swap=swap, cpus=p["cpus"], cpu_shares=p["cpu_shares"],
        cpuset_cpus=p["cpuset_cpus"], pids_limit=p["pids_limit"], ulimits=[Ulimit.parse(u) for u in many("ulimit")],
        volumes=[Mount.parse(v) for v in many("volume")], tmpfs=many("tmpfs"), read_only=p["read_only"], init=p["init"],
        interactive=p["interactive"], tty=tty, network=p["network"], ip=p["ip"],
        network_aliases=many("network_alias"), publish=ports(many("publish")),
        publish_all=p["publish_all"], dns=many("dns"), add_hosts=many("add_host"),
        auto_remove=rm, detach=detach or creating, security_opt=many("security_opt"),
        cap_add=many("cap_add"), cap_drop=many("cap_drop"), privileged=p["privileged"],
        sysctls=many("sysctl"), devices=many("device"), userns=p["userns"],
        uidmaps=many("uidmap"), gidmaps=many("gidmap"),
    )
    rt = Runtime(data_root(root), tracer=tracer)
    if creating:
        sys.stdout.write(rt.create(opts).id + "\n")
        return 0
    from minirun.cli import attach

    console = attach.console_size() if tty else (0, 0)
    started = rt.run(opts, interactive=p["interactive"], console=console)
    if detach:
        sys.stdout.write(started.record.id + "\n")
        return 0
    try:
        attach.wait_child(started.monitor_pid, started.pid, started.tty_master)
        code = started.record.exit_code()
    finally:
        if rm:
            from minirun import faults

            faults.point("run:exited")
            rt.remove(started.record, force=True)
    return code
