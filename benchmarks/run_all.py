"""Run every benchmark, print the tables, and write them as markdown to benchmarks/results/latest.md,
their raw samples to results/samples.json and the plots (plots.py) to results/*.png.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only startup,throughput,monitor,cli,images,scheduler,network,soak]

With --only, samples.json keeps the other benchmarks' data from the last run (the plots then mix
runs; latest.md says which benchmarks this run measured).

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
    failed = False
    t0 = time.monotonic()
    try:
        for name, fn, bargs in benches:
            if name not in only:
                continue
            try:
                for s in fn(bargs):
                    print(s.text() + "\n", flush=True)
                    sections.append(s)
            except KeyboardInterrupt:
                raise
            except Exception:  # noqa: BLE001 — report and go on with the next benchmark
                failed = True
                tb = traceback.format_exc()
                sys.stderr.write(tb)
                sections.append(Section(f"{name}: FAILED", [], [], [tb.strip()]))
    finally:
        run_cleanups()
    elapsed = time.monotonic() - t0
    if not args.no_write:
        write_markdown(sections, elapsed, args.quick, load_at_start)
        if not write_plots():
            failed = True
    return 1 if failed else 0


def write_plots() -> bool:
    """samples.json (this run's data over the last run's), then the PNGs drawn from it."""
    import json

    path = RESULTS / "samples.json"
    try:
        samples = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        samples = {}
    samples.update(SAMPLES)
    path.write_text(json.dumps(samples, indent=1) + "\n")
    log(f"wrote {path}")
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


def write_markdown(sections: list[Section], elapsed: float, quick: bool, load: str | None) -> None:
    m = machine()
    m["loadavg"] = load or "?"
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# minirun benchmarks" + (" (quick run: not for the record)" if quick else ""),
        "",
        f"- date: {now}",
        f"- machine: {m.get('nproc')} CPUs ({m.get('cpu', '?')}), kernel {m.get('kernel')}, "
        f"{m.get('os', '?')}, Python {m.get('python')}; load average at the start {m.get('loadavg', '?')} "
        "(other work on the machine shows up in the p95 column)",
        f"- podman {tool_version('podman')}; runc {tool_version('runc')}; crun {tool_version('crun')}",
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
