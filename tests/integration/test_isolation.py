"""What a process inside a container sees: its own PID 1, hostname, root, mounts and devices."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import MINIRUN

pytestmark = pytest.mark.root



def test_pid1_is_the_command(clean):
    # the trailing echo keeps busybox sh from exec()ing tr in its own place as PID 1
    out = clean.out("run", "--rm", "busybox", "sh", "-c", "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo")
    pid, cmdline = out.splitlines()
    assert pid == "1"
    assert cmdline.startswith("sh -c echo $$;")


def test_host_processes_are_invisible(clean):
    out = clean.out("run", "--rm", "busybox", "sh", "-c", "ls /proc | grep -c '^[0-9]'")
    assert int(out) <= 3          # sh, ls, grep: nothing from the host


def test_hostname_is_the_containers(clean):
    assert clean.out("run", "--rm", "-h", "box1", "busybox", "hostname") == "box1"
    cid = clean.out("create", "busybox", "hostname")
    clean("start", cid)
    assert clean.out("wait", cid) == "0"
    assert clean.out("logs", cid) == cid[:12]          # Docker's default: the short id
    clean("rm", cid)
    assert os.uname().nodename != "box1"


def test_root_is_the_image(clean):
    out = clean.out("run", "--rm", "busybox", "sh", "-c", "cat /etc/os-release; ls /")
    assert "minirun" in out.lower()
    assert "work" not in out.split() and "root" in out.split()
    assert clean("run", "--rm", "busybox", "ls", "/work", check=False).returncode != 0


def test_container_mounts_do_not_appear_on_the_host(clean, data_root):
    cid = clean.out("run", "-d", "busybox", "sleep", "30")
    try:
        inside = clean.out("exec", cid, "cat", "/proc/mounts")
        assert "proc /proc proc" in inside and "overlay / overlay" in inside
        host = Path("/proc/self/mountinfo").read_text()
        assert str(data_root) not in host
        assert cid not in host
    finally:
        clean("rm", "-f", cid)


def test_writes_change_neither_the_image_nor_other_containers(clean, data_root):
    a = clean.out("run", "-d", "busybox", "sh", "-c", "echo changed > /etc/passwd; rm /bin/ls; sleep 30")
    try:
        b = clean.out("run", "--rm", "busybox", "sh", "-c", "head -1 /etc/passwd; ls / >/dev/null && echo ls-ok")
        assert b.splitlines() == ["root:x:0:0:root:/root:/bin/sh", "ls-ok"]
        assert clean.out("exec", a, "cat", "/etc/passwd") == "changed"
        layers = list((data_root / "images").rglob("etc/passwd"))
        assert layers and all(p.read_text().startswith("root:") for p in layers)
    finally:
        clean("rm", "-f", a)


def test_minimal_dev_and_masked_proc(clean):
    out = clean.out("run", "--rm", "busybox", "sh", "-c",
                    "ls /dev | tr '\\n' ' '; echo; cat /proc/keys | wc -c; "
                    "echo x > /proc/sys/kernel/domainname && echo WROTE || echo ro")
    devs, keys, sysctl = out.splitlines()
    for name in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue"):
        assert name in devs.split()
    assert keys.strip() == "0"                       # masked: /dev/null over it
    assert sysctl == "ro"


def test_default_capabilities_are_dockers(clean):
    out = clean.out("run", "--rm", "busybox", "sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status")
    eff = int(out.splitlines()[0].split()[1], 16)
    assert eff == 0xA80425FB                         # Docker's 14 default capabilities
    assert "NoNewPrivs:\t1" in clean.out("run", "--rm", "busybox", "cat", "/proc/self/status")


def test_no_host_fds_leak_in(clean):
    r, w = os.pipe()                                  # an inheritable fd in the caller
    os.set_inheritable(r, True)
    try:
        out = clean.out("run", "--rm", "busybox", "ls", "/proc/self/fd")
    finally:
        os.close(r)
        os.close(w)
    assert sorted(out.split()) == ["0", "1", "2", "3"]    # 3 is ls's own directory handle


def _ignore_signals_like_a_careless_parent():
    """Ignore SIGUSR1 and real-time signal 32 (glibc's own, which only the raw syscall reaches),
    as some supervisors and CI runners do before they start us."""
    import ctypes
    import signal

    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    ignore = (ctypes.c_ulong * 4)(1, 0, 0, 0)        # SIG_IGN, no flags, no restorer, no mask
    ctypes.CDLL(None, use_errno=True).syscall(13, 32, ctypes.byref(ignore), None, 8)   # rt_sigaction


def test_signal_dispositions_are_fresh(clean):
    # CPython ignores SIGPIPE and our caller may ignore more; a container must not inherit that
    # (nor a blocked mask), or `yes | head -1` would never end
    script = "grep -E '^Sig(Ign|Blk)' /proc/self/status; yes | head -1"
    r = subprocess.run([*MINIRUN, "--root", str(clean.root), "run", "--rm", "busybox", "sh", "-c", script],
                       capture_output=True, text=True, timeout=20,
                       preexec_fn=_ignore_signals_like_a_careless_parent)
    assert r.stdout.split() == ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000", "y"]
    cid = clean.out("run", "-d", "busybox", "sleep", "30")
    try:
        assert clean.out("exec", cid, "sh", "-c", "yes | head -1", timeout=20) == "y"
    finally:
        clean("rm", "-f", cid)


def test_loopback_is_up_with_network_none(clean):
    script = "httpd -p 127.0.0.1:8080 -h /etc && wget -q -O - http://127.0.0.1:8080/hostname"
    assert clean.out("run", "--rm", "--network", "none", "-h", "lo-test", "busybox", "sh", "-c", script, timeout=30) == "lo-test"
    links = clean.out("run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev")
    assert [ln.split(":")[0].strip() for ln in links.splitlines()[2:]] == ["lo"]   # nothing else


def test_ulimit_is_applied(clean):
    out = clean.out("run", "--rm", "--ulimit", "nofile=256:512", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")
    assert out.split() == ["256", "512"]
