"""The README's benchmark table, written from benchmarks/results/samples.json, never by hand.

    .venv/bin/python benchmarks/readme_table.py            # rewrite the table in README.md
    .venv/bin/python benchmarks/readme_table.py --check    # exit 1, with a diff, if it is stale
    .venv/bin/python benchmarks/readme_table.py --print    # the table alone, on stdout

run_all.py (so `make bench`) calls write() once it has written samples.json. The table lives
between two marker comments in README.md (BEGIN and END below); what is between them is this
script's. Each row puts a figure of minirun beside its reference (podman, runc, crun, GNU tar,
or the target it is held to) and the date of the run that measured it: `run_all.py --only`
keeps the other benchmarks' figures from older runs, so one table may mix runs, and it says so
row by row. tests/unit/test_readme_table.py renders the committed samples.json and compares,
so a hand edit of the table, or a samples.json committed without its table, fails `make test`.

The figures are the cells each benchmark printed (samples.json's "figures": run_all.py stores
every section with the date, machine and tool versions of its run), picked by section title and
row label; the raw samples are used only where a figure exists nowhere else (the monitor's
median PSS). A figure the run did not produce shows as "not measured", a benchmark that crashed
as "FAILED": the table never falls back on an older number.

Only the standard library: the unit test imports this without the `bench` extra.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
SAMPLES = HERE / "results" / "samples.json"
BEGIN = "<!-- bench:begin: written by benchmarks/readme_table.py from benchmarks/results/samples.json; do not edit -->"
END = "<!-- bench:end -->"


class Missing(Exception):
    """A figure the run did not produce (a benchmark skipped, a tool missing, a row renamed)."""


class NoMarkers(Exception):
    """README.md lacks the marker comments (or has them out of order)."""


class Figures:
    """What one samples.json says, looked up by benchmark, section title and row label."""

    def __init__(self, samples: dict):
        self.samples = samples
        self.figures: dict = samples.get("figures", {})

    def run(self, bench: str) -> dict | None:
        return (self.figures.get(bench) or {}).get("run")

    def failed(self, bench: str) -> bool:
        return any(s["title"].endswith(": FAILED") for s in self.sections(bench))

    def sections(self, bench: str) -> list[dict]:
        return (self.figures.get(bench) or {}).get("sections", [])

    def section(self, bench: str, title: str) -> dict:
        for s in self.sections(bench):
            if s["title"].startswith(title):
                return s
        raise Missing(f"{bench}: no section {title!r}")

    def row(self, bench: str, title: str, label: str) -> dict[str, str]:
        """The row whose first cell is `label` (else starts with it, else contains it), as
        {column: cell}; the first column's name is often empty, so it is also under ""."""
        s = self.section(bench, title)
        rows = s["rows"]
        for match in (lambda c: c == label, lambda c: c.startswith(label), lambda c: label in c):
            found = [r for r in rows if r and match(r[0])]
            if found:
                cells = dict(zip(s["columns"], found[0], strict=False))
                cells[""] = found[0][0]
                return cells
        raise Missing(f"{bench}: {title!r} has no row {label!r}")

    def cell(self, bench: str, title: str, label: str, column: str) -> str:
        value = self.row(bench, title, label).get(column, "")
        if value in ("", "-"):
            raise Missing(f"{bench}: {title!r} / {label!r} has no {column!r}")
        return value

    def columns(self, bench: str, title: str) -> list[str]:
        return self.section(bench, title)["columns"]

    def note(self, bench: str, title: str, start: str) -> str:
        for n in self.section(bench, title)["notes"]:
            if n.startswith(start):
                return n
        raise Missing(f"{bench}: {title!r} has no note {start!r}")

    def raw(self, *keys: str) -> object:
        node: object = self.samples
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                raise Missing(f"samples.json has no {'/'.join(keys)}")
            node = node[k]
        return node


def pretty(text: str) -> str:
    """The benchmarks print ASCII (<=, 0.19x); the README reads better with ≤ and ×."""
    text = text.replace("<=", "≤").replace(">=", "≥")
    return re.sub(r"(\d)x\b", "\\1×", text)


