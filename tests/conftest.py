"""Shared fixtures: a fresh data root per session, the busybox image, the `minirun` command,
capability-named skips, and a check that the suite leaves nothing behind on the host.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MINIRUN = [str(Path(sys.executable).with_name("minirun"))]
IMAGE_TAR = REPO / "rootfs" / "build" / "busybox.tar"
# How many times slower than this project's usual machine the tests run here: 1 on the host;
# in the VM tier (tests/vm/guest.sh measures a Python start in the guest against the host's)
# qemu without KVM is tens of times slower. Time limits go through slow(), never skips.
SLOWNESS = max(1.0, float(os.environ.get("MINIRUN_TEST_SLOWNESS") or 1))


def slow(seconds: float) -> float:
    """A time limit tuned on the usual machine, stretched by how slow this one is."""
    return seconds * SLOWNESS


def extract_trusted(tar: Path, dest: Path) -> None:
    """Unpack one of our own tarballs as it is (device nodes, absolute links): tarfile's
    "fully_trusted" filter, which is also what a Python without extraction filters does (they
    came in 3.11.4; Debian 12's python3.11, which the venv is made from, is 3.11.2)."""
    import tarfile

    with tarfile.open(tar) as t:
        if hasattr(tarfile, "fully_trusted_filter"):
            t.extractall(dest, filter="fully_trusted")
        else:
            t.extractall(dest)


def requires(*features: str) -> None:
    """Skip, with the reason printed, when the machine lacks a feature: "root", "overlay",
    "cgroup:memory", "busybox-image". Never fake a pass."""
    for feature in features:
        if feature == "root" and os.geteuid() != 0:
            pytest.skip("needs root")
        elif feature == "overlay" and "overlay" not in Path("/proc/filesystems").read_text():
            pytest.skip("the kernel has no overlayfs")
        elif feature == "cgroup:devices":
            # v1's devices controller, or else on cgroup2 an eBPF program the runtime attaches
            # to each group (devices_bpf.py): either way, device rules are enforced
            from minirun.runtime.cgroups import detect

            mgr = detect()
            if "devices" not in mgr.available() and mgr.mounts.unified is None:
                pytest.skip("this machine has neither a v1 devices controller nor cgroup2")
        elif feature == "cgroup:cpuacct":
            # CPU time: v1's cpuacct, or cgroup2's cpu.stat (core: in every v2 group)
            from minirun.runtime.cgroups import detect

            mgr = detect()
            if "cpuacct" not in mgr.available() and mgr.mounts.unified is None:
                pytest.skip("this machine has neither a v1 cpuacct controller nor cgroup2")
        elif feature.startswith("cgroup:"):
            from minirun.runtime.cgroups import detect

            if feature.split(":", 1)[1] not in detect().available():
                pytest.skip(f"this machine lacks the cgroup controller {feature.split(':', 1)[1]}")
        elif feature == "busybox-image" and not IMAGE_TAR.exists():
            pytest.skip(f"{IMAGE_TAR} missing: run `make image`")


class Minirun:
    """Run the real `minirun` command against one data root, as a user would."""

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, *args: str, input: str | bytes | None = None, check: bool = True,
                 timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [*MINIRUN, "--root", str(self.root), *args], input=input, capture_output=True,
            text=not isinstance(input, bytes), timeout=slow(timeout), env=env,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"minirun {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def out(self, *args: str, **kw) -> str:
        return self(*args, **kw).stdout.strip()

    def wait_for_log(self, cid: str, text: str, timeout: float = 10.0) -> None:
        """Poll `logs` until `text` shows (a detached script saying it got this far); returns
        at the timeout either way, for the caller's own assertions to report what is missing."""
        deadline = time.monotonic() + slow(timeout)
        while text not in self.out("logs", cid) and time.monotonic() < deadline:
            time.sleep(0.05)

    @contextlib.contextmanager
    def detached(self, *args: str, **kw):
        """`run -d ARGS`: yields the id, and force-removes the container however the test ends."""
        cid = self.out("run", "-d", *args, **kw)
        try:
            yield cid
        finally:
            self("rm", "-f", cid, check=False)


def cgroup_value(cid: str, controller: str, v1_file: str, v2_file: str) -> str:
    """A container's cgroup setting, read where this host keeps it (v1 or v2 file name)."""
    from minirun.runtime.cgroups import detect

    mgr = detect()
    group = mgr.open(f"minirun/{cid}")
    name = v1_file if mgr.available().get(controller) == "v1" else v2_file
    return Path(group.paths[controller], name).read_text().strip()


def cgroup_dirs(pattern: str) -> list[Path]:
    """The directories matching `pattern` ("minirun/<id>", "minirun-oci") in every cgroup
    hierarchy mounted here, found as the runtime finds them (/proc/self/mountinfo): each v1
    controller's mount, and cgroup2's wherever it is (/sys/fs/cgroup/unified on a hybrid host,
    /sys/fs/cgroup itself with cgroup v2 alone, where a glob of "*/pattern" would miss them)."""
    from minirun.runtime.cgroups._mounts import cgroup_mounts

    mounts = cgroup_mounts("/proc/self/mountinfo")
    points = dict.fromkeys([*mounts.v1.values(), *([mounts.unified] if mounts.unified else [])])
    return sorted({d for point in points for d in Path(point).glob(pattern)})


def start_daemon(argv: list[str], log: Path, answers, timeout: float, poll: float = 0.1) -> subprocess.Popen:
    """Start a daemon of a test's own (dockerd, containerd) in a session of its own, its output
    in `log`, and wait until `answers()` is true; if it exits or the time runs out first, fail
    with the end of its log."""
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while not answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text().splitlines()[-20:])
            raise AssertionError(f"{Path(argv[0]).name} did not start:\n{tail}")
        time.sleep(poll)
    return proc


