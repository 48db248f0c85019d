"""--cap-add/--cap-drop, --privileged, --sysctl, --device and no-new-privileges as spec changes
(no root needed: pure data in, data out; the same flags are tested from inside containers in
tests/security/test_controls.py)."""

from __future__ import annotations

import json
import os

import pytest

from minirun import spec as oci
from minirun.errors import SpecError, UsageError
from minirun.runtime import security
from minirun.runtime.options import RunOptions, build_spec


def spec_for(tmp_path, **flags):
    cdir = tmp_path / "ctr"
    cdir.mkdir(exist_ok=True)
    return build_spec(RunOptions(image="img", **flags), {"Cmd": ["sh"]}, [tmp_path], cdir, "a" * 64)


def caps(spec, kind="effective"):
    return spec["process"]["capabilities"][kind]


def test_cap_add_and_drop_follow_dockers_rules(tmp_path):
    s = spec_for(tmp_path, cap_add=["net_admin", "CAP_SYS_PTRACE"], cap_drop=["chown", "CAP_KILL"])
    assert "CAP_NET_ADMIN" in caps(s) and "CAP_SYS_PTRACE" in caps(s)
    assert "CAP_CHOWN" not in caps(s) and "CAP_KILL" not in caps(s)
    assert caps(s) == caps(s, "bounding") == caps(s, "permitted")
    assert caps(s, "inheritable") == caps(s, "ambient") == []
    assert caps(spec_for(tmp_path, cap_drop=["ALL"])) == []
    assert caps(spec_for(tmp_path, cap_drop=["all"], cap_add=["NET_BIND_SERVICE"])) == ["CAP_NET_BIND_SERVICE"]
    every = caps(spec_for(tmp_path, cap_add=["ALL"], cap_drop=["SYS_ADMIN"]))
    # ALL: what this process can give, as --privileged (CAP_SYS_RESOURCE is outside this VM's)
    assert every == [c for c in security.host_capabilities() if c != "CAP_SYS_ADMIN"]


@pytest.mark.parametrize("flag", ["cap_add", "cap_drop"])
def test_unknown_capability_is_one_clear_error(tmp_path, flag):
    with pytest.raises(UsageError, match=f"--{flag.replace('_', '-')} FLY: unknown capability"):
        spec_for(tmp_path, **{flag: ["FLY"]})


def test_the_default_filter_follows_the_capabilities(tmp_path):
    """Docker's profile allows mount & co. to a container given CAP_SYS_ADMIN; the keyring stays
    refused whatever the capabilities."""
    def denied(spec):
        return {n for rule in spec["linux"]["seccomp"]["syscalls"] for n in rule["names"]
                if rule["action"] == "SCMP_ACT_ERRNO" and not rule.get("args")}
    default = denied(spec_for(tmp_path))
    admin = denied(spec_for(tmp_path, cap_add=["SYS_ADMIN"]))
    assert {"mount", "umount2", "setns", "keyctl", "clone3"} <= default
    assert not {"mount", "umount2", "setns", "clone3"} & admin
    assert {"keyctl", "add_key", "ptrace", "reboot", "kexec_load", "userfaultfd"} <= admin
    assert RunOptions.security_opt_of(spec_for(tmp_path, cap_add=["SYS_ADMIN"])) == ["seccomp=default"]


def test_privileged_is_host_root_without_the_namespaces_fences(tmp_path):
    s = spec_for(tmp_path, privileged=True)
    assert "seccomp" not in s["linux"]
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == []
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "ro" not in next(m for m in s["mounts"] if m["destination"] == "/sys")["options"]
    assert set(caps(s)) == set(security.host_capabilities())
    paths = [d["path"] for d in s["linux"]["devices"]]
    assert len(paths) == len(set(paths))             # no host node collides with a default one
    assert all(not p.startswith(("/dev/pts/", "/dev/shm/")) and p != "/dev/ptmx" for p in paths)
    info = security.effective(s)
    assert info["Privileged"] is True and info["Seccomp"] == {"Profile": "unconfined"}
    assert security.host_config(s)["Privileged"] is True