def verdict(cell: str) -> str:
    """'1.16x PASS' -> 'PASS'; 'PASS (stretch PASS)' stays."""
    m = re.search(r"\b(PASS|MISS)\b.*$", cell)
    return m.group(0) if m else cell


def goal(cell: str) -> str:
    """'≥ 10,000/s PASS' -> '≥ 10,000/s'."""
    return cell.split(" PASS")[0].split(" MISS")[0]


# -- the rows ------------------------------------------------------------------------------------
# Each row (ROWS, below): what is measured (text, or a function of the figures when the run says
# how many), the benchmark that measures it, and a function of the figures giving the cells.

START, TARGETS = "startup (", "startup targets"
# a row's cells: minirun's figure (Missing there makes the row "not measured"), then its
# reference and its target, each a string or a function giving one ("—" if it raises Missing)
Cells = tuple[str, "str | Callable[[], str]", "str | Callable[[], str]"]


def _med(f: Figures, label: str, title: str = START) -> str:
    return f.cell("startup", title, label, "median")


def _med_p95(f: Figures, label: str, title: str = START) -> str:
    return f"{_med(f, label, title)} ({f.cell('startup', title, label, 'p95')})"


def _target(f: Figures, label: str, measured: str | None = None) -> str:
    r = f.row("startup", TARGETS, label)
    shown = measured if measured is not None else r["measured"]
    stretch = f" (stretch {r['stretch']})" if r.get("stretch") and "stretch" in r["result"] else ""
    return pretty(f"{shown}; goal {r['goal']}{stretch}: {r['result']}")


def _ratio(measured: str) -> str:
    """'21.1 vs 24.0 ms = 0.88x; 1.52x crun' -> '0.88x; 1.52x crun' (the times are beside it)."""
    return measured.split(" = ", 1)[-1]


def _some(*parts: Callable[[], str]) -> str:
    """The references that were measured (a tool may be missing on a host), joined."""
    found = []
    for part in parts:
        try:
            found.append(part())
        except Missing:
            pass
    if not found:
        raise Missing("no reference was measured")
    return " · ".join(found)


def run_rm(f: Figures) -> Cells:
    label = "minirun run median / podman median"
    return (_med_p95(f, "minirun run --rm"),
            lambda: f"podman (runc) {_med(f, 'podman run --rm (runc)')}",
            lambda: _target(f, label, _ratio(f.cell("startup", TARGETS, label, "measured")) + " podman"))


def _oci(f: Figures, mine: str, runc: str, crun: str, target: str) -> Cells:
    return (_med_p95(f, mine),
            lambda: _some(lambda: f"runc {_med(f, runc)}", lambda: f"crun {_med(f, crun)}"),
            lambda: _target(f, target, _ratio(f.cell("startup", TARGETS, target, "measured")).replace("x;", "x runc;", 1)))


def oci_back_to_back(f: Figures) -> Cells:
    return _oci(f, "minirun-oci run (OCI bundle)", "runc run", "crun run (private mnt ns)",
                "minirun-oci run median / runc median (back to back)")


def oci_spaced(f: Figures) -> Cells:
    return _oci(f, "minirun-oci run, 100 ms apart", "runc run, 100 ms apart", "crun run, 100 ms apart",
                "minirun-oci run median / runc median (100 ms apart)")


def warm_path(f: Figures) -> Cells:
    label, target = "minirun warm path (library)", "warm path rate / crun CLI rate"
    return (f"{_med_p95(f, label)} = {f.cell('startup', START, label, 'rate')}",
            lambda: f"crun CLI {f.cell('startup', START, 'crun run (private mnt ns)', 'rate')}",
            lambda: _target(f, target, _ratio(f.cell("startup", TARGETS, target, "measured")) + " crun"))


THROUGHPUT = "throughput vs parallelism"


def _most_at_once(f: Figures) -> str:
    return [c for c in f.columns("throughput", THROUGHPUT) if re.fullmatch(r"\d+ at once", c)][-1]


def throughput(f: Figures) -> Cells:
    col = _most_at_once(f)

    def at(label: str) -> str:
        return f.cell("throughput", THROUGHPUT, label, col).removesuffix("/s")
    return (f"warm path {at('minirun warm path')} · CLI {at('minirun run --rm (CLI)')} per s",
            lambda: _some(lambda: f"runc {at('runc run')}", lambda: f"crun {at('crun run')}") + " per s", "")


