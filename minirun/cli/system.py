"""Keeping the host clean: `minirun gc`."""

from __future__ import annotations

import sys

import typer

from minirun.cli.common import print_json, root


def gc(
    ctx: typer.Context,
    grace: float = typer.Option(10.0, "--grace", min=0,
                                help="Leave what is younger than this many seconds (a command may still be at work)."),
    format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Release what crashed or killed minirun commands left behind (idempotent)."""
    from minirun.runtime import gc as collector
    from minirun.runtime.containers import Runtime
    from minirun.sched import gc as _cluster_cleaner  # noqa: F401 — registers the scheduler's cleaner

    released = collector.collect(Runtime(root(ctx)), grace=grace)
    if format == "json":
        print_json(released)
    else:
        sys.stdout.write("".join(f"released {line}\n" for line in released))


VERBS = {"gc": gc}


def register(app: typer.Typer, only: str | None = None) -> None:
    for name, function in VERBS.items():
        if only is None or only == name:
            app.command(name)(function)
