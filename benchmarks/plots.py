"""Draw the benchmark report's PNGs from benchmarks/results/samples.json (written by run_all.py).

    .venv/bin/python benchmarks/plots.py [--samples results/samples.json] [--out results/]

startup.png     start-up latency distribution (every sample; log scale)
throughput.png  containers/s vs concurrent `run --rm … true`
memory.png      PSS per detached container: minirun's monitor vs podman's conmon
scheduler.png   placement decisions/s, and the failure-recovery timeline of a real cluster

matplotlib is the `bench` extra (`make bench` installs it); a plot whose data is missing from
samples.json (that benchmark did not run) is skipped, and its old PNG is left alone.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COLORS = {"minirun": "#1f77b4", "warm": "#2ca02c", "podman": "#d62728", "runc": "#9467bd",
          "crun": "#ff7f0e", "conmon": "#d62728"}


def colour(label: str) -> str:
    low = label.lower()
    for key in ("warm", "podman", "conmon", "runc", "crun", "minirun"):
        if key in low:
            return COLORS[key]
    return "#7f7f7f"


def _plt():
    import matplotlib

    matplotlib.use("Agg")                    # files only, no display
    import matplotlib.pyplot as plt

    return plt


def startup_plot(data: dict[str, list[float]], out: Path) -> Path:
    plt = _plt()
    labels = list(data)
    fig, ax = plt.subplots(figsize=(9, 0.7 * len(labels) + 1.6))
    rng = random.Random(0)
    for i, label in enumerate(labels):
        xs = data[label]
        ax.scatter(xs, [i + rng.uniform(-0.18, 0.18) for _ in xs], s=9, alpha=0.55,
                   color=colour(label), linewidths=0)
    box = {"positions": range(len(labels)), "widths": 0.5, "showfliers": False,
           "medianprops": {"color": "black"}}
    try:
        ax.boxplot([data[k] for k in labels], orientation="horizontal", **box)   # matplotlib >= 3.10
    except TypeError:
        ax.boxplot([data[k] for k in labels], vert=False, **box)
    for i, label in enumerate(labels):
        xs = data[label]
        ax.annotate(f"median {statistics.median(xs):.1f} ms", (max(xs), i), xytext=(6, -3),
                    textcoords="offset points", fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xscale("log")
    ax.set_xlabel("start-up latency, ms (log scale): run a container of busybox `true` and wait for it")
    ax.set_title("Start-up latency distribution (every sample)")
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.invert_yaxis()
    fig.tight_layout()
    path = out / "startup.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput_plot(data: dict, out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    levels = data["levels"]
    for label, rates in data["series"].items():
        ax.plot(levels, rates, marker="o", label=label, color=colour(label))
        ax.annotate(f"{rates[-1]:.0f}/s", (levels[-1], rates[-1]), xytext=(5, -3),
                    textcoords="offset points", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(n) for n in levels])
    ax.set_xlabel("containers started at once (`run --rm … true`)")
    ax.set_ylabel("containers per second")
    ax.set_ylim(bottom=0)
    ax.set_title("Throughput vs parallelism")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def memory_plot(data: dict[str, list[int]], out: Path) -> Path:
    plt = _plt()
    series = {k: v for k, v in data.items() if v}
    fig, ax = plt.subplots(figsize=(7, 3.8))
    x = 0
    ticks = []
    for label, values in series.items():
        xs = list(range(x, x + len(values)))
        ax.bar(xs, values, color=colour(label), width=0.8)
        for xi, v in zip(xs, values, strict=True):
            ax.annotate(f"{v}", (xi, v), ha="center", xytext=(0, 2), textcoords="offset points", fontsize=7)
        ticks.append(((xs[0] + xs[-1]) / 2, f"{label}\nmedian {statistics.median(values):.0f} KiB"))
        x += len(values) + 1
    ax.axhline(1024, color="grey", linestyle="--", linewidth=1)
    ax.annotate("target: 1 MiB", (x - 1.5, 1024), xytext=(0, 3), textcoords="offset points",
                fontsize=8, ha="right")
    ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks], fontsize=8)
    ax.set_ylabel("PSS, KiB (one bar per detached container)")
    ax.set_title("Memory of the per-container monitor")
    fig.tight_layout()
    path = out / "memory.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scheduler_plot(decisions: dict | None, real: dict | None, out: Path) -> Path:
    plt = _plt()
    panels = [p for p in (decisions, real) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    axes = list(axes[0])
    if decisions:
        ax = axes.pop(0)
        strategies = list(decisions)
        width = 0.38
        for j, n in enumerate(("100", "1000")):
            vals = [decisions[s][n] for s in strategies]
            bars = ax.bar([i + (j - 0.5) * width for i in range(len(strategies))], vals, width,
                          label=f"{n} workers", color=("#1f77b4", "#aec7e8")[j])
            for b, v in zip(bars, vals, strict=True):
                ax.annotate(f"{v / 1000:.1f}k", (b.get_x() + b.get_width() / 2, v), ha="center",
                            xytext=(0, 2), textcoords="offset points", fontsize=7)
        ax.set_xticks(range(len(strategies)), [s.replace(",", ",\n") for s in strategies], fontsize=7)
        ax.set_ylabel("placement decisions per second (one core)")
        ax.set_title("Scheduler decisions/s")
        ax.legend(fontsize=8)
    if real:
        ax = axes.pop(0)
        t = [p[0] for p in real["recovery"]]
        ax.step(t, [p[1] for p in real["recovery"]], where="post", label="tasks RUNNING", color="#2ca02c")
        ax.step(t, [p[2] for p in real["recovery"]], where="post", label="of them on the killed worker",
                color="#d62728")
        ax.axvline(0, color="black", linewidth=1)
        ax.annotate("kill -9 worker", (0, real["tasks"]), xytext=(3, -12), textcoords="offset points", fontsize=8)
        ax.axvline(real["recovery_s"], color="grey", linestyle="--", linewidth=1)
        ax.annotate(f"all {real['tasks']} RUNNING again: {real['recovery_s']:.2f} s",
                    (real["recovery_s"], real["tasks"] / 2), xytext=(-4, 0), textcoords="offset points",
                    fontsize=8, ha="right")
        ax.set_xlabel("seconds since the kill")
        ax.set_ylabel("tasks")
        ax.set_ylim(bottom=0, top=real["tasks"] * 1.1)
        ax.set_title(f"Failure recovery ({real['workers']} workers, {real['tasks']} tasks)")
        ax.legend(fontsize=8, loc="lower left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "scheduler.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(samples: dict, out: Path = RESULTS) -> list[Path]:
    """Every plot whose data is in `samples`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    if samples.get("startup"):
        made.append(startup_plot(samples["startup"], out))
    if samples.get("throughput", {}).get("series"):
        made.append(throughput_plot(samples["throughput"], out))
    if any(samples.get("memory", {}).values()):
        made.append(memory_plot(samples["memory"], out))
    if samples.get("scheduler_decisions") or samples.get("scheduler_real"):
        made.append(scheduler_plot(samples.get("scheduler_decisions"), samples.get("scheduler_real"), out))
    return made


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, default=RESULTS / "samples.json")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    try:
        samples = json.loads(args.samples.read_text())
    except FileNotFoundError:
        sys.stderr.write(f"plots: {args.samples} not found: run `make bench` first\n")
        return 1
    for p in draw(samples, args.out):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
