"""The security controls (--cap-add/--cap-drop, --privileged, --security-opt no-new-privileges,
--sysctl, --device), checked from inside real containers, and what `inspect` says of them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import requires
from tests.security.conftest import calls

pytestmark = pytest.mark.root

DEFAULT_CAPS = 0xA80425FB                 # Docker's 14
CAP_SYS_ADMIN = 1 << 21


def test_cap_drop_all_leaves_nothing(clean, syscalls):
    """--cap-drop ALL: every set empty, so even root cannot chown a file it made."""
    got = calls(clean, syscalls, "caps", "chown", opts=("--cap-drop", "ALL"))
    assert got == {"cap_eff": "0", "cap_prm": "0", "cap_inh": "0", "chown": "EPERM"}
    assert calls(clean, syscalls, "caps", "chown") == {
        "cap_eff": f"{DEFAULT_CAPS:x}", "cap_prm": f"{DEFAULT_CAPS:x}", "cap_inh": "0", "chown": "0"}
    bnd = clean.out("run", "--rm", "--cap-drop", "ALL", "busybox", "grep", "^CapBnd", "/proc/self/status")
    assert bnd.split() == ["CapBnd:", "0000000000000000"]


def test_cap_drop_one_and_add_back(clean, syscalls):
    """Names with or without CAP_, any case; --cap-drop ALL --cap-add CHOWN keeps just that one."""
    assert calls(clean, syscalls, "chown", opts=("--cap-drop", "chown")) == {"chown": "EPERM"}
    got = calls(clean, syscalls, "caps", "chown", opts=("--cap-drop", "ALL", "--cap-add", "CAP_CHOWN"))
    assert got["cap_eff"] == "1" and got["chown"] == "0"


def test_cap_add_sys_admin_allows_mount_but_not_the_keyring(clean, syscalls):
    """As in Docker, the default filter lets CAP_SYS_ADMIN mount; the keyring, ptrace and reboot
    stay refused by the filter (their capabilities are not held, or not namespaced)."""
    got = calls(clean, syscalls, "caps", "mount_tmpfs", "add_key", "keyctl", "ptrace_traceme",
                opts=("--cap-add", "SYS_ADMIN"))
    assert int(got["cap_eff"], 16) == DEFAULT_CAPS | CAP_SYS_ADMIN
    assert got["mount_tmpfs"] == "0"
    assert (got["add_key"], got["keyctl"], got["ptrace_traceme"]) == ("EPERM", "EPERM", "EPERM")
    assert calls(clean, syscalls, "mount_tmpfs") == {"mount_tmpfs": "EPERM"}


def test_unknown_capability_fails_in_one_line(clean):
    for flag in ("--cap-add", "--cap-drop"):
        r = clean("run", "--rm", flag, "NET_FLY", "busybox", "true", check=False)
        assert r.returncode == 125
        assert r.stderr == f"minirun: {flag} NET_FLY: unknown capability (see capabilities(7); e.g. NET_ADMIN or CAP_NET_ADMIN)\n"
    assert clean.out("ps", "-a", "-q") == ""


def missing_from_bounding_set() -> str:
    """A capability this process cannot give (CAP_SYS_RESOURCE on this VM), or skip."""
    from minirun import spec as oci

    held = oci.host_cap_bounding()
    missing = [name for name, bit in oci.CAP_NUMBER.items() if not held >> bit & 1]
    if not missing:
        pytest.skip("this process holds every capability: none to be refused")
    return missing[0]


def test_a_capability_outside_the_bounding_set_fails_in_one_line(clean):
    """--cap-add of a capability minirun itself lacks: 125, the capability named, nothing left
    (it used to run without it, silently). --cap-add ALL means what can be given, as
    --privileged, so it runs."""
    cap = missing_from_bounding_set()
    r = clean("run", "--rm", "--cap-add", cap, "busybox", "true", check=False)
    assert r.returncode == 125
    assert r.stderr == (f"minirun: process/capabilities/bounding: {cap} not in the runtime's "
                        "bounding set (CapBnd in /proc/self/status): no process it starts can "
                        "have it\n")
    assert clean.out("ps", "-a", "-q") == ""
    assert clean("run", "--rm", "--cap-add", "ALL", "busybox", "true").returncode == 0


def test_a_non_root_user_has_no_capabilities(clean, syscalls):
    """-u 1000: bounding is the default set, but permitted, effective, inheritable and ambient are
    empty after execve (no ambient capabilities are raised for non-root users)."""
    out = clean.out("run", "--rm", "-u", "1000", "busybox", "grep", "^Cap", "/proc/self/status")
    sets = dict(line.split(":\t") for line in out.splitlines())
    assert {k: int(v, 16) for k, v in sets.items()} == {
        "CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": DEFAULT_CAPS, "CapAmb": 0}
    assert calls(clean, syscalls, "chown", opts=("-u", "1000")) == {"chown": "EPERM"}


def test_no_new_privileges_can_be_turned_off(clean):
    """Default on (stricter than Docker); =false clears it, and the filter still loads (before the
    capabilities are dropped, as it then needs CAP_SYS_ADMIN)."""
    grep = ("busybox", "grep", "-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status")
    assert clean.out("run", "--rm", *grep).split() == ["NoNewPrivs:", "1", "Seccomp:", "2"]
    off = clean.out("run", "--rm", "--security-opt", "no-new-privileges=false", *grep)
    assert off.split() == ["NoNewPrivs:", "0", "Seccomp:", "2"]


def test_privileged_is_what_it_says(clean):
    """Every capability this host has, no filter, nothing masked, /sys writable, host devices."""
    script = ("grep -E '^(CapEff|Seccomp):' /proc/self/status; grep -c . /proc/keys >/dev/null && echo keys; "
              "grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; "
              "test -w /proc/sys/kernel/domainname && echo sys-rw; ls /dev | grep -c .")
    out = clean.out("run", "--rm", "--privileged", "busybox", "sh", "-c", script).split()
    host_bnd = next(ln.split()[1] for ln in Path("/proc/self/status").read_text().splitlines()
                    if ln.startswith("CapBnd:"))
    assert out[:7] == ["CapEff:", host_bnd, "Seccomp:", "0", "keys", "rw", "sys-rw"]
    assert int(out[7]) > 20                        # the host's devices, not just the six defaults


def test_sysctl_is_set_inside_and_not_on_the_host(clean):
    host = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    host_shm = Path("/proc/sys/kernel/shmmni").read_text()
    out = clean.out("run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmni=1234",
                    "busybox", "sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni; "
                    "echo 0 > /proc/sys/net/ipv4/ip_forward || echo still-ro")
    assert out.splitlines()[:2] == ["1", "1234"] and "still-ro" in out
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host
    assert Path("/proc/sys/kernel/shmmni").read_text() == host_shm


def test_sysctls_of_the_host_are_refused_by_name(clean):
    for flag, why in (("kernel.panic=5", "--sysctl kernel.panic: not namespaced"),
                      ("vm.overcommit_memory=1", "--sysctl vm.overcommit_memory: not namespaced")):
        r = clean("run", "--rm", "--sysctl", flag, "busybox", "true", check=False)
        assert r.returncode == 125 and r.stderr.startswith(f"minirun: {why}") and r.stderr.count("\n") == 1
    r = clean("run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "true", check=False)
    assert r.returncode == 125 and "own network namespace" in r.stderr
    assert clean.out("ps", "-a", "-q") == ""


def test_a_sysctl_the_kernel_refuses_names_itself(clean):
    """A namespaced name this kernel lacks: the child's write step fails, naming the sysctl."""
    r = clean("run", "--rm", "--sysctl", "net.ipv4.no_such_knob=1", "busybox", "true", check=False)
    assert r.returncode == 125
    assert r.stderr == "minirun: write sysctl net.ipv4.no_such_knob=1: No such file or directory\n"
    assert clean.out("ps", "-a", "-q") == ""


