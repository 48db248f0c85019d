"""Shared helpers for the benchmarks: timing loops, statistics, tables, tool installation, and
private scratch space (a minirun data root with the busybox image) that is always cleaned up.

Every benchmark module exposes `main(args) -> list[Section]`; run_all.py prints the sections and
writes them as markdown to benchmarks/results/latest.md; what they pass to record_samples() goes
to results/samples.json, which plots.py draws.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
PY = str(VENV / "bin" / "python")
MINIRUN = str(VENV / "bin" / "minirun")
IMAGE_TAR = REPO / "rootfs" / "build" / "busybox.tar"
RESULTS = REPO / "benchmarks" / "results"
IMAGE_NAME = "busybox"

# The raw data behind the tables (every timing, not just medians): run_all.py writes it to
# results/samples.json and plots.py draws the PNGs from it.
SAMPLES: dict[str, object] = {}


def record_samples(key: str, data: object) -> None:
    SAMPLES[key] = data


def log(msg: str) -> None:
    sys.stderr.write(f"[bench] {msg}\n")
    sys.stderr.flush()


# -- signals: turn SIGTERM/SIGHUP into KeyboardInterrupt so every `finally` cleans up --------------
def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)


# -- statistics -----------------------------------------------------------------------------------
def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p95(xs: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(0.95 * len(s) + 0.5)) - 1))
    return s[k]


def time_loop(fn: Callable[[], None], runs: int, warmup: int = 3, gap: float = 0.0) -> list[float]:
    """Call fn warmup+runs times; return the last `runs` wall times in milliseconds. With `gap`,
    sleep that many seconds (untimed) before each call: starts spaced out, not back to back."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


_bench_env: dict[str, str] | None = None
CALLER_NO_BYTECODE = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))


def bench_env(no_bytecode: bool = False) -> dict[str, str]:
    """The environment for timed commands: like a user's shell, Python may cache bytecode. The
    cache goes to a private PYTHONPYCACHEPREFIX (removed at exit), so the tree is not touched and
    a caller's PYTHONDONTWRITEBYTECODE=1 does not make every run recompile minirun's modules."""
    global _bench_env
    if _bench_env is None:
        cache = Path(tempfile.mkdtemp(prefix="minirun-bench-pycache-"))

        def drop() -> None:
            # a later benchmark in the same run must not reuse (and so re-create, untracked)
            # the removed directory: the next call makes a new one
            global _bench_env
            shutil.rmtree(cache, ignore_errors=True)
            _bench_env = None
        _cleanups.append(drop)
        _bench_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        _bench_env["PYTHONPYCACHEPREFIX"] = str(cache)
    if no_bytecode:                    # and no prefix: nothing cached can be read either
        env = {k: v for k, v in _bench_env.items() if k != "PYTHONPYCACHEPREFIX"}
        return {**env, "PYTHONDONTWRITEBYTECODE": "1"}
    return _bench_env


