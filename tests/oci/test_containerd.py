"""containerd drives minirun-oci: `ctr run --runc-binary minirun-oci`, through containerd's own
io.containerd.runc.v2 shim. The shim calls `minirun-oci create/start/state/ps/exec/kill/pause/
resume/delete` exactly as it calls runc, reads the errors from `--log FILE --log-format json`,
reaps the container as its child subreaper and reports the exit status back to containerd.

The module starts a containerd of its own: a config.toml with a private root, state directory,
sockets and plugin directory under a temporary directory (the host's containerd config and
/run/containerd/containerd.sock are never used; no systemd). The busybox image reaches it from a
local archive (`minirun image save`, then `ctr images import`), never from a registry. Afterwards
it is stopped by pid, and everything it made is checked for, then removed: tasks, the shims it
started, the rootfs mounts of its overlay snapshots, the cgroups of its namespace, minirun-oci's
state. The one path outside the directory is /run/containerd/s, where containerd 1.6 puts the
shims' sockets whatever its config says; it is removed (if empty) when it was not there before.

The same containerd has its CRI plugin on, with minirun registered as a runtime handler (the
config.toml snippet docs/kubernetes.md quotes): the last tests do what the kubelet does for a pod
whose RuntimeClass names that handler, over CRI's gRPC (tests/oci/cri.py; Debian has no crictl).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IMAGE_TAR, requires, start_daemon, stop_daemon

OCI = str(Path(sys.executable).with_name("minirun-oci"))
MINIRUN = str(Path(sys.executable).with_name("minirun"))
# containerd namespace, and so the cgroup parent /NS/ID: one per run, as runs may overlap
NS = f"minirun-test-{os.getpid()}"
IMAGE = "busybox:latest"                      # the name `minirun image save --format oci` gives it
DOCKER_IMAGE = "docker.io/library/busybox:latest"  # ... and --format docker-archive
SHIM_SOCKETS = Path("/run/containerd/s")      # fixed in containerd 1.6, not configurable
BINARIES = ("containerd", "ctr", "containerd-shim-runc-v2")

CRI_NS = "k8s.io"                             # the containerd namespace of the CRI plugin
PAUSE_IMAGE = "minirun.test/pause:latest"     # busybox that sleeps: the pods' sandbox image

# The exact configuration this module runs containerd with (docs/oci.md and docs/kubernetes.md
# quote its CRI part).
CONFIG = """\
version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{base}/containerd.sock"

[ttrpc]
  address = "{base}/containerd.sock.ttrpc"

[debug]
  level = "debug"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # no AppArmor on this kernel, and minirun-oci refuses process.apparmorProfile
  disable_apparmor = true
  # the sandbox asks for oom_score_adj -998; lowering it needs CAP_SYS_RESOURCE, which root
  # lacks on this VM (runc fails the same way): keep containerd's own instead
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{base}/cni/bin"
    conf_dir = "{base}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.minirun]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.minirun.options]
      BinaryName = "{oci}"
      SystemdCgroup = false
      Root = "{base}/runc-cri"
