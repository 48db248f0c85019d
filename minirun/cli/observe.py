"""Watching containers: `minirun stats` (Docker's columns, live on a terminal) and `minirun events`
(what happened to containers and images, live or from the log)."""

from __future__ import annotations

import sys
import time

import typer

from minirun.cli.common import print_table, root

# CPU % needs two readings; `--no-stream` takes them this far apart
NO_STREAM_WINDOW = 0.5


def stats(
    ctx: typer.Context,
    containers: list[str] = typer.Argument(None, help="Containers (default: every running one)."),
    all: bool = typer.Option(False, "-a", "--all", help="Also list stopped containers."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print one reading and exit."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between readings."),
    format: str = typer.Option("table", "--format", help="table or json (one JSON object per line)."),
) -> None:
    """Live CPU, memory, network, block I/O and pids of containers (Ctrl-C to stop)."""
    from minirun.errors import UsageError
    from minirun.observe.stats import cpu_percent, sample
    from minirun.runtime.containers import Runtime

    if format not in ("table", "json"):
        raise UsageError(f"--format {format}: expected table or json")
    rt = Runtime(root(ctx))
    named = list(containers or [])
    records = [rt.get(ref) for ref in named]           # unknown names fail here, before output

    def current():
        if named:
            return [rt.get(r.id) for r in records]
        return [r for r in rt.list(all=True) if all or r.status() == "running"]

    previous = {r.id: sample(rt, r) for r in current()}
    live = sys.stdout.isatty() and format == "table" and not no_stream
    try:
        while True:
            time.sleep(NO_STREAM_WINDOW if no_stream else interval)
            rows = []
            for record in current():
                now = sample(rt, record)
                before = previous.get(record.id)
                cpu = cpu_percent(before, now) if before and now else None
                rows.append(_row(record, now, cpu))
                previous[record.id] = now
            _print(rows, format, live)
            if no_stream:
                return
    except KeyboardInterrupt:
        sys.stdout.write("\n" if live else "")


def _row(record, now, cpu: float | None) -> dict:
    if now is None:                                    # stopped: Docker shows zeros
        return {"id": record.id, "name": record.name, "cpu_percent": None, "memory_usage": None,
                "memory_limit": None, "memory_percent": None, "net_rx": None, "net_tx": None,
                "block_read": None, "block_write": None, "pids": None}
    return now.as_dict(cpu)


def _print(rows: list[dict], format: str, live: bool) -> None:
    import json

    if format == "json":
        sys.stdout.write("".join(json.dumps(r) + "\n" for r in rows))
        sys.stdout.flush()
        return
    if live:
        sys.stdout.write("\x1b[H\x1b[2J")                   # home, clear: redraw in place
    print_table(
        ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"],
        [(r["id"][:12], r["name"], _percent(r["cpu_percent"]),
          f"{_binary(r['memory_usage'])} / {_binary(r['memory_limit'])}", _percent(r["memory_percent"]),
          f"{_decimal(r['net_rx'])} / {_decimal(r['net_tx'])}",
          f"{_decimal(r['block_read'])} / {_decimal(r['block_write'])}",
          "--" if r["pids"] is None else r["pids"]) for r in rows])
    if not live:
        sys.stdout.write("\n")
    sys.stdout.flush()


def _percent(value: float | None) -> str:
    return "--" if value is None else f"{value:.2f}%"


def _binary(n: int | None) -> str:
    """Memory as Docker prints it: KiB, MiB, GiB."""
    if n is None:
        return "--"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.4g}{unit}"
        n /= 1024
    return f"{n}B"


def _decimal(n: int | None) -> str:
    """Traffic as Docker prints it: kB, MB, GB."""
    if n is None:
        return "--"
    from minirun.cli.common import human_size

    return human_size(n)


def events(
    ctx: typer.Context,
    since: str = typer.Option(None, "--since", help="Show events from this time on (Unix seconds, 10m, or 2026-11-26T00:10:00Z)."),
    until: str = typer.Option(None, "--until", help="Stop at this time (default: follow until Ctrl-C)."),
    filter: list[str] = typer.Option(None, "-f", "--filter", help="type=container|image|network, event=die, container=NAME, image=NAME (repeatable)."),
    format: str = typer.Option("plain", "--format", help="plain or json (one JSON object per line)."),
) -> None:
    """What happens to containers and images, as `docker events` shows it (Ctrl-C to stop)."""
    import json

    from minirun.errors import UsageError
    from minirun.observe import events as ev

    if format not in ("plain", "json"):
        raise UsageError(f"--format {format}: expected plain or json")
    filters = ev.parse_filters(filter or [])
    t_since = ev.parse_time(since) if since else None
    t_until = ev.parse_time(until) if until else None
    if t_since is not None and t_until is not None and t_until < t_since:
        raise UsageError(f"--until {until} is before --since {since}")
    show = (lambda e: json.dumps(e)) if format == "json" else ev.human
    if t_until is not None and t_until <= time.time_ns():          # the past: history only
        found = ev.history(root(ctx), t_since, t_until, filters)
        sys.stdout.write("".join(show(e) + "\n" for e in found))
        return
    try:
        for e in ev.follow(root(ctx), filters, since=t_since, until=t_until):
            sys.stdout.write(show(e) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:                             # `minirun events | head -3`
        sys.stderr.close()


VERBS = {"stats": stats, "events": events}


def register(app: typer.Typer, only: str | None = None) -> None:
    for name, function in VERBS.items():
        if only is None or only == name:
            app.command(name)(function)
