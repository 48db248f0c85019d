"""The validation suite's namespace checks: each listed type is a new namespace (linux_ns_itype),
a `path` is joined (linux_ns_path: made by `unshare --fork`, as the suite makes them), a path of
the wrong type is refused (linux_ns_path_type), and the container's namespaces are compared from
the host through /proc/PID/ns."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from minirun.errors import SpecError
from tests.oci.conformance import suite_config

NS_FILE = {"ipc": "ipc", "mount": "mnt", "network": "net", "pid": "pid", "uts": "uts", "cgroup": "cgroup"}


def ns_of(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_each_listed_namespace_is_a_new_one(rt):
    config = suite_config(["sleep", "30"])
    config["linux"]["namespaces"].append({"type": "cgroup"})
    rt.configure(config)
    assert rt.create().returncode == 0
    pid = rt.state()["pid"]
    for kind in NS_FILE.values():
        assert ns_of(pid, kind) != ns_of("self", kind), kind
    assert rt.delete(force=True).returncode == 0


def test_a_type_left_out_is_shared_with_the_host(rt):
    config = suite_config(["sleep", "30"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "ipc"]
    rt.configure(config)
    assert rt.create().returncode == 0
    pid = rt.state()["pid"]
    assert ns_of(pid, "ipc") == ns_of("self", "ipc") and ns_of(pid, "net") != ns_of("self", "net")
    assert rt.delete(force=True).returncode == 0


@pytest.fixture
def unshared():
    """`unshare --KIND --fork sleep`, as the suite makes its namespaces; killed afterwards."""
    procs = []

    def make(option: str, kind: str) -> str:
        proc = subprocess.Popen(["unshare", option, "--fork", "sleep", "10000"], start_new_session=True)
        procs.append(proc)
        path = f"/proc/{proc.pid}/ns/{kind}" + ("_for_children" if kind == "pid" else "")
        deadline = time.monotonic() + 3
        while os.readlink(path) == ns_of("self", kind) and time.monotonic() < deadline:
            time.sleep(0.02)
        return path

    yield make
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("kind, option", [("ipc", "--ipc"), ("mount", "--mount"), ("network", "--net"),
                                          ("pid", "--pid"), ("uts", "--uts")])
def test_a_namespace_path_is_joined(rt, unshared, kind, option):
    path = unshared(option, NS_FILE[kind])
    config = suite_config(["sleep", "30"])
    config["linux"]["namespaces"] = [n if n["type"] != kind else {"type": kind, "path": path}
                                     for n in config["linux"]["namespaces"]]
    rt.configure(config)
    created = rt.create()
    assert created.returncode == 0, created.stderr
    assert ns_of(rt.state()["pid"], NS_FILE[kind]) == os.readlink(path)
    assert rt.delete(force=True).returncode == 0
    assert Path(path).exists()          # delete_only_create_resources: the joined one is not ours


def test_a_path_of_another_type_is_refused(rt):
    config = suite_config(["true"])
    config["linux"]["namespaces"][1] = {"type": "network", "path": "/proc/self/ns/uts"}
    rt.configure(config)
    proc = rt.create()
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("minirun-oci: linux/namespaces/1/path: /proc/self/ns/uts is a "
                                   "uts namespace, not a network one")
    assert rt.state() is None


def test_no_namespace_listed_shares_the_host_s_and_leaves_no_mount(rt):
    """linux_ns_itype: with no namespace listed the container shares every one of the runtime's.
    Without a mount namespace the child chroots (pivot_root would move the root of every host
    process) and its mounts are made on the host under the root: journaled, and all detached by
    delete (runc leaves them behind). The host's "/" is not touched."""
    def root_line() -> str:
        return next(line.split(" ", 4)[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                    if line.split()[4] == "/")

    before = root_line()
    config = suite_config(["sleep", "30"])
    config["linux"]["namespaces"] = []
    del config["hostname"]
    rt.configure(config)
    created = rt.create()
    assert created.returncode == 0, created.stderr
    pid = rt.state()["pid"]
    for kind in NS_FILE.values():
        assert ns_of(pid, kind) == ns_of("self", kind), kind
    assert os.readlink(f"/proc/{pid}/root") == str(rt.bundle)
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
               if line.split()[4].startswith(str(rt.bundle))]
    assert {str(rt.bundle), f"{rt.bundle}/proc", f"{rt.bundle}/dev"} <= set(mounted)
    assert root_line() == before
    refused = rt._run("exec", rt.id, "true")       # it would run on the host's root
    assert refused.returncode == 1
    assert refused.stderr.strip() == (f"minirun-oci: cannot exec in container {rt.id}: it has no "
                                      "mount namespace of its own")
    assert rt.delete(force=True).returncode == 0
    assert str(rt.bundle) not in Path("/proc/self/mountinfo").read_text()
    assert root_line() == before