"""


class Containerd:
    """A private containerd and `ctr` pointed at it."""

    def __init__(self, base: Path):
        self.base = base
        self.sock = base / "containerd.sock"
        self.fifos = base / "fifo"
        self.runc_root = base / "runc"           # minirun-oci's --root: runc-root/NS/ID
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        (self.base / "config.toml").write_text(CONFIG.format(base=self.base, pause=PAUSE_IMAGE, oci=OCI))
        self.fifos.mkdir()
        for d in ("cni/bin", "cni/net.d", "pods"):
            (self.base / d).mkdir(parents=True)
        self.proc = start_daemon(["containerd", "--config", str(self.base / "config.toml")],
                                 self.base / "containerd.log", timeout=20,
                                 answers=lambda: self.ctr("version", check=False).returncode == 0)

    def ctr(self, *args: str, check: bool = True, timeout: float = 60,
            input: str | None = None, ns: str = NS) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ctr", "-a", str(self.sock), "-n", ns, *args], input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def runtime_flags(self) -> list[str]:
        return ["--fifo-dir", str(self.fifos), "--runc-root", str(self.runc_root),
                "--runc-binary", OCI]

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """`ctr run` with minirun-oci as the shim's runtime. args: [flags...] IMAGE ID CMD..."""
        return self.ctr("run", *self.runtime_flags(), *args, **kw)

    def exec(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.ctr("task", "exec", "--fifo-dir", str(self.fifos), *args, **kw)

    def tasks(self) -> dict[str, tuple[int, str]]:
        """`ctr task ls`: id -> (pid, status)."""
        rows = self.ctr("task", "ls").stdout.splitlines()[1:]
        return {f[0]: (int(f[1]), f[2]) for f in (r.split() for r in rows) if len(f) == 3}

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            now = self.tasks().get(cid, (0, "gone"))[1]
            if now == status or time.monotonic() > deadline:
                return now
            time.sleep(0.05)

    @contextlib.contextmanager
    def detached(self, cid: str, *args: str, flags: tuple[str, ...] = ()):
        """`ctr run -d`: yields the task's host pid; kills and removes it however the test ends."""
        self.run("-d", *flags, IMAGE, cid, *args)
        try:
            yield self.tasks()[cid][0]
        finally:
            self.remove(cid)

    def remove(self, cid: str) -> subprocess.CompletedProcess | None:
        """Kill (every process), delete the task, then the container. Returns `task rm`."""
        removed = None
        if cid in self.tasks():
            self.ctr("task", "kill", "--all", "--signal", "SIGKILL", cid, check=False)
            self.wait_status(cid, "STOPPED")
            removed = self.ctr("task", "rm", cid, check=False)
        self.ctr("container", "rm", cid, check=False)
        return removed

    def shim_pids(self) -> list[int]:
        """Live shims whose -address is this containerd's socket (zombies are gone already)."""
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                stat = (proc / "stat").read_text()
                if (b"-address" in argv and os.fsencode(self.sock) in argv
                        and stat.rsplit(")", 1)[1].split()[0] != "Z"):
                    pids.append(int(proc.name))
        return pids

    def mounts(self) -> list[str]:
        """Mount points under the base directory (rootfs of tasks: overlay snapshots)."""
        out = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4]
            if point.startswith(f"{self.base}/"):
                out.append(point)
        return out

    def cgroups(self) -> list[Path]:
        """The cgroups under /NS (ctr's /NS/ID, the pods' /NS/pods/ID) in every hierarchy,
        deepest first."""
        found = []
        for top in [*Path("/sys/fs/cgroup").glob(f"*/{NS}"), Path("/sys/fs/cgroup") / NS]:
            for dirpath, _, _ in os.walk(top, topdown=False):
                if Path(dirpath) != top:
                    found.append(Path(dirpath))
        return found

    def leftovers(self) -> list[str]:
        found = [f"task {t}" for t in self.tasks()]
        found += [f"container {c}" for c in self.ctr("container", "ls", "-q").stdout.split()]
        found += [f"minirun-oci state {p.name}" for p in (self.runc_root / NS).glob("[!.]*")]
        found += [f"CRI task {t}" for t in self.ctr("task", "ls", "-q", ns=CRI_NS).stdout.split()]
        found += [f"CRI container {c}"
                  for c in self.ctr("container", "ls", "-q", ns=CRI_NS).stdout.split()]
        found += [f"minirun-oci state {p.name}"
                  for p in (self.base / "runc-cri" / CRI_NS).glob("[!.]*")]
        found += [f"cgroup {p}" for p in self.cgroups()]
        found += [f"mount {m}" for m in self.mounts()]
        return found

    def stop(self) -> list[str]:
        """Stop containerd by pid, then its shims; remove mounts and cgroups. Returns what had to
        be removed by force (a leak to report)."""
        forced = stop_daemon(self.proc, 10)
        for pid in self.shim_pids():
            forced.append(f"shim pid {pid}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for point in sorted(self.mounts(), key=len, reverse=True):
            forced.append(f"mount {point}")
            subprocess.run(["umount", "-l", point], capture_output=True)
        for group in self.cgroups():
            forced.append(f"cgroup {group}")
            with contextlib.suppress(OSError):
                group.rmdir()
        for parent in [*Path("/sys/fs/cgroup").glob(f"*/{NS}"), Path("/sys/fs/cgroup") / NS]:
            with contextlib.suppress(OSError):
                parent.rmdir()            # the parent /NS that containerd's paths imply
        return forced


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    requires("root", "busybox-image")
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian's containerd package: "
                    "`make test-ecosystem` installs it)")
    created = [p for p in (SHIM_SOCKETS.parent, SHIM_SOCKETS) if not p.exists()]
    base = tmp_path_factory.mktemp("ctrd")
    c = Containerd(base)
    forced: list[str] = []
    try:
        c.start()
        # the busybox image from a local archive, in both formats minirun writes
        store = base / "minirun"
        subprocess.run([MINIRUN, "--root", str(store), "image", "import", str(IMAGE_TAR),
                        "busybox"], check=True, capture_output=True)
        for fmt, name in (("oci", IMAGE), ("docker-archive", DOCKER_IMAGE)):
            archive = base / f"busybox-{fmt}.tar"
            subprocess.run([MINIRUN, "--root", str(store), "image", "save", "-q", "--format", fmt,
                            "-o", str(archive), "busybox"], check=True, capture_output=True)
            c.ctr("images", "import", str(archive))
            assert name in c.ctr("images", "ls", "-q").stdout.split(), f"{fmt}: not imported as {name}"
            c.ctr("images", "import", str(archive), ns=CRI_NS)
        # the pods' sandbox ("pause") image: busybox that sleeps, built by minirun
        (base / "pause").mkdir()
        (base / "pause/Containerfile").write_text('FROM busybox\nENTRYPOINT ["sleep", "86400"]\n')
        subprocess.run([MINIRUN, "--root", str(store), "build", "-q", "-t", PAUSE_IMAGE,
                        str(base / "pause")], check=True, capture_output=True)
        subprocess.run([MINIRUN, "--root", str(store), "image", "save", "-q", "-o",
                        str(base / "pause.tar"), PAUSE_IMAGE], check=True, capture_output=True)
        c.ctr("images", "import", str(base / "pause.tar"), ns=CRI_NS)
        yield c
        for ns in (NS, CRI_NS):
            for image in c.ctr("images", "ls", "-q", ns=ns).stdout.split():
                c.ctr("images", "rm", "--sync", image, ns=ns)
    finally:
        forced = c.stop()
        for path in reversed(created):     # /run/containerd/s, then /run/containerd: if empty
            with contextlib.suppress(OSError):
                path.rmdir()
        shutil.rmtree(base, ignore_errors=True)
    assert not forced, f"containerd + minirun-oci left these behind: {forced}"