def run_checked(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a command, capturing output; raise with stderr in the message on failure."""
    kw.setdefault("env", bench_env())
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return p


def cmd_runner(argv: list[str], **kw) -> Callable[[], None]:
    """A no-argument function that runs argv with stdio on /dev/null and checks its status."""
    kw.setdefault("env", bench_env())
    def fn() -> None:
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, **kw)
        if rc != 0:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw)
            raise RuntimeError(f"{' '.join(argv)} exited {rc}: {p.stderr.strip()[-800:]}")
    return fn


# -- tables ---------------------------------------------------------------------------------------
@dataclass
class Row:
    label: str
    samples: list[float] | None = None     # ms
    value: str | None = None               # free text instead of samples (e.g. "skipped: ...")
    extra: str = ""

    @property
    def median(self) -> float | None:
        return median(self.samples) if self.samples else None

    @property
    def p95(self) -> float | None:
        return p95(self.samples) if self.samples else None


@dataclass
class Section:
    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        if not self.columns:
            return "\n".join([self.title] + [_indent(n, "  ") for n in self.notes])
        widths = [max(len(str(c)) for c in col) for col in zip(self.columns, *self.rows, strict=False)]
        lines = []
        for i, r in enumerate([self.columns, *self.rows]):
            cells = [str(c).ljust(w) if j == 0 else str(c).rjust(w)
                     for j, (c, w) in enumerate(zip(r, widths, strict=False))]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        out = [self.title, *lines]
        out += [f"  note: {n}" if "\n" not in n else "  note:\n" + _indent(n, "    ") for n in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {self.title}", ""]
        if self.columns:
            out.append("| " + " | ".join(self.columns) + " |")
            out.append("|" + "|".join(["---"] + ["---:"] * (len(self.columns) - 1)) + "|")
            out += ["| " + " | ".join(str(c) for c in r) + " |" for r in self.rows]
            out.append("")
        for n in self.notes:
            if "\n" in n:
                out += ["```", n, "```", ""]
            else:
                out.append(f"- {n}")
        if self.notes:
            out.append("")
        return "\n".join(out)


def _indent(text: str, pre: str) -> str:
    return "\n".join(pre + line for line in text.splitlines())


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else (f"{x:.1f} ms" if x < 1000 else f"{x / 1000:.2f} s")


def fmt_num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -- machine and tool versions --------------------------------------------------------------------
def machine() -> dict[str, str]:
    info = {"nproc": str(os.cpu_count()), "kernel": platform.release(),
            "python": platform.python_version()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        info["loadavg"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    return info


def tool_version(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        return "not installed"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    first = out.strip().splitlines()[0] if out.strip() else "?"
    return first.replace(f"{tool} version ", "").replace("version ", "")


_TOOL_PACKAGES = {"podman": "podman", "runc": "runc", "crun": "crun", "strace": "strace"}
_tool_status: dict[str, str | None] = {}


def ensure_tools(tools: list[str]) -> dict[str, str | None]:
    """Install the missing tools with apt (idempotent: dpkg/PATH first, apt only when missing).
    Returns {tool: None if usable, else the reason it is skipped}; prints a reason per skip."""
    missing = [t for t in tools if t not in _tool_status and not shutil.which(t)]
    for t in tools:
        if t not in missing and t not in _tool_status:
            _tool_status[t] = None
    if missing:
        pkgs = [_TOOL_PACKAGES.get(t, t) for t in missing]
        reason = None
        if os.geteuid() != 0:
            reason = "not root, cannot apt-get install"
        elif not shutil.which("apt-get"):
            reason = "no apt-get on this machine"
        else:
            log(f"installing {' '.join(pkgs)} with apt-get (one time)")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            p = subprocess.run(["apt-get", "install", "-y", "-q", *pkgs], env=env,
                               capture_output=True, text=True)
            if p.returncode != 0:
                subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
                p = subprocess.run(["apt-get", "install", "-y", "-q", *pkgs], env=env,
                                   capture_output=True, text=True)
            if p.returncode != 0:
                reason = f"apt-get install failed: {p.stderr.strip().splitlines()[-1:] or '?'}"
        for t in missing:
            _tool_status[t] = reason if (reason or not shutil.which(t)) else None
            if _tool_status[t] is None and reason is None and not shutil.which(t):
                _tool_status[t] = "installed package has no such command"
            if _tool_status[t]:
                log(f"skipping {t}: {_tool_status[t]}")
    return {t: _tool_status[t] for t in tools}


# -- the busybox image ----------------------------------------------------------------------------
_fallback_tar: Path | None = None


def image_tar() -> Path:
    """rootfs/build/busybox.tar; built with rootfs/build.py if missing. If that script is not
    there yet, a throwaway tarball from the host's static busybox (in a temp dir, removed at exit)."""
    global _fallback_tar
    if IMAGE_TAR.exists():
        return IMAGE_TAR
    build = REPO / "rootfs" / "build.py"
    if build.exists():
        log("building rootfs/build/busybox.tar")
        run_checked([PY, str(build), "--out", str(IMAGE_TAR)], cwd=REPO)
        return IMAGE_TAR
    if _fallback_tar is None:
        tmp = Path(tempfile.mkdtemp(prefix="minirun-bench-img-"))
        _cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
        _fallback_tar = tmp / "busybox.tar"
        _build_fallback_tar(_fallback_tar)
        log(f"rootfs/build.py missing: using a throwaway busybox tarball {_fallback_tar}")
    return _fallback_tar


def _build_fallback_tar(out: Path) -> None:
    busybox = Path("/bin/busybox").read_bytes()
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True).stdout.split()
    with tarfile.open(out, "w") as tar:
        def add_dir(name: str, mode: int = 0o755) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            tar.addfile(ti)
        for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "var"):
            add_dir(d, 0o1777 if d == "tmp" else 0o755)
        import io
        ti = tarfile.TarInfo("bin/busybox")
        ti.mode, ti.size = 0o755, len(busybox)
        tar.addfile(ti, io.BytesIO(busybox))
        for a in applets:
            if a == "busybox":
                continue
            ti = tarfile.TarInfo(f"bin/{a}")
            ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(ti)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                           ("etc/group", "root:x:0:\n")):
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.mode, ti.size = 0o644, len(data)
            tar.addfile(ti, io.BytesIO(data))


