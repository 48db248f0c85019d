"""The typer application: the global options and the verb groups.

Typer turns every registered command's signature into click parameters each time the program
starts (~3 ms for all verbs), so `build(verb)` registers only the verb being invoked; `--help`,
an unknown verb or no verb get the whole tree. Each verb module imports the runtime inside its
functions, so `minirun --help` and `minirun ps` pay only for what they use.
"""

import sys

import typer

from minirun import __version__
from minirun.cli import container, image, imagework, network, observe, system, trace

# the modules of top-level verbs: each has VERBS and register(app, only)
VERB_MODULES = (container, imagework, observe, system)

GROUPS = {"image": image.app, "container": container.group, "trace": trace.app,
          "network": network.app}


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"minirun {__version__}\n")
        raise typer.Exit()


def _global(
    ctx: typer.Context,
    root: str = typer.Option(None, "--root", envvar="MINIRUN_ROOT",
                             help="Data root (images, containers). Default /var/lib/minirun."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    ctx.obj = {"root": root}


def build(verb: str | None = None) -> typer.Typer:
    """The app with every verb, or with just `verb` (a top-level verb or group name)."""
    app = typer.Typer(
        name="minirun",
        help="A small, readable container runtime: namespaces, cgroups, overlay images.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_global)
    for module in VERB_MODULES:
        module.register(app, only=verb)
    for name, group in GROUPS.items():
        if verb in (None, name):
            app.add_typer(group, name=name)
    return app


def verb_of(argv: list[str]) -> str | None:
    """The verb of a command line, if it is one we know; global options may come first."""
    args = iter(argv)
    for arg in args:
        if arg == "--root":
            next(args, None)
        elif not arg.startswith("-"):
            known = arg in GROUPS or any(arg in m.VERBS for m in VERB_MODULES)
            return arg if known else None
    return None
