"""The typer application: the global options and the verb groups.

Each verb module imports the runtime inside its functions, so `minirun --help` and `minirun ps`
pay only for what they use.
"""

import sys

import typer

from minirun import __version__
from minirun.cli import container, image

app = typer.Typer(
    name="minirun",
    help="A small, readable container runtime: namespaces, cgroups, overlay images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"minirun {__version__}\n")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    root: str = typer.Option(None, "--root", envvar="MINIRUN_ROOT",
                             help="Data root (images, containers). Default /var/lib/minirun."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    ctx.obj = {"root": root}


container.register(app)
app.add_typer(image.app, name="image")
app.add_typer(container.group, name="container")
