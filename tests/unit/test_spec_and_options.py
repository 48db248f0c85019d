"""The spec and the Docker-flag semantics, without root: pure data in, data out."""

from __future__ import annotations

import pytest

from minirun import spec as oci
from minirun.errors import SpecError, UsageError
from minirun.net import ports
from minirun.runtime.options import Mount, RunOptions, Ulimit, build_spec, resolve_user


@pytest.fixture
def layer(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nstaff:x:50:\n")
    return tmp_path


def spec_for(layer, tmp_path, config=None, **flags):
    cdir = tmp_path / "ctr"
    cdir.mkdir(exist_ok=True)
    return build_spec(RunOptions(image="img", **flags), {"Cmd": ["sh"]} if config is None else config, [layer], cdir, "a" * 64)


def test_default_spec_is_valid_and_dockerlike():
    s = oci.validate(oci.default_spec())
    assert sorted(s["process"]["capabilities"]["bounding"]) == sorted(oci.DEFAULT_CAPS)
    assert len(oci.DEFAULT_CAPS) == 14
    assert "/proc/kcore" in s["linux"]["maskedPaths"] and "/proc/sys" in s["linux"]["readonlyPaths"]
    assert s["process"]["noNewPrivileges"] is True


@pytest.mark.parametrize("mutate, field", [
    (lambda s: s["process"].update(args=[]), "process/args"),
    (lambda s: s["process"].update(env=["NOEQUALS"]), "process/env"),
    (lambda s: s["process"].update(cwd="relative"), "process/cwd"),
    (lambda s: s["process"]["capabilities"]["bounding"].append("CAP_FLY"), "process/capabilities/bounding/14"),
    (lambda s: s["process"].update(apparmorProfile="x"), "process/apparmorProfile"),
    (lambda s: s["linux"]["namespaces"].append({"type": "bogus"}), "linux/namespaces/6/type"),
    (lambda s: s.pop("root"), "root"),
])
def test_validation_names_the_field(mutate, field):
    s = oci.default_spec()
    mutate(s)
    with pytest.raises(SpecError) as e:
        oci.validate(s)
    assert e.value.field == field and str(e.value).startswith(field + ":")


def test_mount_options_split_flags_propagation_and_data():
    flags, prop, data = oci.mount_options(["nosuid", "ro", "rbind", "rprivate", "mode=755", "size=1m"])
    assert flags == oci.MS["NOSUID"] | oci.MS["RDONLY"] | oci.MS["BIND"] | oci.MS["REC"]
    assert prop == oci.MS["PRIVATE"] | oci.MS["REC"]
    assert data == "mode=755,size=1m"


def test_image_defaults_and_flag_overrides(layer, tmp_path):
    cfg = {"Entrypoint": ["/entry"], "Cmd": ["default"], "Env": ["A=image", "B=image"], "WorkingDir": "/srv"}
    s = spec_for(layer, tmp_path, cfg)
    assert s["process"]["args"] == ["/entry", "default"]
    assert s["process"]["cwd"] == "/srv"
    s = spec_for(layer, tmp_path, cfg, command=["x"], env=["B=flag"], workdir="/tmp")
    assert s["process"]["args"] == ["/entry", "x"]
    assert "A=image" in s["process"]["env"] and "B=flag" in s["process"]["env"]
    assert "B=image" not in s["process"]["env"]
    s = spec_for(layer, tmp_path, cfg, entrypoint="/other -v")   # --entrypoint drops Cmd too
    assert s["process"]["args"] == ["/other", "-v"]


def test_no_command_is_a_usage_error(layer, tmp_path):
    with pytest.raises(UsageError, match="no command specified"):
        spec_for(layer, tmp_path, {})


def test_env_key_alone_copies_the_callers_value(layer, tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_HOST", "yes")
    s = spec_for(layer, tmp_path, env=["FROM_HOST", "UNSET_THING"])
    assert "FROM_HOST=yes" in s["process"]["env"]
    assert not any(e.startswith("UNSET_THING") for e in s["process"]["env"])


def test_user_lookup_in_the_image(layer):
    assert resolve_user("app", [layer]) == {"uid": 1000, "gid": 1001}
    assert resolve_user("app:staff", [layer]) == {"uid": 1000, "gid": 50}
    assert resolve_user("123:45", [layer]) == {"uid": 123, "gid": 45}
    with pytest.raises(UsageError, match="unable to find user ghost"):
        resolve_user("ghost", [layer])


@pytest.mark.parametrize("volume", ["relative:/x", "/a", "/a:rel", "/a:/b:rw:extra", "/a:/b:maybe"])
def test_bad_volumes_are_refused(layer, tmp_path, volume):
    with pytest.raises(UsageError, match="invalid volume"):
        spec_for(layer, tmp_path, volumes=[Mount.parse(volume)])


def test_limits_become_oci_resources(layer, tmp_path):
    s = spec_for(layer, tmp_path, memory=64 << 20, cpus=0.5, pids_limit=64, cpuset_cpus="0")
    res = s["linux"]["resources"]
    assert res["memory"]["limit"] == 64 << 20
    assert res["cpu"] == {"quota": 50000, "period": 100000, "cpus": "0"}
    assert res["pids"]["limit"] == 64


def test_network_host_shares_the_host_namespace(layer, tmp_path):
    s = spec_for(layer, tmp_path, network="host")
    assert "network" not in {n["type"] for n in s["linux"]["namespaces"]}
    with pytest.raises(UsageError, match="--network 'container:x'"):
        spec_for(layer, tmp_path, network="container:x")
    with pytest.raises(UsageError, match="published ports need a bridge network"):
        spec_for(layer, tmp_path, network="host", publish=[ports.parse("80:80")])


def test_ulimits_become_rlimits(layer, tmp_path):
    s = spec_for(layer, tmp_path, ulimits=[Ulimit.parse("nofile=1024:2048"), Ulimit.parse("core=-1")])
    assert s["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
        {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1},
    ]
    for bad in ("nofile", "bogus=1", "nofile=2:1", "nofile=x"):
        with pytest.raises(UsageError, match="invalid --ulimit"):
            Ulimit.parse(bad)


def test_a_cgroup_mount_becomes_read_only_binds_of_the_containers_groups():
    from minirun.runtime.plan import _cgroup_mount

    m = {"destination": "/sys/fs/cgroup", "type": "cgroup", "options": ["nosuid", "ro"]}
    hybrid = _cgroup_mount(m, [("memory", "/sys/fs/cgroup/memory/minirun/c"),
                               ("unified", "/sys/fs/cgroup/unified/minirun/c")])
    assert [(x["type"], x["destination"]) for x in hybrid] == [
        ("tmpfs", "/sys/fs/cgroup"), ("bind", "/sys/fs/cgroup/memory"),
        ("bind", "/sys/fs/cgroup/unified"), ("remount", "/sys/fs/cgroup")]
    assert hybrid[1]["source"] == "/sys/fs/cgroup/memory/minirun/c" and "ro" in hybrid[1]["options"]
    v2_only = _cgroup_mount(m, [("", "/sys/fs/cgroup/minirun/c")])
    assert v2_only == [{"destination": "/sys/fs/cgroup", "type": "bind", "group": True,
                        "source": "/sys/fs/cgroup/minirun/c", "options": ["rbind", "nosuid", "ro"]}]
    writable = _cgroup_mount(dict(m, options=["nosuid"]), [("pids", "/p")])
    assert [x["type"] for x in writable] == ["tmpfs", "bind"]


def test_the_device_program_tests_rules_last_first_and_stops_at_a_catch_all():
    from minirun.runtime.cgroups.devices_bpf import program

    deny_all = {"allow": False, "access": "rwm"}
    null = {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    code = program([deny_all, null])
    insns = [code[i:i + 8] for i in range(0, len(code), 8)]
    # 6 loads, then /dev/null's block (type, major, minor, allow, exit), then the catch-all deny
    assert len(insns) == 6 + 5 + 2
    assert insns[-1][0] == 0x95 and insns[-2][0] == 0xb7 and insns[-2][4] == 0      # deny, exit
    assert insns[6][0] == 0x55 and insns[6][2] == 4                                # skip 4 if not char
    # without a catch-all, a final deny is added
    assert len(program([null])) // 8 == 6 + 5 + 2
