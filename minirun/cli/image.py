"""Image verbs: import, load, save, ls (list), inspect, history, tag, rm, prune, df.

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
    from minirun.cli.progress import Reporter

    store = _store(ctx)
    src = sys.stdin.buffer if source == "-" else source
    reporter = Reporter()
    with reporter.running("importing"):
        img = store.import_tarball(src, name, progress=reporter if reporter.rich else None)
    sys.stdout.write(f"sha256:{img.id}\n")


@app.command("load")
def load(
    ctx: typer.Context,
    source: str = typer.Argument(None, help="Archive or directory (default: standard input)."),
    input: str = typer.Option(None, "-i", "--input", help="Read from this file or directory."),
    tag: list[str] = typer.Option(None, "-t", "--tag", help="Also name the image(s) this way."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress output."),
) -> None:
    """Load images from an OCI layout or a docker-archive (dir or tar); digests are checked."""
    from minirun.cli.progress import Reporter
    from minirun.errors import UsageError

    path = input or source
    if path is None and sys.stdin.isatty():
        raise UsageError("image load: give a file (-i FILE) or pipe an archive to stdin")
    reporter = Reporter(quiet)
    with reporter.running("loading"):
        images = _store(ctx).load(sys.stdin.buffer if path in (None, "-") else path,
                                  names=list(tag or []), progress=reporter)
    for img in images:
        for name in img.names or ["sha256:" + img.id]:
            prefix = "Loaded image" if img.names else "Loaded image ID"
            sys.stdout.write(f"{prefix}: {name}\n")


@app.command("save")
def save(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(help="Image names or ids.")],
    output: str = typer.Option(None, "-o", "--output", help="Write to this file (default: "
                               "standard output, if it is not a terminal)."),
    fmt: str = typer.Option("oci", "--format", help="oci (an OCI image layout) or "
                            "docker-archive (what `docker save` writes)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress output."),
) -> None:
    """Save images to a tar archive that `image load`, `podman load` or `docker load` read."""
    from minirun.cli.progress import Reporter
    from minirun.errors import UsageError
    from minirun.images import save as saver

    store = _store(ctx)
    reporter = Reporter(quiet)
    with reporter.running("saving"):
        if output and output != "-":
            saver.save_to_path(store, refs, output, fmt, reporter)
            return
        if sys.stdout.isatty():
            raise UsageError("image save: refusing to write an archive to a terminal: use -o FILE")
        sys.stdout.flush()
        saver.save(store, refs, sys.stdout.buffer, fmt, reporter)
        sys.stdout.buffer.flush()


@app.command("tag")
def tag(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="Image name or id."),
    target: str = typer.Argument(..., help="New name[:tag]."),
) -> None:
    """Give an image another name."""
    _store(ctx).tag(source, target)


@app.command("history")
def history(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Image name or id."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Do not shorten the commands."),
) -> None:
    """Show how an image was made, newest step first."""
    rows = _store(ctx).history(ref)
    if fmt == "json":
        print_json(rows)
        return
    out = []
    for r in rows:
        by = r["created_by"].replace("\n", " ")
        if not no_trunc and len(by) > 45:
            by = by[:44] + "…"
        shown = r.get("id", "")
        out.append([shown[:12] if shown else "<missing>", _ago(r["created"]), by,
                    human_size(r["size"]), r["comment"]])
    print_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], out)


@app.command("prune")
def prune(
    ctx: typer.Context,
    all: bool = typer.Option(False, "-a", "--all", help="Every image no container uses, not "
                             "only unnamed ones."),
    force: bool = typer.Option(False, "-f", "--force", help="Do not ask (kept for Docker's "
                               "habits: minirun never asks)."),
) -> None:
    """Remove unnamed images (with -a: all images) that no container uses."""
    from minirun.runtime.state import StateStore

    used = {r.state.image_id for r in StateStore(root(ctx)).list()}
    store = _store(ctx)
    before = store.disk_usage()["layers_size"]
    gone = store.prune(keep=used, all=all)
    for image_id in gone:
        sys.stdout.write(f"Deleted: sha256:{image_id}\n")
    sys.stdout.write(f"Total reclaimed space: "
                     f"{human_size(before - store.disk_usage()['layers_size'])}\n")


@app.command("df")
def df(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Per image: unique and shared."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Disk used by images; a layer shared by several images is counted once."""
    usage = _store(ctx).disk_usage()
    if fmt == "json":
        print_json(usage)
        return
    print_table(["TYPE", "TOTAL", "SIZE", "SIZE IF NOT SHARED"],
                [["Images", len(usage["images"]), human_size(usage["layers_size"]),
                  human_size(usage["images_size"])],
                 ["Layers", usage["layers"], human_size(usage["layers_size"]), ""]])
    if verbose:
        sys.stdout.write("\n")
        print_table(["IMAGE ID", "NAMES", "SIZE", "SHARED SIZE", "UNIQUE SIZE"],
                    [[i["id"][:12], ",".join(i["names"]) or "<none>", human_size(i["size"]),
                      human_size(i["shared"]), human_size(i["unique"])]
                     for i in usage["images"]])


def _ls(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only image ids."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Full image ids."),
    all: bool = typer.Option(False, "-a", "--all", help="Also the intermediate images of builds."),
) -> None:
    """List images, newest first."""
    from minirun.errors import UsageError

    if fmt not in ("table", "json"):
        raise UsageError(f"--format: expected table or json, not {fmt!r}")
    images = [i for i in _store(ctx).list() if all or i.names or not i.intermediate]
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
