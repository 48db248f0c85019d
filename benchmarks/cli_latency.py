"""CLI latency: `minirun --help`, and `minirun ps -a` over 100 created (not running) containers.

    .venv/bin/python benchmarks/cli_latency.py [--runs 20] [--containers 100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    IMAGE_NAME,
    MINIRUN,
    Section,
    cmd_runner,
    fmt_ms,
    log,
    median,
    minirun,
    minirun_root,
    p95,
    run_standalone,
    time_loop,
    verdict,
)

TARGET_MS = 150.0


def main(argv: list[str] | None = None) -> list[Section]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--containers", type=int, default=100)
    args = ap.parse_args(argv)
    rows = {}
    create_ms: list[float] = []
    with minirun_root("cli") as root:
        log(f"cli: minirun --help x{args.runs}")
        rows["minirun --help"] = time_loop(cmd_runner([MINIRUN, "--root", str(root), "--help"]), args.runs)
        log(f"cli: creating {args.containers} containers")
        create_ms = time_loop(lambda: minirun(root, "create", IMAGE_NAME, "true"), args.containers, warmup=0)
        listed = minirun(root, "ps", "-a", "-q").stdout.split()
        log(f"cli: minirun ps -a x{args.runs}")
        rows[f"minirun ps -a ({args.containers} created)"] = time_loop(
            cmd_runner([MINIRUN, "--root", str(root), "ps", "-a"]), args.runs)
        rows["minirun ps (none running)"] = time_loop(
            cmd_runner([MINIRUN, "--root", str(root), "ps"]), args.runs)
    sec = Section(f"CLI latency ({args.runs} runs each)", ["", "median", "p95", "target", "result"])
    for label, v in rows.items():
        m = median(v)
        sec.rows.append([label, fmt_ms(m), fmt_ms(p95(v)), f"<= {TARGET_MS:.0f} ms", verdict(m <= TARGET_MS)])
    sec.rows.append([f"(minirun create, {args.containers} times)", fmt_ms(median(create_ms)),
                     fmt_ms(p95(create_ms)), "", ""])
    if len(listed) != args.containers:
        sec.notes.append(f"`ps -a -q` listed {len(listed)} containers, expected {args.containers}")
    return [sec]


if __name__ == "__main__":
    run_standalone(main)
