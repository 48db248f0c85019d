"""Cgroup faults met through minirun-oci, as podman or a kubelet would meet them: one line on
stderr, exit 1 (runc's), nothing left. Some need a host with cgroup v2 alone (`make test-vm`);
the host skips them with the reason. tests/integration/test_cgroup_faults.py has minirun's."""

from __future__ import annotations

import errno
import json
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_cgroup_faults import bpf_fences_devices, without_bpf
from tests.oci.conftest import OCI, one_line

pytestmark = pytest.mark.root


@pytest.fixture
def busy_parent():
    """A cgroup2 group holding a process of its own and lending no controller: the "no internal
    processes" rule (cgroups(7), v2) then forbids enabling any in its cgroup.subtree_control,
    as in a parent of someone else's that does not delegate (a kubelet's pod group before its
    containers, a systemd unit without Delegate=)."""
    from minirun.runtime.cgroups import detect

    mgr = detect()
    if mgr.mounts.unified is None or not mgr.v2_owned & {"memory", "pids", "cpu"}:
        pytest.skip("needs cgroup2 with memory, pids or cpu enabled at its root (make test-vm)")
    parent = Path(mgr.mounts.unified, f"minirun-busy-{secrets.token_hex(4)}")
    parent.mkdir()
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        (parent / "cgroup.procs").write_text(str(sleeper.pid))
        yield parent
    finally:
        sleeper.kill()
        sleeper.wait()
        for child in parent.iterdir():
            if child.is_dir():
                child.rmdir()
        parent.rmdir()


def test_a_controller_the_parent_cannot_lend_fails_create_in_one_line(oci, busy_parent):
    """minirun-oci with cgroupsPath under that parent and a memory limit: create fails in one
    line naming the parent's cgroup.subtree_control and the errno, exit 1 (runc's), and leaves
    no group, no state and the parent as it was."""
    spec = oci.configure(["true"])
    spec["linux"]["cgroupsPath"] = f"/{busy_parent.name}/ctr"
    spec["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 64}}
    oci.write(spec)
    r = oci("create", "--bundle", str(oci.bundle), "busy", check=False, detached=True)
    assert r.returncode == 1, r.stderr
    line = one_line(r.stderr)
    assert line.startswith("minirun-oci: cgroup: ") and f"{busy_parent}/cgroup.subtree_control" in line
    assert line.endswith(": Device or resource busy"), line
    assert not (busy_parent / "ctr").exists()
    assert (busy_parent / "cgroup.subtree_control").read_text().split() == []
    assert oci("list", "-q").stdout.split() == []



def test_no_cgroup_bpf_fails_oci_create_in_one_line(oci):
    """The same for minirun-oci, whose default config has device rules (podman, containerd):
    create fails in one line, exit 1, with no container, group or state left."""
    bpf_fences_devices()
    oci.configure(["true"])
    cmd = [OCI, "--root", str(oci.root), "create", "--bundle", str(oci.bundle), "nobpf"]
    r = subprocess.run(without_bpf(cmd, errno.ENOSYS), capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stderr
    line = one_line(r.stderr)
    assert line.startswith("minirun-oci: cgroup: load the devices program for "), line
    assert line.endswith("Function not implemented"), line
    assert json.loads(oci("list", "--format", "json").stdout or "[]") == []
