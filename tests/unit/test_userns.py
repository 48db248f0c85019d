"""--userns/--uidmap/--gidmap as spec changes, the auto allocation from subuid files, and the
shifted copy of a layer (no container needed; the copy test needs root to chown)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from minirun.errors import UsageError
from minirun.runtime import userns
from minirun.runtime.options import RunOptions, build_spec


def spec_for(tmp_path, **flags):
    cdir = tmp_path / "containers" / "ctr"
    cdir.mkdir(parents=True, exist_ok=True)
    return build_spec(RunOptions(image="img", **flags), {"Cmd": ["sh"]}, [tmp_path], cdir, "a" * 64)


def test_uidmap_gives_a_user_namespace_and_gidmap_defaults_to_it(tmp_path):
    s = spec_for(tmp_path, uidmaps=["0:100000:65536"])
    assert {"type": "user"} in s["linux"]["namespaces"]
    assert s["linux"]["uidMappings"] == s["linux"]["gidMappings"] == [
        {"containerID": 0, "hostID": 100000, "size": 65536}]
    assert userns.host_root(s) == (100000, 100000)
    s = spec_for(tmp_path, uidmaps=["0:100000:1000"], gidmaps=["0:300000:1000"])
    assert userns.host_root(s) == (100000, 300000)
    assert "uidMappings" not in spec_for(tmp_path)["linux"]


@pytest.mark.parametrize("flags, why", [
    ({"uidmaps": ["0:1"]}, "CONTAINER_ID:HOST_ID:SIZE"),
    ({"uidmaps": ["0:1:0"]}, "CONTAINER_ID:HOST_ID:SIZE"),
    ({"uidmaps": ["0:4294967295:10"]}, "CONTAINER_ID:HOST_ID:SIZE"),
    ({"uidmaps": ["1:100000:10"]}, "the container's root"),
    ({"userns": "keep-id"}, "use auto"),
    ({"userns": "auto", "uidmaps": ["0:1:1"]}, "chooses the maps itself"),
    ({"uidmaps": ["0:100000:10"], "network": "host"}, "own network namespace"),
])
def test_bad_maps_are_one_clear_error(tmp_path, flags, why):
    with pytest.raises(UsageError, match=why):
        spec_for(tmp_path, **flags)


def test_auto_takes_a_free_block_of_the_subuid_ranges(tmp_path):
    sub = tmp_path / "subuid"
    sub.write_text("other:100000:65536\nminirun:1000000:196608\n")
    containers = tmp_path / "containers"
    (containers / "c1").mkdir(parents=True)
    uids, gids = userns.auto(containers, str(sub), str(sub))
    assert uids == gids == [{"containerID": 0, "hostID": 1000000, "size": 65536}]
    (containers / "c1" / "config.json").write_text(json.dumps({"linux": {"uidMappings": uids, "gidMappings": gids}}))
    assert userns.auto(containers, str(sub), str(sub))[0][0]["hostID"] == 1065536
    sub.write_text("other:100000:65536\n")
    with pytest.raises(UsageError, match="no range for 'minirun'"):
        userns.auto(containers, str(sub), str(sub))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_a_layer_copy_has_shifted_owners_and_keeps_whiteouts(tmp_path):
    layer = tmp_path / "layers" / "abc" / "diff"
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (layer / "home").mkdir()
    os.chown(layer / "home", 1000, 1000)
    os.mknod(layer / "gone", stat.S_IFCHR, os.makedev(0, 0))          # an overlay whiteout
    os.setxattr(layer / "etc", "trusted.overlay.opaque", b"y")
    (layer / "bin").mkdir()
    os.symlink("/etc/passwd", layer / "bin" / "link")
    spec = {"linux": {"uidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}],
                      "gidMappings": [{"containerID": 0, "hostID": 300000, "size": 65536}]}}
    [copy] = userns.shifted_layers([layer], spec, tmp_path / "cache")
    owner = lambda p: (os.lstat(p).st_uid, os.lstat(p).st_gid)  # noqa: E731
    assert owner(copy / "etc" / "passwd") == (200000, 300000)
    assert owner(copy / "home") == (201000, 301000)
    assert owner(copy / "bin" / "link") == (200000, 300000) and os.readlink(copy / "bin" / "link") == "/etc/passwd"
    assert os.lstat(copy / "gone").st_rdev == os.makedev(0, 0)
    assert os.getxattr(copy / "etc", "user.overlay.opaque") == b"y"
    assert owner(layer / "etc" / "passwd") == (0, 0)                   # the original is untouched
    assert userns.shifted_layers([layer], spec, tmp_path / "cache") == [copy]   # cached


def test_copies_of_removed_layers_are_pruned(tmp_path):
    layers = tmp_path / "layers"
    (layers / "kept").mkdir(parents=True)
    for name in ("kept_diff", "gone_diff"):
        (tmp_path / "cache" / "0.1.2-g.0.0-0.1.2" / name).mkdir(parents=True)
    removed = userns.prune_copies(tmp_path / "cache", layers)
    assert [p.name for p in removed] == ["gone_diff"]
    assert [p.name for p in (tmp_path / "cache" / "0.1.2-g.0.0-0.1.2").iterdir()] == ["kept_diff"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the check is about a non-root uid passing through")
def test_a_data_root_the_mapped_root_cannot_pass_is_refused_by_name(tmp_path):
    locked = tmp_path / "root"
    (locked / "containers" / "c1").mkdir(parents=True)
    locked.chmod(0o700)
    spec = {"linux": {"uidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}],
                      "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]}}
    with pytest.raises(UsageError, match=f"{locked} cannot be passed through by uid 200000.*chmod o\\+x"):
        userns.prepare_container_dirs(locked / "containers" / "c1", spec)
