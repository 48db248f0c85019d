"""The OCI linux.seccomp -> BPF translation (libseccomp through cffi) and its cache.

No root needed: building a program is pure computation, and loading one into a forked child
only needs no_new_privs (seccomp(2): "the caller must have no_new_privs set, or CAP_SYS_ADMIN").
"""

from __future__ import annotations

import ctypes
import errno
import json
import os

import pytest

from minirun import spec as oci
from minirun.errors import SpecError, UsageError
from minirun.runtime import seccomp
from minirun.runtime.options import RunOptions
from minirun.runtime.security import _security_opt

DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                            "errnoRet": errno.EDQUOT}]}


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    seccomp._memory.clear()
    yield
    seccomp._memory.clear()


def _in_filtered_child(program: bytes, action) -> int:
    """Fork; the child loads `program` (prctl(PR_SET_SECCOMP)) and exits with what `action`
    returns: the way to see a filter's effect without root and without a container."""
    pid = os.fork()
    if pid == 0:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            buf = ctypes.create_string_buffer(program, len(program))

            class Prog(ctypes.Structure):
                _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

            prog = Prog(len(program) // 8, ctypes.addressof(buf))
            if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(prog), 0, 0):
                os._exit(250)                      # PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP
            os._exit(action())
        except BaseException:
            os._exit(251)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _errno_of(fn) -> int:
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def test_the_default_profile_compiles_to_bpf():
    """seccomp_export_bpf: whole struct sock_filter instructions (8 bytes each)."""
    program = seccomp.compile_profile(oci.default_seccomp())
    assert program and len(program) % 8 == 0
    assert oci.default_spec()["linux"]["seccomp"] == oci.default_seccomp()


def test_a_denied_syscall_fails_with_the_errno_the_profile_gives(tmp_path):
    """Load the built filter in a child: mkdir fails with errnoRet, other calls still work."""
    program = seccomp.compile_profile(DENY_MKDIR)
    target = tmp_path / "x"
    assert _in_filtered_child(program, lambda: _errno_of(lambda: os.mkdir(target))) == errno.EDQUOT
    assert _in_filtered_child(program, lambda: _errno_of(lambda: os.listdir(tmp_path))) == 0
    assert not target.exists()


def test_default_personality_rules_allow_the_harmless_values_only():
    """personality(2) through the default filter: PER_LINUX32 and the query pass,
    ADDR_NO_RANDOMIZE (0x0040000, turns ASLR off) gets EPERM."""
    program = seccomp.compile_profile(oci.default_seccomp())
    libc = ctypes.CDLL(None, use_errno=True)

    def personality(value):
        def call():
            if libc.personality(ctypes.c_ulong(value)) == -1:
                return ctypes.get_errno()
            return 0
        return call

    for ok in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert _in_filtered_child(program, personality(ok)) == 0, hex(ok)
    for bad in (0x0040000, 0x0400000, 0x80000000, 0xFFFFFFFE):
        assert _in_filtered_child(program, personality(bad)) == errno.EPERM, hex(bad)


def test_unknown_action_names_the_field():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["a"], "action": "SCMP_ACT_ERRNO"}, {"names": ["b"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["c"], "action": "SCMP_ACT_LOG"}, {"names": ["d"], "action": "SCMP_ACT_FOO"}]}
    with pytest.raises(SpecError) as e:
        seccomp.compile_profile(profile)
    assert str(e.value) == "linux/seccomp/syscalls/3/action: unknown action 'SCMP_ACT_FOO'"
    with pytest.raises(SpecError, match="linux/seccomp/defaultAction: unknown action"):
        seccomp.validate({"defaultAction": "ALLOW"})


def test_unknown_op_and_bad_index_name_the_field():
    rule = {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 1, "op": "EQ"}]}
    with pytest.raises(SpecError, match=r"^linux/seccomp/syscalls/0/args/1/op: unknown op 'EQ'"):
        seccomp.compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})
    rule["args"] = [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]
    with pytest.raises(SpecError, match="args/0/index"):
        seccomp.validate({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})


def test_unknown_syscall_names_are_skipped():
    """A profile may name calls this kernel or architecture lacks (seccomp_syscall_resolve_name
    fails): they add nothing."""
    empty = seccomp.compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []})
    bogus = seccomp.compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["no_such_syscall", "nor_this"], "action": "SCMP_ACT_ERRNO"}]})
    assert bogus == empty


