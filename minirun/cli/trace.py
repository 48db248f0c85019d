"""`minirun trace run|exec|start …`: do what `run`, `exec` or `start` does and draw where the
time went, from the interpreter's start to the end (minirun/observe/trace.py).

`trace run` *is* `run` and `trace exec` *is* `exec`: the same functions (cli/container.py), so the
same flags, with the differences made in their signatures rather than by copying the option
lists: `trace run` has `--rm` on by default (`--keep` turns it off), `-d` is refused (the trace
waits for the end), and every trace verb takes `--format table|json`, `--output FILE.svg|.png`
and `--detail` (each mount, each namespace joined, as a row of its own).
The command's own output comes first, then the waterfall (printed only when the process ran: a
start-up that failed is reported as the verb itself reports it).
"""

import inspect
import os
import sys

import typer

from minirun.cli import container as verbs
from minirun.cli.common import print_json

app = typer.Typer(help="See inside: where a container's start-up time goes.", no_args_is_help=True)

DRAWINGS = (".svg", ".png")


def _check_output(output: str | None) -> None:
    """Refuse a drawing we could not write before anything runs: nothing to clean up then."""
    from minirun.errors import UsageError

    if output is None:
        return
    ext = os.path.splitext(output)[1].lower()
    if ext not in DRAWINGS:
        raise UsageError(f"--output {output}: the name must end in .svg or .png")
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise UsageError(f"--output {output}: no such directory {parent}")
    if ext == ".png":
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError(f"--output {output}: PNG needs matplotlib, which is not installed "
                             "(pip install 'minirun[bench]', or `make bench` once); "
                             ".svg needs nothing")


def _traced(ctx: typer.Context, format: str, output: str | None, detail: bool, title: str, call,
            first_native_from: str, until_exit: str | None, after: str | None = None) -> None:
    """Run `call()` (a verb of cli/container.py) with a Tracer in the context, then draw.
    `until_exit` names the span from the end of "wait for the child" to `after` (a phase), or
    to the end of `call()` when there is no such phase (exec: the command until it exits)."""
    from minirun.cli import main
    from minirun.errors import UsageError
    from minirun.observe import trace
    from minirun.runtime.spawn import step_name

    if format not in ("table", "json"):
        raise UsageError(f"--format {format}: use table or json")
    _check_output(output)
    entered = main.ENTERED
    tracer = trace.Tracer()
    if entered[0]:                     # called through main(), not from a test's CliRunner
        tracer.add("interpreter start", trace.process_start_ns(*entered), entered[0])
        tracer.add("CLI start-up (typer, flags)", entered[0], _now())
    obj = ctx.find_root().obj
    obj["tracer"] = tracer             # the Runtime the verb makes reports to it
    exit_status = None
    with tracer.phase("runtime import"):   # what the verb imports first: the runtime, the plan
        import minirun.runtime.containers  # noqa: F401
        import minirun.runtime.spawn  # noqa: F401
    try:
        call()
    except typer.Exit as e:
        exit_status = e
    finally:
        obj.pop("tracer", None)
    if until_exit:
        if after:
            tracer.fill("wait for the child", after, until_exit)
        else:
            waited = [p.end_ns for p in tracer.phases if p.name == "wait for the child"]
            if waited:
                tracer.add(until_exit, waited[-1], _now())
    spans = trace.merge(tracer.phases, tracer.stamps, step_name, first_from=first_native_from,
                        item_step=tracer.item_step, items=tracer.items, item_names=tracer.item_names)
    if output:
        data = (trace.to_svg(spans, title=title, detail=detail).encode()
                if output.lower().endswith(".svg") else trace.to_png(spans, title=title, detail=detail))
        with open(output, "wb") as f:
            f.write(data)
    if format == "json":
        print_json(trace.to_json(spans))
    else:
        tty = sys.stdout.isatty()
        sys.stdout.write(trace.render(spans, width=_width(tty), colour=tty, title=title, detail=detail))
        if output:
            sys.stdout.write(f"drawn: {output}\n")
    if exit_status is not None:
        raise exit_status


def run(ctx: typer.Context, format: str = "table", output: str = None, detail: bool = False,
        **flags) -> None:
    """Run a container (the same flags as run), then draw its start-up waterfall."""
    from minirun.errors import UsageError

    if flags["detach"]:
        raise UsageError("trace run waits for the container to draw its start-up: drop -d")
    title = f"start-up of {' '.join([flags['image'], *(flags['command'] or [])])}"
    _traced(ctx, format, output, detail, title, lambda: verbs.run(ctx, **flags), "mr_spawn",
            "container runs (until exit)", after="remove")


def exec_(ctx: typer.Context, format: str = "table", output: str = None, detail: bool = False,
          **flags) -> None:
    """Run a command in a running container (the same flags as exec), then draw its start-up."""
    from minirun.errors import UsageError

    if flags["detach"]:
        raise UsageError("trace exec waits for the command to draw its start-up: drop -d")
    title = f"exec in {flags['container']}: {' '.join(flags['command'])}"
    _traced(ctx, format, output, detail, title, lambda: verbs.exec_(ctx, **flags), "mr_enter",
            "command runs (until exit)")


def start(
    ctx: typer.Context,
    container: str = typer.Argument(..., help="A created or stopped container."),
    format: str = typer.Option("table", "--format", help="table or json."),
    output: str = typer.Option(None, "-o", "--output", help="Also draw it into FILE.svg or FILE.png."),
    detail: bool = typer.Option(False, "--detail", help="A row for each mount of the list, under its step."),
) -> None:
    """Start a created or stopped container (as start does), then draw its start-up up to execve."""
    _traced(ctx, format, output, detail, f"start of {container}",
            lambda: verbs.start(ctx, containers=[container]), "mr_spawn", None)


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


def _signature(verb, keep_rm: bool) -> inspect.Signature:
    """The verb's parameters (with --rm on by default for run), plus --format and --output."""
    params = []
    for p in inspect.signature(verb).parameters.values():
        if keep_rm and p.name == "rm":
            p = p.replace(default=typer.Option(True, "--rm/--keep",
                                               help="Remove the container afterwards (default)."))
        params.append(p)
    kw = inspect.Parameter.KEYWORD_ONLY
    params.append(inspect.Parameter("format", kw, annotation=str,
                                    default=typer.Option("table", "--format", help="table or json.")))
    params.append(inspect.Parameter("output", kw, annotation=str, default=typer.Option(
        None, "-o", "--output", help="Also draw the waterfall into FILE.svg or FILE.png (matplotlib).")))
    params.append(inspect.Parameter("detail", kw, annotation=bool, default=typer.Option(
        False, "--detail", help="A row for each mount (run, start) or namespace joined (exec).")))
    return inspect.Signature(params)


for _fn, _verb, _rm in ((run, verbs.run, True), (exec_, verbs.exec_, False)):
    _fn.__signature__ = _signature(_verb, _rm)
    _fn.__annotations__ = {p.name: p.annotation for p in _fn.__signature__.parameters.values()}
app.command("run", context_settings=verbs.RUN_CONTEXT)(run)
app.command("exec", context_settings=verbs.RUN_CONTEXT)(exec_)
app.command("start")(start)
