"""`minirun task-definition`: register, ls, describe, deregister (ECS's JSON, with revisions)."""

from __future__ import annotations

import json
import sys

import typer

from minirun.cli.api import call, check_format
from minirun.cli.common import print_json, print_table

app = typer.Typer(help="Register and list ECS task definitions.", no_args_is_help=True)


@app.command()
def register(ctx: typer.Context, file: str = typer.Argument(..., help="The JSON file ('-': standard input).")) -> None:
    """Register a task definition: a new revision of its family. Prints FAMILY:REVISION."""
    from minirun.errors import UsageError

    try:
        text = sys.stdin.read() if file == "-" else open(file).read()
    except OSError as e:
        raise UsageError(f"{file}: {e.strerror}") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{file}: not JSON: line {e.lineno} column {e.colno}: {e.msg}") from None
    td = call(ctx, "POST", "/v1/task-definitions", body)
    sys.stdout.write(f"{td['family']}:{td['revision']}\n")


@app.command("ls")
def ls(
    ctx: typer.Context,
    all: bool = typer.Option(False, "-a", "--all", help="Deregistered revisions too."),
    format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """List task definitions."""
    check_format(format)
    tds = call(ctx, "GET", "/v1/task-definitions" + ("?all=1" if all else ""))
    if format == "json":
        print_json(tds)
        return
    rows = []
    for td in tds:
        from minirun.sched.taskdef import reservation

        cpu, mem = reservation(td)
        rows.append((f"{td['family']}:{td['revision']}", td["status"],
                     ",".join(c["name"] for c in td["containerDefinitions"]), cpu, f"{mem}MiB", td["networkMode"]))
    print_table(["TASK DEFINITION", "STATUS", "CONTAINERS", "CPU", "MEMORY", "NETWORK"], rows)


@app.command()
def describe(ctx: typer.Context, ref: str = typer.Argument(..., help="FAMILY (latest) or FAMILY:REVISION.")) -> None:
    """The task definition as registered, with ECS's defaults filled in (JSON)."""
    print_json(call(ctx, "GET", f"/v1/task-definitions/{ref}"))


@app.command()
def deregister(ctx: typer.Context, ref: str = typer.Argument(..., help="FAMILY:REVISION.")) -> None:
    """Mark a revision INACTIVE: no new task or service may use it (running ones go on)."""
    td = call(ctx, "DELETE", f"/v1/task-definitions/{ref}")
    sys.stdout.write(f"{td['family']}:{td['revision']} INACTIVE\n")