def monitor(f: Figures) -> Cells:
    pss = f.raw("memory", "minirun-monitor")
    conmon = f.raw("memory", "conmon (podman)")
    if not pss:
        raise Missing("no monitor PSS samples")
    note = f.note("monitor", "monitor memory", "median monitor PSS")
    m = re.search(r"target (<= [^:]+): (\w+)", note)
    if not m:
        raise Missing(f"monitor: cannot read the target in {note!r}")
    ref = f"podman's conmon {statistics.median(conmon):.0f} KiB" if conmon else ""
    return f"{statistics.median(pss):.0f} KiB", ref, pretty(f"{m.group(1)}: {m.group(2)}")


CLI = "CLI latency"


def cli(f: Figures) -> Cells:
    helps, ps = f.row("cli", CLI, "minirun --help"), f.row("cli", CLI, "minirun ps -a")
    for r in (helps, ps):
        if not r.get("median"):
            raise Missing("cli: no median")
    same = helps["target"] == ps["target"]
    target = (f"{helps['target']}: {helps['result']} / {ps['result']}" if same else
              f"{helps['target']}: {helps['result']} / {ps['target']}: {ps['result']}")
    return f"{helps['median']} / {ps['median']}", "", pretty(target)


def cli_label(f: Figures) -> str:
    ps = f.row("cli", CLI, "minirun ps -a")[""]                  # "minirun ps -a (100 created)"
    m = re.search(r"\((\d+) created\)", ps)
    return f"`minirun --help` / `ps -a` with {m.group(1) if m else 'N'} containers"


IMPORT = "Image import"


def image_import(f: Figures) -> Cells:
    first = f.row("images", IMPORT, "minirun image import")
    again = f.row("images", IMPORT, "image import of the same tarball again")
    load = f.row("images", IMPORT, "image load of the stored image")
    cells = [(first["median"], first["result"]), (again["median"], again["result"]),
             (load["median"], load["result"])]
    figures = " / ".join(f"{m} ({r.split()[0]})" for m, r in cells)
    return (pretty(figures), f"GNU tar {f.cell('images', IMPORT, 'GNU tar', 'median')}",
            pretty(" / ".join(r["target"].replace(" of import", "") for r in (first, again, load))
                   + ": " + " / ".join(verdict(r) for _, r in cells)))


def image_import_label(f: Figures) -> str:
    title = f.section("images", IMPORT)["title"]                 # "Image import: 3000 files, 212 MB (…)"
    m = re.match(r"Image import: ([^(]+?) \(", title)
    what = f" ({m.group(1)})" if m else ""
    return f"`image import`{what} / the same again / `image load` of it"


def layers_and_build(f: Figures) -> Cells:
    five = f.row("images", "Start of a multi-layer image", "run --rm five-layer true")
    rebuild = f.row("images", "build", "unchanged rebuild")
    return (pretty(f"{five['result'].split()[0]} / {rebuild['median']}"),
            f"one layer {f.cell('images', 'Start of a multi-layer image', 'run --rm one-layer true', 'median')}",
            pretty(f"{five['target']} / {rebuild['target']}: {verdict(five['result'])} / {verdict(rebuild['result'])}"))


PLACEMENT = "scheduler: placement decisions per second"


def placement(f: Figures) -> Cells:
    spread = f.row("scheduler", PLACEMENT, "spread(instanceId)")
    binpack = f.row("scheduler", PLACEMENT, "binpack(memory)")
    col = "100 workers"
    target = spread["target at 100"]
    return (f"spread {spread[col]} · binpack {binpack[col]}", "",
            pretty(f"{goal(target)}: {verdict(target)} / {verdict(binpack['target at 100'])}"))


REAL = "scheduler: a real cluster"


def real_cluster_label(f: Figures) -> str:
    up = f.row("scheduler", REAL, "tasks RUNNING")[""]
    m = re.match(r"(\d+) tasks", up)
    w = re.search(r"\((\d+) workers", f.section("scheduler", REAL)["title"])
    n = m.group(1) if m else "N"
    on = f" on {w.group(1)} workers" if w else ""
    return f"{n} tasks RUNNING{on} / `kill -9` of a worker → its tasks elsewhere"


