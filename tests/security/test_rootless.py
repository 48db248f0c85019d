"""Rootless: a user who is not root runs containers (runtime/rootless.py).

Each fixture makes a throwaway user (useradd, a home under a temp dir), runs the real `minirun`
as that user with runuser, and afterwards removes the user and puts /etc/passwd, group, shadow,
gshadow (and their `-` backups), /etc/subuid and /etc/subgid back byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import IMAGE_TAR, REPO, requires

pytestmark = pytest.mark.root

ETC = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/subuid", "/etc/subgid",
       "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-", "/etc/subuid-", "/etc/subgid-"]
SUB_START, SUB_COUNT = 1_400_000, 65536


def _interpreter(user: str) -> list[str] | None:
    """How `user` can start minirun: the venv's own command when the user can reach its Python
    (here it lives under /root, 0700), else the system's python3 of the same version with the
    venv's packages on PYTHONPATH (the C extension is built for this ABI). None: neither."""
    venv_python = os.path.realpath(sys.executable)
    probe = subprocess.run(["runuser", "-u", user, "--", venv_python, "-c", "import minirun._native"],
                           capture_output=True, cwd="/")
    if probe.returncode == 0:
        return [str(Path(sys.executable).with_name("minirun"))]
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if os.access(system, os.X_OK):
        return [system, "-m", "minirun"]
    return None


class User:
    """A throwaway user and `minirun` run as that user (its own default data root)."""

    def __init__(self, subids: bool):
        self.name = f"mrt{uuid.uuid4().hex[:8]}"
        self.base = Path(tempfile.mkdtemp(prefix="minirun-rootless-"))
        self.base.chmod(0o755)
        self.home = self.base / "home"
        self.saved = {p: Path(p).read_bytes() for p in ETC if Path(p).exists()}
        subprocess.run(["useradd", "-m", "-d", str(self.home), "-s", "/bin/sh", self.name],
                       check=True, capture_output=True)
        pw = subprocess.run(["id", "-u", self.name], capture_output=True, text=True, check=True)
        self.uid = int(pw.stdout)
        self.gid = int(subprocess.run(["id", "-g", self.name], capture_output=True, text=True).stdout)
        # useradd may have given the user a range: the test decides, from the saved files
        for path in ("/etc/subuid", "/etc/subgid"):
            extra = f"{self.name}:{SUB_START}:{SUB_COUNT}\n".encode() if subids else b""
            Path(path).write_bytes(self.saved.get(path, b"") + extra)
        self.root = self.home / ".local" / "share" / "minirun"
        self.env = {"HOME": str(self.home), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        self.cmd = _interpreter(self.name)
        if self.cmd is not None and self.cmd[0].startswith("/usr/bin/python"):
            site = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
            self.env["PYTHONPATH"] = f"{REPO}:{site}"

    def __call__(self, *args: str, input: bytes | None = None, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(["runuser", "-u", self.name, "--", "env", "-i",
                               *(f"{k}={v}" for k, v in self.env.items()), *self.cmd, *args],
                              input=input, capture_output=True, timeout=timeout, cwd="/")
        if check and proc.returncode != 0:
            raise AssertionError(f"minirun {' '.join(args)} as {self.name} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout.decode()}\nstderr: {proc.stderr.decode()}")
        return proc

    def out(self, *args: str, **kw) -> str:
        return self(*args, **kw).stdout.decode().strip()

    def leftovers(self) -> list[str]:
        found = []
        containers = self.root / "containers"
        if containers.exists():
            found += [f"container dir {p.name[:12]}" for p in containers.iterdir()]
        found += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
                  if str(self.base) in line]
        for _ in range(100):      # a monitor that just exited may wait a moment to be reaped
            procs = subprocess.run(["pgrep", "-u", str(self.uid)], capture_output=True, text=True).stdout.split()
            if not procs:
                break
            time.sleep(0.02)
        found += [f"process {pid} of {self.name}" for pid in procs]
        return found

    def remove(self) -> None:
        procs = subprocess.run(["pgrep", "-u", str(self.uid)], capture_output=True, text=True).stdout.split()
        for pid in procs:                          # only that user's: a failed test's container
            subprocess.run(["kill", "-KILL", pid], capture_output=True)
        subprocess.run(["userdel", self.name], capture_output=True)
        for path, data in self.saved.items():
            Path(path).write_bytes(data)
        for path in ETC:
            if path not in self.saved and Path(path).exists():
                os.unlink(path)                    # a backup useradd made where none was
        shutil.rmtree(self.base, ignore_errors=True)


def _user(subids: bool):
    requires("root", "overlay", "busybox-image")
    if not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("needs useradd and runuser (passwd, util-linux)")
    if subids and not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        pytest.skip("needs newuidmap and newgidmap (Debian's uidmap package)")
    user = User(subids)
    try:
        if user.cmd is None:
            pytest.skip(f"{user.name} can reach neither the venv's Python nor a system python "
                        f"{sys.version_info.major}.{sys.version_info.minor}")
        user("image", "import", "-", "busybox", input=IMAGE_TAR.read_bytes())
        yield user
        user("image", "rm", "busybox")
        leaks = user.leftovers()
    finally:
        user.remove()
    assert not leaks, f"rootless left these behind: {leaks}"
    assert {p: Path(p).read_bytes() for p in ETC if Path(p).exists()} == user.saved


@pytest.fixture(scope="module")
def rootless():
    """A user with no /etc/subuid range: the one-id map (0 -> the user), like `unshare -r`."""
    yield from _user(subids=False)


def _host_ids(pid: int) -> tuple[int, int]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["Uid"].split()[0]), int(status["Gid"].split()[0])


