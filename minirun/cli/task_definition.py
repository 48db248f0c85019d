"""`minirun task-definition`: register, ls, describe, deregister (ECS's JSON, with revisions),
export (Kubernetes manifests)."""

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
    td = call(ctx, "POST", "/v1/task-definitions", _read_json(file))
    sys.stdout.write(f"{td['family']}:{td['revision']}\n")


def _read_json(file: str):
    from minirun.errors import UsageError

    try:
        text = sys.stdin.read() if file == "-" else open(file).read()
    except OSError as e:
        raise UsageError(f"{file}: {e.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{file}: not JSON: line {e.lineno} column {e.colno}: {e.msg}") from None


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


@app.command()
def export(
    ctx: typer.Context,
    ref: str = typer.Argument(None, help="FAMILY (latest) or FAMILY:REVISION, from the cluster."),
    file: str = typer.Option(None, "-f", "--file", help="A task definition JSON file instead "
                             "(no cluster needed; '-': standard input)."),
    format: str = typer.Option("kubernetes", "--format", help="kubernetes (YAML manifests)."),
    kind: str = typer.Option("deployment", "--kind", help="deployment or pod."),
    replicas: int = typer.Option(1, "--replicas", min=0, help="The Deployment's replicas."),
    output: str = typer.Option(None, "-o", "--output", help="Write to FILE, not standard output."),
) -> None:
    """Kubernetes manifests (Deployment or Pod, + Service) from a task definition; what does not
    map is listed in a comment at the top (docs/kubernetes.md)."""
    from minirun.errors import UsageError

    if format != "kubernetes":
        raise UsageError(f"--format {format}: use kubernetes")
    if kind not in ("deployment", "pod"):
        raise UsageError(f"--kind {kind}: use deployment or pod")
    if (ref is None) == (file is None):
        raise UsageError("give FAMILY[:REVISION] (from the cluster) or --file FILE, one of them")
    if file is not None:
        from minirun.sched.taskdef import validate

        td = validate(_read_json(file))
    else:
        td = call(ctx, "GET", f"/v1/task-definitions/{ref}")
    from minirun.sched import kube

    text = kube.to_yaml(kube.export(td, kind=kind, replicas=replicas))
    if output is None:
        sys.stdout.write(text)
        return
    from pathlib import Path

    from minirun.storage import write_atomic

    try:
        write_atomic(Path(output).absolute(), text, durable=False)
    except OSError as e:
        raise UsageError(f"{output}: {e.strerror}") from None
