"""A seccomp allow-list loaded before the credentials (noNewPrivileges false): what the runtime
still does under it, and how its failures reach the caller.

Without no_new_privs a filter needs CAP_SYS_ADMIN, so it loads before the user switch, and the
runtime's own last steps run under it. An allow-list written for the program (the OCI
validation suite's, many a user's) lists neither close_range(2) nor sendmsg(2): runc starts
such bundles; minirun-oci failed them, first at "close stray fds", then silently ("the process
ended before it was ready"), its report refused too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from tests.oci.conftest import OCI, assert_nothing_left, one_line

pytestmark = pytest.mark.root

# What busybox (sh, ls, cat, sleep) and the runtime's steps after the filter need — no
# close_range, no sendmsg. Found with strace; runc 1.1.5 on this machine starts it as is.
ALLOWED = """read write readv writev openat open close fstat newfstatat stat lstat statx lseek
    mmap munmap mprotect brk rt_sigaction rt_sigprocmask rt_sigreturn ioctl getpid getppid
    getuid geteuid getgid getegid gettid execve execveat exit exit_group arch_prctl
    set_tid_address set_robust_list rseq prlimit64 getrandom fcntl dup dup2 dup3 pipe pipe2
    wait4 clone clone3 fork vfork kill nanosleep clock_nanosleep clock_gettime uname getcwd
    chdir fchdir setresuid setresgid setgroups setuid setgid capget capset prctl futex access
    faccessat faccessat2 getdents64 readlink readlinkat fstatfs statfs umask""".split()


def allow_list(*without: str, default: str = "SCMP_ACT_ERRNO") -> dict:
    return {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": [n for n in ALLOWED if n not in without],
                          "action": "SCMP_ACT_ALLOW"}]}


def runc_spec(oci, args: list[str], seccomp: dict) -> dict:
    """`runc spec`'s config.json (minirun-oci spec's, same shape, where runc is missing), with
    noNewPrivileges false and the allow-list."""
    cfg = oci.bundle / "config.json"
    cfg.unlink(missing_ok=True)
    runc = shutil.which("runc")
    subprocess.run([runc, "spec"] if runc else [OCI, "spec"], cwd=oci.bundle, check=True)
    spec = json.loads(cfg.read_text())
    spec["process"].update(args=args, terminal=False, noNewPrivileges=False)
    spec["linux"]["seccomp"] = seccomp
    oci.write(spec)
    return spec


def test_an_allow_list_without_close_range_or_sendmsg_runs(oci):
    """create/start/kill/delete of a `runc spec` bundle whose allow-list has neither: the
    stray fds are made close-on-exec before the filter, READY goes by write(2). Inside, the
    process has only its stdio (ls's own directory fd aside)."""
    runc_spec(oci, ["sh", "-c", "ls /proc/self/fd; exec sleep 30"], allow_list())
    created = oci("create", "-b", str(oci.bundle), "al", detached=True, check=False)
    assert (created.returncode, created.stderr) == (0, "")
    oci("start", "al")
    assert oci.wait_status("al", "running")["status"] == "running"
    out = oci.bundle / "create.out"         # the container's stdout: create's, inherited
    deadline = time.monotonic() + 10
    while out.read_text().count("\n") < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert out.read_text().split() == ["0", "1", "2", "3"]
    oci("kill", "al", "KILL")
    assert oci.wait_status("al", "stopped")["status"] == "stopped"
    oci("delete", "al")
    assert_nothing_left(oci, "al")


def test_an_allow_list_without_execveat_runs(oci):
    """minirun-exec, the sealed copy the program is started through, is exec'd with
    execveat(2); an allow-list that has only execve (enough for runc) gets the same file by
    its /proc/self/fd path. Before, `start` failed: `exec minirun-exec: Operation not permitted`."""
    runc_spec(oci, ["sh", "-c", "echo ran; readlink /proc/self/exe"], allow_list("execveat"))
    proc = oci("run", "-b", str(oci.bundle), "noat", check=False)
    assert (proc.returncode, proc.stderr, proc.stdout) == (0, "", "ran\n/bin/busybox\n")
    assert_nothing_left(oci, "noat")


def test_a_step_the_allow_list_refuses_is_reported_with_its_step(oci):
    """setresuid refused (EPERM) under a filter that refuses sendmsg too: the report goes by
    write(2), so create says the step, in one line, and leaves nothing behind."""
    runc_spec(oci, ["true"], allow_list("setresuid"))
    proc = oci("create", "-b", str(oci.bundle), "nouid", detached=True, check=False)
    assert proc.returncode == 1
    assert one_line(proc.stderr) == "minirun-oci: setuid: Operation not permitted"
    assert_nothing_left(oci, "nouid")


def test_a_filter_that_kills_is_named_when_no_report_can_come(oci):
    """defaultAction SCMP_ACT_KILL: the child dies of SIGSYS at its first refused call, with
    nothing said. create says how it ended rather than only that it did."""
    runc_spec(oci, ["true"], allow_list("setresuid", default="SCMP_ACT_KILL"))
    proc = oci("create", "-b", str(oci.bundle), "killed", detached=True, check=False)
    assert proc.returncode == 1
    assert one_line(proc.stderr) == (
        "minirun-oci: container killed: the process ended before it was ready (killed by "
        "signal 31: a seccomp filter killed it for a system call it does not allow)")
    assert_nothing_left(oci, "killed")


def test_a_set_up_failure_shows_its_step_on_creates_stderr(oci):
    """A mount the kernel refuses (tmpfs with a bad size): the child's step and its target,
    on create's stderr, not only in --log."""
    spec = runc_spec(oci, ["true"], allow_list())
    spec["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                           "options": ["size=bogus"]})
    oci.write(spec)
    proc = oci("create", "-b", str(oci.bundle), "badmount", detached=True, check=False)
    assert proc.returncode == 1
    assert one_line(proc.stderr) == "minirun-oci: mount tmpfs on /data: Invalid argument"
    assert_nothing_left(oci, "badmount")


# Installs a filter that refuses close_range(2) (EPERM), as an older container engine's profile
# does, and execs the rest of its arguments under it: minirun-oci then cannot use close_range.
OUTER_FILTER = textwrap.dedent("""
    import ctypes, os, sys
    from minirun.runtime import seccomp
    prog = seccomp.program({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
    libc = ctypes.CDLL(None, use_errno=True)
    fprog = Fprog(len(prog) // 8, prog)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0):  # NO_NEW_PRIVS, SECCOMP
        sys.exit(f"seccomp: {os.strerror(ctypes.get_errno())}")
    os.execv(sys.argv[1], sys.argv[1:])
""")


def test_stray_fds_are_closed_through_proc_where_close_range_is_refused(oci):
    """minirun-oci run under a filter of its caller's that refuses close_range: the fds it
    inherited (here one the caller left open for it) are made close-on-exec one by one through
    /proc/self/fd, and the program sees only its stdio. Before, create failed with `close stray
    fds: Operation not permitted`."""
    oci.configure(["ls", "/proc/self/fd"])
    stray = os.open("/etc/hostname", os.O_RDONLY)       # not close-on-exec: inherited
    try:
        proc = subprocess.run([sys.executable, "-c", OUTER_FILTER, OCI, "--root", str(oci.root),
                               "run", "-b", str(oci.bundle), "outer"], pass_fds=(stray,),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    finally:
        os.close(stray)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.split() == ["0", "1", "2", "3"]
    assert_nothing_left(oci, "outer")
