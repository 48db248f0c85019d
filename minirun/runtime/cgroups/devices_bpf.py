"""The devices allowlist on cgroup v2: a small eBPF program, attached to the container's group.

cgroup v1 has a `devices` controller (devices.allow / devices.deny). cgroup v2 has none: instead
the kernel runs a program of type BPF_PROG_TYPE_CGROUP_DEVICE, attached to the group, each time
one of its processes opens or mknods a device node, and allows the access if it returns 1
(Documentation/admin-guide/cgroup-v2.rst, "Device controller"; bpf(2)). The program is generated
here from the OCI rules, instruction by instruction — it is a dozen lines of eBPF, far below what
a compiler toolchain would be worth.

The program sees a `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`, where
access_type is (access << 16) | type. OCI rules apply in order, a later one overriding an earlier
one, so the program tests them from the last to the first and returns at the first match; no
match means deny (Docker's list starts with a deny-all rule anyway).
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import struct
from pathlib import Path

from minirun.errors import CgroupError

# uapi/linux/bpf.h
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
DEV_BLOCK, DEV_CHAR = 1, 2
ACCESS = {"m": 1, "r": 2, "w": 4}
SYS_BPF = {"x86_64": 321, "aarch64": 280}

# instruction opcodes (uapi/linux/bpf_common.h, bpf.h)
LDX_MEM_W = 0x61      # dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54    # dst &= imm (32 bits)
ALU32_RSH_K = 0x74    # dst >>= imm
ALU32_MOV_X = 0xbc    # dst = src (32 bits)
ALU64_MOV_K = 0xb7    # dst = imm
JMP_JNE_K = 0x55      # if dst != imm: pc += off
EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(rules: list[dict]) -> bytes:
    """The instructions for OCI device rules ({"allow", "type", "major", "minor", "access"})."""
    out = [
        _insn(LDX_MEM_W, dst=2, src=1, off=0),      # r2 = access_type
        _insn(ALU32_MOV_X, dst=3, src=2),           # r3 = access_type
        _insn(ALU32_AND_K, dst=2, imm=0xFFFF),      # r2 = device type
        _insn(ALU32_RSH_K, dst=3, imm=16),          # r3 = access asked for
        _insn(LDX_MEM_W, dst=4, src=1, off=4),      # r4 = major
        _insn(LDX_MEM_W, dst=5, src=1, off=8),      # r5 = minor
    ]
    for rule in reversed(rules):
        tests: list[tuple[int, int, int]] = []       # (code, dst, imm) jumps past the block
        kind = rule.get("type", "a")
        if kind in ("c", "b"):
            tests.append((JMP_JNE_K, 2, DEV_CHAR if kind == "c" else DEV_BLOCK))
        access = rule.get("access", "rwm") or "rwm"
        mask = sum(ACCESS[c] for c in set(access))
        if mask != 7:
            tests.append((ALU32_MOV_X, 1, 3))        # r1 = asked; anything outside mask: skip
            tests.append((ALU32_AND_K, 1, ~mask & 0xFFFFFFFF))
            tests.append((JMP_JNE_K, 1, 0))
        for reg, key in ((4, "major"), (5, "minor")):
            if rule.get(key) not in (None, -1):
                tests.append((JMP_JNE_K, reg, int(rule[key])))
        block_len = len(tests) + 2                   # + mov r0, exit
        for i, (code, dst, imm) in enumerate(tests):
            if code == ALU32_MOV_X:
                out.append(_insn(code, dst=dst, src=imm))
            elif code == JMP_JNE_K:
                out.append(_insn(code, dst=dst, off=block_len - i - 1, imm=imm - (1 << 32) if imm >= 1 << 31 else imm))
            else:
                out.append(_insn(code, dst=dst, imm=imm - (1 << 32) if imm >= 1 << 31 else imm))
        out.append(_insn(ALU64_MOV_K, dst=0, imm=1 if rule.get("allow") else 0))
        out.append(_insn(EXIT))
        if not tests:
            return b"".join(out)     # matches every access: what follows is unreachable (refused)
    out.append(_insn(ALU64_MOV_K, dst=0, imm=0))
    out.append(_insn(EXIT))
    return b"".join(out)


class _LoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16)]


class _AttachAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32)]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    number = SYS_BPF.get(platform.machine())
    if number is None:
        raise CgroupError(f"cgroup: device rules on cgroup2 need bpf(2), unknown here ({platform.machine()})")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    r = libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), ctypes.byref(attr),
                     ctypes.c_uint(ctypes.sizeof(attr)))
    if r < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return int(r)


# The verifier's log, asked for only to explain a refusal. A log that fills its buffer fails the
# load itself with ENOSPC (6.4 made the log keep its tail rather than its head, and a truncated
# log still fails), and the verifier writes as it goes: on Debian 12's 6.1 a 4 KiB log failed
# Docker's default device rules, on 6.18 any list of ~50 rules. So the first load has no log
# at all, and only a refused program is loaded again, with this much room for the reason.
LOG_SIZE = 1 << 20


def load(code: bytes) -> int:
    """Load the instructions `code` as a device program; its fd. OSError when the kernel
    refuses it, with the verifier's reason (if it gave one) as the error's filename."""
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"GPL")

    def attr(log: ctypes.Array | None) -> _LoadAttr:
        return _LoadAttr(prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(code) // 8,
                         insns=ctypes.addressof(insns), license=ctypes.addressof(license),
                         log_level=1 if log else 0, log_size=len(log) if log else 0,
                         log_buf=ctypes.addressof(log) if log else 0, prog_name=b"minirun_devices")

    try:
        return _bpf(BPF_PROG_LOAD, attr(None))
    except OSError as first:
        log = ctypes.create_string_buffer(LOG_SIZE)
        try:
            fd = _bpf(BPF_PROG_LOAD, attr(log))
        except OSError:
            raise OSError(first.errno, first.strerror, verifier_reason(log.value)) from None
        os.close(fd)      # loaded the second time (a passing shortage?): the first error stands
        raise OSError(first.errno, first.strerror) from None


def verifier_reason(log: bytes) -> str | None:
    """The line of a verifier log that says why it refused the program: the last one before the
    statistics ("processed N insns ..."), skipping the instruction dump ("12: (95) exit")."""
    for line in reversed(log.decode(errors="replace").strip().splitlines()):
        line = line.strip()
        if line and not line.startswith("processed ") and not re.match(r"\d+: \(", line):
            return line
    return None


def attach(group: Path, rules: list[dict]) -> None:
    """Load the program for `rules` and attach it to the cgroup2 directory `group`. The group
    keeps it (and the kernel frees it with the group); our file descriptors are closed."""
    try:
        prog = load(program(rules))
    except OSError as e:
        raise CgroupError(f"cgroup: load the devices program for {group}: {e.strerror}"
                          + (f" ({e.filename})" if e.filename else ""), path=str(group)) from None
    try:
        target = os.open(group, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _bpf(BPF_PROG_ATTACH, _AttachAttr(target_fd=target, attach_bpf_fd=prog,
                                              attach_type=BPF_CGROUP_DEVICE,
                                              attach_flags=BPF_F_ALLOW_MULTI))
        except OSError as e:
            raise CgroupError(f"cgroup: attach the devices program to {group}: {e.strerror}",
                              path=str(group)) from None
        finally:
            os.close(target)
    finally:
        os.close(prog)
