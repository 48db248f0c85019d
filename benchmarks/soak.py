"""Load and leak: thousands of container lifecycles through the CLI, then an audit of the host.

    .venv/bin/python benchmarks/soak.py [--sequential 1000] [--concurrent 200] [--jobs 8]
                                        [--library 100] [--cli-inproc 30]

Cycles rotate through four kinds, so every resource a container can hold is made and released:
`run --rm` on the bridge, `run -d -p 80` then `rm -f` (an address lease, a veth, a port claim and
nft DNAT rules), `run --rm --network none`, and `run -d` then `rm -f`. The sequential cycles run
one after another, the concurrent ones over `--jobs` threads. Then a long-lived library user (one
`Runtime` object) runs `--library` cycles in this process, and the CLI's own code runs
`--cli-inproc` commands in this process too (what a long-lived caller of the typer app sees),
each with its fd count and RSS before and after.

Reported: containers/s per phase; peak memory (max RSS of any CLI command, VmHWM of every
detached container's monitor and of the network helper `minirun-netd`); and leaks, each beside
its target of zero: mounts (the host's /proc/self/mountinfo), cgroups (every mounted hierarchy),
fds (the library user, the in-process CLI, netd across the run), processes (monitors, container
processes, children and zombies of ours), veths, nft rules, leases and port claims, temp dirs
(the CLI runs with a private TMPDIR; the store's staging dir) and container records.

Exit status 1 when anything leaked (`make soak`); tests/integration/test_soak.py runs a short
version in CI and fails on any leak.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    IMAGE_NAME,
    MINIRUN,
    RESULTS,
    Section,
    bench_env,
    log,
    machine,
    minirun_root,
    record_samples,
    run_standalone,
)

SLEEP = "86399"          # the detached containers' `sleep`: a value nothing else on the host uses
KINDS = ("run --rm (bridge)", "run -d -p 80 + rm -f", "run --rm --network none", "run -d + rm -f")


@dataclass
class Soak:
    root: Path
    tmpdir: Path
    ids: set[str] = field(default_factory=set)              # every container id the soak made
    phases: list[tuple[str, int, float]] = field(default_factory=list)   # (phase, containers, s)
    cli_maxrss_kib: int = 0
    monitor_hwm_kib: int = 0
    failures: list[str] = field(default_factory=list)
    fds: dict[str, tuple[int, int]] = field(default_factory=dict)        # what: (before, after)
    rss_kib: dict[str, tuple[int, int]] = field(default_factory=dict)
    netd_hwm_kib: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- one CLI command, with its peak RSS ---------------------------------------------------
    def cli(self, *args: str) -> tuple[int, str, str]:
        env = dict(bench_env(), TMPDIR=str(self.tmpdir))
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.Popen([MINIRUN, "--root", str(self.root), *args], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err, env=env)
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            text, etext = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        with self.lock:
            self.cli_maxrss_kib = max(self.cli_maxrss_kib, usage.ru_maxrss)
        return p.returncode, text, etext

    def check(self, what: str, rc: int, err: str) -> bool:
        if rc != 0:
            with self.lock:
                self.failures.append(f"{what}: exit {rc}: {err.strip()[-200:]}")
        return rc == 0

    def cycle(self, tag: str, i: int) -> None:
        kind = i % len(KINDS)
        name = f"soak-{tag}{i}"
        if kind in (0, 2):
            net = ["--network", "none"] if kind == 2 else []
            rc, _, err = self.cli("run", "--rm", "--name", name, *net, IMAGE_NAME, "true")
            self.check(f"{name} {KINDS[kind]}", rc, err)
            return
        ports = ["-p", "80"] if kind == 1 else []
        rc, out, err = self.cli("run", "-d", "--name", name, *ports, IMAGE_NAME, "sleep", SLEEP)
        if not self.check(f"{name} run -d", rc, err):
            return
        cid = out.strip()
        with self.lock:
            self.ids.add(cid)
        hwm = _monitor_hwm(self.root, cid)
        with self.lock:
            self.monitor_hwm_kib = max(self.monitor_hwm_kib, hwm)
        rc, _, err = self.cli("rm", "-f", name)
        self.check(f"{name} rm -f", rc, err)

    def phase(self, label: str, tag: str, count: int, jobs: int) -> None:
        counter = iter(range(count))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                self.cycle(tag, i)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.phases.append((label, count, time.perf_counter() - t0))
        log(f"soak: {label}: {count} containers in {self.phases[-1][2]:.1f} s")


# -- measurements -----------------------------------------------------------------------------------
def _status_kib(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _monitor_hwm(root: Path, cid: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        st = json.loads((root / "containers" / cid / "state.json").read_text())
        if st.get("monitor_pid"):
            return _status_kib(int(st["monitor_pid"]), "VmHWM")
    return 0


def _fd_count(pid: int | str = "self") -> int:
    if pid == "self":
        _quiesce_warmer()
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def _quiesce_warmer() -> None:
    """The cgroup-lock warmer (runtime/cgroup_warm.py) lingers after a start and opens its
    cgroup.procs for each write: stop it and let it end, so that a count of our own fds does not
    catch that passing fd (it read as a leak of 1 in one run)."""
    from minirun.runtime import cgroup_warm

    cgroup_warm.stop()
    cgroup_warm.wait_ended(2.0)


def netd_pid(root: Path) -> int | None:
    for pid in _pids():
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"minirun.net.netd" in cmd and str(root).encode() in cmd:
                return pid
    return None


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children() -> set[int]:
    """This process's children now: the audit's baseline (a test runner may have some already)."""
    return {pid for pid in _pids() if (_proc_stat(pid) or ("", 0))[1] == os.getpid()}


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, ppid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2:].split()
    return rest[0], int(rest[1])


# -- the library user and the in-process CLI ---------------------------------------------------------
def library_cycles(s: Soak, count: int) -> None:
    """One Runtime object, `count` run/remove cycles (bridge and none alternating): fds and RSS of
    this process after one warm-up cycle and at the end."""
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions

    rt = Runtime(s.root)

    def one(i: int) -> None:
        null = os.open(os.devnull, os.O_RDWR)
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        try:
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            st = rt.run(RunOptions(image=IMAGE_NAME, command=["true"],
                                   network="none" if i % 2 else "bridge"))
            with s.lock:
                s.ids.add(st.record.id)
            rt.wait_exit(st.record, timeout=30)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(st.monitor_pid, 0)
            rt.remove(st.record, force=True)
        finally:
            for fd, old in zip((0, 1, 2), saved, strict=True):
                os.dup2(old, fd)
                os.close(old)
            os.close(null)

    one(0)
    one(1)
    fds0, rss0 = _fd_count(), _status_kib(os.getpid(), "VmRSS")
    t0 = time.perf_counter()
    for i in range(count):
        one(i)
    s.phases.append(("library: one Runtime, run + remove", count, time.perf_counter() - t0))
    s.fds["a Runtime object (library user)"] = (fds0, _fd_count())
    s.rss_kib["a Runtime object (library user)"] = (rss0, _status_kib(os.getpid(), "VmRSS"))


def cli_inprocess(s: Soak, count: int) -> None:
    """The typer app called `count` times in this process (`run --rm`, `run -d`, `rm -f`, `ps`),
    as a long-lived caller of the CLI code would: fds and RSS before and after."""
    import click

    from minirun.cli.app import build, verb_of

    def call(*args: str) -> str:
        argv = ["--root", str(s.root), *args]
        null = os.open(os.devnull, os.O_RDWR)
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        out = tempfile.TemporaryFile()
        try:
            os.dup2(null, 0)
            os.dup2(out.fileno(), 1)
            os.dup2(null, 2)
            try:
                status = build(verb_of(argv))(args=argv, standalone_mode=False)
            except SystemExit as e:
                status = e.code
            except click.exceptions.ClickException as e:
                status = f"{e}"
            sys.stdout.flush()
        finally:
            for fd, old in zip((0, 1, 2), saved, strict=True):
                os.dup2(old, fd)
                os.close(old)
            os.close(null)
        out.seek(0)
        text = out.read().decode(errors="replace")
        out.close()
        if status not in (0, None):
            s.failures.append(f"in-process CLI {' '.join(args)}: {status}")
        return text

    def one(i: int) -> None:
        name = f"soak-p{i}"
        if i % 2:
            call("run", "--rm", "--network", "none", "--name", name, IMAGE_NAME, "true")
        else:
            cid = call("run", "-d", "--network", "none", "--name", name, IMAGE_NAME, "sleep", SLEEP).strip()
            if cid:
                s.ids.add(cid)
            call("rm", "-f", name)
        call("ps", "-a")

    one(0)
    one(1)
    fds0, rss0 = _fd_count(), _status_kib(os.getpid(), "VmRSS")
    for i in range(count):
        one(i)
    s.fds["the CLI's code, called in-process"] = (fds0, _fd_count())
    s.rss_kib["the CLI's code, called in-process"] = (rss0, _status_kib(os.getpid(), "VmRSS"))


# -- the audit -------------------------------------------------------------------------------------
def leaks(s: Soak, netd_fds_before: int, own_children_before: set[int]) -> dict[str, list[str]]:
    """Every leak found, by kind: an empty list is the target."""
    from minirun.net import client

    root, ids = s.root, s.ids
    client.running(root)          # a barrier: netd deletes veths right after answering `rm`
    short = {cid[:12] for cid in ids}
    found: dict[str, list[str]] = {}

    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    found["mounts (host mountinfo)"] = [
        line.split()[4] for line in mountinfo
        if str(root) in line or any(cid in line for cid in short)]

    cg = []
    for line in mountinfo:
        f = line.split()
        fstype = f[f.index("-") + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        base = Path(f[4]) / "minirun"
        if base.is_dir():
            cg += [str(p) for p in base.iterdir() if p.is_dir() and p.name[:12] in short]
    found["cgroups (every hierarchy)"] = sorted(set(cg))

    fd_leaks = [f"{what}: {a} -> {b}" for what, (a, b) in s.fds.items() if b > a]
    netd = netd_pid(root)
    if netd and netd_fds_before >= 0:
        after = _fd_count(netd)
        s.fds["minirun-netd (the network helper)"] = (netd_fds_before, after)
        s.netd_hwm_kib = _status_kib(netd, "VmHWM")
        if after > netd_fds_before:
            fd_leaks.append(f"minirun-netd: {netd_fds_before} -> {after}")
    found["fds (library user, in-process CLI, netd)"] = fd_leaks

    procs = []
    for pid in _pids():
        st = _proc_stat(pid)
        if st is None or pid == netd:
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if st[1] == os.getpid() and pid not in own_children_before:
            procs.append(f"child {pid} {st[0]} {cmd[:3]!r}")
        elif st[0] == "Z" and st[1] == os.getpid():
            procs.append(f"zombie {pid}")
        elif str(root).encode() in b" ".join(cmd):
            procs.append(f"{pid} {b' '.join(cmd)[:80]!r}")
        elif cmd[:2] == [b"sleep", SLEEP.encode()]:
            procs.append(f"container process {pid} (sleep {SLEEP})")
    found["processes (monitors, containers, our children, zombies)"] = procs

    veths = [n for n in os.listdir("/sys/class/net") if n.startswith("mr") and n[2:14] in short]
    for record in (root / "networks").glob("*.json"):
        bridge = json.loads(record.read_text())["Bridge"]
        brif = Path(f"/sys/class/net/{bridge}/brif")
        if brif.is_dir():
            veths += [f"{n} on {bridge}" for n in os.listdir(brif)]
    found["veths"] = sorted(set(veths))

    rules = []
    table = json.loads((root / "net" / "config.json").read_text()).get("table", "minirun")
    out = subprocess.run(["nft", "-j", "list", "table", "ip", table], capture_output=True, text=True)
    if out.returncode == 0:
        rules = [f"{r['chain']}: {r.get('comment', '')}" for r in
                 (i["rule"] for i in json.loads(out.stdout)["nftables"] if "rule" in i)
                 if not r.get("comment", "").startswith("net:")]
    found["nft rules"] = rules

    held = []
    for leases in (root / "networks").glob("*.leases"):
        held += [f"lease {ip} on {leases.stem}" for ip in json.loads(leases.read_text() or "{}")]
    ports = root / "net" / "ports.json"
    if ports.exists():
        held += [f"port {k}" for k in json.loads(ports.read_text() or "{}")]
    found["leases and port claims"] = held

    temp = [f"TMPDIR/{p.name}" for p in s.tmpdir.iterdir()]
    staging = root / "images" / "tmp"
    if staging.is_dir():
        temp += [f"images/tmp/{p.name}" for p in staging.iterdir()]
    found["temp dirs (TMPDIR, image staging)"] = temp

    records = []
    for sub in ("containers", "names"):
        d = root / sub
        if d.is_dir():
            records += [f"{sub}/{p.name}" for p in d.iterdir()]
    found["container records and names"] = records
    return found


def run_soak(sequential: int, concurrent: int, jobs: int = 8, library: int = 0,
             cli_inproc: int = 0) -> tuple[Soak, dict[str, list[str]]]:
    """The whole soak in a private data root; returns the figures and the leaks found."""
    own_children = children()
    with minirun_root("soak") as root, tempfile.TemporaryDirectory(prefix="minirun-soak-tmp-") as tmp:
        s = Soak(root, Path(tmp))
        for i in range(len(KINDS)):                      # warm-up: netd, the bridge, the caches
            s.cycle("w", i)
        netd = netd_pid(root)
        netd_fds = _fd_count(netd) if netd else -1
        s.phase("sequential CLI run/rm cycles", "s", sequential, 1)
        s.phase(f"concurrent CLI run/rm cycles ({jobs} at once)", "c", concurrent, jobs)
        if library:
            library_cycles(s, library)
        if cli_inproc:
            cli_inprocess(s, cli_inproc)
        found = leaks(s, netd_fds, own_children)
        ids_made = len(s.ids)
    log(f"soak: {ids_made} detached/library container ids audited")
    return s, found


def sections(s: Soak, found: dict[str, list[str]]) -> list[Section]:
    rate = Section("soak: container lifecycles (`run --rm`, `run -d` + `rm -f`, bridge and none)",
                   ["phase", "containers", "wall time", "containers/s"])
    for label, n, secs in s.phases:
        rate.rows.append([label, str(n), f"{secs:.1f} s", f"{n / secs:.1f}" if secs else "-"])
    rate.notes.append("cycle kinds, in rotation: " + "; ".join(KINDS))
    if s.failures:
        rate.notes.append(f"{len(s.failures)} command(s) failed, first: {s.failures[0]}")

    mem = Section("soak: peak memory", ["process", "peak", "note"])
    mem.rows.append(["a CLI command (max RSS, any cycle)", f"{s.cli_maxrss_kib / 1024:.1f} MiB", "wait4 ru_maxrss"])
    mem.rows.append(["a detached container's monitor (max VmHWM)", f"{s.monitor_hwm_kib} KiB", "read before rm"])
    mem.rows.append(["minirun-netd (VmHWM over the run)", f"{s.netd_hwm_kib / 1024:.1f} MiB", "one per data root"])
    for what, (a, b) in s.rss_kib.items():
        mem.rows.append([f"{what}: RSS before / after", f"{a / 1024:.1f} / {b / 1024:.1f} MiB",
                         f"{(b - a):+d} KiB"])

    leak = Section("soak: leaks after the run (target: zero of each)", ["resource", "leaked", "target", ""])
    for what, items in found.items():
        leak.rows.append([what, str(len(items)), "0", "PASS" if not items else "MISS"])
    for what, (a, b) in s.fds.items():
        leak.notes.append(f"fds of {what}: {a} before, {b} after")
    for what, items in found.items():
        if items:
            leak.notes.append(f"{what}: {', '.join(items[:5])}{' …' if len(items) > 5 else ''}")
    return [rate, mem, leak]


def main(argv: list[str] | None = None) -> list[Section]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequential", type=int, default=1000)
    ap.add_argument("--concurrent", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--library", type=int, default=100, help="cycles of one Runtime object")
    ap.add_argument("--cli-inproc", type=int, default=30, help="commands of the typer app in-process")
    ap.add_argument("--write", action="store_true", help="also write benchmarks/results/soak.md")
    args = ap.parse_args(argv)
    load = machine().get("loadavg", "?")
    t0 = time.monotonic()
    s, found = run_soak(args.sequential, args.concurrent, args.jobs, args.library, args.cli_inproc)
    record_samples("soak", {
        "phases": [{"phase": p, "containers": n, "seconds": round(t, 3)} for p, n, t in s.phases],
        "cli_maxrss_kib": s.cli_maxrss_kib, "monitor_hwm_kib": s.monitor_hwm_kib,
        "netd_hwm_kib": s.netd_hwm_kib, "fds": s.fds, "rss_kib": s.rss_kib,
        "leaks": {k: len(v) for k, v in found.items()}, "failures": len(s.failures)})
    if any(found.values()) or s.failures:
        global LEAKED
        LEAKED = True
    out = sections(s, found)
    if args.write:
        m = machine()
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        head = [f"# minirun soak ({args.sequential} sequential + {args.concurrent} concurrent "
                f"({args.jobs}-way) CLI cycles, {args.library} library, {args.cli_inproc} in-process CLI)",
                "", f"- date: {now}; wall time {time.monotonic() - t0:.0f} s; reproduce with `make soak`",
                f"- machine: {m.get('nproc')} CPUs, kernel {m.get('kernel')}, load average at the start {load}",
                ""]
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "soak.md").write_text("\n".join(head + [x.markdown() for x in out]).rstrip() + "\n")
        log(f"wrote {RESULTS / 'soak.md'}")
    return out


LEAKED = False


if __name__ == "__main__":
    run_standalone(main)
    sys.exit(1 if LEAKED else 0)