def real_cluster(f: Figures) -> Cells:
    up = f.row("scheduler", REAL, "tasks RUNNING")
    lost = f.row("scheduler", REAL, "kill -9 of a worker")

    def sequential() -> str:
        seq = f.row("scheduler", REAL, "sequential `minirun run -d`")
        return f"{seq['']} {seq['time']}".replace(" (for comparison)", "")
    return (f"{up['time']} / {lost['time']}", sequential,
            pretty(f"{goal(up['target'])} / {goal(lost['target'])}: {verdict(up['target'])} / {verdict(lost['target'])}"))


def bridge(f: Figures) -> Cells:
    cost = "bridge networking cost"

    def target() -> str:
        t = f.row("network", "network targets", "bridge adds to run --rm")
        return pretty(f"{t['goal']}: {t['result']}")
    return (f.cell("network", cost, "minirun run --rm --network bridge", "added by networking"),
            lambda: f"podman {f.cell('network', cost, 'podman run --rm (default network)', 'added by networking')}",
            target)


SOAK_RATE, SOAK_PEAK, SOAK_LEAKS = "soak: container lifecycles", "soak: peak memory", "soak: leaks after the run"


def soak_rates(f: Figures) -> Cells:
    cells = [f.cell("soak", SOAK_RATE, label, "containers/s")
             for label in ("sequential CLI", "concurrent CLI", "library")]
    return " / ".join(cells) + " containers/s", "", ""


def soak_label(f: Figures) -> str:
    rows = {label: f.row("soak", SOAK_RATE, label)["containers"]
            for label in ("sequential CLI", "concurrent CLI", "library")}
    return (f"soak: {rows['sequential CLI']} sequential / {rows['concurrent CLI']} 8-way CLI run/rm cycles / "
            f"{rows['library']} of one `Runtime`")


def soak_peaks(f: Figures) -> Cells:
    cells = [f.cell("soak", SOAK_PEAK, label, "peak")
             for label in ("a CLI command", "a detached container's monitor", "minirun-netd")]
    return " / ".join(cells), "", ""


def soak_leaks(f: Figures) -> Cells:
    s = f.section("soak", SOAK_LEAKS)
    if not s["rows"]:
        raise Missing("soak: no leak rows")
    found = [(r[0], r[1]) for r in s["rows"] if r[1] != "0"]
    misses = "MISS" if found else "PASS"
    shown = "0 of each kind" if not found else "; ".join(f"{what}: {n}" for what, n in found) + ", 0 of the others"
    return shown, "", f"0: {misses}"


ROWS: list[tuple[str | Callable[[Figures], str], str, Callable[[Figures], Cells]]] = [
    ("`minirun run --rm --network none busybox true`", "startup", run_rm),
    ("`minirun-oci run` of an OCI bundle, back to back", "startup", oci_back_to_back),
    ("the same, 100 ms apart", "startup", oci_spaced),
    ("library warm path (`Runtime.run` + wait + remove)", "startup", warm_path),
    (lambda f: f"throughput, {_most_at_once(f)}", "throughput", throughput),
    ("monitor memory per detached container (PSS)", "monitor", monitor),
    (cli_label, "cli", cli),
    (image_import_label, "images", image_import),
    ("5-layer vs 1-layer start / unchanged build", "images", layers_and_build),
    ("placement decisions/s, 100 workers", "scheduler", placement),
    (real_cluster_label, "scheduler", real_cluster),
    ("bridge networking added to `run --rm`", "network", bridge),
    (soak_label, "soak", soak_rates),
    ("soak: peak RSS of a CLI command / a monitor / `minirun-netd`", "soak", soak_peaks),
    ("soak: leaked mounts, cgroups, fds, processes, veths, nft rules, leases, temp dirs, records", "soak", soak_leaks),
]


# the first cell of a row whose label comes from figures that are missing
ROWS_FALLBACK = {"images": "image import / re-import / load", "scheduler": "a real cluster: tasks RUNNING / recovery",
                 "soak": "soak: CLI run/rm cycles", "throughput": "throughput, most at once",
                 "cli": "`minirun --help` / `ps -a`"}


