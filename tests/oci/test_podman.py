"""podman drives minirun-oci as its OCI runtime: the proof that the runc contract holds for a real
client. podman calls `minirun-oci create/start/state/kill/delete/exec/pause/resume` for each
container, through conmon, which is the child subreaper that reaps the container and reports its
exit status back to podman.

Everything podman keeps goes to a private storage under a temporary directory (`--root`,
`--runroot`, `--tmpdir`, `--network-config-dir`): the host's default podman storage is never
touched. minirun-oci keeps its state in its default root, /run/minirun-oci, and the check after
the module looks there for every container id podman's event log names. The flags that stay (see docs/oci.md):
  --cgroup-manager cgroupfs   no systemd here to ask for a scope
  --network none              netavark's bridge would change the host's network config
  --ulimit nofile/nproc       podman asks for nofile=1048576 by default; raising a hard limit
                              needs CAP_SYS_RESOURCE, which root lacks on this VM (runc fails too)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IMAGE_TAR, requires

OCI = str(Path(sys.executable).with_name("minirun-oci"))
IMAGE = "localhost/minirun-busybox"
RUN = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
       "--log-driver", "k8s-file"]
# paths podman creates outside --root on first use; removed after if they were not there before
HOST_PATHS = [Path(p) for p in ("/var/lib/containers", "/var/cache/containers", "/run/containers",
                                "/etc/containers/networks")]


class Podman:
    def __init__(self, base: Path):
        self.base = base
        # podman's clean-up after an exit (`podman container cleanup`, started by conmon) is
        # not given --runtime-flag, so a private --root here would never see `delete`: the
        # default root is used, as in production, and the check looks for this module's ids
        self.oci_root = Path("/run/minirun-oci")
        self.argv = ["podman", "--root", str(base / "root"), "--runroot", str(base / "runroot"),
                     "--tmpdir", str(base / "tmp"), "--network-config-dir", str(base / "net"),
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                     "--storage-driver", "overlay",
                     "--runtime", OCI]
        self.pids: dict[str, int] = {}      # container id -> host pid, for the leak check
        # a pod's infra container takes no --ulimit: the same limits as the default instead
        self.conf = base / "containers.conf"
        self.conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n')

    def __call__(self, *args: str, check: bool = True, timeout: float = 60,
                 stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.argv, *args], stdin=stdin, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "CONTAINERS_CONF": str(self.conf)})
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def inspect(self, cid: str, fmt: str) -> str:
        return self("inspect", "--format", fmt, cid).stdout.strip()

    def created_ids(self) -> list[str]:
        """Every container this storage ever made, from podman's event log (file back end)."""
        out = self("events", "--stream=false", "--filter", "event=create", "--format",
                   "{{.ID}}", check=False).stdout
        return out.split()

    @contextlib.contextmanager
    def detached(self, *args: str):
        """`run -d`: yields the id, removes the container however the test ends."""
        cid = self("run", "-d", *RUN, *args).stdout.strip()
        self.pids[cid] = int(self.inspect(cid, "{{.State.Pid}}"))
        try:
            yield cid
        finally:
            self("rm", "-f", "-t", "0", cid, check=False)


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    requires("root", "busybox-image")
    for tool in ("podman", "conmon"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (`make test-ecosystem` installs it)")
    created = [p for p in HOST_PATHS if not p.exists()]
    # podman's cgroup parent: podman makes it, minirun-oci leaves it (as runc does)
    parents = {*Path("/sys/fs/cgroup").glob("*/libpod_parent")}
    base = tmp_path_factory.mktemp("podman")
    p = Podman(base)
    try:
        p("import", str(IMAGE_TAR), IMAGE)
        yield p
    finally:
        ids = p("ps", "-aq", "--no-trunc", check=False).stdout.split()
        p("rm", "-af", "-t", "0", check=False)
        p("rmi", "-af", check=False)
        leaks = leftovers(p, ids)
        remove_podman_store(base, created, parents)
    assert not ids, f"a test left podman containers behind: {ids}"
    assert not leaks, f"podman + minirun-oci left these behind: {leaks}"


def remove_podman_store(base: Path, created: list[Path], parents: set[Path]) -> None:
    """Undo a private podman store: its mounts under `base`, `base` itself, the host paths it
    made (`created`), and the libpod_parent groups that were not there before (`parents`)."""
    subprocess.run(["umount", "-R", str(base)], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)
    for path in created:
        shutil.rmtree(path, ignore_errors=True)
    for group in {*Path("/sys/fs/cgroup").glob("*/libpod_parent")} - parents:
        with contextlib.suppress(OSError):
            group.rmdir()


def leftovers(p: Podman, ids: list[str]) -> list[str]:
    """minirun-oci state, cgroups, container processes and conmons of this module's containers.
    podman's clean-up after an exit runs in `podman container cleanup`, which conmon starts:
    give it a moment."""
    deadline = time.monotonic() + 10
    while True:
        found = []
        for cid in {*p.pids, *ids, *p.created_ids()}:
            if (p.oci_root / cid).exists():
                found.append(f"minirun-oci state {cid[:12]}")
            found += [str(g) for g in Path("/sys/fs/cgroup").glob(f"*/libpod_parent/libpod-{cid}")]
            out = subprocess.run(["pgrep", "-f", f"conmon.*{cid}"], capture_output=True, text=True)
            found += [f"conmon pid {pid}" for pid in out.stdout.split()]
        for cid, pid in p.pids.items():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                if f"libpod-{cid}" in Path(f"/proc/{pid}/cgroup").read_text():
                    found.append(f"container process {pid}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_run_prints_and_exits_with_the_container_status(podman):
    proc = podman("run", "--rm", *RUN, IMAGE, "sh", "-c", "echo hi from $(hostname); exit 3",
                  check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.startswith("hi from ")


def test_run_of_a_missing_program_is_127_with_runc_s_message(podman):
    proc = podman("run", "--rm", *RUN, IMAGE, "no-such-program", check=False)
    assert proc.returncode == 127, proc.stderr
    assert "executable file not found in $PATH" in proc.stderr


def test_detached_exec_logs_stop_rm(podman):
    script = 'trap "exit 7" TERM; echo started; while true; do sleep 0.1; done'
    with podman.detached(IMAGE, "sh", "-c", script) as cid:
        assert podman.inspect(cid, "{{.State.Status}}") == "running"
        # exec joins the container's namespaces: same hostname, sees the first process as PID 1
        out = podman("exec", cid, "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '").stdout
        hostname, cmdline = out.splitlines()
        assert hostname == cid[:12]
        assert cmdline.startswith("sh -c trap")
        assert podman("exec", cid, "sh", "-c", "exit 5", check=False).returncode == 5
        top = podman("top", cid, "pid", "args").stdout
        assert "sleep 0.1" in top or "trap" in top
        assert podman("logs", cid).stdout.splitlines()[0] == "started"
        podman("stop", "-t", "5", cid)
        # the TERM trap ran: conmon reaped the container and podman got its status
        assert podman.inspect(cid, "{{.State.Status}}") == "exited"
        assert podman.inspect(cid, "{{.State.ExitCode}}") == "7"
        podman("rm", cid)
        assert podman("ps", "-aq", "--filter", f"id={cid}").stdout.strip() == ""


def test_stop_kills_a_pid_1_that_ignores_sigterm(podman):
    # sleep as PID 1 of its namespace has no SIGTERM handler: the signal is ignored, stop
    # falls back to SIGKILL after the timeout and podman reports 128+9
    with podman.detached(IMAGE, "sleep", "100") as cid:
        podman("stop", "-t", "1", cid)
        assert podman.inspect(cid, "{{.State.ExitCode}}") == "137"


def test_pause_freezes_and_unpause_thaws(podman):
    with podman.detached(IMAGE, "sh", "-c", "while true; do date +%s%N > /tmp/tick; sleep 0.05; done") as cid:
        podman("pause", cid)
        assert podman.inspect(cid, "{{.State.Status}}") == "paused"
        freezer = next(Path("/sys/fs/cgroup").glob(f"freezer/libpod_parent/libpod-{cid}"), None)
        if freezer is not None:
            assert (freezer / "freezer.state").read_text().strip() == "FROZEN"
        pid = podman.pids[cid]
        tick = Path(f"/proc/{pid}/root/tmp/tick")
        before = tick.read_text()
        time.sleep(0.3)
        assert tick.read_text() == before, "a paused container made progress"
        podman("unpause", cid)
        assert podman.inspect(cid, "{{.State.Status}}") == "running"
        deadline = time.monotonic() + 5
        while tick.read_text() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tick.read_text() != before, "the container did not resume"


def test_run_t_gives_the_container_a_terminal(podman):
    proc = podman("run", "--rm", "-t", *RUN, IMAGE, "sh", "-c",
                  "tty; test -t 0 && test -t 1 && echo both-tty")
    lines = proc.stdout.replace("\r", "").splitlines()
    assert lines[0].startswith("/dev/pts/")
    assert lines[1] == "both-tty"


def test_memory_limit_is_visible_inside(podman):
    requires("cgroup:memory")
    out = podman("run", "--rm", *RUN, "--memory", "64m", IMAGE, "sh", "-c",
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
                 " || cat /sys/fs/cgroup/memory.max").stdout.strip()
    assert out == str(64 * 1024 * 1024)


def test_runtime_state_follows_podman(podman):
    """What minirun-oci itself reports while podman holds a container, and that `podman rm`
    leaves no state behind in its root."""
    with podman.detached(IMAGE, "sleep", "100") as cid:
        state = json.loads(subprocess.run([OCI, "--root", str(podman.oci_root), "state", cid],
                                          capture_output=True, text=True, check=True).stdout)
        assert state["status"] == "running"
        assert state["pid"] == podman.pids[cid]
        podman("rm", "-f", "-t", "0", cid)
        deadline = time.monotonic() + 10
        while (podman.oci_root / cid).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (podman.oci_root / cid).exists()


def test_a_pod_s_containers_share_its_namespaces(podman):
    """podman pods: the infra container makes the network, IPC and UTS namespaces, and every other
    container of the pod joins them by path (linux.namespaces[].path, /proc/PID/ns/...)."""
    pod = "minirun-pod"
    podman("pod", "create", "--name", pod, "--network", "none")
    try:
        podman("pod", "start", pod)
        infra = podman("pod", "inspect", "--format", "{{.InfraContainerID}}", pod).stdout.strip()
        infra_pid = int(podman.inspect(infra, "{{.State.Pid}}"))
        podman.pids[infra] = infra_pid
        in_pod = [f for f in RUN if f not in ("--network", "none")]    # the pod's network instead
        out = podman("run", "--rm", "--pod", pod, *in_pod, IMAGE, "sh", "-c",
                     "stat -L -c %i /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts; hostname"
                     ).stdout.split()
        assert out[:3] == [str(os.stat(f"/proc/{infra_pid}/ns/{n}").st_ino) for n in ("net", "ipc", "uts")]
        assert out[3] == pod                     # the pod's hostname, set in the shared UTS namespace
    finally:
        podman("pod", "rm", "-f", "-t", "0", pod, check=False)


def test_an_exported_task_definition_runs_with_podman_kube_play(podman, tmp_path):
    """`minirun task-definition export` writes what `podman kube play` runs (with minirun-oci):
    the command, the environment and the memory limit reach the container."""
    td = tmp_path / "td.json"
    td.write_text(json.dumps({"family": "exported", "containerDefinitions": [{
        "name": "web", "image": IMAGE, "memory": 48, "cpu": 256,
        "entryPoint": ["sh", "-c"],
        "command": ["echo mode=$MODE; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; sleep 100"],
        "environment": [{"name": "MODE", "value": "prod"}]}]}))
    manifest = tmp_path / "exported.yaml"
    minirun = str(Path(sys.executable).with_name("minirun"))
    subprocess.run([minirun, "task-definition", "export", "--file", str(td), "-o", str(manifest)],
                   check=True)
    try:
        podman("kube", "play", "--network", "none", str(manifest))
        deadline = time.monotonic() + 10
        while True:
            logs = podman("logs", "exported-pod-0-web", check=False).stdout.split()
            if len(logs) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert logs[:2] == ["mode=prod", str(48 * 1024 * 1024)]
    finally:
        podman("kube", "down", str(manifest), check=False)
