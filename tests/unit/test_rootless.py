"""runtime/rootless.py's decisions, without a container: the maps from /etc/subuid-style files,
what a spec keeps, and the messages that say what is missing."""

from __future__ import annotations

import errno
import os
import shutil
from types import SimpleNamespace

import pytest

from minirun import spec as oci
from minirun.errors import RootlessUnsupported, SpawnError
from minirun.runtime import rootless


def test_ranges_match_the_user_by_name_or_uid(tmp_path):
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\n1001:200000:1000\nbob:300000:10\nalice:bad:1\nalice:5:0\n")
    assert rootless.ranges(str(f), "alice", 1001) == [(100000, 65536), (200000, 1000)]
    assert rootless.ranges(str(f), "carol", 7) == []
    assert rootless.ranges(str(tmp_path / "missing"), "alice", 1) == []


def test_maps_add_the_subordinate_ranges_after_our_own_id(tmp_path, monkeypatch):
    uid, gid = os.geteuid(), os.getegid()
    f = tmp_path / "subids"
    monkeypatch.setenv("MINIRUN_SUBUID", str(f))
    monkeypatch.setenv("MINIRUN_SUBGID", str(f))
    f.write_text("")
    assert rootless.maps() == ([{"containerID": 0, "hostID": uid, "size": 1}],
                               [{"containerID": 0, "hostID": gid, "size": 1}])
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        pytest.skip("needs newuidmap/newgidmap for the ranges to be used")
    f.write_text(f"{uid}:100000:65536\n{uid}:900000:10\n")
    uids, gids = rootless.maps()
    assert uids[1:] == [{"containerID": 1, "hostID": 100000, "size": 65536},
                        {"containerID": 65537, "hostID": 900000, "size": 10}]
    assert gids[1:] == uids[1:]


def _spec(uid_maps, user=None):
    spec = oci.default_spec()
    spec["linux"]["uidMappings"] = spec["linux"]["gidMappings"] = uid_maps
    spec["process"]["user"] = user or {"uid": 0, "gid": 0}
    return spec


def test_apply_keeps_only_what_a_user_may_have(monkeypatch):
    monkeypatch.setattr(rootless, "maps", lambda: ([{"containerID": 0, "hostID": 1000, "size": 1}],
                                                   [{"containerID": 0, "hostID": 1000, "size": 1}]))
    spec = oci.default_spec()
    spec["linux"]["resources"]["pids"] = {"limit": oci.DEFAULT_PIDS_LIMIT}
    spec["process"]["user"] = {"uid": 0, "gid": 0}
    opts = SimpleNamespace(userns=None, uidmaps=[], gidmaps=[], network="none", memory=None,
                           memory_swap=None, cpus=None, cpu_shares=None, cpuset_cpus=None, pids_limit=None)
    rootless.apply(spec, opts)
    assert {"type": "user"} in spec["linux"]["namespaces"] and "pids" not in spec["linux"]["resources"]
    assert rootless.is_rootless(spec) and rootless.single_id(spec)
    devpts = next(m for m in spec["mounts"] if m["type"] == "devpts")
    assert "gid=5" not in devpts["options"] and "newinstance" in devpts["options"]
    for change, says in (({"memory": 1 << 26}, "-m/--memory needs a cgroup"),
                         ({"network": "bridge"}, "--network bridge needs root"),
                         ({"uidmaps": ["0:1:1"]}, "--uidmap and --gidmap need root")):
        with pytest.raises(RootlessUnsupported, match=says):
            rootless.apply(oci.default_spec(), SimpleNamespace(**{**vars(opts), **change}))


def test_ids_and_owners_outside_the_map_are_named():
    one = [{"containerID": 0, "hostID": 1000, "size": 1}]
    with pytest.raises(RootlessUnsupported, match="runs as uid 1000, but only uid 0"):
        rootless.check_user(_spec(one, {"uid": 1000, "gid": 0}))
    with pytest.raises(RootlessUnsupported, match=r"/etc/passwd is 1:2"):
        rootless.check_layer_owners(_spec(one), {"etc/passwd": [1, 2]}, "img")
    ranged = [*one, {"containerID": 1, "hostID": 100000, "size": 65536}]
    rootless.check_layer_owners(_spec(ranged), {"home/app": [1000, 1000]}, "img")
    with pytest.raises(RootlessUnsupported, match=r"/x owned by 70000:0, outside .* \(0-65536\)"):
        rootless.check_layer_owners(_spec(ranged), {"x": [70000, 0]}, "img")


def test_a_refused_user_namespace_is_explained():
    err = SpawnError("clone: Operation not permitted", errno.EPERM, "clone")
    assert "does not let uid" in str(rootless.explain_clone_failure(err))
    other = SpawnError("mount proc on /proc: Invalid argument", errno.EINVAL, "mount")
    assert rootless.explain_clone_failure(other) is other
