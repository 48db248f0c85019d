"""The validation suite's inside checks (its runtimetest), each made by a busybox script in a
container created from the suite's own bundle shape (conformance.py): what the process sees of
its user, capabilities, limits, devices, mounts, masked and read-only paths, propagation."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.oci.conformance import CAPS, Runtime, suite_config

CAP_BITS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
            "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
            "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29,
            "CAP_SETFCAP": 31, "CAP_SYS_ADMIN": 21}


def run_inside(rt: Runtime, config: dict, script: str) -> str:
    rc, out, err = rt.inside(config, script)
    assert rc == 0, f"create failed: {err}"
    return out


def test_the_suites_default_bundle_runs_as_the_spec_says(rt):
    out = run_inside(rt, suite_config(), r"""
hostname; id -u; id -g; pwd; umask; echo "$PATH|$TERM"
grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)|^Seccomp:' /proc/self/status | tr -d '\t'
ulimit -Sn; ulimit -Hn
for d in null zero full random urandom tty; do stat -c "$d %F %a %t:%T" /dev/$d; done
for l in fd stdin stdout stderr ptmx; do echo "$l -> $(readlink /dev/$l)"; done
for m in /proc /sys /dev/pts /dev/shm /dev/mqueue; do
  awk -v m=$m '$5 == m { for (i = 7; $i != "-"; i++); print m, $(i+1) }' /proc/self/mountinfo
done
touch /rootfs-is-writable && echo writable
""").splitlines()
    mask = format(sum(1 << CAP_BITS[c] for c in CAPS), "016x")
    assert out[:6] == ["mrsdalloway", "0", "0", "/", "0022",
                       "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|xterm"]
    caps = dict(line.split(":") for line in out[6:12])
    assert {k: v for k, v in caps.items() if k != "Seccomp"} == \
        {k: mask for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    assert caps["Seccomp"] == "2"                        # a filter is installed
    assert out[12:14] == ["1024", "1024"]
    devices = {line.split()[0]: line.split(" ", 1)[1] for line in out[14:20]}
    assert devices == {"null": "character special file 666 1:3", "zero": "character special file 666 1:5",
                       "full": "character special file 666 1:7", "random": "character special file 666 1:8",
                       "urandom": "character special file 666 1:9", "tty": "character special file 666 5:0"}
    assert out[20:25] == ["fd -> /proc/self/fd", "stdin -> /proc/self/fd/0", "stdout -> /proc/self/fd/1",
                          "stderr -> /proc/self/fd/2", "ptmx -> pts/ptmx"]
    assert out[25:30] == ["/proc proc", "/sys sysfs", "/dev/pts devpts", "/dev/shm tmpfs",
                          "/dev/mqueue mqueue"]
    assert out[30] == "writable"


def test_process_user_cwd_umask_groups_nnp_oom_and_rlimits(rt):
    config = suite_config()
    proc = config["process"]
    proc.update(cwd="/tmp", noNewPrivileges=True, oomScoreAdj=500,
                user={"uid": 1, "gid": 1, "additionalGids": [2, 3], "umask": 0o027})
    proc["rlimits"].append({"type": "RLIMIT_CORE", "soft": 1024, "hard": 2048})
    out = run_inside(rt, config, r"""
