"""Networking cost (issue #5): what bridge networking adds to `run --rm busybox true` over
`--network none`, for minirun and for podman (its default network stack), and the throughput of
a published port (nftables DNAT on 127.0.0.1) against the container's own address.

    .venv/bin/python benchmarks/network.py [--runs 40] [--mbytes 64]

The two modes are timed alternately, so drift of the machine's load hits both alike. All traffic
stays on this machine: the host talks to a container on a private bridge.
"""

from __future__ import annotations

import _socket
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    IMAGE_NAME,
    MINIRUN,
    Section,
    cmd_runner,
    ensure_tools,
    fmt_ms,
    image_tar,
    log,
    median,
    minirun,
    minirun_root,
    p95,
    remove_tree,
    run_standalone,
    verdict,
)
from startup import PODMAN_IMAGE, PODMAN_RUN_FLAGS, podman_store  # noqa: E402

TARGET_MS = 15.0


def nft_tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {line.strip() for line in out.splitlines() if line.startswith("table ")}


def alternate(a, b, runs: int, warmup: int = 3) -> tuple[list[float], list[float]]:
    """Time a() and b() alternately; (a's samples, b's samples) in ms."""
    for _ in range(warmup):
        a()
        b()
    sa, sb = [], []
    for _ in range(runs):
        for fn, out in ((a, sa), (b, sb)):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000.0)
    return sa, sb


def fetch(host: str, port: int, expect: int) -> float:
    """HTTP GET / from host:port; seconds until `expect` body bytes arrived."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    s.settimeout(30)
    t0 = time.perf_counter()
    s.connect((host, port))
    s.sendall(b"GET /blob HTTP/1.0\r\nHost: x\r\n\r\n")
    got = 0
    buf = bytearray(1 << 20)
    while True:
        n = s.recv_into(buf)
        if not n:
            break
        got += n
    s.close()
    elapsed = time.perf_counter() - t0
    if got < expect:
        raise RuntimeError(f"{host}:{port}: {got} bytes, expected at least {expect}")
    return elapsed


def free_port() -> int:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def throughput(root: Path, mbytes: int, rounds: int = 5) -> list[list[str]]:
    port = free_port()
    size = mbytes << 20
    cid = minirun(root, "run", "-d", "--network", "bridge", "-p", f"{port}:80", IMAGE_NAME, "sh", "-c",
                  f"mkdir /www && dd if=/dev/zero of=/www/blob bs=1M count={mbytes} 2>/dev/null && "
                  "exec httpd -f -p 80 -h /www").stdout.strip()
    try:
        ip = json.loads(minirun(root, "inspect", cid).stdout)[0]["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        deadline = time.monotonic() + 20
        while True:
            try:
                fetch(ip, 80, size)
                break
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        rows = []
        for label, host, p in ((f"published port 127.0.0.1:{port} (DNAT)", "127.0.0.1", port),
                               (f"container address {ip}:80", ip, 80)):
            secs = [fetch(host, p, size) for _ in range(rounds)]
            rows.append([label, f"{mbytes / median(secs):.0f} MiB/s", f"{median(secs) * 1000:.0f} ms"])
        return rows
    finally:
        minirun(root, "rm", "-f", cid, check=False)


def main(argv: list[str] | None = None) -> list[Section]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--mbytes", type=int, default=64)
    args = ap.parse_args(argv)
    tools = ensure_tools(["podman"])
    rows: list[list[str]] = []
    notes: list[str] = []
    added: float | None = None
    with minirun_root("network") as root:
        base = [MINIRUN, "--root", str(root), "run", "--rm"]
        log(f"network: minirun none / bridge x{args.runs}, alternating")
        none, bridge = alternate(cmd_runner([*base, "--network", "none", IMAGE_NAME, "true"]),
                                 cmd_runner([*base, "--network", "bridge", IMAGE_NAME, "true"]),
                                 args.runs)
        added = median(bridge) - median(none)
        rows += [["minirun run --rm --network none", fmt_ms(median(none)), fmt_ms(p95(none)), ""],
                 ["minirun run --rm --network bridge", fmt_ms(median(bridge)), fmt_ms(p95(bridge)),
                  f"{added:+.1f} ms"]]
        log("network: throughput through a published port")
        tput = throughput(root, args.mbytes)
    if tools["podman"] is None:
        log(f"network: podman none / default network x{args.runs}, alternating")
        tmp = Path(tempfile.mkdtemp(prefix="minirun-bench-network-"))
        tables = nft_tables()
        try:
            with podman_store(tmp, image_tar()) as g:
                run = [*g, "run", "--rm", *PODMAN_RUN_FLAGS]
                pnone, pbridge = alternate(cmd_runner([*run, "--network", "none", PODMAN_IMAGE, "true"]),
                                           cmd_runner([*run, PODMAN_IMAGE, "true"]), args.runs)
            rows += [["podman run --rm --network none", fmt_ms(median(pnone)), fmt_ms(p95(pnone)), ""],
                     ["podman run --rm (default network)", fmt_ms(median(pbridge)), fmt_ms(p95(pbridge)),
                      f"{median(pbridge) - median(pnone):+.1f} ms"]]
        except RuntimeError as e:
            rows.append(["podman", f"failed: {str(e)[:200]}", "", ""])
        finally:
            remove_tree(tmp)
            # podman's network backend (netavark) leaves `ip nat` / `ip filter` tables behind:
            # remove the tables that were not there before it ran
            for table in sorted(nft_tables() - tables):
                subprocess.run(["nft", "delete", *table.split()], capture_output=True)
    else:
        rows.append(["podman", f"skipped: {tools['podman']}", "", ""])
    cost = Section(f"bridge networking cost ({args.runs} runs each, busybox true, alternating)",
                   ["", "median", "p95", "added by networking"], rows, notes)
    cost.notes.append("added = median(bridge) - median(none); the first bridge run of a data root "
                      "also starts its network helper (~0.3 s, once; not in these samples)")
    tgt = Section("network targets", ["target", "measured", "goal", "result"],
                  [["bridge adds to run --rm (median)", fmt_ms(added), f"<= {TARGET_MS:.0f} ms",
                    verdict(added is not None and added <= TARGET_MS)]])
    tp = Section(f"throughput from the host ({args.mbytes} MiB over HTTP, median of 5)",
                 ["path", "rate", "time"], tput)
    return [cost, tgt, tp]


if __name__ == "__main__":
    run_standalone(main)
