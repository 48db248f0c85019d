"""The default seccomp filter, checked from inside real containers.

Most calls below fail in a default container for two reasons at once: the capability is missing
(no CAP_SYS_ADMIN, CAP_SYS_BOOT, CAP_SYS_PTRACE) and the filter refuses it. To see the filter's
own part, tests/payload/syscalls.c makes raw calls with arguments that fail *differently* without
a filter (ENOENT, EBADF, success), and each test compares with `--security-opt seccomp=unconfined`.
"""

from __future__ import annotations

import json

import pytest

from tests.security.conftest import calls

pytestmark = pytest.mark.root

UNCONFINED = ("--security-opt", "seccomp=unconfined")


def test_status_shows_the_filter_and_unconfined_removes_it(clean):
    """/proc/self/status `Seccomp:` is 2 (SECCOMP_MODE_FILTER) by default, 0 unconfined."""
    grep = ("busybox", "grep", "^Seccomp:", "/proc/self/status")
    assert clean.out("run", "--rm", *grep).split() == ["Seccomp:", "2"]
    assert clean.out("run", "--rm", *UNCONFINED, *grep).split() == ["Seccomp:", "0"]


def test_new_namespaces_are_refused(clean, syscalls):
    """unshare(1) and clone(CLONE_NEWUSER), which needs no capability, get EPERM: the clone and
    unshare rules test the CLONE_NEW* bits of the first argument; clone3 (flags in memory, out of
    a filter's reach) gets ENOSYS so libc falls back to clone."""
    res = clean("run", "--rm", "busybox", "unshare", "-n", "true", check=False)
    assert res.returncode != 0 and "Operation not permitted" in res.stderr
    names = ("clone_newuser", "unshare_newuser", "clone3", "clone_plain", "unshare_files")
    filtered = calls(clean, syscalls, *names)
    unconfined = calls(clean, syscalls, *names, opts=UNCONFINED)
    assert filtered == {"clone_newuser": "EPERM", "unshare_newuser": "EPERM", "clone3": "ENOSYS",
                        "clone_plain": "0", "unshare_files": "0"}
    assert unconfined["clone3"] == "EINVAL"          # the kernel saw it: a bad size
    assert unconfined["clone_newuser"] != "EPERM"


def test_mount_is_refused(clean, syscalls):
    """mount(2)/umount2(2): EPERM before the kernel looks at the target, which unconfined
    fails with ENOENT (and mount(8) of a tmpfs fails as a whole)."""
    res = clean("run", "--rm", "busybox", "mount", "-t", "tmpfs", "none", "/mnt", check=False)
    assert res.returncode != 0
    assert calls(clean, syscalls, "mount", "umount2") == {"mount": "EPERM", "umount2": "EPERM"}
    assert calls(clean, syscalls, "mount", "umount2", opts=UNCONFINED) == {
        "mount": "ENOENT", "umount2": "ENOENT"}


def test_kernel_keyring_is_refused(clean, syscalls):
    """add_key(2)/keyctl(2): the keyring is not namespaced; unconfined both succeed."""
    assert calls(clean, syscalls, "add_key", "keyctl") == {"add_key": "EPERM", "keyctl": "EPERM"}
    assert calls(clean, syscalls, "add_key", "keyctl", opts=UNCONFINED) == {"add_key": "0", "keyctl": "0"}


def test_ptrace_is_refused(clean, syscalls):
    """ptrace(PTRACE_ATTACH, 1) fails; PTRACE_TRACEME, allowed to anyone unconfined, too."""
    assert calls(clean, syscalls, "ptrace_pid1", "ptrace_traceme") == {
        "ptrace_pid1": "EPERM", "ptrace_traceme": "EPERM"}
    assert calls(clean, syscalls, "ptrace_traceme", opts=UNCONFINED) == {"ptrace_traceme": "0"}


def test_reboot_setns_and_personality(clean, syscalls):
    """reboot(2) EPERM; setns(2) EPERM (EBADF unconfined: the kernel looked at the fd);
    personality(2) allows PER_LINUX32 and the query, not ADDR_NO_RANDOMIZE (ASLR off)."""
    names = ("reboot", "setns", "personality_linux32", "personality_query", "personality_norandom")
    assert calls(clean, syscalls, *names) == {
        "reboot": "EPERM", "setns": "EPERM", "personality_linux32": "0",
        "personality_query": "0", "personality_norandom": "EPERM"}
    unconfined = calls(clean, syscalls, "setns", "personality_norandom", opts=UNCONFINED)
    assert unconfined == {"setns": "EBADF", "personality_norandom": "0"}


def test_ordinary_workload_still_works(clean):
    """sh, ls, date, sleep, a forked pipeline, and httpd serving wget on loopback."""
    script = ("ls / >/dev/null && date >/dev/null && sleep 0.1 && echo hi | cat && "
              "mkdir -p /tmp/www && echo served > /tmp/www/index.html && "
              "httpd -p 127.0.0.1:8080 -h /tmp/www && sleep 0.2 && "
              "wget -q -O - http://127.0.0.1:8080/index.html")
    assert clean.out("run", "--rm", "busybox", "sh", "-c", script).splitlines() == ["hi", "served"]


def test_custom_profile_denies_mkdir_with_its_errno(clean, tmp_path):
    """A Docker-format profile file: mkdir/mkdirat fail with the errnoRet it gives (EDQUOT)."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}]}
    path = tmp_path / "no-mkdir.json"
    path.write_text(json.dumps(profile))
    res = clean("run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "mkdir", "/tmp/x",
                check=False)
    assert res.returncode == 1 and "Disk quota exceeded" in res.stderr
    cid = clean.out("create", "--security-opt", f"seccomp={path}", "busybox", "true")
    try:
        host = json.loads(clean.out("inspect", cid))[0]["HostConfig"]
        assert host["SecurityOpt"] == ["seccomp=custom"]
    finally:
        clean("rm", cid)


def test_bad_profiles_fail_in_one_line(clean, tmp_path):
    """An unknown action, a missing file, invalid JSON: exit 125, one line naming the problem."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_FOO"}]}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path, expect in ((bad, "linux/seccomp/syscalls/0/action: unknown action 'SCMP_ACT_FOO'"),
                         (tmp_path / "missing.json", "No such file or directory"),
                         (broken, "invalid JSON")):
        res = clean("run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "true", check=False)
        assert res.returncode == 125
        assert res.stderr.count("\n") == 1 and expect in res.stderr, res.stderr
    assert clean.out("ps", "-a", "-q") == ""


def test_exec_is_filtered_too(clean, syscalls):
    """`minirun exec` loads the container's filter before its execve, like the first process."""
    cid = clean.out("run", "-d", "-v", syscalls, "busybox", "sleep", "30")
    try:
        assert clean.out("exec", cid, "grep", "^Seccomp:", "/proc/self/status").split() == ["Seccomp:", "2"]
        assert clean.out("exec", cid, "/syscalls", "add_key", "mount") == "add_key EPERM\nmount EPERM"
        assert json.loads(clean.out("inspect", cid))[0]["HostConfig"]["SecurityOpt"] == ["seccomp=default"]
    finally:
        clean("rm", "-f", cid)
