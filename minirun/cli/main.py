"""`minirun`: the entry point. Registers the verb groups; imports nothing heavy up front.

Each verb module imports the runtime inside its functions, so `minirun --help` and `minirun ps`
pay only for what they use.
"""

from __future__ import annotations

import os
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


def main() -> None:
    import click

    from minirun.cli.errors import RUNTIME_ERROR, report

    if os.geteuid() != 0 and len(sys.argv) > 1 and sys.argv[1] not in ("--help", "-h", "--version"):
        sys.stderr.write("minirun: this command needs root (rootless mode is not supported yet)\n")
        sys.exit(RUNTIME_ERROR)
    try:
        status = app(standalone_mode=False)
    except click.exceptions.UsageError as e:
        where = e.ctx.command_path if e.ctx else "minirun"
        sys.stderr.write(f"{where}: {e.format_message()} (see '{where} --help')\n")
        status = RUNTIME_ERROR               # Docker exits 125 on a bad flag
    except click.exceptions.Abort:
        status = 130
    except click.ClickException as e:
        e.show()
        status = e.exit_code
    except KeyboardInterrupt:
        status = 130
    except Exception as e:  # noqa: BLE001 — report() re-raises anything unforeseen
        status = report(e)
    sys.exit(status if isinstance(status, int) else 0)
