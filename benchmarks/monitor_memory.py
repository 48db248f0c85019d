"""Memory of a detached container's monitor: start N `minirun run -d busybox sleep 60`, read each
monitor's PSS (proportional set size) from /proc/PID/smaps_rollup, compare the median to 1 MiB;
then the same for podman's conmon (its per-container monitor), where podman runs.

    .venv/bin/python benchmarks/monitor_memory.py [--containers 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    IMAGE_NAME,
    Section,
    ensure_tools,
    image_tar,
    log,
    median,
    minirun,
    minirun_root,
    record_samples,
    remove_tree,
    run_checked,
    run_standalone,
    verdict,
)

TARGET_KIB = 1024


def smaps_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            out[key.strip()] = int(parts[0])
    return out


def proc_name(pid: int) -> tuple[str, list[str]]:
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return comm, [a.decode(errors="replace") for a in argv if a]


def main(argv: list[str] | None = None) -> list[Section]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=5)
    args = ap.parse_args(argv)
    sec = Section(f"monitor memory ({args.containers} detached `sleep 60` containers)",
                  ["container", "monitor pid", "comm", "PSS", "RSS", "private dirty"])
    pss = []
    with minirun_root("monitor") as root:
        log(f"monitor: starting {args.containers} detached containers")
        ids = [minirun(root, "run", "-d", IMAGE_NAME, "sleep", "60").stdout.strip().splitlines()[-1]
               for _ in range(args.containers)]
        time.sleep(0.3)                  # let the monitors settle (log relay set up, pages touched)
        for cid in ids:
            # the CLI may print a short id: the state dir is named by the full id
            matches = [p for p in (root / "containers").iterdir() if p.name.startswith(cid)]
            if len(matches) != 1:
                sec.rows.append([cid[:12], "?", "?", f"no unique state dir for {cid!r}", "", ""])
                continue
            state = json.loads((matches[0] / "state.json").read_text())
            mpid = state.get("monitor_pid")
            if not mpid:
                sec.rows.append([cid[:12], "-", "-", "state.json has no monitor_pid", "", ""])
                continue
            try:
                comm, mav = proc_name(mpid)
                sm = smaps_kib(mpid)
            except OSError as e:
                sec.rows.append([cid[:12], str(mpid), "-", f"gone: {e.strerror}", "", ""])
                continue
            if comm != "minirun-monitor" or len(mav) < 2 or mav[1] != matches[0].name:
                sec.notes.append(f"pid {mpid} for {cid[:12]} is {comm!r} argv[1]={mav[1:2]} "
                                 "(expected minirun-monitor with the container id)")
            pss.append(sm.get("Pss", 0))
            sec.rows.append([cid[:12], str(mpid), comm, f"{sm.get('Pss', 0)} KiB",
                             f"{sm.get('Rss', 0)} KiB", f"{sm.get('Private_Dirty', 0)} KiB"])
    conmon = conmon_pss(args.containers, sec)
    record_samples("memory", {"minirun-monitor": pss, "conmon (podman)": conmon})
    if conmon:
        sec.notes.append(f"podman's conmon, the same way ({len(conmon)} detached `sleep 60`): median PSS "
                         f"{median(conmon):.0f} KiB")
    if pss:
        m = median(pss)
        sec.notes.append(f"median monitor PSS {m:.0f} KiB vs target <= {TARGET_KIB} KiB (1 MiB): "
                         f"{verdict(m <= TARGET_KIB)}")
    else:
        sec.notes.append("no monitor could be measured: MISS")
    return [sec]


def conmon_pss(n: int, sec: Section) -> list[int]:
    """PSS of conmon for n detached podman containers (a private podman store, removed after)."""
    import tempfile

    import startup

    if ensure_tools(["podman"])["podman"] is not None:
        sec.notes.append("podman is not available: no conmon comparison")
        return []
    log(f"monitor: starting {n} detached podman containers")
    tmp = Path(tempfile.mkdtemp(prefix="minirun-bench-conmon-"))
    out = []
    try:
        with startup.podman_store(tmp, image_tar()) as g:
            for _ in range(n):
                cid = run_checked([*g, "run", "-d", "--network", "none", *startup.PODMAN_RUN_FLAGS,
                                   startup.PODMAN_IMAGE, "sleep", "60"]).stdout.strip().splitlines()[-1]
                pid = int(run_checked([*g, "inspect", "--format", "{{.State.ConmonPid}}", cid]).stdout)
                time.sleep(0.1)
                out.append(smaps_kib(pid).get("Pss", 0))
    except (RuntimeError, OSError, ValueError) as e:
        sec.notes.append(f"conmon could not be measured: {e}")
    finally:
        remove_tree(tmp)
    return out


if __name__ == "__main__":
    run_standalone(main)
