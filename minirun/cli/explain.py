"""`minirun explain TASK`: why a task went where it did, or why it is still PENDING."""

from __future__ import annotations

import sys

import typer

from minirun.cli.api import call, check_format
from minirun.cli.common import print_json, print_table

app = typer.Typer(help="Show a task's placement decision: every worker, kept or dropped, and why.",
                  context_settings={"allow_interspersed_args": True})


@app.callback(invoke_without_command=True)
def explain(
    ctx: typer.Context,
    task: str = typer.Argument(..., help="Task id (or a unique prefix)."),
    format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Show a task's placement decision: every worker, kept or dropped, and why."""
    check_format(format)
    e = call(ctx, "GET", f"/v1/tasks/{task}/explain")
    if format == "json":
        print_json(e)
        return
    d = e["decision"]
    if d is None:
        sys.stdout.write(f"task {e['task']}: {e['status']}, no placement decision recorded yet\n")
        return
    if d["worker"]:
        sys.stdout.write(f"task {e['task']}: placed on {d['worker']} — {d['reason']}\n")
    else:
        sys.stdout.write(f"task {e['task']}: PENDING — {d['reason']}\n")
    print_table(["WORKER", "RESULT", "SCORE", "WHY"],
                [(c["worker"], "kept" if c["kept"] else "dropped",
                  " ".join(f"{x:g}" if isinstance(x, (int, float)) else str(x) for x in c["score"]),
                  c["why"]) for c in d["candidates"]])