def stop_daemon(proc: subprocess.Popen | None, timeout: float) -> list[str]:
    """SIGTERM to a daemon start_daemon started, SIGKILL after `timeout` s; returns what had to
    be forced (a leak to report)."""
    if proc is None or proc.poll() is not None:
        return []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return []
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return [f"{Path(proc.args[0]).name} ignored SIGTERM"]


def quiet_warmer() -> None:
    """Stop the cgroup-lock warmer and wait for its thread to end (runtime/cgroup_warm.py). It
    lingers a second after each container start, a native thread that opens our cgroup.procs
    for each write: a count of our fds or threads would catch it passing."""
    from minirun.runtime import cgroup_warm

    cgroup_warm.stop()
    cgroup_warm.wait_ended(2.0)


@pytest.fixture(scope="session", autouse=True)
def oci_cgroup_parent():
    """minirun-oci keeps its default cgroup parent (minirun-oci/, in every hierarchy) once made,
    as Docker keeps docker/: at the end, the tests remove the ones they made, if empty."""
    before = set(cgroup_dirs("minirun-oci"))
    yield
    for parent in set(cgroup_dirs("minirun-oci")) - before:
        with contextlib.suppress(OSError):
            parent.rmdir()


@pytest.fixture(scope="session")
def data_root():
    root = Path(tempfile.mkdtemp(prefix="minirun-test-"))
    root.chmod(0o711)              # as /var/lib/minirun: a user namespace's root must pass through
    private_network_settings(root)
    yield root
    with contextlib.suppress(Exception):
        from minirun.net.container import teardown

        teardown(root)                     # the root's bridges, nft table and network helper
    shutil.rmtree(root, ignore_errors=True)


def private_network_settings(root: Path) -> None:
    """A bridge name, subnets and an nft table of this root's own, so that test runs (ours, and
    other people's on the same host) never share or break each other's networks."""
    from minirun.net.settings import private

    private(root, "mrt")


@pytest.fixture(scope="session")
def mr(data_root) -> Minirun:
    requires("root", "overlay", "busybox-image")
    m = Minirun(data_root)
    m("image", "import", str(IMAGE_TAR), "busybox")
    yield m
    # every test removes its containers; what is left here is a leak the check below reports
    left = m.out("ps", "-a", "-q")
    if left:
        m("rm", "-f", *left.split(), check=False)


@pytest.fixture
def clean(mr, data_root):
    """Asserts the test left no container, mount, cgroup or monitor process behind (and removes
    what it left, so one failure does not cascade into the next test)."""
    yield mr
    leaks = leftovers(data_root)
    if leaks:
        left = mr.out("ps", "-a", "-q")
        if left:
            mr("rm", "-f", *left.split(), check=False)
    assert not leaks, f"the test left these behind: {leaks}"


def leftovers(data_root: Path) -> list[str]:
    found = []
    containers = data_root / "containers"
    if containers.exists():
        found += [f"container dir {p.name[:12]}" for p in containers.iterdir()]
    mountinfo = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mountinfo.splitlines() if str(data_root) in line]
    for ids in (p.name for p in containers.iterdir()) if containers.exists() else []:
        found += [str(p) for p in cgroup_dirs(f"minirun/{ids}")]
    staging = data_root / "images" / "tmp"  # an import, load, save or build left half-done work
    if staging.exists():
        found += [f"image staging {p.name}" for p in staging.iterdir()]
    index_path = data_root / "images" / "repositories.json"
    if index_path.exists():             # layers and config blobs no image names (a crash's garbage)
        import json

        index = json.loads(index_path.read_text())
        layers, blobs = data_root / "images" / "layers", data_root / "images" / "blobs" / "sha256"
        found += [f"image layer {p.name[:12]} (no image uses it)" for p in layers.iterdir()
                  if p.name not in index["layers"]] if layers.exists() else []
        found += [f"image config {p.name[:12]} (no such image)" for p in blobs.iterdir()
                  if p.name not in index["images"]] if blobs.exists() else []
    out = subprocess.run(["pgrep", "-f", f"minirun-monitor.*{data_root}"], capture_output=True, text=True)
    found += [f"monitor pid {pid}" for pid in out.stdout.split()]
    return found + network_leftovers(data_root)