@pytest.fixture
def ctrd(containerd):
    """Per test: nothing may be left in containerd or on the host afterwards."""
    yield containerd
    deadline = time.monotonic() + 5
    while (left := containerd.leftovers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for cid in containerd.ctr("container", "ls", "-q").stdout.split():
        containerd.remove(cid)
    assert not left, f"the test left these behind: {left}"


def gone(pid: int, timeout: float = 5) -> bool:
    """The process has ended: no such pid, or a zombie its reaper (the shim) has not waited for."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_run_rm_prints_and_keeps_stdout_and_stderr_apart(ctrd):
    proc = ctrd.run("--rm", IMAGE, "hello", "sh", "-c", "echo hi; echo oops >&2")
    assert proc.stdout == "hi\n"
    assert proc.stderr.strip() == "oops"


def test_the_image_from_a_docker_archive_runs_too(ctrd):
    assert ctrd.run("--rm", DOCKER_IMAGE, "docker", "echo", "hi").stdout == "hi\n"


def test_exit_status_is_the_container_s(ctrd):
    assert ctrd.run("--rm", IMAGE, "status", "sh", "-c", "exit 7", check=False).returncode == 7


def test_stdin_is_handed_over(ctrd):
    # ctr never closes the container's stdin (runc behaves the same): read one line, not to EOF
    proc = ctrd.run("--rm", IMAGE, "stdin", "sh", "-c", "read line; echo got $line",
                    input="abc\n")
    assert proc.stdout == "got abc\n"


def test_a_missing_program_fails_with_minirun_oci_s_message(ctrd):
    """The shim reads the reason from minirun-oci's --log (JSON) and ctr prints it."""
    proc = ctrd.run("--rm", IMAGE, "missing", "no-such-program", check=False)
    assert proc.returncode != 0
    assert "OCI runtime create failed" in proc.stderr
    assert "no-such-program: executable file not found in $PATH" in proc.stderr


def test_systemd_cgroups_are_refused_in_one_line(ctrd):
    proc = ctrd.run("--rm", "--runc-systemd-cgroup", "--cgroup", f"system.slice:{NS}:sd",
                    IMAGE, "sd", "true", check=False)
    assert proc.returncode != 0
    assert "--systemd-cgroup is not supported" in proc.stderr


def test_detached_task_exec_ps_ls_and_kill(ctrd):
    script = 'trap "exit 42" TERM; echo $$ > /tmp/ready; while true; do sleep 0.1; done'
    with ctrd.detached("detached", "sh", "-c", script) as pid:
        assert ctrd.tasks()["detached"] == (pid, "RUNNING")
        # the task's process is a real host process in the cgroup containerd asked for
        assert f":/{NS}/detached" in Path(f"/proc/{pid}/cgroup").read_text()
        # exec joins the task: its pid namespace (the task is PID 1), its files, its status back
        proc = ctrd.exec("--exec-id", "look", "detached", "sh", "-c",
                         "cat /tmp/ready; cat /proc/1/cmdline | tr '\\0' ' '; exit 3", check=False)
        assert proc.returncode == 3, proc.stderr
        first, cmdline = proc.stdout.splitlines()
        assert first == "1"
        assert cmdline.startswith("sh -c trap")
        # a detached exec shows in `task ps` beside the first process, with its exec id
        ctrd.exec("--detach", "--exec-id", "sleeper", "detached", "sleep", "100")
        deadline = time.monotonic() + 5
        while "sleeper" not in (ps := ctrd.ctr("task", "ps", "detached").stdout):
            assert time.monotonic() < deadline, ps
            time.sleep(0.05)
        rows = [line.split() for line in ps.splitlines()[1:]]
        assert [r for r in rows if r[0] == str(pid)]
        sleeper = int(next(r[0] for r in rows if "ExecID:sleeper" in " ".join(r)))
        assert Path(f"/proc/{sleeper}/cmdline").read_bytes() == b"sleep\x00100\x00"
        # pause and resume through the freezer
        ctrd.ctr("task", "pause", "detached")
        assert ctrd.tasks()["detached"][1] == "PAUSED"
        ctrd.ctr("task", "resume", "detached")
        assert ctrd.tasks()["detached"][1] == "RUNNING"
        # SIGTERM reaches the first process: its trap exits 42, the shim reaps it and tells
        ctrd.ctr("task", "kill", "detached")
        assert ctrd.wait_status("detached", "STOPPED") == "STOPPED"
        assert gone(sleeper), "the exec'd process outlived the task's PID 1"
        removed = ctrd.remove("detached")
        assert removed is not None and "exit code 42" in removed.stderr


def test_kill_all_stops_every_process(ctrd):
    with ctrd.detached("killall", "sh", "-c", "sleep 200 & sleep 300") as pid:
        deadline = time.monotonic() + 5
        while len(ctrd.ctr("task", "ps", "killall").stdout.splitlines()) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ctrd.ctr("task", "kill", "--all", "--signal", "SIGKILL", "killall")
        assert ctrd.wait_status("killall", "STOPPED") == "STOPPED"
        removed = ctrd.remove("killall")
        assert "exit code 137" in removed.stderr
        assert gone(pid), "the task's process is still alive"


def test_memory_limit_is_seen_inside_and_enforced(ctrd):
    requires("cgroup:memory")
    # ctr's default spec mounts no /sys/fs/cgroup: ask for the cgroup mount as runc users do
    limit = 32 * 1024 * 1024
    proc = ctrd.run("--rm", "--memory-limit", str(limit),
                    "--mount", "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro",
                    IMAGE, "memory", "sh", "-c",
                    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
                    " || cat /sys/fs/cgroup/memory.max;"
                    # a 64 MiB buffer does not fit: the kernel's OOM killer ends dd (no swap here)
                    "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?")
    seen, dd = proc.stdout.split()
    assert int(seen) == limit
    if Path("/proc/swaps").read_text().count("\n") <= 1:
        assert dd == "dd=137"
        # the shim watches the cgroup containerd named (memory.oom_control on v1) and says so;
        # it publishes events asynchronously (a `containerd publish` process each)
        deadline = time.monotonic() + 15
        while "topic=/tasks/oom" not in (ctrd.base / "containerd.log").read_text():
            assert time.monotonic() < deadline, "containerd got no OOM event from the shim"
            time.sleep(0.1)


def test_privileged_gets_the_host_s_devices_and_root_s_capabilities(ctrd):
    """--privileged lists every host device, /dev/ptmx too: it becomes the pts/ptmx link."""
    ours = next(line for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("CapEff"))
    proc = ctrd.run("--rm", "--privileged", IMAGE, "priv", "sh", "-c",
                    "readlink /dev/ptmx; grep CapEff /proc/self/status; ls /dev/kmsg")
    assert proc.stdout.splitlines() == ["pts/ptmx", ours, "/dev/kmsg"]


def test_a_task_joins_another_s_namespaces_as_a_pod_s_containers_do(ctrd):
    """What containerd's CRI does for a Kubernetes pod: the sandbox task owns the network and PID
    namespaces, the pod's containers join them by path (--with-ns)."""
    with ctrd.detached("sandbox", "sleep", "100") as pid:
        proc = ctrd.run("--rm", "--with-ns", f"network:/proc/{pid}/ns/net",
                        "--with-ns", f"pid:/proc/{pid}/ns/pid", IMAGE, "member", "sh", "-c",
                        "readlink /proc/self/ns/net; cat /proc/1/cmdline | tr '\\0' ' '")
        net, first = proc.stdout.splitlines()
        assert net == os.readlink(f"/proc/{pid}/ns/net")
        assert first.strip() == "sleep 100"


def on_a_terminal(ctrd: Containerd, *args: str) -> tuple[list[str], int]:
    """`ctr ARGS` with a terminal of its own (script(1) makes one, as ctr -t needs): the
    non-empty output lines and the exit status."""
    if shutil.which("script") is None:
        pytest.skip("script(1) (util-linux) is not installed")
    cmd = ["ctr", "-a", str(ctrd.sock), "-n", NS, *args]
    proc = subprocess.run(["script", "-qec", " ".join(f"'{a}'" for a in cmd), "/dev/null"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    # ctr writes a NUL to the terminal first, echoed as "^@" (the same with runc)
    out = proc.stdout.replace("\r", "").replace("^@", "")
    return [line for line in out.splitlines() if line], proc.returncode


TTY_CHECK = "tty; test -t 0 && test -t 1 && echo both-tty; exit 4"


def test_run_t_gives_the_task_a_terminal(ctrd):
    """-t: the shim passes --console-socket; minirun-oci sends the pty master back through it."""
    lines, status = on_a_terminal(ctrd, "run", "--rm", "-t", *ctrd.runtime_flags(), IMAGE, "tty",
                                  "sh", "-c", TTY_CHECK)
    assert any(line.startswith("/dev/pts/") for line in lines), lines
    assert "both-tty" in lines
    assert status == 4, lines


def test_exec_t_gives_the_process_a_terminal(ctrd):
    """exec --console-socket --detach --pid-file: what the shim passes for `ctr task exec -t`."""
    with ctrd.detached("exectty", "sleep", "100"):
        lines, status = on_a_terminal(ctrd, "task", "exec", "-t", "--fifo-dir", str(ctrd.fifos),
                                      "--exec-id", "term", "exectty", "sh", "-c", TTY_CHECK)
        # ctr may log a failed resize (the process ended first) among the lines, as with runc
        assert any(line.startswith("/dev/pts/") for line in lines), lines
        assert "both-tty" in lines
        assert status == 4, lines


# -- Kubernetes' path: the CRI plugin with minirun as a RuntimeClass handler ------------------
@pytest.fixture
def cri(ctrd):
    try:
        import grpc  # noqa: F401
    except ImportError:
        pytest.skip("grpcio is not installed (pyproject's test extra has it)")
    from tests.oci import cri as client

    c = client.Cri(str(ctrd.sock))
    yield c
    c.close()


def test_a_pod_runs_with_the_minirun_runtime_handler(ctrd, cri):
    """What the kubelet does for a pod with `runtimeClassName: minirun` (docs/kubernetes.md):
    a sandbox, a container with a memory limit, exec, logs, stop with a grace period, removal.
    Every step goes through containerd's runc shim calling minirun-oci."""
    from tests.oci import cri as client

    assert cri.version() == "containerd"
    pod_cfg = client.pod_config("web", str(ctrd.base / "pods"), f"/{NS}/pods")
    pod = cri.run_pod(pod_cfg, "minirun")
    try:
        # the sandbox is minirun-oci's: its state is in the handler's Root
        assert (ctrd.base / "runc-cri" / CRI_NS / pod / "state.json").exists()
        limit = 48 * 1024 * 1024
        cid = cri.create(pod, client.container_config(
            "app", DOCKER_IMAGE, ["sh", "-c"],
            ["echo hello from $(hostname); cat /sys/fs/cgroup/memory/memory.limit_in_bytes;"
             " trap 'exit 0' TERM; while true; do sleep 0.1; done"], "app.log", memory=limit),
            pod_cfg)
        cri.start(cid)
        assert (ctrd.base / "runc-cri" / CRI_NS / cid / "state.json").exists()
        assert cri.status(cid)[0] == client.RUNNING
        log = ctrd.base / "pods" / "app.log"
        deadline = time.monotonic() + 10
        while len(lines := log.read_text().splitlines() if log.exists() else []) < 2:
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        # CRI's log format: time, stream, tag, text
        assert [line.split(" ", 3)[1:] for line in lines[:2]] == [
            ["stdout", "F", f"hello from {socket.gethostname()}"], ["stdout", "F", str(limit)]]
        # exec (kubectl exec, exec probes): output and status back through CRI
        assert cri.exec_sync(cid, ["sh", "-c", "echo probe; exit 3"]) == ("probe\n", 3)
        # stop with a grace period: SIGTERM first, the trap exits 0
        cri.stop(cid, 10)
        assert cri.status(cid) == (client.EXITED, 0)
        cri.remove(cid)
        assert not (ctrd.base / "runc-cri" / CRI_NS / cid).exists()
    finally:
        cri.remove_pod(pod)
    assert not (ctrd.base / "runc-cri" / CRI_NS / pod).exists()
    # the pod's cgroup parent is the kubelet's (it sets the pod's limits there): it stays
    parents = [*Path("/sys/fs/cgroup").glob(f"*/{NS}/pods"), Path("/sys/fs/cgroup", NS, "pods")]
    left = [p for p in parents if p.is_dir()]
    assert left, "minirun-oci removed the pod's cgroup parent"
    for group in left:
        group.rmdir()
