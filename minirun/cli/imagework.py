"""Verbs that turn containers and files into images and back: commit, export, build.

Thin: parse, call minirun.images (and the runtime for build's RUN steps), print.
"""

import sys

import typer

from minirun.cli.common import root


def _container(ctx: typer.Context, ref: str):
    from minirun.runtime.state import StateStore

    return StateStore(root(ctx)).get(ref)


def commit(
    ctx: typer.Context,
    container: str = typer.Argument(..., help="Container name or id."),
    name: str = typer.Argument(None, help="name[:tag] for the new image (none: untagged)."),
    message: str = typer.Option("", "-m", "--message", help="Commit message (in history)."),
) -> None:
    """Make an image of a container: its image's layers plus its changes as one new layer."""
    from minirun.images import tree
    from minirun.images.store import ImageStore
    from minirun.runtime import userns

    record = _container(ctx, container)
    store = ImageStore(root(ctx))
    base = store.get(record.state.image_id)
    spec = record.spec()
    config = dict(base.config)
    upper = record.dir / "upper"
    img = store.derive(
        base, names=[name] if name else [], config=config,
        history={"created_by": f"minirun commit {record.name}: {' '.join(spec['process']['args'])}",
                 "comment": message},
        write_layer=lambda out: tree.write_layer(out, upper, userns.id_mapper(spec)))
    sys.stdout.write(f"sha256:{img.id}\n")


def export(
    ctx: typer.Context,
    container: str = typer.Argument(..., help="Container name or id."),
    output: str = typer.Option(None, "-o", "--output", help="Write to this file (default: "
                               "standard output, if it is not a terminal)."),
) -> None:
    """Write a container's whole filesystem (image and changes) as one tar."""

    from minirun.errors import UsageError
    from minirun.images import tree
    from minirun.images.store import ImageStore
    from minirun.runtime import userns

    record = _container(ctx, container)
    image = ImageStore(root(ctx)).get(record.state.image_id)
    dirs = [record.dir / "upper", *reversed(image.layers)]
    if not output or output == "-":
        if sys.stdout.isatty():
            raise UsageError("export: refusing to write an archive to a terminal: use -o FILE")
        sys.stdout.flush()
        tree.write_merged(sys.stdout.buffer, dirs, userns.id_mapper(record.spec()))
        sys.stdout.buffer.flush()
        return
    from minirun.storage import output_file

    with output_file(output) as f:          # whole or not at all, even if we are killed
        tree.write_merged(f, dirs, userns.id_mapper(record.spec()))


def build(
    ctx: typer.Context,
    context: str = typer.Argument(..., help="The build context: a directory."),
    file: str = typer.Option(None, "-f", "--file", help="The Containerfile (default: "
                             "CONTEXT/Containerfile, else CONTEXT/Dockerfile)."),
    tag: list[str] = typer.Option(None, "-t", "--tag", help="name[:tag] for the image."),
    build_arg: list[str] = typer.Option(None, "--build-arg", help="ARG value: KEY=value."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every step again."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only the image id."),
) -> None:
    """Build an image from a Containerfile; every step is cached (docs/images.md)."""
    import os
    from pathlib import Path

    from minirun.build import Builder
    from minirun.cli.progress import Reporter
    from minirun.errors import UsageError
    from minirun.runtime.containers import Runtime

    ctx_dir = Path(context)
    if file is None:
        file = next((str(ctx_dir / n) for n in ("Containerfile", "Dockerfile")
                     if (ctx_dir / n).exists()), str(ctx_dir / "Containerfile"))
    args = {}
    for item in build_arg or []:
        k, eq, v = item.partition("=")
        if not k:
            raise UsageError(f"--build-arg {item!r}: use KEY=value")
        args[k] = v if eq else os.environ.get(k, "")
    reporter = Reporter(quiet)
    with reporter.running("building"):
        img = Builder(Runtime(root(ctx)), ctx_dir, Path(file), build_args=args,
                      progress=reporter, no_cache=no_cache).build(list(tag or []))
    sys.stdout.write(f"sha256:{img.id}\n" if quiet else f"Successfully built {img.id[:12]}\n")


VERBS = {"commit": commit, "export": export, "build": build}


def register(app: typer.Typer, only: str | None = None) -> None:
    for name, function in VERBS.items():
        if only is None or only == name:
            app.command(name)(function)
