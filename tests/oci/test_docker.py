"""Docker's engine drives minirun-oci: `docker run --runtime minirun`, through a private dockerd
20.10 (Debian's `docker.io`) whose daemon.json names minirun-oci as a runtime. dockerd hands the
container to its containerd, whose io.containerd.runc.v2 shim calls `minirun-oci create/start/
state/exec/kill/delete` as it calls runc, and reports the exit status back up to `docker`.

The module starts a dockerd of its own, with everything it keeps under a temporary directory
(`--data-root`, `--exec-root`, `--pidfile`, the socket, daemon.json, the trust key) and without
touching the host's network: `--iptables=false --ip6tables=false --bridge=none --ip-forward=false
--ip-masq=false`, containers on `--network none`. The CLI (whatever its version; /usr/local/bin/
docker 28 on the VM) talks to that socket with `-H` and negotiates the daemon's API version. The
busybox image comes from the project's rootfs tarball (`docker import`), never from a registry.
dockerd starts and stops its own containerd; containerd 1.6 puts the shims' sockets in
/run/containerd/s, the managed containerd makes /opt/containerd, and dockerd /run/docker/plugins
and runc's default root /run/runc, whatever their configuration says: they are removed after if
they were not there before.

Afterwards dockerd is stopped by pid, and what it and minirun-oci made is checked for: containers,
shims, mounts under the directory, the cgroups under its cgroup parent, minirun-oci's state, and
that `ip link` and `nft list ruleset` are as they were.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IMAGE_TAR, requires, start_daemon, stop_daemon

OCI = str(Path(sys.executable).with_name("minirun-oci"))
IMAGE = "minirun-busybox:latest"
BINARIES = ("dockerd", "docker", "containerd", "containerd-shim-runc-v2")
# the cgroup parent of this run's containers (dockerd's default is /docker): one per run
PARENT = f"minirun-docker-{os.getpid()}"
# made outside the private directory whatever the configuration says; removed after if new
HOST_PATHS = [Path(p) for p in ("/run/containerd", "/run/containerd/s", "/opt/containerd",
                                "/run/docker", "/etc/docker", "/run/runc")]
# of those, the ones another runtime may use meanwhile: removed only if empty
SHARED_PATHS = {Path(p) for p in ("/run/containerd", "/run/containerd/s", "/run/runc")}
RUN = ["--network", "none"]


class Dockerd:
    """A private dockerd, and the `docker` CLI pointed at its socket."""

    def __init__(self, base: Path, runtimes: dict[str, str] | None = None):
        self.base = base
        self.sock = base / "docker.sock"
        self.proc: subprocess.Popen | None = None
        self.runtimes = {"minirun": OCI, **(runtimes or {})}
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}",
                    "DOCKER_CONFIG": str(base / "cli")}       # not ~/.docker

    def start(self) -> None:
        config = {"runtimes": {name: {"path": path} for name, path in self.runtimes.items()},
                  "cgroup-parent": f"/{PARENT}", "exec-opts": ["native.cgroupdriver=cgroupfs"],
                  "storage-driver": "overlay2",
                  # dockerd 20.10 writes its trust key to /etc/docker/key.json otherwise
                  "deprecated-key-path": str(self.base / "key.json")}
        (self.base / "daemon.json").write_text(json.dumps(config, indent=1))
        argv = ["dockerd", "--config-file", str(self.base / "daemon.json"),
                "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
                "--pidfile", str(self.base / "docker.pid"), "-H", f"unix://{self.sock}",
                "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false",
                "--ip-masq=false", "--userland-proxy=false"]
        self.proc = start_daemon(argv, self.base / "dockerd.log", timeout=30, poll=0.2,
                                 answers=lambda: self.docker("version", check=False).returncode == 0)

    def docker(self, *args: str, check: bool = True, timeout: float = 60,
               input: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    __call__ = docker

    def inspect(self, cid: str, fmt: str) -> str:
        return self.docker("inspect", "--format", fmt, cid).stdout.strip()

    @contextlib.contextmanager
    def detached(self, *args: str, runtime: str = "minirun"):
        """`docker run -d`: yields the id; removes the container however the test ends."""
        cid = self.docker("run", "-d", "--runtime", runtime, *RUN, *args).stdout.strip()
        try:
            yield cid
        finally:
            self.docker("rm", "-f", cid, check=False)

    def state_dirs(self) -> list[Path]:
        """minirun-oci's state of each container, in the --root dockerd 20.10's shim passes
        whatever the runtime's name: EXEC_ROOT/runtime-runc/moby/ID."""
        return [p for p in (self.base / "exec").glob("runtime-runc/moby/[!.]*")]

    def cgroups(self) -> list[Path]:
        """The groups under this run's cgroup parent, in every hierarchy, deepest first."""
        found = []
        for top in [*Path("/sys/fs/cgroup").glob(f"*/{PARENT}"), Path("/sys/fs/cgroup") / PARENT]:
            for dirpath, _, _ in os.walk(top, topdown=False):
                if Path(dirpath) != top:
                    found.append(Path(dirpath))
        return found

    def mounts(self) -> list[str]:
        points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        return [p for p in points if p.startswith(f"{self.base}/")]

    def helpers(self) -> list[int]:
        """Live processes whose command line names the private directory (the managed containerd,
        the shims: their -address is under it), other than dockerd itself."""
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or (self.proc and int(proc.name) == self.proc.pid):
                continue
            with contextlib.suppress(OSError):
                if os.fsencode(str(self.base)) in (proc / "cmdline").read_bytes():
                    if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        pids.append(int(proc.name))
        return pids

    def leftovers(self) -> list[str]:
        found = [f"container {c}" for c in self.docker("ps", "-aq", check=False).stdout.split()]
        found += [f"minirun-oci state {p.name}" for p in self.state_dirs()]
        found += [f"cgroup {p}" for p in self.cgroups()]
        found += [f"mount {m}" for m in self.mounts() if "/overlay2/" in m]
        return found

    def stop(self) -> list[str]:
        """Stop dockerd by pid (it stops its containerd); remove by force what is still there and
        return it (a leak to report)."""
        forced = stop_daemon(self.proc, 30)
        deadline = time.monotonic() + 10
        while (left := self.helpers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            forced.append(f"process {pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()[:80]!r}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for point in sorted(self.mounts(), key=len, reverse=True):
            # dockerd leaves its own bind of the plugins' and netns directories: not a leak
            if not point.endswith(("/exec/netns", "/data/overlay2", "/exec/plugins")):
                forced.append(f"mount {point}")
            subprocess.run(["umount", "-l", point], capture_output=True)
        for group in self.cgroups():
            forced.append(f"cgroup {group}")
            with contextlib.suppress(OSError):
                group.rmdir()
        for parent in [*Path("/sys/fs/cgroup").glob(f"*/{PARENT}"), Path("/sys/fs/cgroup") / PARENT]:
            with contextlib.suppress(OSError):
                parent.rmdir()            # the parent dockerd's paths imply: ours to remove
        return forced


def host_network() -> tuple[str, str]:
    """The names `ip link` lists and the nft tables with their rules, to compare before and after.
    Names only (another link's carrier may change meanwhile), and leaving out minirun's own links
    (mr*) and tables (minirun_*), which other tests on the machine may make meanwhile: dockerd
    would make docker0, br-*, veth* and iptables' filter and nat tables."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = sorted(line.split()[1].split("@")[0].rstrip(":") for line in links.splitlines())
    nft = []
    if shutil.which("nft"):
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        for table in sorted(tables.splitlines()):
            family, name = table.split()[1:3]
            if not name.startswith("minirun_"):
                nft.append(subprocess.run(["nft", "list", "table", family, name],
                                          capture_output=True, text=True).stdout)
    return "\n".join(n for n in names if not n.startswith("mr")), "".join(nft)


@contextlib.contextmanager
def private_dockerd(base: Path, runtimes: dict[str, str] | None = None):
    """A started Dockerd with the busybox image imported; on exit it is stopped and everything it
    made outside `base` is removed. Raises AssertionError listing what had to be forced, and if
    the host's links or nft ruleset changed."""
    created = [p for p in HOST_PATHS if not p.exists()]
    network = host_network()
    d = Dockerd(base, runtimes)
    forced: list[str] = []
    try:
        d.start()
        d.docker("import", str(IMAGE_TAR), IMAGE)
        yield d
        d.docker("rm", "-f", *d.docker("ps", "-aq").stdout.split(), check=False)
        d.docker("rmi", "-f", IMAGE, check=False)
    finally:
        forced = d.stop()
        for path in reversed(created):
            if path in SHARED_PATHS:
                with contextlib.suppress(OSError):
                    path.rmdir()
            else:
                # dockerd's plugins directory, its managed containerd's opt directory, the key
                shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["umount", "-R", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    assert not forced, f"dockerd + minirun-oci left these behind: {forced}"
    links, nft = host_network()
    assert links == network[0], f"the host's links changed:\nbefore:\n{network[0]}\nafter:\n{links}"
    assert nft == network[1], f"the host's nft ruleset changed:\nbefore:\n{network[1]}\nafter:\n{nft}"


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory):
    requires("root", "busybox-image")
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian's docker.io package: "
                    "`make test-ecosystem` installs it)")
    with private_dockerd(tmp_path_factory.mktemp("dockerd")) as d:
        yield d


@pytest.fixture
def docker(dockerd):
    """Per test: nothing may be left in dockerd or on the host afterwards."""
    yield dockerd
    deadline = time.monotonic() + 10
    while (left := dockerd.leftovers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    dockerd.docker("rm", "-f", *dockerd.docker("ps", "-aq").stdout.split(), check=False)
    assert not left, f"the test left these behind: {left}"


def test_the_cli_and_dockerd_agree_on_an_api_version(docker):
    """The CLI may be newer than the daemon (28 beside 20.10 on the VM): it must negotiate down
    to the daemon's API version, not fail."""
    out = docker("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}} "
                 "{{.Server.Version}}").stdout.split()
    client, server, version = out
    assert client == server, out
    assert version.startswith("20.10."), out
    runtimes = json.loads(docker("info", "--format", "{{json .Runtimes}}").stdout)
    assert runtimes["minirun"]["path"] == OCI


def test_run_prints_keeps_streams_apart_and_exits_with_the_container_status(docker):
    proc = docker("run", "--rm", "--runtime", "minirun", *RUN, IMAGE, "sh", "-c",
                  "echo hi from $(hostname); echo oops >&2; exit 3", check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.startswith("hi from ")
    assert proc.stderr.strip() == "oops"


def test_run_of_a_missing_program_is_127_with_minirun_oci_s_message(docker):
    proc = docker("run", "--rm", "--runtime", "minirun", *RUN, IMAGE, "no-such-program",
                  check=False)
    assert proc.returncode == 127, proc.stderr
    assert "no-such-program: executable file not found in $PATH" in proc.stderr


def test_stdin_reaches_the_container_with_i(docker):
    proc = docker("run", "--rm", "-i", "--runtime", "minirun", *RUN, IMAGE, "sh", "-c",
                  "wc -l", input="a\nb\nc\n")
    assert proc.stdout.strip() == "3"


def test_detached_exec_stop_rm(docker):
    script = 'trap "exit 7" TERM; echo started; while true; do sleep 0.1; done'
    with docker.detached(IMAGE, "sh", "-c", script) as cid:
        assert docker.inspect(cid, "{{.State.Status}}") == "running"
        pid = int(docker.inspect(cid, "{{.State.Pid}}"))
        # the container's process is a host process in the cgroup dockerd asked for
        assert f":/{PARENT}/{cid}" in Path(f"/proc/{pid}/cgroup").read_text()
        # minirun-oci holds it: its state, under the root the shim passes
        states = docker.state_dirs()
        assert [p.name for p in states] == [cid]
        state = json.loads(subprocess.run([OCI, "--root", str(states[0].parent), "state", cid],
                                          capture_output=True, text=True, check=True).stdout)
        assert (state["status"], state["pid"]) == ("running", pid)
        # exec joins its namespaces: its hostname, the first process as PID 1, its status back
        out = docker("exec", cid, "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '").stdout
        hostname, cmdline = out.splitlines()
        assert hostname == cid[:12]
        assert cmdline.startswith("sh -c trap")
        assert docker("exec", cid, "sh", "-c", "exit 5", check=False).returncode == 5
        assert docker("logs", cid).stdout.splitlines()[0] == "started"
        docker("stop", "-t", "5", cid)
        # the TERM trap ran: the shim reaped the container and dockerd got its status
        assert docker.inspect(cid, "{{.State.Status}}") == "exited"
        assert docker.inspect(cid, "{{.State.ExitCode}}") == "7"
        docker("rm", cid)
        assert docker("ps", "-aq", "--filter", f"id={cid}").stdout.strip() == ""
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_stop_kills_a_pid_1_that_ignores_sigterm(docker):
    with docker.detached(IMAGE, "sleep", "100") as cid:
        docker("stop", "-t", "1", cid)
        assert docker.inspect(cid, "{{.State.ExitCode}}") == "137"


def test_pause_freezes_and_unpause_thaws(docker):
    with docker.detached(IMAGE, "sh", "-c", "while true; do date +%s%N > /tmp/tick; sleep 0.05; done") as cid:
        pid = int(docker.inspect(cid, "{{.State.Pid}}"))
        docker("pause", cid)
        assert docker.inspect(cid, "{{.State.Status}}") == "paused"
        tick = Path(f"/proc/{pid}/root/tmp/tick")
        before = tick.read_text()
        time.sleep(0.3)
        assert tick.read_text() == before, "a paused container made progress"
        docker("unpause", cid)
        deadline = time.monotonic() + 5
        while tick.read_text() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tick.read_text() != before, "the container did not resume"


def test_memory_limit_is_seen_inside(docker):
    requires("cgroup:memory")
    out = docker("run", "--rm", "--runtime", "minirun", *RUN, "--memory", "64m", IMAGE, "sh", "-c",
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
                 " || cat /sys/fs/cgroup/memory.max").stdout.strip()
    assert out == str(64 * 1024 * 1024)


def test_the_default_seccomp_profile_is_enforced(docker):
    """Docker's default profile (a deny-by-default allow-list) reaches the container: a syscall
    it refuses (unshare of a user namespace without CAP_SYS_ADMIN) fails there, and the filter
    shows in /proc/self/status."""
    out = docker("run", "--rm", "--runtime", "minirun", *RUN, IMAGE, "sh", "-c",
                 "grep Seccomp: /proc/self/status; unshare -U true && echo allowed || echo refused"
                 ).stdout.split()
    assert out[:2] == ["Seccomp:", "2"]
    assert out[-1] == "refused"
