"""User namespaces (--uidmap, --gidmap, --userns=auto): root in the container is an unprivileged
uid on the host, and image files still show their owners inside."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

HOST = 300000                                    # the host uid/gid of the container's root here
MAP = ("--uidmap", f"0:{HOST}:65536")


def host_ids(pid: int) -> tuple[str, str]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return status["Uid"].split()[0], status["Gid"].split()[0]


def test_root_inside_is_an_unprivileged_uid_on_the_host(clean, data_root):
    with clean.detached(*MAP, "busybox", "sh", "-c", "touch /made-inside; sleep 30") as cid:
        inside = clean.out("exec", cid, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map")
        assert inside.split() == ["0", "0", "0", str(HOST), "65536"]
        pid = json.loads(clean.out("inspect", cid))[0]["State"]["Pid"]
        assert host_ids(pid) == (str(HOST), str(HOST))
        made = data_root / "containers" / cid / "upper" / "made-inside"
        for _ in range(100):
            if made.exists():
                break
            time.sleep(0.02)
        assert (made.stat().st_uid, made.stat().st_gid) == (HOST, HOST)


def test_image_files_keep_their_owners_inside(clean):
    out = clean.out("run", "--rm", *MAP, "busybox", "stat", "-c", "%u:%g", "/bin/busybox", "/etc/passwd", "/tmp")
    assert out.split() == ["0:0", "0:0", "0:0"]


@pytest.fixture
def passable_dir(data_root):
    """A directory whose ancestors anyone may pass through (pytest's tmp_path is under a 0700
    directory, which a user namespace's root could not even reach)."""
    path = Path(tempfile.mkdtemp(dir=data_root, prefix="volumes-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def test_host_root_files_are_out_of_reach(clean, passable_dir):
    """The point of it: a file only the host's root may read, and a directory only it may write,
    given to the container as volumes. Root without a user namespace reads and writes them;
    root in one cannot, its capabilities count only inside its namespace."""
    tmp_path = passable_dir
    secret = tmp_path / "secret"
    secret.write_text("host only\n")
    secret.chmod(0o600)
    share = tmp_path / "share"
    share.mkdir(mode=0o755)
    script = "cat /secret; touch /share/f && echo wrote"
    vols = ("-v", f"{secret}:/secret", "-v", f"{share}:/share")
    assert clean.out("run", "--rm", *vols, "busybox", "sh", "-c", script).split() == ["host", "only", "wrote"]
    r = clean("run", "--rm", *MAP, *vols, "busybox", "sh", "-c", script, check=False)
    assert r.stdout == "" and r.stderr.count("Permission denied") == 2
    assert [p.name for p in share.iterdir()] == ["f"]         # only the first container's


def test_exec_devices_and_sysctls_in_a_user_namespace(clean):
    """exec joins the user namespace first; devices are bind-mounted (mknod is refused in a user
    namespace); a namespaced sysctl is written by the namespace's root."""
    with clean.detached(*MAP, "--sysctl", "net.ipv4.ip_forward=1", "--device", "/dev/null:/dev/mynull",
                        "busybox", "sleep", "30") as cid:
        out = clean.out("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map; cat /proc/sys/net/ipv4/ip_forward; "
                        "echo x > /dev/null && echo x > /dev/mynull && echo devices-ok; grep Seccomp: /proc/self/status")
        assert out.split() == ["0", "0", str(HOST), "65536", "1", "devices-ok", "Seccomp:", "2"]
        sec = json.loads(clean.out("inspect", cid))[0]["Security"]
    assert sec["UserNamespace"] == {"UidMap": [f"0:{HOST}:65536"], "GidMap": [f"0:{HOST}:65536"]}


def test_bad_maps_fail_in_one_line_and_leave_nothing(clean):
    for args, why in ((("--uidmap", "0:1"), "use CONTAINER_ID:HOST_ID:SIZE"),
                      (("--uidmap", f"0:{HOST}:10", "--network", "host"), "own network namespace")):
        r = clean("run", "--rm", *args, "busybox", "true", check=False)
        assert r.returncode == 125 and why in r.stderr and r.stderr.count("\n") == 1
    assert clean.out("ps", "-a", "-q") == ""


def test_userns_auto_takes_distinct_blocks_of_the_subuid_ranges(clean, tmp_path):
    """--userns=auto: the first 65536-id block of the "minirun" ranges no other container uses
    (subordinate-id files given by MINIRUN_SUBUID/MINIRUN_SUBGID, as /etc/subuid is the host's)."""
    sub = tmp_path / "subids"
    sub.write_text(f"someone:100000:65536\nminirun:{HOST + 65536}:131072\n")
    env = dict(os.environ, MINIRUN_SUBUID=str(sub), MINIRUN_SUBGID=str(sub))
    with clean.detached("--userns", "auto", "busybox", "sleep", "30", env=env) as first:
        second = clean.out("run", "--rm", "--userns", "auto", "busybox", "cat", "/proc/self/uid_map", env=env)
        assert clean.out("exec", first, "cat", "/proc/self/uid_map").split() == ["0", str(HOST + 65536), "65536"]
    assert second.split() == ["0", str(HOST + 131072), "65536"]
    sub.write_text("someone:100000:65536\n")
    r = clean("run", "--rm", "--userns", "auto", "busybox", "true", check=False, env=env)
    assert r.returncode == 125 and f"{sub} has no range for 'minirun'" in r.stderr


def test_a_layered_image_keeps_owners_and_deletions(clean, tmp_path):
    """Every layer of a built image is shifted: a directory a RUN step gave to uid 1000 is 1000's
    inside, and a directory a later layer replaced (an overlay opaque directory) stays replaced."""
    (tmp_path / "Containerfile").write_text(
        "FROM busybox\n"
        "RUN mkdir -p /home/app /opq && chown 1000:1000 /home/app && touch /opq/old\n"
        "RUN rm -rf /opq && mkdir /opq && touch /opq/new\n")
    clean("build", "-t", "userns-layers", str(tmp_path))
    try:
        out = clean.out("run", "--rm", *MAP, "userns-layers", "sh", "-c", "stat -c %u:%g /home/app; ls /opq")
        assert out.split() == ["1000:1000", "new"]
    finally:
        clean("image", "rm", "userns-layers")


IDMAP_HOST = 400000                              # a map no other test uses: its own cache key


def test_layers_are_idmapped_not_copied_nor_chowned(clean, data_root):
    """Where the kernel can (mount_setattr(2), MOUNT_ATTR_IDMAP; 6.18 here), the image's layers
    are seen through idmapped mounts: owners right inside, the store's files untouched on the
    host, no copy made; what the container writes still lands as the mapped uid."""
    idmap = ("--uidmap", f"0:{IDMAP_HOST}:65536")
    layers = list((data_root / "images" / "layers").glob("*/diff/bin/busybox"))
    before = [(p.stat().st_uid, p.stat().st_gid, p.stat().st_ctime_ns) for p in layers]
    with clean.detached(*idmap, "busybox", "sh", "-c", "touch /made; echo made; sleep 30") as cid:
        clean.wait_for_log(cid, "made")      # the exec below could otherwise beat the touch
        inside = clean.out("exec", cid, "sh", "-c", "stat -c %u:%g /bin/busybox /etc/passwd /tmp; "
                           "grep ' / / ' /proc/self/mountinfo")
        owners, root_line = inside.splitlines()[:3], inside.splitlines()[3]
        assert owners == ["0:0", "0:0", "0:0"]
        assert f"lowerdir={data_root}/containers/{cid}/lower/0" in root_line   # the idmapped mount
        made = data_root / "containers" / cid / "upper" / "made"
        assert (made.stat().st_uid, made.stat().st_gid) == (IDMAP_HOST, IDMAP_HOST)
    assert [(p.stat().st_uid, p.stat().st_gid, p.stat().st_ctime_ns) for p in layers] == before
    assert not list((data_root / "cache" / "idmap").glob(f"*{IDMAP_HOST}*"))


def test_without_idmapped_mounts_a_shifted_copy_is_the_fallback(clean, data_root):
    """MINIRUN_IDMAP=0 stands for a kernel or filesystem that cannot idmap: the same owners
    inside, from a copy of each layer chowned by the map, cached in ROOT/cache/idmap."""
    host = IDMAP_HOST + 65536
    env = dict(os.environ, MINIRUN_IDMAP="0")
    out = clean.out("run", "--rm", "--uidmap", f"0:{host}:65536", "busybox", "stat", "-c", "%u:%g", "/bin/busybox",
                    env=env)
    assert out == "0:0"
    copies = list((data_root / "cache" / "idmap").glob(f"*{host}*/*_diff/bin/busybox"))
    assert len(copies) == 1 and copies[0].stat().st_uid == host
