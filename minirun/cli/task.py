"""`minirun task`: run, ls, describe, stop — standalone tasks (and a service's, to look at)."""

from __future__ import annotations

import sys

import typer

from minirun.cli.api import age, call, check_format
from minirun.cli.common import print_json, print_table

app = typer.Typer(help="Run and inspect tasks.", no_args_is_help=True)


@app.command()
def run(
    ctx: typer.Context,
    task_definition: str = typer.Argument(..., help="FAMILY or FAMILY:REVISION."),
    count: int = typer.Option(1, "--count", "-n", help="How many tasks."),
    strategy: str = typer.Option(None, "--placement-strategy", help="e.g. spread(instanceId), binpack(memory), random."),
    constraint: list[str] = typer.Option(None, "--placement-constraint", help="distinctInstance or memberOf(EXPR) (repeat)."),
    group: str = typer.Option(None, "--group", help="Task group (default family:NAME)."),
) -> None:
    """Start tasks of a task definition; prints their ids."""
    tasks = call(ctx, "POST", "/v1/tasks", {"taskDefinition": task_definition, "count": count,
                                            "strategy": strategy, "constraints": list(constraint or []),
                                            "group": group})
    for t in tasks:
        sys.stdout.write(t["id"] + "\n")


def rows_of(tasks: list[dict]) -> list[tuple]:
    return [(t["id"], t["taskdef"], t["service"] or "", t["worker"] or "", t["status"],
             t["desired"], t.get("health") or "", age(t["created_at"]),
             (t["pending_reason"] or "") if t["status"] == "PENDING" else (t["stop_reason"] or "")
             if t["status"] == "STOPPED" else "") for t in tasks]


HEADERS = ["TASK", "DEFINITION", "SERVICE", "WORKER", "STATUS", "DESIRED", "HEALTH", "AGE", "REASON"]


@app.command("ls")
def ls(
    ctx: typer.Context,
    all: bool = typer.Option(False, "-a", "--all", help="STOPPED tasks too."),
    service: str = typer.Option(None, "--service", help="Only this service's tasks."),
    status: str = typer.Option(None, "--status", help="PENDING, RUNNING or STOPPED."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only ids."),
    format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """List tasks (not the stopped ones, unless -a)."""
    check_format(format)
    q = [f"service={service}"] if service else []
    q += [f"status={status.upper()}"] if status else []
    q += ["all=1"] if all else []
    tasks = call(ctx, "GET", "/v1/tasks" + ("?" + "&".join(q) if q else ""))
    if quiet:
        sys.stdout.write("".join(t["id"] + "\n" for t in tasks))
    elif format == "json":
        print_json(tasks)
    else:
        print_table(HEADERS, rows_of(tasks))


@app.command()
def describe(ctx: typer.Context, tasks: list[str] = typer.Argument(..., help="Task ids (or unique prefixes).")) -> None:
    """Everything about tasks: containers, exit codes, health, history, placement (JSON)."""
    print_json([call(ctx, "GET", f"/v1/tasks/{t}") for t in tasks])


@app.command()
def stop(
    ctx: typer.Context,
    tasks: list[str] = typer.Argument(..., help="Task ids (or unique prefixes)."),
    reason: str = typer.Option(None, "--reason", help="Recorded as the stop reason."),
) -> None:
    """Stop tasks (SIGTERM, SIGKILL after each container's stopTimeout). A service replaces them."""
    for t in tasks:
        sys.stdout.write(call(ctx, "POST", f"/v1/tasks/{t}/stop", {"reason": reason})["id"] + "\n")
