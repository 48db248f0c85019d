"""The typer application: the global options and the verb groups.

Typer turns every registered command's signature into click parameters each time the program
starts (~3 ms for all verbs), so `build(verb)` registers only the verb being invoked; `--help`,
an unknown verb or no verb get the whole tree. Each verb module imports the runtime inside its
functions, so `minirun --help` and `minirun ps` pay only for what they use.
"""

import importlib
import sys

import typer

from minirun import __version__

# Where each top-level verb and each verb group lives, so that a command imports only the module
# of its own verb (importing them all costs ~10 ms a command). tests/unit/test_cli_tables.py
# checks these tables against the modules' own VERBS.
TOP_VERBS = {
    **{verb: "container" for verb in ("run", "create", "start", "ps", "logs", "exec", "stop",
                                      "kill", "rm", "inspect", "wait", "top", "update")},
    "commit": "imagework", "export": "imagework", "build": "imagework",
    "stats": "observe", "events": "observe",
    "dashboard": "cluster",
    "gc": "system",
    "port": "container",
}
GROUPS = {  # name -> (module, its typer app)
    "image": ("image", "app"), "container": ("container", "group"), "trace": ("trace", "app"),
    "cluster": ("cluster", "app"), "task-definition": ("task_definition", "app"),
    "task": ("task", "app"), "service": ("service", "app"), "explain": ("explain", "app"),
    "sim": ("sim", "app"), "network": ("network", "app"),
}


def _module(name: str):
    return importlib.import_module(f"minirun.cli.{name}")


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
        # click's plain help (typer, 0.25 here, defaults to rich markup when rich is installed):
        # help texts are shown as written ("[ip:]hostPort:containerPort[/udp]": rich read "[ip:]" as a
        # style and dropped it, and "[/udp]" as a closing tag, and raised MarkupError), and
        # `--help` imports no rich (~50 ms: rich, markdown_it, pygments). Sub-apps inherit it.
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_global)
    modules = sorted(set(TOP_VERBS.values())) if verb is None else [TOP_VERBS.get(verb)]
    for name in filter(None, modules):
        _module(name).register(app, only=verb)
    for name, (module, attribute) in GROUPS.items():
        if verb in (None, name):
            app.add_typer(getattr(_module(module), attribute), name=name)
    return app


def verb_of(argv: list[str]) -> str | None:
    """The verb of a command line, if it is one we know; global options may come first."""
    args = iter(argv)
    for arg in args:
        if arg == "--root":
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in TOP_VERBS or arg in GROUPS else None
    return None
