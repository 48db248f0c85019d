"""Run every benchmark, print the tables, and write them as markdown to benchmarks/results/latest.md,
their raw samples to results/samples.json and the plots (plots.py) to results/*.png.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only startup,throughput,monitor,cli,images,scheduler,network,soak]

With --only, samples.json keeps the other benchmarks' data from the last run (the plots then mix
runs; latest.md says which benchmarks this run measured).

samples.json holds, beside each benchmark's raw samples, every table it printed under
"figures" (per benchmark: the date, machine and tool versions of the run that measured it, and
its sections as data), so each figure of the README's table comes from a file a run wrote.
After writing it, readme_table.py rewrites that table in README.md; a unit test fails when
the README's table is not what samples.json says.

`make bench` calls this. Misses against the targets are reported (PASS/MISS), never fatal; a
benchmark that crashes is reported as such and the others still run (exit status 1 then).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli_latency  # noqa: E402
import images  # noqa: E402
import monitor_memory  # noqa: E402
import network  # noqa: E402
import scheduler  # noqa: E402
import soak  # noqa: E402
import startup  # noqa: E402
import throughput  # noqa: E402
from _common import (  # noqa: E402
    RESULTS,
    SAMPLES,
    Section,
    ensure_tools,
    install_signal_handlers,
    log,
    machine,
    run_cleanups,
    tool_version,
)


def main() -> int:
    load_at_start = machine().get("loadavg")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs (a smoke test, not for the record)")
    ap.add_argument("--only", default="startup,throughput,monitor,cli,images,scheduler,network,soak")
    ap.add_argument("--no-write", action="store_true", help="do not write results/latest.md")
    args = ap.parse_args()
    install_signal_handlers()
    only = set(args.only.split(","))
    benches = [
        ("startup", startup.main, ["--runs", "10", "--warm-runs", "30"] if args.quick else []),
        ("throughput", throughput.main, ["--levels", "1,2,4", "--per-slot", "3"] if args.quick else []),
        ("monitor", monitor_memory.main, ["--containers", "3"] if args.quick else []),
        ("cli", cli_latency.main, ["--runs", "5", "--containers", "20"] if args.quick else []),
        ("images", images.main, ["--runs", "2", "--mb", "50", "--start-runs", "5"] if args.quick
         else []),
        ("scheduler", scheduler.main, ["--tasks", "40"] if args.quick else []),
        ("network", network.main, ["--runs", "10", "--mbytes", "16"] if args.quick else []),
        ("soak", soak.main, ["--sequential", "30", "--concurrent", "16", "--library", "10",
                             "--cli-inproc", "6"] if args.quick else []),
    ]
    ensure_tools(["podman", "runc", "crun"])
    sections: list[Section] = []
    by_bench: dict[str, list[Section]] = {}
    failed = False
    t0 = time.monotonic()
    try:
        for name, fn, bargs in benches:
            if name not in only:
                continue
            mine = by_bench.setdefault(name, [])
            try:
                for s in fn(bargs):
                    print(s.text() + "\n", flush=True)
                    sections.append(s)
                    mine.append(s)
            except KeyboardInterrupt:
                raise
            except Exception:  # noqa: BLE001 — report and go on with the next benchmark
                failed = True
                tb = traceback.format_exc()
                sys.stderr.write(tb)
                sections.append(Section(f"{name}: FAILED", [], [], [tb.strip()]))
                mine.append(sections[-1])
    finally:
        run_cleanups()
    elapsed = time.monotonic() - t0
    if not args.no_write:
        run = run_info(args.quick, load_at_start)
        write_markdown(sections, elapsed, run)
        samples = write_samples(by_bench, run)
        if not write_plots(samples):
            failed = True
        if not write_readme_table():
            failed = True
    return 1 if failed else 0


def run_info(quick: bool, load: str | None) -> dict:
    """When and where this run measured: stored with each benchmark's figures, and in latest.md."""
    m = machine()
    m["loadavg"] = load or "?"
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": m, "tools": {t: tool_version(t) for t in ("podman", "runc", "crun")},
            "quick": quick}


def write_samples(by_bench: dict[str, list[Section]], run: dict) -> dict:
    """samples.json: this run's raw samples and printed figures over the last run's (so --only
    keeps the benchmarks it did not run, each still with the date of the run that measured it)."""
    import json

    path = RESULTS / "samples.json"
    try:
        samples = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        samples = {}
    samples.update(SAMPLES)
    figures = samples.setdefault("figures", {})
    for name, secs in by_bench.items():
        figures[name] = {"run": run, "sections": [
            {"title": s.title, "columns": [str(c) for c in s.columns],
             "rows": [[str(c) for c in r] for r in s.rows], "notes": list(s.notes)} for s in secs]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(samples, indent=1, ensure_ascii=False) + "\n")
    log(f"wrote {path}")
    return samples


def write_readme_table() -> bool:
    """README.md's benchmark table, from the samples.json just written (readme_table.py)."""
    import readme_table

    try:
        changed = readme_table.write(readme_table.README, readme_table.SAMPLES)
    except readme_table.NoMarkers as e:
        log(f"README table: {e}")
        return False
    log(f"{'rewrote' if changed else 'unchanged:'} the table in {readme_table.README}")
    return True


def write_plots(samples: dict) -> bool:
    """The PNGs, drawn from samples.json's raw samples."""
    try:
        import plots
    except ImportError:
        log("plots: matplotlib is missing (pip install -e '.[bench]', as `make bench` does): no PNGs")
        return False
    try:
        for p in plots.draw(samples, RESULTS):
            log(f"wrote {p}")
    except ImportError as e:
        log(f"plots: {e} (pip install -e '.[bench]', as `make bench` does): no PNGs")
        return False
    return True


def write_markdown(sections: list[Section], elapsed: float, run: dict) -> None:
    m, tools = run["machine"], run["tools"]
    lines = [
        "# minirun benchmarks" + (" (quick run: not for the record)" if run["quick"] else ""),
        "",
        f"- date: {run['date']}",
        f"- machine: {m.get('nproc')} CPUs ({m.get('cpu', '?')}), kernel {m.get('kernel')}, "
        f"{m.get('os', '?')}, Python {m.get('python')}; load average at the start {m.get('loadavg', '?')} "
        "(other work on the machine shows up in the p95 column)",
        f"- podman {tools['podman']}; runc {tools['runc']}; crun {tools['crun']}",
        f"- wall time of the whole run: {elapsed:.0f} s; reproduce with `make bench`",
        "",
    ]
    for s in sections:
        lines.append(s.markdown())
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "latest.md"
    out.write_text("\n".join(lines).rstrip() + "\n")
    log(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