_cleanups: list[Callable[[], None]] = []


def run_cleanups() -> None:
    while _cleanups:
        fn = _cleanups.pop()
        with contextlib.suppress(Exception):
            fn()


# -- a private minirun data root ------------------------------------------------------------------
def minirun(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    argv = [MINIRUN, "--root", str(root), *args]
    if check:
        return run_checked(argv)
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=bench_env())


def _container_ids(root: Path) -> list[str]:
    d = root / "containers"
    return [p.name for p in d.iterdir() if p.is_dir()] if d.is_dir() else []


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(prefix) or mp == str(path):
                out.append(mp)
    return out


def umount_under(path: Path) -> None:
    """Lazily unmount anything still mounted below path (deepest first) before rm -rf."""
    for mp in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


def remove_tree(path: Path) -> None:
    umount_under(path)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def minirun_root(tag: str) -> Iterator[Path]:
    """A temp data root with the busybox image imported; on exit every container in it is
    force-removed (through minirun, so cgroups go too) and the directory deleted."""
    root = Path(tempfile.mkdtemp(prefix=f"minirun-bench-{tag}-"))
    try:
        private_network(root)
        minirun(root, "image", "import", str(image_tar()), IMAGE_NAME)
        yield root
    finally:
        cleanup_minirun_root(root)


def private_network(root: Path) -> None:
    """A bridge, subnets and nft table of this root's own (ROOT/net/config.json), clear of the
    host's routes, so a benchmark never shares its network with anything else."""
    sys.path.insert(0, str(REPO))
    from minirun.net.settings import private

    private(root, "mrb")


def teardown_network(root: Path) -> None:
    """The root's bridges and nft table, and its network helper (minirun/net/netd.py)."""
    sys.path.insert(0, str(REPO))
    from minirun.net.container import teardown

    with contextlib.suppress(Exception):
        teardown(root)


def cleanup_minirun_root(root: Path) -> None:
    ids = _container_ids(root)
    if ids:
        p = minirun(root, "rm", "-f", *ids, check=False)
        if p.returncode != 0:
            log(f"rm -f of {len(ids)} containers in {root} exited {p.returncode}: {p.stderr.strip()[-300:]}")
        for cid in _container_ids(root):          # anything rm could not remove: kill the monitor
            with contextlib.suppress(Exception):
                st = json.loads((root / "containers" / cid / "state.json").read_text())
                for key in ("pid", "monitor_pid"):
                    if st.get(key):
                        os.kill(int(st[key]), signal.SIGKILL)
            _remove_cgroup(cid)
    teardown_network(root)
    remove_tree(root)


def _remove_cgroup(cid: str) -> None:
    for base in Path("/sys/fs/cgroup").glob("*/minirun"):
        d = base / cid
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        (Path("/sys/fs/cgroup") / "minirun" / cid).rmdir()


def count_leaked_cgroups() -> int:
    n = 0
    for base in [*Path("/sys/fs/cgroup").glob("*/minirun"), Path("/sys/fs/cgroup/minirun")]:
        if base.is_dir():
            n += sum(1 for p in base.iterdir() if p.is_dir())
    return n


def run_standalone(main) -> None:
    """`python benchmarks/X.py`: run one benchmark's main(argv), print its sections, clean up."""
    install_signal_handlers()
    try:
        for section in main(sys.argv[1:]):
            print(section.text() + "\n")
    finally:
        run_cleanups()