def network_leftovers(data_root: Path) -> list[str]:
    """Leases, claimed ports, bridge ports (veths) and nft rules of containers that are gone."""
    import json

    from minirun.net import client

    client.running(data_root)      # a barrier: netd deletes veths right after answering `rm`
    found = []
    alive = {p.name for p in (data_root / "containers").iterdir()} if (data_root / "containers").exists() else set()
    for leases in (data_root / "networks").glob("*.leases"):
        found += [f"lease {ip} on {leases.stem}" for ip, holder in json.loads(leases.read_text()).items()
                  if holder["id"] not in alive]
    ports = data_root / "net" / "ports.json"
    if ports.exists():
        found += [f"port {key}" for key, v in json.loads(ports.read_text()).items() if v["id"] not in alive]
    found += [f"network {p.name} half removed" for p in (data_root / "networks").glob("*.json.removing")]
    for record in (data_root / "networks").glob("*.json"):
        bridge = json.loads(record.read_text())["Bridge"]
        brif = Path(f"/sys/class/net/{bridge}/brif")
        if brif.is_dir():
            found += [f"veth {name} on {bridge}" for name in os.listdir(brif)
                      if not any(name[2:14] == cid[:12] for cid in alive)]
    config = data_root / "net" / "config.json"
    if config.exists():
        table = json.loads(config.read_text()).get("table", "minirun")
        out = subprocess.run(["nft", "-j", "list", "table", "ip", table], capture_output=True, text=True)
        if out.returncode == 0:
            rules = [i["rule"] for i in json.loads(out.stdout)["nftables"] if "rule" in i]
            found += [f"nft rule for {r['comment'][:12]} in {r['chain']}" for r in rules
                      if r.get("comment") and not r["comment"].startswith("net:")
                      and r["comment"] not in alive]
    return found


# -- the scheduler: a cluster on a data root of its own, and what it may leave behind ---------
@pytest.fixture
def cluster():
    """A data root with the busybox image for one cluster; after the test, `cluster down` and
    a check that no cluster process, container, cgroup or socket is left."""
    requires("root", "overlay", "busybox-image")
    root = Path(tempfile.mkdtemp(prefix="minirun-cluster-"))
    m = Minirun(root)
    m("image", "import", str(IMAGE_TAR), "busybox")
    try:
        yield m
    finally:
        ids = container_ids(m)
        m("cluster", "down", "--timeout", "5", check=False)
        from minirun.net.container import teardown

        teardown(root)                     # the root's bridge, nft table and network helper
        leaks = cluster_leftovers(root, ids)
        shutil.rmtree(root, ignore_errors=True)
    assert not leaks, f"the cluster left these behind: {leaks}"


def container_ids(m: Minirun) -> list[str]:
    import json

    out = m("ps", "-a", "--format", "json", check=False).stdout
    try:
        return [c["Id"] for c in json.loads(out or "[]")]
    except ValueError:
        return []


def cluster_leftovers(root: Path, ids: list[str]) -> list[str]:
    from minirun import procfs

    found = []
    cdir = root / "cluster"
    for pidfile in [cdir / "manager.pid", *(cdir / "workers").glob("*.pid")] if cdir.exists() else []:
        try:
            pid, start = (int(x) for x in pidfile.read_text().split())
        except (FileNotFoundError, ValueError):
            continue
        if procfs.is_alive(pid, start):
            found.append(f"{pidfile.stem} pid {pid}")
    out = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True)
    found += [f"process {pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()[:80]!r}"
              for pid in out.stdout.split() if Path(f"/proc/{pid}").exists()]
    if (cdir / "manager.sock").exists():
        found.append("manager.sock")
    if (cdir / "volumes").exists():
        found += [f"task volume {p.name}" for p in (cdir / "volumes").iterdir()]
    if (root / "containers").exists():
        found += [f"container dir {p.name[:12]}" for p in (root / "containers").iterdir()]
    for cid in ids:
        found += [str(p) for p in cgroup_dirs(f"minirun/{cid}*")]
    mountinfo = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mountinfo.splitlines() if str(root) in line]
    return found