def test_device_is_made_and_allowed(clean):
    """--device /dev/null:/dev/mynull: the node exists with the host's numbers and opens; the
    devices cgroup names it; with :r it cannot be opened for writing."""
    requires("cgroup:devices")
    out = clean.out("run", "--rm", "--device", "/dev/null:/dev/mynull", "busybox", "sh", "-c",
                    "stat -c '%t:%T %F' /dev/mynull; echo x > /dev/mynull && echo wrote")
    assert out.splitlines() == ["1:3 character special file", "wrote"]
    if not Path("/dev/loop-control").exists():
        pytest.skip("this host has no /dev/loop-control for the read-only case")
    r = clean("run", "--rm", "--device", "/dev/loop-control:/dev/lc:r", "busybox", "sh", "-c",
              "stat -c '%a %t:%T' /dev/lc; : < /dev/lc && echo read-ok; : > /dev/lc", check=False)
    host_mode = f"{Path('/dev/loop-control').stat().st_mode & 0o7777:o}"
    assert r.stdout.split("\n")[:2] == [f"{host_mode} a:ed", "read-ok"]     # the host's mode, 10:237
    assert r.returncode == 1 and "Operation not permitted" in r.stderr
    r = clean("run", "--rm", "--device", "/dev/nope", "busybox", "true", check=False)
    assert (r.returncode, r.stderr) == (125, "minirun: --device /dev/nope: No such file or directory\n")


def test_device_keeps_the_host_nodes_owner_and_mode(clean, tmp_path):
    """Docker copies the host node's owner and mode: a node of our own making (1:3, owned
    1234:5678, mode 0620) appears so inside."""
    node = tmp_path / "node"
    os.mknod(node, 0o620 | stat.S_IFCHR, os.makedev(1, 3))
    os.chown(node, 1234, 5678)
    os.chmod(node, 0o620)                              # mknod(2) applied our umask
    out = clean.out("run", "--rm", "--device", f"{node}:/dev/mine", "busybox", "stat", "-c", "%u:%g %a %t:%T", "/dev/mine")
    assert out == "1234:5678 620 1:3"


def test_inspect_shows_the_effective_settings(clean):
    cid = clean.out("create", "--cap-drop", "ALL", "--cap-add", "net_bind_service",
                    "--sysctl", "net.ipv4.ip_forward=1", "--device", "/dev/null:/dev/mynull:rw",
                    "busybox", "true")
    try:
        info = json.loads(clean.out("inspect", cid))[0]
    finally:
        clean("rm", cid)
    host, sec = info["HostConfig"], info["Security"]
    assert (host["CapAdd"], host["CapDrop"], host["Privileged"]) == (["NET_BIND_SERVICE"], ["ALL"], False)
    assert host["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                                "CgroupPermissions": "rw"}]
    assert sec["Capabilities"]["Effective"] == ["NET_BIND_SERVICE"] == sec["Capabilities"]["Bounding"]
    assert sec["NoNewPrivileges"] is True and sec["Privileged"] is False
    assert sec["Seccomp"]["Profile"] == "default" and len(sec["Seccomp"]["Sha256"]) == 64
    assert sec["MaskedPaths"] == 11 and sec["ReadonlyPaths"] == 5
    assert "/dev/mynull c 1:3" in sec["Devices"]
