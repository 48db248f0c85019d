"""`minirun service`: create, update, ls, describe, rm — long-running tasks kept at a count."""

from __future__ import annotations

import sys
import time

import typer

from minirun.cli.api import age, call, check_format, mib
from minirun.cli.common import print_json, print_table

app = typer.Typer(help="Keep a number of tasks running, replace failed ones, roll out new definitions.",
                  no_args_is_help=True)


def _wait(ctx: typer.Context, name: str, timeout: float) -> None:
    """Until the service is steady: desired tasks RUNNING and healthy, of its definition, none extra."""
    from minirun.errors import ClusterError

    deadline = time.monotonic() + timeout
    while True:
        svc = call(ctx, "GET", f"/v1/services/{name}")
        tasks = call(ctx, "GET", f"/v1/tasks?service={name}")
        good = [t for t in tasks if t["status"] == "RUNNING" and t["desired"] == "RUNNING"
                and t["taskdef"] == svc["taskdef"] and t.get("health") != "UNHEALTHY"]
        if len(good) == svc["desired"] and len(tasks) == svc["desired"]:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"service {name}: {len(good)} of {svc['desired']} tasks running "
                               f"after {timeout:g} s (see minirun task ls --service {name})")
        time.sleep(0.2)


@app.command()
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Service name."),
    task_definition: str = typer.Option(..., "--task-definition", "-t", help="FAMILY or FAMILY:REVISION."),
    desired_count: int = typer.Option(1, "--desired-count", "-n", help="Tasks to keep running."),
    strategy: str = typer.Option(None, "--placement-strategy", help="e.g. spread(attribute:zone),binpack(memory)."),
    constraint: list[str] = typer.Option(None, "--placement-constraint", help="distinctInstance or memberOf(EXPR) (repeat)."),
    minimum_healthy: int = typer.Option(100, "--minimum-healthy-percent", help="Deployments keep this much running."),
    maximum: int = typer.Option(200, "--maximum-percent", help="Deployments never exceed this much."),
    wait: bool = typer.Option(False, "--wait", help="Return once the tasks are RUNNING."),
    timeout: float = typer.Option(60.0, "--timeout", help="With --wait: give up after this many seconds."),
) -> None:
    """Create a service."""
    svc = call(ctx, "POST", "/v1/services", {
        "name": name, "taskDefinition": task_definition, "desiredCount": desired_count,
        "strategy": strategy, "constraints": list(constraint or []),
        "minimumHealthyPercent": minimum_healthy, "maximumPercent": maximum})
    if wait:
        _wait(ctx, name, timeout)
    sys.stdout.write(f"{svc['name']}: {svc['desired']} × {svc['taskdef']}\n")


@app.command()
def update(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Service name."),
    desired_count: int = typer.Option(None, "--desired-count", "-n", help="Scale to this many tasks."),
    task_definition: str = typer.Option(None, "--task-definition", "-t", help="Roll out this definition."),
    cpu: int = typer.Option(None, "--cpu", help="Task-level CPU units (vertical scaling)."),
    memory: str = typer.Option(None, "--memory", help="Task-level memory, MiB or with a unit (vertical scaling)."),
    wait: bool = typer.Option(False, "--wait", help="Return once the service is steady again."),
    timeout: float = typer.Option(60.0, "--timeout", help="With --wait: give up after this many seconds."),
) -> None:
    """Scale, deploy a new task definition, or change cpu/memory (live where it fits)."""
    svc = call(ctx, "PATCH", f"/v1/services/{name}", {
        "desiredCount": desired_count, "taskDefinition": task_definition, "cpu": cpu,
        "memory": mib(memory) if memory is not None else None})
    if wait:
        _wait(ctx, name, timeout)
    sys.stdout.write(f"{svc['name']}: {svc['desired']} × {svc['taskdef']}\n")


@app.command("ls")
def ls(ctx: typer.Context, format: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """List services."""
    check_format(format)
    svcs = call(ctx, "GET", "/v1/services")
    if format == "json":
        print_json(svcs)
        return
    print_table(["SERVICE", "DEFINITION", "DESIRED", "RUNNING", "PENDING", "STRATEGY", "AGE"],
                [(s["name"], s["taskdef"], s["desired"], s["running"], s["pending"],
                  ",".join(f"{x['type']}({x.get('field', '')})" if x.get("field") else x["type"]
                           for x in s["strategy"]), age(s["created_at"])) for s in svcs])


@app.command()
def describe(ctx: typer.Context, name: str = typer.Argument(..., help="Service name.")) -> None:
    """The service, its tasks and its latest events (JSON)."""
    print_json(call(ctx, "GET", f"/v1/services/{name}"))


@app.command()
def rm(ctx: typer.Context, names: list[str] = typer.Argument(..., help="Services.")) -> None:
    """Delete services: their tasks are stopped."""
    for name in names:
        call(ctx, "DELETE", f"/v1/services/{name}")
        sys.stdout.write(name + "\n")