id -u; id -g; id -G; pwd; umask; cat /proc/self/oom_score_adj
grep NoNewPrivs /proc/self/status | tr -d '\t'
grep 'core file' /proc/self/limits | awk '{print $5, $6}'
""").splitlines()
    assert out == ["1", "1", "1 2 3", "/tmp", "0027", "500", "NoNewPrivs:1", "1024 2048"]


def test_capabilities_are_exactly_the_five_sets_given(rt):
    config = suite_config()
    caps = config["process"]["capabilities"]
    caps.update(bounding=["CAP_CHOWN", "CAP_KILL", "CAP_SETPCAP"], permitted=["CAP_CHOWN", "CAP_KILL"],
                effective=["CAP_KILL"], inheritable=["CAP_CHOWN"], ambient=[])
    out = run_inside(rt, config, r"grep -E '^Cap' /proc/self/status | tr -d '\t'").splitlines()
    def mask(*names: str) -> str:
        return format(sum(1 << CAP_BITS[c] for c in names), "016x")

    # capabilities(7): execve as uid 0 treats the file's sets as full, so the permitted and
    # effective sets become inheritable | bounding (runc's container shows the same)
    assert dict(line.split(":") for line in out) == {
        "CapInh": mask("CAP_CHOWN"), "CapPrm": mask("CAP_CHOWN", "CAP_KILL", "CAP_SETPCAP"),
        "CapEff": mask("CAP_CHOWN", "CAP_KILL", "CAP_SETPCAP"),
        "CapBnd": mask("CAP_CHOWN", "CAP_KILL", "CAP_SETPCAP"), "CapAmb": mask()}


def test_capabilities_of_a_user_are_the_ambient_ones_after_exec(rt):
    config = suite_config()
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    caps = config["process"]["capabilities"]
    caps.update(bounding=["CAP_CHOWN", "CAP_KILL"], permitted=["CAP_CHOWN", "CAP_KILL"],
                effective=["CAP_CHOWN", "CAP_KILL"], inheritable=["CAP_KILL"], ambient=["CAP_KILL"])
    out = run_inside(rt, config, r"grep -E '^Cap' /proc/self/status | tr -d '\t'").splitlines()
    kill = format(1 << CAP_BITS["CAP_KILL"], "016x")
    assert dict(line.split(":") for line in out) == {
        "CapInh": kill, "CapPrm": kill, "CapEff": kill,
        "CapBnd": format(1 << CAP_BITS["CAP_KILL"] | 1 << CAP_BITS["CAP_CHOWN"], "016x"), "CapAmb": kill}


def test_linux_devices_have_their_type_numbers_mode_and_owner(rt):
    config = suite_config()
    config["linux"]["devices"] = [
        {"path": "/dev/test1", "type": "c", "major": 10, "minor": 666, "fileMode": 0o432, "uid": 1, "gid": 2},
        {"path": "/dev/test2", "type": "b", "major": 8, "minor": 0, "fileMode": 0o600},
        {"path": "/dev/test3", "type": "p", "fileMode": 0o600, "uid": 0, "gid": 0}]
    out = run_inside(rt, config, r"""
stat -c '%n %F %a %t:%T %u:%g' /dev/test1 /dev/test2 /dev/test3
""").splitlines()
    # stat prints the device numbers in hex: 666 = 0x29a
    assert out == ["/dev/test1 character special file 432 a:29a 1:2",
                   "/dev/test2 block special file 600 8:0 0:0",
                   "/dev/test3 fifo 600 0:0 0:0"]


def test_masked_and_readonly_paths_and_missing_ones_ignored(rt):
    (rt.bundle / "masked-file").write_text("secret\n")
    (rt.bundle / "masked-dir").mkdir()
    (rt.bundle / "masked-dir/f").write_text("x")
    (rt.bundle / "ro-file").write_text("ro\n")
    (rt.bundle / "ro-dir").mkdir()
    config = suite_config()
    config["linux"]["maskedPaths"] = ["/masked-file", "/masked-dir", "/no-such-path"]
    config["linux"]["readonlyPaths"] = ["/ro-file", "/ro-dir", "/no-such-path-either"]
    out = run_inside(rt, config, r"""