def _wait_for(path: Path) -> None:
    for _ in range(250):
        if path.exists():
            return
        time.sleep(0.02)


def test_a_user_runs_a_container_as_root_inside_and_itself_outside(rootless):
    u = rootless
    report = u.out("run", "--rm", "--name", "probe", "busybox", "sh", "-c",
                   "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; hostname; ls /proc | grep -c '^[0-9]'")
    lines = report.splitlines()
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(u.uid), "1"] and lines[3].split() == ["0", str(u.gid), "1"]
    assert lines[4] != os.uname().nodename and int(lines[5]) <= 4     # own uts and pid namespaces
    assert u.out("ps", "-a", "-q") == ""                                # --rm removed it


def test_detached_lifecycle_ps_logs_stop_rm(rootless):
    u = rootless
    cid = u.out("run", "-d", "--name", "life", "busybox", "sh", "-c",
                "trap 'exit 0' TERM; echo hello; mkdir -p /made/sub; touch /made/f; chmod 0 /made/sub; "
                "chmod 555 /made; while :; do sleep 0.1; done")
    try:
        upper = u.root / "containers" / cid / "upper" / "made" / "f"
        _wait_for(upper)
        state = json.loads(u.out("inspect", cid))[0]["State"]
        pid = state["Pid"]
        assert _host_ids(pid) == (u.uid, u.gid)                        # the user, on the host
        for ns in ("pid", "mnt", "uts", "user", "ipc", "net"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        st = upper.stat()
        assert (st.st_uid, st.st_gid) == (u.uid, u.gid)                # its files are the user's
        assert u.out("exec", cid, "stat", "-c", "%u:%g", "/made/f") == "0:0"
        assert "life" in u.out("ps") and u.out("ps", "-q") == cid[:12]
        assert f"{pid} " in u.out("top", cid)                         # no cgroup: its pid namespace
        assert u.out("logs", cid) == "hello"
        started = time.monotonic()
        u("stop", cid)
        assert time.monotonic() - started < 5                          # SIGTERM, not the 10 s kill
        assert "Exited (0)" in u.out("ps", "-a")
        u("rm", cid)                         # the upper dir holds a 0555 and a 0 directory
    finally:
        u("rm", "-f", cid, check=False)
    assert not (u.root / "containers" / cid).exists()


def test_what_needs_root_is_refused_in_one_line(rootless):
    u = rootless
    for args, says in (
        (("-m", "64m"), "-m/--memory needs a cgroup you can write"),
        (("--pids-limit", "10"), "--pids-limit needs a cgroup you can write"),
        (("--network", "bridge"), "--network bridge needs root"),
        (("-p", "8080:80"), "published ports need a bridge network"),
        (("--uidmap", "0:100000:65536"), "--uidmap and --gidmap need root"),
        (("-u", "1000"), f"{u.name} has no range in /etc/subuid"),
    ):
        r = u("run", "--rm", *args, "busybox", "true", check=False)
        err = r.stderr.decode()
        assert r.returncode == 125 and says in err and err.count("\n") == 1, (args, err)
    assert u.out("ps", "-a", "-q") == ""


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in members:
            ti.mtime = 1_600_000_000
            ti.size = len(data) if ti.isreg() else 0
            tar.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _entry(name: str, kind=tarfile.REGTYPE, uid=0, gid=0, mode=0o644, **extra) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.uid, ti.gid, ti.mode = kind, uid, gid, mode
    for k, v in extra.items():
        setattr(ti, k, v)
    return ti


def test_a_users_import_makes_no_devices_and_chowns_nothing(rootless):
    u = rootless
    disk = _tar((_entry("dev/", tarfile.DIRTYPE, mode=0o755), b""),
                (_entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o666), b""))
    r = u("image", "import", "-", "evil", input=disk, check=False)
    assert r.returncode == 125 and "'dev/sda' is a device node (not allowed)" in r.stderr.decode()
    owned = _tar((_entry("bin/", tarfile.DIRTYPE, mode=0o755), b""),
                 (_entry("bin/tool", uid=1000, gid=1001, mode=0o4755), b"#!/bin/sh\n"))
    u("image", "import", "-", "owned", input=owned)
    try:
        layers = list((u.root / "images" / "layers").glob("*/diff/bin/tool"))
        assert len(layers) == 1
        st = layers[0].stat()
        assert (st.st_uid, st.st_gid) == (u.uid, u.gid)                # not 1000:1001 on the host
        owners = json.loads((layers[0].parent.parent.parent / "owners.json").read_text())
        assert owners == {"bin/tool": [1000, 1001]}                    # what the tar asked for
        r = u("run", "--rm", "owned", "/bin/tool", check=False)
        err = r.stderr.decode()
        assert r.returncode == 125 and "image owned has files owned by other ids (/bin/tool is 1000:1001)" in err
        assert err.count("\n") == 1
    finally:
        u("image", "rm", "owned")
    assert u.out("ps", "-a", "-q") == "" and not list((u.root / "images" / "layers").glob("*/diff/bin/tool"))


