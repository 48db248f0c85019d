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


def test_no_mount_namespace_is_refused(rt):
    """The root is built and pivoted in the container's mount namespace; in the host's, every
    process on the host would get a new root."""
    config = suite_config(["true"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "mount"]
    rt.configure(config)
    proc = rt.create()
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("minirun-oci: linux/namespaces: needs a mount namespace (new, "
                                   "or joined by path)")
