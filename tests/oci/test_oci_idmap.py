"""OCI 1.1 idmapped mounts (config.md, mounts[].uidMappings/gidMappings): a bind mount whose
files show owners shifted by the map, made with open_tree + mount_setattr(MOUNT_ATTR_IDMAP) +
move_mount, and refused in one line where the kernel or filesystem cannot."""

from __future__ import annotations

import os

import pytest

from tests.oci.conftest import assert_nothing_left, one_line

pytestmark = pytest.mark.root

MAP = [{"containerID": 0, "hostID": 5000, "size": 2000}]


@pytest.fixture
def shared(tmp_path):
    """A host directory with files of root and of uid/gid 1000."""
    d = tmp_path / "shared"
    d.mkdir()
    (d / "root-file").write_text("r\n")
    (d / "user-file").write_text("u\n")
    os.chown(d / "user-file", 1000, 1000)
    return d


def test_an_idmapped_bind_shows_shifted_owners_and_chowns_nothing(oci, shared):
    spec = oci.configure(["sh", "-c", "stat -c %u:%g /data/root-file /data/user-file; cat /data/user-file; "
                          "touch /data/new 2>/dev/null || echo read-only"])
    spec["mounts"].append({"destination": "/data", "type": "bind", "source": str(shared),
                           "options": ["bind", "ro"], "uidMappings": MAP, "gidMappings": MAP})
    oci.write(spec)
    before = {p.name: (p.stat().st_uid, p.stat().st_gid, p.stat().st_ctime_ns) for p in shared.iterdir()}
    r = oci("run", "--bundle", str(oci.bundle), f"idmap-{os.getpid()}", check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["5000:5000", "6000:6000", "u", "read-only"]
    assert {p.name: (p.stat().st_uid, p.stat().st_gid, p.stat().st_ctime_ns) for p in shared.iterdir()} == before
    assert_nothing_left(oci, f"idmap-{os.getpid()}")


@pytest.mark.parametrize(("change", "message"), [
    ({"uidMappings": MAP}, "mounts/{i}/gidMappings: required with uidMappings (an idmapped mount)"),
    ({"uidMappings": MAP, "gidMappings": MAP, "type": "tmpfs", "options": []},
     "mounts/{i}/uidMappings: idmapped mounts are bind mounts here"),
    ({"uidMappings": [{"containerID": 0, "hostID": 5000, "size": 0}], "gidMappings": MAP},
     "mounts/{i}/uidMappings/0/size: must be an unsigned 32-bit integer > 0"),
    ({"source": "/proc/sys", "uidMappings": MAP, "gidMappings": MAP},
     "mounts/{i}/uidMappings: /proc/sys cannot be idmapped here (the kernel or its filesystem refuses: "
     "Invalid argument)"),
])
def test_what_cannot_be_idmapped_is_refused_by_name(oci, shared, change, message):
    spec = oci.configure(["true"])
    mount = {"destination": "/data", "type": "bind", "source": str(shared), "options": ["bind"], **change}
    spec["mounts"].append(mount)
    oci.write(spec)
    cid = f"idmap-bad-{os.getpid()}"
    r = oci("run", "--bundle", str(oci.bundle), cid, check=False)
    assert r.returncode == 1
    assert one_line(r.stderr) == "minirun-oci: " + message.format(i=len(spec["mounts"]) - 1)
    assert_nothing_left(oci, cid)
