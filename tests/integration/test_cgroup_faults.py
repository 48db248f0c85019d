"""Cgroup faults a host can have, met as a user meets them: one line, a documented exit status
(125 for `minirun`, 1 for `minirun-oci`, as runc), and nothing left behind. Some only a host with
cgroup v2 alone can show; `make test-vm` runs them there (tests/vm/tests.txt) and the host skips
them with the reason. tests/oci/test_oci_cgroup_faults.py has minirun-oci's."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MINIRUN, leftovers
from tests.oci.conftest import one_line

pytestmark = pytest.mark.root


def _cgroup_mount_points() -> list[str]:
    """Every cgroup and cgroup2 mount point of this mount namespace (proc(5), mountinfo)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        if rest.split()[0] in ("cgroup", "cgroup2"):
            points.append(fields.split()[4])
    return points


def test_a_read_only_sys_fs_cgroup_fails_run_in_one_line(clean, data_root):
    """A host (or an outer container) that mounts /sys/fs/cgroup read-only: `run` cannot make
    the group. Shown in a mount namespace of this test's own, where every cgroup mount is
    remounted read-only; the host's stay as they are. The clean-up after the failed mkdir used
    to fail too (rmdir of the shared parent: EROFS) and hid the first error behind it."""
    remount = "; ".join(f"mount -o remount,bind,ro {p}" for p in _cgroup_mount_points())
    cmd = [*MINIRUN, "--root", str(data_root), "run", "--rm", "--network", "none", "busybox", "true"]
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        f'{remount} && exec "$@"', "sh", *cmd], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 125, r.stderr
    line = one_line(r.stderr)
    assert line.startswith("minirun: cgroup: mkdir /sys/fs/cgroup/") and line.endswith(
        ": Read-only file system"), line
    assert clean.out("ps", "-a", "-q") == ""
    assert leftovers(data_root) == []


# -- a kernel without cgroup BPF ------------------------------------------------------------
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000


def without_bpf(argv: list[str], err: int) -> list[str]:
    """argv run under a seccomp filter that fails bpf(2) with `err` (libseccomp, installed
    in a small Python that then execs argv; the filter is inherited by everything it starts)."""
    code = f"""
import ctypes, os, sys
lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
ctx = ctypes.c_void_p(lib.seccomp_init({SECCOMP_RET_ALLOW}))
nr = lib.seccomp_syscall_resolve_name(b"bpf")
assert lib.seccomp_rule_add(ctx, {SECCOMP_RET_ERRNO | err}, nr, 0) == 0
assert lib.seccomp_load(ctx) == 0
os.execv(sys.argv[1], sys.argv[1:])
"""
    return [sys.executable, "-c", code, *argv]


def bpf_fences_devices() -> None:
    from minirun.runtime.cgroups import detect

    mgr = detect()
    if "devices" in mgr.available() or mgr.mounts.unified is None:
        pytest.skip("the devices fence here is v1's devices controller, not an eBPF program "
                    "(make test-vm runs this on cgroup v2 alone)")


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EPERM], ids=["ENOSYS", "EPERM"])
def test_no_cgroup_bpf_refuses_device_rules_in_one_line(clean, data_root, err):
    """A kernel built without CONFIG_CGROUP_BPF (bpf(2) fails ENOSYS), or a sandbox that forbids
    bpf(2) (EPERM): on cgroup v2 the devices fence is an eBPF program, so without one the
    container would see every device of the host. `run` refuses, in one line, exit 125, and
    leaves nothing. A kernel without cgroup BPF cannot be booted here (Debian's has it), so a
    seccomp filter makes bpf(2) fail as such a kernel does; the runtime only sees the errno."""
    bpf_fences_devices()
    cmd = [*MINIRUN, "--root", str(data_root), "run", "--rm", "--network", "none", "busybox",
           "true"]
    r = subprocess.run(without_bpf(cmd, err), capture_output=True, text=True, timeout=120)
    assert r.returncode == 125, r.stderr
    line = one_line(r.stderr)
    assert line.startswith("minirun: cgroup: load the devices program for /sys/fs/cgroup/"), line
    assert line.endswith(os.strerror(err)), line
    assert clean.out("ps", "-a", "-q") == ""
    assert leftovers(data_root) == []