def _when(run: dict | None) -> str:
    if not run:
        return "?"
    return run["date"] + (" (quick)" if run.get("quick") else "")


def _machine(run: dict) -> str:
    m, tools = run.get("machine", {}), run.get("tools", {})
    text = (f"{m.get('nproc', '?')} CPUs ({m.get('cpu', '?')}), kernel {m.get('kernel', '?')}, "
            f"{m.get('os', '?')}, Python {m.get('python', '?')}, load average at the start {m.get('loadavg', '?')}")
    if tools:
        text += "; " + ", ".join(f"{t} {v}" for t, v in tools.items())
    return text


def _cell(c: str | Callable[[], str]) -> str:
    if not callable(c):
        return c
    try:
        return c()
    except Missing:
        return "—"


def render(samples: dict) -> str:
    """The lines between the markers (the markers excluded), ending with a newline."""
    f = Figures(samples)
    lines = ["| | minirun | reference | target | run |", "|---|---:|---:|---|---|"]
    runs: dict[str, dict] = {}
    for label, bench, cells in ROWS:
        run = f.run(bench)
        if run:
            runs.setdefault(_when(run), run)
        try:
            what = label(f) if callable(label) else label
        except Missing:
            what = ROWS_FALLBACK.get(bench, bench)
        if f.failed(bench):
            row = ("FAILED in this run (see latest.md)", "", "")
        else:
            try:
                mine, *rest = cells(f)
                row = (mine, *(_cell(c) for c in rest))
            except Missing:
                row = ("not measured", "", "")
        lines.append(f"| {what} | {' | '.join(row)} | {_when(run) if run else 'never'} |")
    lines.append("")
    if not runs:
        lines.append("No run in `benchmarks/results/samples.json` yet: `make bench` writes it.")
    for when, run in sorted(runs.items()):
        lines.append(f"Run of {when}: {_machine(run)}.")
        lines.append("")
    lines.append("Times are medians, with the p95 in brackets where given. Written by "
                 "`benchmarks/readme_table.py` from `benchmarks/results/samples.json` (`make bench` "
                 "runs it); every figure with its run count and p95 is in "
                 "[latest.md](benchmarks/results/latest.md).")
    return "\n".join(lines) + "\n"


def splice(readme: str, table: str) -> str:
    """README text with the lines between the markers replaced by `table`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < 0 or end < start:
        raise NoMarkers(f"README.md needs the lines {BEGIN!r} and {END!r}, in that order, "
                        "around the benchmark table")
    head = readme[:start + len(BEGIN)]
    return f"{head}\n{table}{readme[end:]}"


def load(samples_path: Path) -> dict:
    try:
        return json.loads(samples_path.read_text())
    except FileNotFoundError:
        return {}


def write(readme_path: Path = README, samples_path: Path = SAMPLES) -> bool:
    """Rewrite the table; True if README.md changed."""
    old = readme_path.read_text()
    new = splice(old, render(load(samples_path)))
    if new != old:
        readme_path.write_text(new)
    return new != old


def check(readme_path: Path = README, samples_path: Path = SAMPLES) -> list[str]:
    """The diff between README.md and what samples.json renders; empty when they agree."""
    old = readme_path.read_text()
    new = splice(old, render(load(samples_path)))
    return list(difflib.unified_diff(old.splitlines(), new.splitlines(), "README.md",
                                     "README.md as samples.json renders it", lineterm=""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md's table is not what samples.json says")
    ap.add_argument("--print", action="store_true", help="print the table; change nothing")
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    args = ap.parse_args(argv)
    try:
        if args.print:
            sys.stdout.write(render(load(args.samples)))
            return 0
        if args.check:
            diff = check(args.readme, args.samples)
            if diff:
                sys.stdout.write("\n".join(diff) + "\n")
                sys.stderr.write(f"{args.readme}: the benchmark table is not what {args.samples} says: "
                                 f"run {Path(__file__).name} (make bench does)\n")
                return 1
            return 0
        changed = write(args.readme, args.samples)
        sys.stderr.write(f"{'rewrote' if changed else 'unchanged:'} the table in {args.readme}\n")
        return 0
    except NoMarkers as e:
        sys.stderr.write(f"{e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
