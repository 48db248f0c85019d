"""Container verbs: run, create, start, ps, logs, exec, stop, kill, rm, inspect, wait, top, update.

Thin by design: parse flags, call minirun.runtime, print. The runtime is imported inside each
verb so that `minirun --help` does not pay for it.
"""

import sys
from datetime import UTC, datetime
from inspect import Parameter, Signature  # the module name is taken by the inspect verb

import typer

from minirun.cli.common import print_json, print_table, root

group = typer.Typer(help="Manage containers.", no_args_is_help=True)

CREATE_HELP = "Create a container without starting it (the same flags as run); print its id."
RUN_CONTEXT = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


def _runtime(ctx: typer.Context):
    """The Runtime for this command (with the start-up tracer when `minirun trace` runs it)."""
    from minirun.runtime.containers import Runtime

    return Runtime(root(ctx), tracer=(ctx.find_root().obj or {}).get("tracer"))


def run(ctx: typer.Context, **params) -> None:
    """Run a command in a new container."""
    from minirun.cli.fastrun import run_container

    creating = ctx.info_name == "create"
    obj = ctx.find_root().obj or {}
    code = run_container(obj.get("root"), params, creating=creating, tracer=obj.get("tracer"))
    if creating or params["detach"]:
        return
    raise typer.Exit(code)


def _run_signature() -> Signature:
    """run's parameters for typer: the image, the command and fastrun's flag table (the one list
    of run's flags, which the fast parser reads too)."""
    from minirun.cli.fastrun import DEFAULTS, RUN_OPTIONS

    types = {"flag": bool, "str": str, "list": list[str], "int": int, "float": float}
    arg = Parameter.POSITIONAL_OR_KEYWORD
    params = [
        Parameter("ctx", arg, annotation=typer.Context),
        Parameter("image", arg, annotation=str,
                  default=typer.Argument(..., help="Image name or id.")),
        Parameter("command", arg, annotation=list[str], default=typer.Argument(
            None, help="Command and arguments (default: the image's).")),
    ]
    params += [Parameter(name, arg, annotation=types[kind],
                         default=typer.Option(DEFAULTS[kind], *names, help=help))
               for name, (kind, names, help) in RUN_OPTIONS.items()]
    return Signature(params, return_annotation=None)


run.__signature__ = _run_signature()


def start(ctx: typer.Context, containers: list[str] = typer.Argument(..., help="Containers.")) -> None:
    """Start created or stopped containers in the background."""
    rt = _runtime(ctx)
    for ref in containers:
        rt.start(ref)
        sys.stdout.write(ref + "\n")


