"""Image verbs: import, ls (list), inspect, rm.

Thin: parse, call minirun.images.store, print. The store is imported inside each verb so that
`minirun --help` does not pay for it.
"""


import sys
from typing import Annotated

import typer

from minirun.cli.common import human_size, print_json, print_table, root

app = typer.Typer(help="Manage images", no_args_is_help=True)


def _store(ctx: typer.Context):
    from minirun.images.store import ImageStore

    return ImageStore(root(ctx))


def _ago(created: str) -> str:
    """'5 minutes ago', like `docker images`."""
    from datetime import UTC, datetime

    try:
        then = datetime.fromisoformat(created)
    except ValueError:
        return created
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    secs = max(0, int((datetime.now(UTC) - then).total_seconds()))
    for unit, n in (
        ("year", 31536000),
        ("month", 2592000),
        ("week", 604800),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
    ):
        if secs >= n:
            k = secs // n
            return f"{k} {unit}{'s' if k > 1 else ''} ago"
    return "Less than a minute ago" if secs else "Just now"


@app.command("import")
def import_(
    ctx: typer.Context,
    source: str = typer.Argument(
        ..., help="A root filesystem tar (plain, gzip, xz, zstd); - for stdin."
    ),
    name: str = typer.Argument(..., help="name[:tag] for the image (tag defaults to latest)."),
) -> None:
    """Create an image from a root filesystem tarball; print its id."""
    store = _store(ctx)
    src = sys.stdin.buffer if source == "-" else source
    img = store.import_tarball(src, name)
    sys.stdout.write(f"sha256:{img.id}\n")


def _ls(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only image ids."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Full image ids."),
) -> None:
    """List images, newest first."""
    from minirun.errors import UsageError

    if fmt not in ("table", "json"):
        raise UsageError(f"--format: expected table or json, not {fmt!r}")
    images = _store(ctx).list()
    if quiet:
        seen: list[str] = []
        for img in images:
            short = img.id if no_trunc else img.short_id
            if short not in seen:
                seen.append(short)
        sys.stdout.write("".join(s + "\n" for s in seen))
        return
    if fmt == "json":
        print_json(
            [
                {
                    "Id": "sha256:" + img.id,
                    "RepoTags": img.names,
                    "Created": img.created,
                    "Size": img.size,
                    "Layers": img.diff_ids,
                }
                for img in images
            ]
        )
        return
    rows = []
    for img in images:
        shown = img.id if no_trunc else img.short_id
        for name in img.names or ["<none>:<none>"]:
            repo, _, tag = name.rpartition(":")
            rows.append([repo, tag, shown, _ago(img.created), human_size(img.size)])
    print_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows)


app.command("ls")(_ls)
app.command("list", hidden=True)(_ls)


@app.command("inspect")
def inspect(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(help="Image names or ids.")],
) -> None:
    """Show images as a JSON array (Docker's shape)."""
    store = _store(ctx)
    print_json([store.get(ref).to_dict() for ref in refs])


@app.command("rm")
def rm(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(help="Image names or ids.")],
) -> None:
    """Remove images: a name untags (the image goes with its last name); an id removes it."""
    from minirun.errors import ImageNotFound
    from minirun.runtime.containers import Runtime

    runtime = Runtime(root(ctx))
    missing: list[str] = []
    for ref in refs:
        try:
            gone = runtime.remove_image(ref)
        except ImageNotFound as e:
            missing.append(str(e))
            continue
        for item in gone:
            verb = "Deleted" if item.startswith("sha256:") else "Untagged"
            sys.stdout.write(f"{verb}: {item}\n")
    if missing:
        raise ImageNotFound("; ".join(missing))