@pytest.fixture(scope="module")
def ranged():
    """A user with a 65536-id range in /etc/subuid and /etc/subgid: newuidmap maps 1..65536."""
    yield from _user(subids=True)


def test_with_a_subuid_range_other_ids_exist_and_land_in_the_range(ranged):
    u = ranged
    lines = u.out("run", "--rm", "busybox", "cat", "/proc/self/uid_map", "/proc/self/gid_map").splitlines()
    assert [line.split() for line in lines] == [["0", str(u.uid), "1"], ["1", str(SUB_START), str(SUB_COUNT)],
                                                ["0", str(u.gid), "1"], ["1", str(SUB_START), str(SUB_COUNT)]]
    cid = u.out("run", "-d", "-u", "1000:1000", "busybox", "sh", "-c",
                "id -u; mkdir /tmp/mine; touch /tmp/mine/f; chmod 700 /tmp/mine; sleep 30")
    try:
        made = u.root / "containers" / cid / "upper" / "tmp" / "mine"
        _wait_for(made)
        pid = json.loads(u.out("inspect", cid))[0]["State"]["Pid"]
        assert _host_ids(pid) == (SUB_START + 999, SUB_START + 999)    # uid 1000 inside
        st = made.stat()
        assert (st.st_uid, st.st_gid) == (SUB_START + 999, SUB_START + 999)
        u("rm", "-f", cid)              # a 0700 directory of another id: removed in our namespace
    finally:
        u("rm", "-f", cid, check=False)
    assert not (u.root / "containers" / cid).exists()


def test_image_owners_come_back_inside_without_a_chown_on_the_host(ranged):
    """A built layer whose RUN gave files to 1000:1001: inside they are 1000:1001; in the store
    they are the user's (owners.json says what they should be); the container runs on a copy
    made in the user's namespace, with the owners applied, which `image rm` removes."""
    u = ranged
    ctx = u.home / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(
        "FROM busybox\nRUN mkdir /app && touch /app/f && chown -R 1000:1001 /app && chmod 4755 /app/f\n")
    subprocess.run(["chown", "-R", f"{u.uid}:{u.gid}", str(ctx)], check=True)
    u("build", "-t", "owned", str(ctx))
    try:
        inside = u.out("run", "--rm", "owned", "stat", "-c", "%u:%g %A", "/app", "/app/f").splitlines()
        assert inside == ["1000:1001 drwxr-xr-x", "1000:1001 -rwsr-xr-x"]
        stored = list((u.root / "images" / "layers").glob("*/diff/app/f"))
        assert len(stored) == 1 and (stored[0].stat().st_uid, stored[0].stat().st_gid) == (u.uid, u.gid)
        owners = json.loads((stored[0].parents[2] / "owners.json").read_text())
        assert owners == {"app": [1000, 1001], "app/f": [1000, 1001]}
        copies = list((u.root / "cache" / "idmap").glob("*/*_diff/app/f"))
        assert len(copies) == 1 and copies[0].stat().st_uid == SUB_START + 999
    finally:
        u("image", "rm", "owned")
    assert not list((u.root / "cache" / "idmap").glob("*/*_diff"))