def ps(
    ctx: typer.Context,
    all: bool = typer.Option(False, "-a", "--all", help="Show every container, not only running ones."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only ids."),
    format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """List containers."""
    from minirun.runtime.state import StateStore

    store = StateStore(root(ctx))
    records = store.list()
    rows = []
    for r in records:
        status = r.status()
        if not all and status != "running":
            continue
        rows.append((r, status))
    if quiet:
        sys.stdout.write("".join(r.id[:12] + "\n" for r, _ in rows))
        return
    now = datetime.now(UTC)
    if format == "json":
        print_json([{"Id": r.id, "Names": r.name, "Image": r.state.image, "Command": _command(r),
                     "Created": r.state.created, "State": status, "Status": _status_text(r, status, now),
                     "Pid": r.state.pid if status == "running" else 0} for r, status in rows])
        return
    print_table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"],
                [(r.id[:12], r.state.image, _command(r), _ago(r.state.created, now) + " ago",
                  _status_text(r, status, now), r.name) for r, status in rows])


def _command(record) -> str:
    try:
        args = record.spec()["process"]["args"]
    except (OSError, KeyError, ValueError):
        return ""
    text = " ".join(args)
    return '"' + (text if len(text) <= 20 else text[:19] + "…") + '"'


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.rstrip("Z")
    if "." in text:                              # the monitor writes nanoseconds
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _ago(text: str | None, now: datetime) -> str:
    when = _parse_time(text)
    if when is None:
        return "?"
    s = max(0, int((now - when).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size:
            n = s // size
            return f"{n} {unit}{'s' if n > 1 else ''}"
    return "Less than a second" if s < 1 else f"{s} second{'s' if s > 1 else ''}"


def _status_text(record, status: str, now: datetime) -> str:
    if status == "running":
        return f"Up {_ago(record.state.started_at, now)}"
    if status == "created":
        return "Created"
    finished = (record.exit_record() or {}).get("finished_at")
    return f"Exited ({record.exit_code()}) {_ago(finished, now)} ago"


def logs(
    ctx: typer.Context,
    container: str = typer.Argument(...),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new output."),
    tail: int = typer.Option(None, "--tail", help="Only the last N lines."),
    timestamps: bool = typer.Option(False, "-t", "--timestamps", help="Prefix each line with its time."),
) -> None:
    """Print a container's output (stdout and stderr, kept apart)."""
    from minirun.runtime import logs as logfile

    rt = _runtime(ctx)
    record = rt.get(container)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for entry in logfile.read(record.dir / "container.log", tail=tail, follow=follow,
                                  running=record.is_running):
            stream = err if entry.stream == "stderr" else out
            if timestamps:
                stream.write(entry.time.encode() + b" ")
            stream.write(entry.text + (b"" if entry.partial else b"\n"))
            if follow:
                stream.flush()
    except BrokenPipeError:             # (Ctrl-C: KeyboardInterrupt, 130, as for every verb)
        sys.stderr.close()


def exec_(
    ctx: typer.Context,
    container: str = typer.Argument(...),
    command: list[str] = typer.Argument(..., help="Command and arguments."),
    interactive: bool = typer.Option(False, "-i", "--interactive", help="Keep stdin attached."),
    tty: bool = typer.Option(False, "-t", "--tty", help="Allocate a terminal."),
    env: list[str] = typer.Option(None, "-e", "--env", help="Set KEY=value."),
    workdir: str = typer.Option(None, "-w", "--workdir", help="Working directory inside."),
    user: str = typer.Option(None, "-u", "--user", help="user[:group]."),
    detach: bool = typer.Option(False, "-d", "--detach", help="Do not wait for the command."),
) -> None:
    """Run a command in a running container (same namespaces, cgroup and limits)."""
    from minirun.cli import attach

    rt = _runtime(ctx)
    proc = rt.exec(container, list(command), env=list(env or []), workdir=workdir, user=user,
                   tty=tty, interactive=interactive,
                   console=attach.console_size() if tty else (0, 0))
    if detach:
        return
    raise typer.Exit(attach.wait_child(proc.pid, proc.pid, proc.tty_master))


def stop(
    ctx: typer.Context,
    containers: list[str] = typer.Argument(...),
    time_: float = typer.Option(10, "-t", "--time", help="Seconds to wait before SIGKILL."),
) -> None:
    """Stop containers: SIGTERM (or the image's stop signal), SIGKILL after --time seconds."""
    rt = _runtime(ctx)
    for ref in containers:
        rt.stop(ref, timeout=time_)
        sys.stdout.write(ref + "\n")


def kill(
    ctx: typer.Context,
    containers: list[str] = typer.Argument(...),
    signal_: str = typer.Option("KILL", "-s", "--signal", help="Signal name or number."),
) -> None:
    """Send a signal to containers' main process."""
    from minirun.procfs import signal_number

    rt = _runtime(ctx)
    sig = signal_number(signal_)
    for ref in containers:
        rt.kill(ref, sig)
        sys.stdout.write(ref + "\n")


def rm(
    ctx: typer.Context,
    containers: list[str] = typer.Argument(...),
    force: bool = typer.Option(False, "-f", "--force", help="Kill a running container first."),
) -> None:
    """Remove containers and everything they hold on the host (cgroups, files)."""
    rt = _runtime(ctx)
    for ref in containers:
        rt.remove(ref, force=force)
        sys.stdout.write(ref + "\n")


def inspect(ctx: typer.Context, containers: list[str] = typer.Argument(...)) -> None:
    """Show containers' configuration and state as JSON."""
    rt = _runtime(ctx)
    print_json([rt.inspect(ref) for ref in containers])


def wait(ctx: typer.Context, containers: list[str] = typer.Argument(...)) -> None:
    """Block until containers stop; print their exit codes."""
    rt = _runtime(ctx)
    for ref in containers:
        sys.stdout.write(f"{rt.wait(ref)}\n")


def top(
    ctx: typer.Context,
    container: str = typer.Argument(...),
    format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Show the processes running in a container (host pids)."""
    rt = _runtime(ctx)
    procs = rt.top(container)
    if format == "json":
        print_json(procs)
        return
    print_table(["PID", "PPID", "UID", "TIME", "CMD"],
                [(p["pid"], p["ppid"], p["uid"], _cpu_time(p["cpu_seconds"]), p["command"]) for p in procs])


def _cpu_time(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def update(
    ctx: typer.Context,
    containers: list[str] = typer.Argument(...),
    memory: str = typer.Option(None, "-m", "--memory", help="Memory limit."),
    memory_swap: str = typer.Option(None, "--memory-swap", help="Memory + swap limit."),
    cpus: float = typer.Option(None, "--cpus", help="CPU quota in CPUs."),
    cpu_shares: int = typer.Option(None, "--cpu-shares", help="Relative CPU weight."),
    cpuset_cpus: str = typer.Option(None, "--cpuset-cpus", help="CPUs allowed."),
    pids_limit: int = typer.Option(None, "--pids-limit", help="Max processes."),
) -> None:
    """Change the limits of containers, live."""
    from minirun.errors import UsageError
    from minirun.runtime.options import RunOptions, resources
    from minirun.units import parse_bytes

    opts = RunOptions(image="", memory=parse_bytes(memory) if memory else None,
                      memory_swap=(-1 if memory_swap == "-1" else parse_bytes(memory_swap)) if memory_swap else None,
                      cpus=cpus, cpu_shares=cpu_shares, cpuset_cpus=cpuset_cpus, pids_limit=pids_limit)
    changes = resources(opts)
    if pids_limit is None:
        changes.pop("pids")
    if not changes:
        raise UsageError("update needs at least one limit (-m, --cpus, --pids-limit, ...)")
    rt = _runtime(ctx)
    for ref in containers:
        rt.update(ref, changes)
        sys.stdout.write(ref + "\n")


def port(
    ctx: typer.Context,
    container: str = typer.Argument(...),
    private: str = typer.Argument(None, help="Only this container port (80 or 80/tcp)."),
    format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """List a container's published ports (container port -> host address)."""
    ports = _runtime(ctx).ports(container)
    if private:
        number, _, proto = private.partition("/")
        ports = [p for p in ports if str(p["container_port"]) == number and p["proto"] == (proto or "tcp")]
    if format == "json":
        print_json(ports)
        return
    for p in ports:
        line = f"{p['host_ip']}:{p['host_port']}"
        sys.stdout.write((line if private else f"{p['container_port']}/{p['proto']} -> {line}") + "\n")


def prune(ctx: typer.Context, force: bool = typer.Option(False, "-f", "--force", help="Do not ask.")) -> None:
    """Remove every stopped container."""
    if not force and sys.stdin.isatty() and not typer.confirm("Remove all stopped containers?"):
        return
    for name in _runtime(ctx).prune():
        sys.stdout.write(name + "\n")


# verb -> (function, click context settings); `minirun container` adds ls and prune
VERBS = {
    "run": (run, RUN_CONTEXT), "create": (run, RUN_CONTEXT), "start": (start, None),
    "ps": (ps, None), "logs": (logs, None), "exec": (exec_, RUN_CONTEXT), "stop": (stop, None),
    "kill": (kill, None), "rm": (rm, None), "inspect": (inspect, None), "wait": (wait, None),
    "top": (top, None), "update": (update, None), "port": (port, None),
}
group.command("ls")(ps)
group.command("prune")(prune)


def register(app: typer.Typer, only: str | None = None) -> None:
    """The Docker-style top-level verbs (all of them, or just `only`)."""
    for name, (function, settings) in VERBS.items():
        if only is None or only == name:
            help = CREATE_HELP if name == "create" else None
            app.command(name, context_settings=settings, help=help)(function)
