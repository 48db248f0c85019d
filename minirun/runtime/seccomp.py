"""seccomp(2) filters: an OCI `linux.seccomp` profile in, a classic BPF program out.

The kernel runs a seccomp filter on every system call the container makes: a small BPF program
that looks at the architecture, the syscall number and its arguments, and answers allow, fail
with an errno, or kill. Writing that program by hand is error-prone, so we let libseccomp do it
(the same library runc, crun and Docker use), through cffi in ABI mode: `dlopen` the shared
library and declare the few functions we call; nothing is compiled.

Policy here, mechanism in C: this module only *builds* the program. c_ext/process.c loads it with
prctl(PR_SET_SECCOMP) right before execve.

Building costs a few milliseconds (loading libseccomp, cffi's parser), so the program is cached by
the sha256 of the profile's canonical JSON, in memory and on disk (ROOT/cache/seccomp/HASH.bpf,
written atomically). A cache hit imports neither cffi nor libseccomp.

The profile format is OCI's (config-linux.md#seccomp); Docker's profile files differ only in a
few keys, mapped by `from_docker`. Semantics of `args`, as in runc: the conditions of one entry
must all hold (AND), except several conditions on the *same* argument, which libseccomp cannot
put in one rule: each becomes a rule of its own (OR).

Man pages: seccomp(2), seccomp_rule_add(3), seccomp_export_bpf(3), seccomp_syscall_resolve_name(3).
"""

from __future__ import annotations

import os

from minirun import lean
from minirun.errors import SpecError, UsageError

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

# seccomp.h: the action values (the low 16 bits carry the errno of ERRNO/TRACE).
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
}
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
EPERM = 1
_U64 = (1 << 64) - 1
_FORMAT = "1"                   # bump when the way we build programs changes: old files go stale

_CDEF = """
typedef void *scmp_filter_ctx;
struct scmp_arg_cmp { unsigned int arg; int op; uint64_t datum_a; uint64_t datum_b; };
scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                           unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
"""
_NR_SCMP_ERROR = -1
_lib = None
_memory: dict[str, bytes] = {}


def _libseccomp():
    global _lib
    if _lib is None:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(_CDEF)
        try:
            _lib = (ffi, ffi.dlopen("libseccomp.so.2"))
        except OSError as e:
            raise SpecError("linux/seccomp", f"libseccomp is not installed ({e})") from None
    return _lib


def digest(profile: dict[str, Any]) -> str:
    """The sha256 that names a profile's program in the cache (format, machine, canonical JSON);
    `inspect` shows it."""
    # _sha256 imports in 0.1 ms; hashlib (OpenSSL) costs 2 ms, on every `minirun run`
    try:
        from _sha256 import sha256
    except ImportError:  # other Pythons (3.12 renamed it)
        from hashlib import sha256
    text = lean.dumps(profile, sort_keys=True)
    return sha256(f"{_FORMAT}:{os.uname().machine}:{text}".encode()).hexdigest()


def program(profile: dict[str, Any], cache_dir: str | Path | None = None) -> bytes:
    """The BPF program (struct sock_filter[], 8 bytes each) for a profile, from the cache when
    it has it. SpecError names the field of a profile libseccomp cannot express."""
    key = digest(profile)
    if key in _memory:
        return _memory[key]
    path = os.path.join(cache_dir, f"{key}.bpf") if cache_dir else None
    data = None
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:             # not built yet (or no usable cache directory)
            pass
    if not data or len(data) % 8:
        data = compile_profile(profile)
        if path is not None:
            try:
                _write_atomic(path, data)
            except OSError:         # a read-only or full data root: build again next time
                pass
    _memory[key] = data
    return data


def _write_atomic(path: str, data: bytes) -> None:
    """A reader sees the old file, no file, or the whole new one (storage.write_atomic). The
    directory is root's (like the image store): whoever can write it could weaken filters."""
    from minirun.storage import write_atomic

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_atomic(path, data)


