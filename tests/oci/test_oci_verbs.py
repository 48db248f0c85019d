"""`minirun-oci` exec, pause, resume, ps and update, as podman and containerd call them on a
running container: checked from inside the container and in its cgroup."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.conftest import requires
from tests.oci.conftest import OCI, assert_nothing_left, one_line

pytestmark = pytest.mark.root


@pytest.fixture
def running(oci):
    """A started container running `sleep`; deleted (and checked) at the end."""
    cid = f"verbs-{os.getpid()}"
    oci.configure(["sh", "-c", "echo $$ > /tmp/pid1; while :; do sleep 0.05; done"], env=["A=1", "PATH=/bin"])
    oci("create", "--bundle", str(oci.bundle), cid, detached=True)
    oci("start", cid)
    yield cid
    oci("delete", "--force", cid)
    assert_nothing_left(oci, cid)


def test_exec_runs_in_the_containers_namespaces_with_its_env(oci, running):
    out = oci("exec", running, "sh", "-c", "echo $A; hostname; cat /tmp/pid1; ls /proc | grep -c '^[0-9]'").stdout
    env_a, hostname, pid1, nprocs = out.split()
    assert env_a == "1"                              # the container's own process env
    assert hostname == json.loads((oci.bundle / "config.json").read_text())["hostname"]
    assert pid1 == "1"                               # same pid namespace: its shell is PID 1
    assert int(nprocs) <= 5                          # the container's processes, not the host's


def test_exec_exit_status_env_cwd_and_user(oci, running):
    assert oci("exec", running, "sh", "-c", "exit 7", check=False).returncode == 7
    out = oci("exec", "--env", "B=2", "--cwd", "/tmp", "--user", "1000:1000", running,
              "sh", "-c", "echo $A $B; pwd; id -u; id -g").stdout.split()
    assert out == ["1", "2", "/tmp", "1000", "1000"]


def test_exec_process_file_and_detach_with_pid_file(oci, running, tmp_path):
    process = {"args": ["sh", "-c", "echo from-file > /tmp/marker; sleep 30"], "cwd": "/",
               "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}
    (tmp_path / "p.json").write_text(json.dumps(process))
    pid_file = tmp_path / "exec.pid"
    oci("exec", "--process", str(tmp_path / "p.json"), "--detach", "--pid-file", str(pid_file), running,
        detached=True)
    pid = int(pid_file.read_text())
    assert pid in json.loads(oci("ps", "--format", "json", running).stdout)
    deadline = time.monotonic() + 5
    while not (oci.bundle / "rootfs/tmp/marker").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (oci.bundle / "rootfs/tmp/marker").read_text() == "from-file\n"


def test_exec_missing_command_and_stopped_container(oci, running):
    r = oci("exec", running, "nosuch", check=False)
    assert r.returncode == 1
    assert one_line(r.stderr) == "minirun-oci: exec nosuch: executable file not found in $PATH"
    r = oci("exec", "nosuch-id", "true", check=False)
    assert one_line(r.stderr) == "minirun-oci: container nosuch-id does not exist"


def test_pause_freezes_and_resume_thaws(oci, running):
    requires("cgroup:freezer")
    oci("pause", running)
    assert oci.state(running)["status"] == "paused"
    marker = oci.bundle / "rootfs/tmp/pid1"
    before = marker.stat().st_mtime_ns
    r = oci("delete", running, check=False)
    assert one_line(r.stderr) == f"minirun-oci: cannot delete container {running} that is not stopped: paused"
    assert one_line(oci("pause", running, check=False).stderr) == \
        f"minirun-oci: cannot pause container {running}: it is paused"
    oci("resume", running)
    assert oci.state(running)["status"] == "running"
    oci("exec", running, "sh", "-c", "touch /tmp/pid1")
    assert marker.stat().st_mtime_ns != before


def test_delete_force_of_a_paused_container(oci):
    requires("cgroup:freezer")
    cid = f"paused-{os.getpid()}"
    oci.configure(["sleep", "30"])
    oci("create", "--bundle", str(oci.bundle), cid, detached=True)
    oci("start", cid)
    oci("pause", cid)
    # the cost of one minirun-oci start on this machine (~30 ms here, seconds in the VM tier)
    t0 = time.monotonic()
    oci("state", cid)
    start_cost = time.monotonic() - t0
    t0 = time.monotonic()
    oci("delete", "--force", cid)
    took = time.monotonic() - t0
    assert took < 3 + 2 * start_cost, f"a frozen process must be thawed to die ({took:.1f}s)"
    assert_nothing_left(oci, cid)


def test_ps_lists_the_container_processes(oci, running):
    pids = json.loads(oci("ps", "--format", "json", running).stdout)
    state_pid = oci.state(running)["pid"]
    assert state_pid in pids
    table = oci("ps", running).stdout.splitlines()
    assert "PID" in table[0].split()
    assert any(str(state_pid) in line.split() for line in table[1:])
    host_pid = str(os.getpid())
    assert not any(host_pid in line.split() for line in table[1:]), "a host process was listed"


def test_update_changes_the_limits_live(oci, running):
    requires("cgroup:memory", "cgroup:pids")
    from minirun.runtime.cgroups import detect

    oci("update", "--memory", str(96 << 20), "--pids-limit", "42", running)
    group = detect().open(f"minirun-oci/{running}")
    assert group.stats()["memory_limit"] == 96 << 20
    assert group.stats()["pids_limit"] == 42
    r = oci("update", "--resources", "-", running, check=False)
    assert r.returncode == 1
    bad = oci.bundle / "bad.json"
    bad.write_text(json.dumps({"hugepageLimits": []}))
    r = oci("update", "--resources", str(bad), running, check=False)
    assert one_line(r.stderr) == \
        "minirun-oci: linux/resources/hugepageLimits: not supported by minirun-oci update"


def test_default_devices_are_supplied_and_openable_despite_a_deny_all_rule(oci):
    """runtime-spec config-linux.md "Default Devices": /dev/null & co. exist even when config.json
    lists none, and a deny-all device rule (podman writes one) still lets them be opened."""
    spec = oci.configure(["sh", "-c", "echo ok > /dev/null && head -c 4 /dev/urandom | wc -c && ls /dev/tty"])
    spec["linux"]["devices"] = []
    spec["linux"].setdefault("resources", {})["devices"] = [{"allow": False, "access": "rwm"}]
    oci.write(spec)
    r = oci("run", "--bundle", str(oci.bundle), f"devs-{os.getpid()}", check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["4", "/dev/tty"]


def test_the_exit_status_reaches_the_callers_subreaper(oci, tmp_path):
    """conmon and containerd's shim learn a container's exit status by reaping it as child
    subreaper: after `create` returns, the container must be their child, not a monitor's."""
    import subprocess
    import sys

    cid = f"reaper-{os.getpid()}"
    oci.configure(["sh", "-c", "exit 7"])
    script = f"""
import ctypes, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)            # PR_SET_CHILD_SUBREAPER
oci = [{str(oci.root)!r}]
run = lambda *a: subprocess.run([{OCI!r}, "--root", oci[0], *a], check=True, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL)
run("create", "--bundle", {str(oci.bundle)!r}, "--pid-file", {str(tmp_path / "pid")!r}, {cid!r})
pid = int(open({str(tmp_path / "pid")!r}).read())
run("start", {cid!r})
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "7", out.stderr
    oci("delete", cid)
    assert_nothing_left(oci, cid)