echo "file:$(cat /masked-file)"; echo "dir:$(ls -A /masked-dir)"
echo x > /ro-file 2>/dev/null && echo ro-file-writable || echo ro-file-refused
touch /ro-dir/x 2>/dev/null && echo ro-dir-writable || echo ro-dir-refused
echo "still:$(cat /ro-file)"
""").splitlines()
    assert out == ["file:", "dir:", "ro-file-refused", "ro-dir-refused", "still:ro"]


def test_read_only_root(rt):
    config = suite_config()
    config["root"]["readonly"] = True
    out = run_inside(rt, config, "touch /x 2>/dev/null && echo writable || echo read-only; "
                                 "touch /dev/shm/x && echo shm-writable")
    assert out.split() == ["read-only", "shm-writable"]


PROPAGATION_SCRIPT = r"""
mkdir -p /target /mnt1 /test1 && touch /test1/example
mount --rbind / /target 2>/dev/null || { echo bind-refused; exit 0; }
mount --rbind /test1 /mnt1
[ -e /target/mnt1/example ] && echo propagated || echo not-propagated
"""


@pytest.mark.parametrize("propagation, seen", [("shared", "propagated"), ("slave", "not-propagated"),
                                               ("private", "not-propagated"),
                                               ("unbindable", "bind-refused")])
def test_rootfs_propagation_as_the_suite_checks_it(rt, propagation, seen):
    """runtimetest binds "/" elsewhere, mounts under "/" and looks for the mount in the copy: it
    appears only when "/" is shared; an unbindable "/" cannot be bound at all."""
    config = suite_config()
    config["linux"]["rootfsPropagation"] = propagation
    caps = config["process"]["capabilities"]
    for key in ("bounding", "effective", "permitted"):
        caps[key].append("CAP_SYS_ADMIN")
    del config["linux"]["seccomp"]
    assert run_inside(rt, config, PROPAGATION_SCRIPT).split() == [seen]


def test_sysctls_hostname_domainname_and_mounts_in_order(rt):
    config = suite_config()
    config.update(hostname="hostname-specific", domainname="domain-specific")
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "12345678"}
    config["mounts"] += [
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m"]},
        {"destination": "/tmp/inner", "type": "tmpfs", "source": "inner", "options": ["ro"]}]
    out = run_inside(rt, config, r"""
hostname; cat /proc/sys/kernel/domainname /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax
awk '$5 ~ /^\/tmp/ { for (i = 7; $i != "-"; i++); print $5, $(i+1), $(i+2), $6 }' /proc/self/mountinfo
""").splitlines()
    assert out[:4] == ["hostname-specific", "domain-specific", "1", "12345678"]
    assert [line.split()[:3] for line in out[4:]] == [["/tmp", "tmpfs", "tmpfs"],
                                                      ["/tmp/inner", "tmpfs", "inner"]]
    assert out[5].split()[3].startswith("ro,")


def test_a_hostname_without_a_uts_namespace_is_refused(rt, tmp_path):
    """It would rename the host (runc refuses the same way)."""
    config = suite_config()
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "uts"]
    before = open("/proc/sys/kernel/hostname").read()
    rc, _, err = rt.inside(config, "true")
    assert rc == 1 and err.strip() == ("minirun-oci: hostname: needs the container's own UTS "
                                       "namespace (linux.namespaces has no uts entry)")
    assert open("/proc/sys/kernel/hostname").read() == before


def test_the_default_bundle_looks_the_same_as_under_runc(rt, runc):
    """The same bundle, the same dump, from minirun-oci and from runc: only namespace inode
    numbers may differ."""
    script = r"""
id; umask; pwd; hostname; env | sort
grep -E '^Cap|^NoNewPrivs|^Seccomp:' /proc/self/status
tail -n +2 /proc/self/limits
ls -ln /dev | awk 'NR > 1 { print $1, $3, $4, $5, $6, $NF }'
sed 's/^[0-9]* [0-9]* [0-9:]* //' /proc/self/mountinfo | sort
"""
    ours = _named_bundle(run_inside(rt, suite_config(), script), rt.bundle)
    theirs = _named_bundle(run_inside(runc, suite_config(), script), runc.bundle)
    assert ours.splitlines() == theirs.splitlines()


def _named_bundle(text: str, bundle: Path) -> str:
    """The bundle's path as BUNDLE, also where mountinfo gives it from the root of the mount
    that holds it (a /tmp of its own, as in the VM tier, shows /pytest-of-root/...)."""
    top = bundle
    while not os.path.ismount(top):
        top = top.parent
    for path in (str(bundle), "/" + str(bundle.relative_to(top))):
        text = text.replace(path, "BUNDLE")
    return text


@pytest.fixture
def runc(rootfs_tar, tmp_path):
    if not shutil.which("runc"):
        pytest.skip("runc is not installed: nothing to compare with")
    r = Runtime(shutil.which("runc"), tmp_path / "runc-state", tmp_path / "runc-bundle", rootfs_tar)
    yield r
    r.clean()


def test_masked_and_readonly_device_nodes_and_nested_readonly_paths(rt):
    """The suite's device-node cases (a block, char and fifo node masked or made read-only) and
    its nested read-only directories."""
    for name, kind in (("blk", "b"), ("chr", "c"), ("fifo", "p")):
        for prefix in ("masked", "ro"):
            args = ["mknod", str(rt.bundle / f"{prefix}-{name}"), kind] + ([] if kind == "p" else ["0", "0"])
            subprocess.run(args, check=True)
    (rt.bundle / "ro-dir/ro-subdir").mkdir(parents=True)
    (rt.bundle / "ro-dir/ro-subdir/f").write_text("immutable")
    config = suite_config()
    config["linux"]["maskedPaths"] = [f"/masked-{n}" for n in ("blk", "chr", "fifo")]
    config["linux"]["readonlyPaths"] = [f"/ro-{n}" for n in ("blk", "chr", "fifo")] + \
        ["/ro-dir", "/ro-dir/ro-subdir", "/ro-dir/ro-subdir/f"]
    out = run_inside(rt, config, r"""
