"""`minirun trace run [run flags] IMAGE [CMD...]`: run a container and draw where its start-up
time went, from the interpreter's start to the container's removal (minirun/observe/trace.py).

`trace run` *is* `run`: the same function (cli/container.py), so the same flags, with two
differences made in its signature rather than by copying the option list: `--rm` is on by default
(`--keep` turns it off) and `--format` chooses the waterfall or JSON. The container runs attached;
its output comes first, then the waterfall (printed only when the container ran: a start-up that
failed is reported as `run` reports it).
"""

import inspect
import os
import sys

import typer

from minirun.cli import container
from minirun.cli.common import print_json

app = typer.Typer(help="See inside: where a container's start-up time goes.", no_args_is_help=True)


def run(ctx: typer.Context, format: str = "table", **flags) -> None:
    """Run a container (the same flags as run), then draw its start-up waterfall."""
    from minirun.cli import main
    from minirun.errors import UsageError
    from minirun.observe import trace
    from minirun.runtime.spawn import step_name

    entered = main.ENTERED
    if format not in ("table", "json"):
        raise UsageError(f"--format {format}: use table or json")
    if flags["detach"]:
        raise UsageError("trace run waits for the container to draw its start-up: drop -d")
    tracer = trace.Tracer()
    if entered[0]:                     # called through main(), not from a test's CliRunner
        tracer.add("interpreter start", trace.process_start_ns(*entered), entered[0])
        tracer.add("CLI start-up (typer, flags)", entered[0], _now())
    obj = ctx.find_root().obj
    obj["tracer"] = tracer             # the Runtime that `run` makes reports to it
    try:
        container.run(ctx, **flags)
    except typer.Exit:
        tracer.fill("wait for the child", "remove", "container runs (until exit)")
        spans = trace.merge(tracer.phases, tracer.stamps, step_name)
        if format == "json":
            print_json(trace.to_json(spans))
        else:
            tty = sys.stdout.isatty()
            sys.stdout.write(trace.render(spans, width=_width(tty), colour=tty,
                                          title=f"start-up of {' '.join([flags['image'], *(flags['command'] or [])])}"))
        raise
    finally:
        obj.pop("tracer", None)


def _now() -> int:
    import time

    return time.monotonic_ns()


def _width(tty: bool) -> int:
    if "COLUMNS" in os.environ and os.environ["COLUMNS"].isdigit():
        return int(os.environ["COLUMNS"])
    if tty:
        try:
            return os.get_terminal_size(sys.stdout.fileno()).columns
        except OSError:
            pass
    return 100


def _signature() -> inspect.Signature:
    """run's parameters, with --rm on by default, plus --format."""
    params = []
    for p in inspect.signature(container.run).parameters.values():
        if p.name == "rm":
            p = p.replace(default=typer.Option(True, "--rm/--keep",
                                               help="Remove the container afterwards (default)."))
        params.append(p)
    params.append(inspect.Parameter("format", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                                    default=typer.Option("table", "--format", help="table or json.")))
    return inspect.Signature(params)


run.__signature__ = _signature()
run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}
app.command("run", context_settings=container.RUN_CONTEXT)(run)