def test_no_mount_namespace_with_an_image_root_is_refused(clean):
    """`minirun run` builds an overlay root, which only a mount namespace of its own can hold."""
    from minirun.runtime.plan import Launch, build
    from minirun.spec import default_spec

    spec = default_spec()
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "mount"]
    with pytest.raises(SpecError) as e:
        build(spec, Launch(rootfs="/nonexistent", rootfs_fstype="overlay"))
    assert str(e.value) == "linux/namespaces: needs a mount namespace (new, or joined by path)"


@pytest.fixture
def rt_open(rootfs_tar):
    """Like `rt`, with the bundle where the user namespace's root (host uid 1000) can reach it:
    pytest's tmp_path is under a 0700 directory. (So is the suite's bundle, made by MkdirTemp:
    there both runc and minirun-oci fail to bind the root, EACCES — see docs/oci.md.)"""
    import shutil
    import tempfile

    from tests.oci.conformance import Runtime
    from tests.oci.conftest import OCI

    top = Path(tempfile.mkdtemp(prefix="minirun-conftest-"))
    try:
        top.chmod(0o755)
        r = Runtime(OCI, top / "state", top / "bundle", rootfs_tar)
        yield r
        r.clean()
    finally:
        shutil.rmtree(top)
    assert str(top) not in Path("/proc/self/mountinfo").read_text()


def test_every_namespace_new_including_user_with_maps(rt_open):
    """linux_ns_nopath: all seven types made new; the user namespace with the suite's maps
    (container 0-999 -> host 1000-1999) over a bundle the host's root owns."""
    rt = rt_open
    config = suite_config(["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map; sleep 30"])
    config["linux"]["namespaces"] = [{"type": t} for t in ("cgroup", "ipc", "mount", "network", "pid",
                                                            "user", "uts")]
    config["linux"]["uidMappings"] = [{"hostID": 1000, "containerID": 0, "size": 1000}]
    config["linux"]["gidMappings"] = [{"hostID": 1000, "containerID": 0, "size": 1000}]
    rt.configure(config)
    created = rt.create()
    assert created.returncode == 0, created.stderr
    pid = rt.state()["pid"]
    for kind in (*NS_FILE.values(), "user"):
        assert ns_of(pid, kind) != ns_of("self", kind), kind
    assert rt.start().returncode == 0
    time.sleep(0.3)
    assert rt.output().split() == ["0", "0", "1000", "1000", "0", "1000", "1000"]
    status = Path(f"/proc/{pid}/status").read_text()
    assert "Uid:\t1000\t1000\t1000\t1000" in status          # root inside is 1000 on the host
    assert rt.delete(force=True).returncode == 0


@pytest.mark.parametrize("linux, message", [
    ({"uidMappings": [{"hostID": 1000, "containerID": 0, "size": 10}],
      "gidMappings": [{"hostID": 1000, "containerID": 0, "size": 10}]},
     "linux/uidMappings: needs a new user namespace (linux.namespaces has no user entry without a path)"),
    ({"uidMappings": [{"hostID": 1000, "containerID": 0, "size": 10}],
      "namespaces": [{"type": "user"}, {"type": "mount"}]},
     "linux/gidMappings: a user namespace needs both uid and gid mappings"),
    ({"uidMappings": [{"hostID": 1000, "size": 10}], "gidMappings": [],
      "namespaces": [{"type": "user"}, {"type": "mount"}]},
     "linux/uidMappings/0: must be an object with containerID, hostID and size"),
])
def test_bad_id_mappings_are_one_line(rt, linux, message):
    config = suite_config(["true"])
    config["linux"].update(linux)
    del config["hostname"]
    rt.configure(config)
    proc = rt.create()
    assert proc.returncode == 1 and proc.stderr.strip() == f"minirun-oci: {message}"
    assert rt.state() is None