for n in blk chr fifo; do echo "masked-$n:$(timeout 2 cat /masked-$n 2>&1)"; done
for n in blk chr fifo; do
  awk -v m=/ro-$n '$5 == m { split($6, o, ","); print m, o[1] }' /proc/self/mountinfo
done
touch /ro-dir/ro-subdir/new 2>/dev/null && echo subdir-writable || echo subdir-refused
echo x > /ro-dir/ro-subdir/f 2>/dev/null && echo file-writable || echo file-refused
""").splitlines()
    assert out == ["masked-blk:", "masked-chr:", "masked-fifo:", "/ro-blk ro", "/ro-chr ro",
                   "/ro-fifo ro", "subdir-refused", "file-refused"]


def test_a_relative_masked_or_readonly_path_is_refused(rt):
    for key in ("maskedPaths", "readonlyPaths"):
        config = suite_config()
        config["linux"][key] = ["relative-path"]
        rc, _, err = rt.inside(config, "true")
        assert rc == 1 and err.strip() == f"minirun-oci: linux/{key}: must be a list of absolute paths"


def test_the_suites_seccomp_profile_denies_getcwd_and_the_container_still_starts(rt):
    """linux_seccomp: default allow, getcwd -> errno. Without no_new_privs the filter loads
    before the user switch, so the runtime checks the cwd before it (runc 1.1 fails create
    here: it calls getcwd after loading the filter)."""
    config = suite_config()
    config["process"]["cwd"] = "/tmp"
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
    out = run_inside(rt, config, "/bin/pwd -P 2>/dev/null || echo getcwd-denied; ls -d /proc/self/cwd/../tmp")
    assert out.split() == ["getcwd-denied", "/proc/self/cwd/../tmp"]


@pytest.mark.parametrize("uid, home", [(0, "/root"), (1000, "/")])
def test_home_comes_from_the_root_s_passwd_when_env_has_none(rt, uid, home):
    config = suite_config()
    config["process"]["user"] = {"uid": uid, "gid": uid}
    assert run_inside(rt, config, 'echo "$HOME"').strip() == home
    config["process"]["env"].append("HOME=/mine")
    assert run_inside(rt, config, 'echo "$HOME"').strip() == "/mine"



def test_ambient_capabilities_that_are_not_inheritable_are_skipped_as_runc_does(rt):
    """`runc spec` lists ambient capabilities without inheritable ones; the kernel refuses to
    raise those (EPERM). runc skips them and runs the bundle; so does minirun-oci, and a user's
    process then simply has no ambient (so, after exec, no) capabilities."""
    config = suite_config()
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    caps = config["process"]["capabilities"]
    caps.update(bounding=["CAP_CHOWN", "CAP_KILL"], permitted=["CAP_CHOWN", "CAP_KILL"],
                effective=["CAP_CHOWN", "CAP_KILL"], inheritable=[], ambient=["CAP_KILL"])
    out = run_inside(rt, config, r"grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status | tr -d '\t'").splitlines()
    assert dict(line.split(":") for line in out) == {
        "CapInh": "0" * 16, "CapPrm": "0" * 16, "CapEff": "0" * 16, "CapAmb": "0" * 16}
