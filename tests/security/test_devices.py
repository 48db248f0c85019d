"""The devices cgroup allowlist: a container may create device nodes but open only its own."""

from __future__ import annotations

import pytest

from tests.conftest import cgroup_value, requires

pytestmark = pytest.mark.root


def test_a_device_node_made_with_mknod_cannot_be_opened(clean):
    """mknod + open of a host device (here the kernel log, /dev/kmsg = c 1:11; a disk works the
    same way: b 254:0): CAP_MKNOD is in the default set, so the cgroup is what stops it."""
    requires("cgroup:devices")
    r = clean("run", "--rm", "busybox", "sh", "-c", "mknod /dev/leak c 1 11 && head -c 1 /dev/leak", check=False)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr


def test_the_allowed_devices_still_work(clean):
    requires("cgroup:devices")
    out = clean.out("run", "--rm", "busybox", "sh", "-c",
                    "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c")
    assert out.split() == ["4", "4"]


def test_the_allowlist_is_dockers(clean):
    """v1 lists the rules in devices.list; cgroup2 has no such file (the rules are an eBPF
    program), so there, and on v1 too, the kernel is asked: each node is made with mknod (any
    node may be made: "c *:* m", "b *:* m") and opened, and only Docker's list opens."""
    from minirun.runtime.cgroups import detect

    requires("cgroup:devices")
    if detect().available().get("devices") == "v1":
        with clean.detached("busybox", "sleep", "30") as cid:
            rules = cgroup_value(cid, "devices", "devices.list", "devices.list").splitlines()
        assert rules == ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                         "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"]
    allowed = ["c 1 3", "c 1 5", "c 1 7", "c 1 8", "c 1 9", "c 5 0", "c 5 1", "c 5 2", "c 136 7"]
    denied = ["c 1 11", "c 4 1", "c 10 200", "b 7 0", "b 8 0"]
    # an open the fence refuses fails with EPERM; an allowed node may still fail otherwise
    # (no console, no such pty: ENXIO, EIO), which is not the fence's doing
    probe = "; ".join(f"mknod /dev/p{i} {node} && {{ : < /dev/p{i}; }} 2>&1 | grep -q 'not permitted' "
                      f"&& echo denied || echo open" for i, node in enumerate(allowed + denied))
    out = clean.out("run", "--rm", "busybox", "sh", "-c", probe).split()
    assert out == ["open"] * len(allowed) + ["denied"] * len(denied), dict(zip(allowed + denied, out, strict=False))