def test_no_new_privileges_values(tmp_path):
    assert spec_for(tmp_path)["process"]["noNewPrivileges"] is True
    assert spec_for(tmp_path, security_opt=["no-new-privileges=false"])["process"]["noNewPrivileges"] is False
    assert spec_for(tmp_path, security_opt=["no-new-privileges:true"])["process"]["noNewPrivileges"] is True
    with pytest.raises(UsageError, match="no-new-privileges"):
        spec_for(tmp_path, security_opt=["no-new-privileges=maybe"])


def test_sysctls_namespaced_only(tmp_path):
    s = spec_for(tmp_path, sysctls=["net.ipv4.ip_forward=1", "kernel.shmmax=65536", "fs.mqueue.msg_max=20"])
    assert s["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536",
                                    "fs.mqueue.msg_max": "20"}
    assert security.effective(s)["Sysctls"]["net.ipv4.ip_forward"] == "1"
    for bad, why in (("kernel.panic=1", "not namespaced"), ("vm.swappiness=1", "not namespaced"),
                     ("kernel.hostname=x", "not namespaced"), ("net..x=1", "not a sysctl name"),
                     ("net.ipv4/../../x=1", "not a sysctl name"), ("net.ipv4.ip_forward", "NAME=VALUE"),
                     ("net.ipv4.ip_forward=", "NAME=VALUE")):
        with pytest.raises(UsageError, match=why):
            spec_for(tmp_path, sysctls=[bad])
    with pytest.raises(UsageError, match="own network namespace"):
        spec_for(tmp_path, network="host", sysctls=["net.ipv4.ip_forward=1"])


def test_a_bundles_sysctl_is_checked_too():
    s = oci.default_spec()
    s["linux"]["sysctl"] = {"kernel.panic": "1"}
    with pytest.raises(SpecError, match="linux/sysctl/kernel.panic: not namespaced"):
        oci.validate(s)
    s["linux"]["sysctl"] = {"net.core.somaxconn": "1024"}
    assert oci.validate(s)


def test_device_flag(tmp_path):
    s = spec_for(tmp_path, devices=["/dev/null:/dev/mynull:rw", "/dev/zero"])
    devs = {d["path"]: d for d in s["linux"]["devices"]}
    assert devs["/dev/mynull"]["major"] == 1 and devs["/dev/mynull"]["minor"] == 3
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"} in s["linux"]["resources"]["devices"]
    assert [d["path"] for d in s["linux"]["devices"]].count("/dev/zero") == 1
    assert security.host_config(s)["Devices"][0] == {
        "PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"}
    assert json.loads(s["annotations"][security.ANNOTATION])["devices"] == [
        "/dev/null:/dev/mynull:rw", "/dev/zero:/dev/zero:rwm"]
    assert spec_for(tmp_path, devices=["/dev/null:r"])["linux"]["resources"]["devices"][-1]["access"] == "r"
    for bad, why in (("/no/such", "No such file"), (str(tmp_path), "not a character or block device"),
                     ("/dev/null:/x:rwx", "permissions"), ("dev/null", "absolute"), ("/a:/b:r:w", "HOST")):
        with pytest.raises(UsageError, match=why):
            spec_for(tmp_path, devices=[bad])


def test_effective_caps_of_a_non_root_user_are_empty(tmp_path):
    """execve as uid != 0 clears permitted and effective; inheritable and ambient stay empty."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("app:x:1000:1000::/:/bin/sh\n")
    s = spec_for(tmp_path, user="app")
    info = security.effective(s)["Capabilities"]
    assert info["Effective"] == info["Permitted"] == info["Inheritable"] == info["Ambient"] == []
    assert len(info["Bounding"]) == 14
    if os.geteuid() == 0:
        assert security.effective(spec_for(tmp_path))["Capabilities"]["Effective"][0] == "CHOWN"
