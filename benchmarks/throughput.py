"""Throughput vs parallelism: containers per second with 1, 2, 4 and 8 concurrent
`run --rm … true`, for the minirun CLI, the library's warm path (one forked process per slot,
each with a Runtime: the scheduler's workers), runc and crun on the same busybox rootfs.

    .venv/bin/python benchmarks/throughput.py [--levels 1,2,4,8] [--per-slot 6]

Each point runs `per-slot × parallelism` containers (at least 12) and divides by the wall time
of the whole batch. The machine has few cores: past that many, the rate stops growing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    IMAGE_NAME,
    MINIRUN,
    PY,
    Section,
    bench_env,
    ensure_tools,
    image_tar,
    log,
    minirun_root,
    record_samples,
    remove_tree,
    run_cleanups,
    run_standalone,
)


def batch(jobs: int, total: int, one) -> float:
    """Run `one(slot, i)` `total` times over `jobs` threads; containers per second."""
    counter = iter(range(total))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def slot(k: int) -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None or errors:
                return
            try:
                one(k, i)
            except BaseException as e:  # noqa: BLE001 — reported after the batch
                errors.append(e)

    threads = [threading.Thread(target=slot, args=(k,)) for k in range(jobs)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(str(errors[0]))
    return total / (time.perf_counter() - t0)


def run_cmd(argv: list[str]) -> None:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=bench_env())
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}… exited {p.returncode}: {p.stderr.decode()[-300:]}")


def cli_rates(root: Path, levels: list[int], per_slot: int) -> list[float]:
    argv = [MINIRUN, "--root", str(root), "run", "--rm", "--network", "none", IMAGE_NAME, "true"]
    return [batch(n, max(12, per_slot * n), lambda k, i: run_cmd(argv)) for n in levels]


def warm_rates(root: Path, levels: list[int], per_slot: int) -> list[float]:
    """`jobs` forked processes, each with its own Runtime (imports done once, before the fork)."""
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions

    def child(count: int) -> None:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(null, fd)
        rt = Runtime(root, long_lived=True)           # as a scheduler worker's
        for _ in range(count):
            st = rt.run(RunOptions(image=IMAGE_NAME, command=["true"], network="none",
                                   auto_remove=True))   # `run --rm`, as the CLI row
            os.waitpid(st.monitor_pid, 0)
            rt.remove(st.record)
        rt.close()                                    # its deferred deletions: in the batch time

    def forked(shares: list[int]) -> None:
        pids = []
        for share in shares:
            pid = os.fork()
            if pid == 0:                              # stdio on /dev/null in the child only
                code = 0
                try:
                    child(share)
                except BaseException:  # noqa: BLE001 — the parent reports a non-zero status
                    code = 1
                os._exit(code)
            pids.append(pid)
        bad = [pid for pid in pids if os.waitpid(pid, 0)[1] != 0]
        if bad:
            raise RuntimeError(f"{len(bad)} warm-path process(es) failed")

    rates = []
    forked([2])                                       # warm the caches (seccomp program, pages)
    for n in levels:
        total = max(24, 4 * per_slot * n)
        t0 = time.perf_counter()
        forked([total // n + (1 if k < total % n else 0) for k in range(n)])
        rates.append(total / (time.perf_counter() - t0))
    return rates


def oci_rates(tool: str, bundle: Path, state: Path, levels: list[int], per_slot: int) -> list[float]:
    """runc or crun: `TOOL run` of the same bundle under distinct ids, concurrently."""
    state.mkdir(parents=True, exist_ok=True)
    rates = []
    for n in levels:
        rates.append(batch(n, max(16, 2 * per_slot * n), lambda k, i, n=n: run_cmd(
            [tool, "--root", str(state), "run", "--bundle", str(bundle), f"mr-tp-{tool}-{n}-{i}"])))
    return rates


def crun_rates(bundle: Path, state: Path, levels: list[int], per_slot: int) -> list[float]:
    """crun refuses the host's hybrid cgroup layout: run in a private mount namespace without
    cgroup2's /sys/fs/cgroup/unified (as startup.py does; the host's mounts are untouched)."""
    inner = (f"umount /sys/fs/cgroup/unified 2>/dev/null; exec {PY} {Path(__file__).resolve()} "
             f"--crun-inner {bundle} {state} {','.join(map(str, levels))} {per_slot}")
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", inner],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip()[-300:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[Section]:
    import startup

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="1,2,4,8")
    ap.add_argument("--per-slot", type=int, default=6)
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    tools = ensure_tools(["runc", "crun"])
    series: dict[str, list[float] | str] = {}
    with minirun_root("throughput") as root:
        log(f"throughput: minirun run --rm at {levels}")
        series["minirun run --rm (CLI)"] = cli_rates(root, levels, args.per_slot)
        log(f"throughput: warm path at {levels}")
        series["minirun warm path (processes)"] = warm_rates(root, levels, args.per_slot)
    tmp = Path(tempfile.mkdtemp(prefix="minirun-bench-throughput-"))
    try:
        if tools["runc"] is None:
            bundle = startup.make_bundle(tmp, image_tar())
            log(f"throughput: runc run at {levels}")
            try:
                series["runc run"] = oci_rates("runc", bundle, tmp / "runc-state", levels, args.per_slot)
            except RuntimeError as e:
                series["runc run"] = f"failed: {e}"
            if tools["crun"] is None:
                log(f"throughput: crun run at {levels}")
                try:
                    series["crun run (private mnt ns)"] = crun_rates(bundle, tmp / "crun-state", levels,
                                                                     args.per_slot)
                except (RuntimeError, ValueError) as e:
                    series["crun run (private mnt ns)"] = f"failed: {e}"
        else:
            series["runc run"] = f"skipped: {tools['runc']}"
    finally:
        remove_tree(tmp)
    record_samples("throughput", {"levels": levels,
                                  "series": {k: v for k, v in series.items() if isinstance(v, list)}})
    sec = Section(f"throughput vs parallelism (containers/s, `run --rm … true`, {os.cpu_count()} CPUs)",
                  ["", *[f"{n} at once" for n in levels], "best / 1 at once"])
    for label, v in series.items():
        if isinstance(v, str):
            sec.rows.append([label, v, *[""] * len(levels)])
            continue
        sec.rows.append([label, *[f"{r:.0f}/s" for r in v], f"{max(v) / v[0]:.2f}x"])
    sec.notes.append(f"each point: max(12, {args.per_slot}×N) CLI runs, max(24, {4 * args.per_slot}×N) warm-path "
                     f"runs, max(16, {2 * args.per_slot}×N) runc/crun runs, over N threads (the warm path: "
                     "N forked processes, each with its own long-lived Runtime, as a worker); rate = containers / wall time of the batch")
    return [sec]


def crun_inner(bundle: str, state: str, levels: str, per_slot: int) -> None:
    try:
        rates = oci_rates("crun", Path(bundle), Path(state), [int(x) for x in levels.split(",")], per_slot)
    finally:
        run_cleanups()
    sys.stdout.write(json.dumps(rates) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--crun-inner":
        crun_inner(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        sys.exit(0)
    run_standalone(main)