def test_program_is_cached_on_disk_by_the_hash_of_the_canonical_json(tmp_path, monkeypatch):
    """First build writes ROOT/cache/seccomp/<sha256>.bpf; then neither libseccomp nor the
    build runs: not from memory, and not from disk in a fresh process (memory cleared)."""
    first = seccomp.program(DENY_MKDIR, tmp_path)
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [seccomp.digest(DENY_MKDIR) + ".bpf"]
    assert files[0].read_bytes() == first
    reordered = json.loads(json.dumps(DENY_MKDIR, sort_keys=True))   # same profile, key order aside
    assert seccomp.digest(reordered) == seccomp.digest(DENY_MKDIR)

    def no_build(*a, **k):
        raise AssertionError("built again instead of using the cache")

    monkeypatch.setattr(seccomp, "compile_profile", no_build)
    assert seccomp.program(reordered, tmp_path) == first
    seccomp._memory.clear()
    assert seccomp.program(DENY_MKDIR, tmp_path) == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp file left


def test_a_different_profile_has_another_key():
    other = json.loads(json.dumps(DENY_MKDIR))
    other["syscalls"][0]["errnoRet"] = errno.EACCES
    assert seccomp.digest(other) != seccomp.digest(DENY_MKDIR)


def test_a_truncated_cache_file_is_rebuilt(tmp_path):
    good = seccomp.program(DENY_MKDIR, tmp_path)
    path = tmp_path / f"{seccomp.digest(DENY_MKDIR)}.bpf"
    path.write_bytes(good[:-3])
    seccomp._memory.clear()
    assert seccomp.program(DENY_MKDIR, tmp_path) == good
    assert path.read_bytes() == good


def test_docker_profile_format_is_mapped_to_oci(tmp_path):
    """Docker's files: archMap, the old single `name`, includes/excludes by capability."""
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "io"},
            {"name": "getpid", "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["chown"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        ],
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(profile))
    out = seccomp.load_docker(str(path), ["CAP_CHOWN"])
    assert out == {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                   "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                   "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                                {"names": ["chown"], "action": "SCMP_ACT_ALLOW"}]}
    if os.uname().machine == "x86_64":
        assert len(seccomp.compile_profile(out)) % 8 == 0


def test_security_opt_flag(tmp_path):
    """--security-opt: unconfined drops the profile; a file replaces it; bad input is one line."""
    spec = oci.default_spec()
    _security_opt(spec, "seccomp=unconfined")
    assert "seccomp" not in spec["linux"]
    assert RunOptions.security_opt_of(spec) == ["seccomp=unconfined"]
    assert RunOptions.security_opt_of(oci.default_spec()) == ["seccomp=default"]
    path = tmp_path / "deny-mkdir.json"
    path.write_text(json.dumps(DENY_MKDIR))
    _security_opt(spec, f"seccomp={path}")
    assert spec["linux"]["seccomp"] == DENY_MKDIR
    assert RunOptions.security_opt_of(spec) == ["seccomp=custom"]
    (tmp_path / "bad.json").write_text("{nope")
    for item in (f"seccomp={tmp_path / 'bad.json'}", "seccomp=/no/such.json", "apparmor=x"):
        with pytest.raises(UsageError) as e:
            _security_opt(spec, item)
        assert "\n" not in str(e.value)


def test_programs_are_cached_under_the_data_root(monkeypatch, tmp_path):
    """The runtime keeps built programs in ROOT/cache/seccomp; no profile, no program."""
    from minirun.runtime import plan
    from minirun.runtime.containers import Runtime

    cache = Runtime(tmp_path).seccomp_cache
    assert cache == tmp_path / "cache" / "seccomp"
    spec = oci.default_spec()
    calls = []
    monkeypatch.setattr(seccomp, "program", lambda profile, cache: calls.append(cache) or b"")
    plan.seccomp_program(spec, cache)
    assert calls == [cache]
    del spec["linux"]["seccomp"]
    assert plan.seccomp_program(spec, cache) is None


def test_an_unwritable_cache_only_costs_a_rebuild(tmp_path):
    """The cache is an optimisation: a data root we cannot write still gets its program."""
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    assert seccomp.program(DENY_MKDIR, blocker / "seccomp") == seccomp.compile_profile(DENY_MKDIR)