def validate(profile: Any, where: str = "linux/seccomp") -> dict[str, Any]:
    """Check names of actions, ops and fields without libseccomp (cheap, for `create`)."""
    if not isinstance(profile, dict):
        raise SpecError(where, "must be an object")
    _action(profile.get("defaultAction"), profile.get("defaultErrnoRet"), f"{where}/defaultAction")
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            raise SpecError(f"{where}/{key}", "not supported by minirun (refused, not ignored)")
    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise SpecError(f"{where}/syscalls", "must be a list")
    for i, rule in enumerate(syscalls):
        at = f"{where}/syscalls/{i}"
        if not isinstance(rule, dict):
            raise SpecError(at, "must be an object")
        names = rule.get("names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SpecError(f"{at}/names", "must be a list of syscall names")
        _action(rule.get("action"), rule.get("errnoRet"), f"{at}/action")
        for j, arg in enumerate(rule.get("args") or []):
            _arg(arg, f"{at}/args/{j}")
    return profile


def _action(name: Any, errno_ret: Any, where: str) -> int:
    if name not in ACTIONS:
        raise SpecError(where, f"unknown action {name!r}" if name != "SCMP_ACT_NOTIFY"
                        else "SCMP_ACT_NOTIFY is not supported by minirun")
    value = ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        ret = EPERM if errno_ret is None else errno_ret
        if not isinstance(ret, int) or not 0 <= ret <= 0xFFFF:
            raise SpecError(where.rsplit("/", 1)[0] + "/errnoRet", f"bad errno {ret!r}")
        value |= ret
    return value


def _arg(arg: Any, where: str) -> tuple[int, int, int, int]:
    if not isinstance(arg, dict):
        raise SpecError(where, "must be an object")
    index = arg.get("index")
    if not isinstance(index, int) or not 0 <= index <= 5:
        raise SpecError(f"{where}/index", f"must be 0..5, not {index!r}")
    if arg.get("op") not in OPS:
        raise SpecError(f"{where}/op", f"unknown op {arg.get('op')!r}")
    value, two = arg.get("value", 0), arg.get("valueTwo", 0)
    if not isinstance(value, int) or not isinstance(two, int):
        raise SpecError(where, "value and valueTwo must be integers")
    return index, OPS[arg["op"]], value & _U64, two & _U64


def compile_profile(profile: dict[str, Any], where: str = "linux/seccomp") -> bytes:
    """Build the program with libseccomp (no cache). Unknown syscall names are skipped: the
    profile may name calls this kernel or this architecture does not have."""
    validate(profile, where)
    ffi, lib = _libseccomp()
    default = _action(profile["defaultAction"], profile.get("defaultErrnoRet"), where)
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise SpecError(f"{where}/defaultAction", "libseccomp refused it")
    try:
        for i, arch in enumerate(profile.get("architectures") or []):
            token = lib.seccomp_arch_resolve_name(str(arch).removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                raise SpecError(f"{where}/architectures/{i}", f"unknown architecture {arch!r}")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -17:                       # EEXIST: the native one
                raise SpecError(f"{where}/architectures/{i}", os.strerror(-rc))
        for i, rule in enumerate(profile.get("syscalls") or []):
            at = f"{where}/syscalls/{i}"
            action = _action(rule["action"], rule.get("errnoRet"), f"{at}/action")
            conds = [_arg(a, f"{at}/args/{j}") for j, a in enumerate(rule.get("args") or [])]
            indexes = [c[0] for c in conds]
            groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]
            for name in rule["names"]:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == _NR_SCMP_ERROR:
                    continue                               # not a syscall we know of: skip
                for group in groups:
                    arr = ffi.new("struct scmp_arg_cmp[]", group) if group else ffi.NULL
                    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), arr)
                    if rc == -13:                          # EACCES: same as the default action
                        continue
                    if rc < 0:
                        raise SpecError(at, f"libseccomp cannot add the rule for {name}: {os.strerror(-rc)}")
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise SpecError(where, f"libseccomp cannot export the program: {os.strerror(-rc)}")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


# -- Docker's profile files --------------------------------------------------------------------
DOCKER_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm",
                 "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def load_docker(path: str, capabilities: list[str]) -> dict[str, Any]:
    """`--security-opt seccomp=FILE`: read a Docker profile and return the OCI object.

    UsageError (one line) for a file we cannot read or parse; SpecError for a bad field."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"--security-opt seccomp={path}: {os.strerror(e.errno or 5)}") from None
    try:
        profile = lean.loads(text)
    except ValueError as e:
        raise UsageError(f"--security-opt seccomp={path}: invalid JSON: {e}") from None
    if not isinstance(profile, dict):
        raise UsageError(f"--security-opt seccomp={path}: the profile must be a JSON object")
    return validate(from_docker(profile, capabilities))


def from_docker(profile: dict[str, Any], capabilities: list[str]) -> dict[str, Any]:
    """Docker's format -> OCI's. The differences: `archMap` (arch + sub-arches) instead of
    `architectures`, `name` as well as `names`, and `includes`/`excludes` that make an entry
    depend on the container's capabilities or the machine's architecture."""
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction")}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        arches += [entry.get("architecture"), *(entry.get("subArchitectures") or [])]
    if arches:
        out["architectures"] = [a for a in arches if a]
    for key in ("flags", "listenerPath"):
        if profile.get(key):
            out[key] = profile[key]
    caps = {c if c.startswith("CAP_") else f"CAP_{c}" for c in capabilities}
    arch = DOCKER_ARCHES.get(os.uname().machine, os.uname().machine)
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            syscalls.append(rule)                          # validate() names it
            continue
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            continue
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if exc.get("caps") and set(exc["caps"]) & caps:
            continue
        if exc.get("arches") and arch in exc["arches"]:
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        oci = {"names": names, "action": rule.get("action")}
        for key in ("errnoRet", "args"):
            if rule.get(key) is not None:
                oci[key] = rule[key]
        syscalls.append(oci)
    out["syscalls"] = syscalls
    return out
