"""Escape attempts: one test per technique, each run inside a default container and expected to fail.

Each docstring names the technique (or its CVE). Techniques covered in other files:

    mount(2)/umount2(2), unshare/clone of new namespaces, setns,
    keyctl/add_key (the keyring), ptrace(PTRACE_TRACEME), reboot    tests/security/test_seccomp.py
    mknod + open of a character device (/dev/kmsg)                  tests/security/test_devices.py
    an image tar that writes outside its root (../, symlinks,
    hardlinks to host files, device nodes)                          tests/unit/test_tarsafe.py (HOSTILE)
    fds of the caller leaking into the container                    tests/integration/test_isolation.py

Two of these escapes succeeded against minirun before the fixes they are named after:
CVE-2019-5736 (c_ext/exec.c, the non-dumpable copies in spawn.c/enter.c) and CVE-2024-21626
(c_ext/process.c: check_cwd_in_root). docs/security.md tells the story.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from minirun import spec as oci
from tests.conftest import cgroup_value, requires
from tests.security.conftest import calls

pytestmark = pytest.mark.root

UNCONFINED = ("--security-opt", "seccomp=unconfined")


# --- the kernel's own files -----------------------------------------------------------------------

def test_masked_paths_stay_masked(clean, syscalls):
    """Unmounting or remounting a masked path (/proc/keys, /proc/timer_list...) to read what is
    under it: umount2 is refused (filter, and no CAP_SYS_ADMIN), and every masked file reads empty."""
    assert calls(clean, syscalls, "umount=/proc/keys") == {"umount": "EPERM"}
    assert calls(clean, syscalls, "umount=/proc/keys", opts=UNCONFINED) == {"umount": "EPERM"}
    r = clean("run", "--rm", "busybox", "sh", "-c", "umount /proc/keys || umount -l /proc/timer_list || "
              "mount -o remount,rw /proc/sys", check=False)
    assert r.returncode != 0
    script = "; ".join(f"[ -e {p} ] && [ ! -d {p} ] && echo {p} $(wc -c < {p})" for p in oci.MASKED_PATHS)
    out = clean.out("run", "--rm", "busybox", "sh", "-c", script + "; true")
    sizes = dict(line.split() for line in out.splitlines())
    on_host = {p for p in oci.MASKED_PATHS if os.path.isfile(p)}
    assert "/proc/keys" in on_host and set(sizes) == on_host
    assert set(sizes.values()) == {"0"}, sizes


def test_kcore_reads_nothing(clean):
    """Reading /proc/kcore, the kernel's memory as an ELF core: it is /dev/null in a container."""
    if not os.path.exists("/proc/kcore"):
        pytest.skip("this kernel has no /proc/kcore (CONFIG_PROC_KCORE off): nothing to read")
    out = clean.out("run", "--rm", "busybox", "sh", "-c", "stat -c '%t:%T' /proc/kcore; head -c 64 /proc/kcore | wc -c")
    assert out.split() == ["1:3", "0"]


def test_sysrq_trigger_is_read_only(clean):
    """Writing /proc/sysrq-trigger (crash, reboot or sync the host with one letter; 'h' only
    prints help, harmless even if it got through)."""
    if not os.path.exists("/proc/sysrq-trigger"):
        pytest.skip("this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off)")
    r = clean("run", "--rm", "busybox", "sh", "-c", "echo h > /proc/sysrq-trigger", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr


def test_host_disk_cannot_be_opened(clean):
    """mknod of the host's disk (a block device, CAP_MKNOD is in the default set) and reading its
    first sector: the devices cgroup allows creating the node, never opening it."""
    requires("cgroup:devices")
    disks = [line.split() for line in Path("/proc/partitions").read_text().splitlines()[2:] if line.strip()]
    if not disks:
        pytest.skip("this host has no block device")
    major, minor = disks[0][0], disks[0][1]
    r = clean("run", "--rm", "busybox", "sh", "-c", f"mknod /dev/disk b {major} {minor} && head -c 512 /dev/disk | wc -c",
              check=False)
    assert "Operation not permitted" in r.stderr and r.stdout.strip() in ("", "0")


# --- other processes ---------------------------------------------------------------------------

@pytest.fixture
def host_process():
    """A process of the host (ours, so the test may end it)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_host_processes_cannot_be_traced(clean, syscalls, host_process):
    """ptrace(PTRACE_ATTACH) of a host pid: the pid does not exist in the container's pid
    namespace (ESRCH) and the filter refuses ptrace anyway (EPERM)."""
    pid = host_process.pid
    assert calls(clean, syscalls, f"ptrace={pid}") == {"ptrace": "EPERM"}
    assert calls(clean, syscalls, f"ptrace={pid}", opts=UNCONFINED) == {"ptrace": "ESRCH"}
    assert clean("run", "--rm", "busybox", "test", "-e", f"/proc/{pid}", check=False).returncode == 1


def test_host_processes_cannot_be_killed(clean, syscalls, host_process):
    """kill(2) of a host pid, and kill(-1) — "every process I may signal": both stay inside the
    container's pid namespace."""
    assert calls(clean, syscalls, f"kill0={host_process.pid}") == {"kill0": "ESRCH"}
    clean("run", "--rm", "busybox", "sh", "-c", f"kill -9 {host_process.pid}; kill -9 -1; true", check=False)
    assert host_process.poll() is None


def test_proc_1_root_is_the_containers_root(clean, tmp_path):
    """/proc/1/root (and /proc/PID/root of any process seen) leads to the root of PID 1 — the
    container's, since PID 1 is the container's own: no way to the host's /."""
    marker = tmp_path / "host-marker"
    marker.write_text("host")
    out = clean.out("run", "--rm", "busybox", "sh", "-c",
                    f"readlink /proc/1/root; ls /proc/1/root/ | tr '\\n' ' '; echo; "
                    f"cat /proc/1/root{marker} /proc/self/root{marker} 2>&1; ls /proc/1/root/..")
    lines = out.splitlines()
    assert lines[0] == "/"
    assert set(lines[1].split()) == set(clean.out("run", "--rm", "busybox", "ls", "/").split())
    assert "host" not in out.split() and "No such file or directory" in out


def test_the_hosts_environment_does_not_leak_in(clean):
    """Reading the host's environment: the CLI's own variables (a secret here) are not in the
    container's environment, nor in /proc/1/environ, for `run` and `exec` alike."""
    env = dict(os.environ, MINIRUN_TEST_SECRET="s3cr3t-token")
    out = clean.out("run", "--rm", "busybox", "sh", "-c", "env; tr '\\0' '\\n' < /proc/1/environ", env=env)
    assert "s3cr3t" not in out and "PATH=" in out
    with clean.detached("busybox", "sleep", "30") as cid:
        out = clean.out("exec", cid, "sh", "-c", "env; cat /proc/*/environ", env=env)
    assert "s3cr3t" not in out


# --- limits -------------------------------------------------------------------------------------

def test_rlimits_cannot_be_raised(clean):
    """setrlimit above the hard limit needs CAP_SYS_RESOURCE, which a container lacks (also
    without the filter)."""
    for opts in ((), UNCONFINED):
        r = clean("run", "--rm", *opts, "--ulimit", "nofile=256:512", "busybox", "sh", "-c",
                  "ulimit -Hn 4096 || ulimit -n 1024 || echo refused; ulimit -Hn", check=False)
        assert r.stdout.split() == ["refused", "512"], r


def test_cgroup_limits_cannot_be_raised(clean):
    """Raising the container's own limits (pids.max) from inside: the cgroup files it sees are
    read-only, remounting or unmounting them and mounting a hierarchy of its own are refused, and
    the host's value is unchanged after the attempts."""
    requires("cgroup:pids")
    # the group holding pids.max: /sys/fs/cgroup/pids with v1, /sys/fs/cgroup itself with v2 alone
    script = ("mkdir -p /mnt; for f in $(find /sys/fs/cgroup -name pids.max); do echo max > $f && echo WROTE $f; done; "
              "d=$(dirname $(find /sys/fs/cgroup -name pids.max | head -n 1)); "
              "mount -o remount,rw $d && echo REMOUNTED; umount $d && echo UNMOUNTED; "
              "mount -t cgroup -o pids none /mnt && echo MOUNTED; mount -t cgroup2 none /mnt && echo MOUNTED2; "
              "echo done; sleep 30")
    with clean.detached("--pids-limit", "100", "busybox", "sh", "-c", script) as cid:
        clean.wait_for_log(cid, "done", timeout=5.0)
        assert clean.out("logs", cid) == "done"
        assert cgroup_value(cid, "pids", "pids.max", "pids.max") == "100"


# --- the runtime's own fds and binary ---------------------------------------------------------

def test_no_runtime_fd_is_open_at_exec(clean):
    """CVE-2024-21626 (leaked fd), first half: a process started by `run` or `exec` holds only
    0, 1 and 2 (ls adds its own directory handle, 3)."""
    assert sorted(clean.out("run", "--rm", "busybox", "ls", "/proc/self/fd").split()) == ["0", "1", "2", "3"]
    with clean.detached("busybox", "sleep", "30") as cid:
        assert sorted(clean.out("exec", cid, "ls", "/proc/self/fd").split()) == ["0", "1", "2", "3"]
        for n in range(3, 16):
            r = clean("exec", "-w", f"/proc/self/fd/{n}", cid, "pwd", check=False)
            assert r.returncode == 125 and r.stdout == "", (n, r)


@pytest.mark.parametrize("security_opt", [[], ["no-new-privileges=false"]], ids=["nnp", "no-nnp"])
def test_cwd_through_a_leaked_directory_fd_is_refused(clean, security_opt):
    """CVE-2024-21626 (leaked fd), second half: until execve the child holds copies of the
    runtime's fds; `-w /proc/self/fd/N`, N a host directory the runtime (here a long-lived
    library user) holds, used to make the program's cwd the host's /etc. Now refused, by name."""
    from minirun.errors import SpawnError
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions

    rt = Runtime(clean.root)
    held = os.open("/etc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    record = None
    try:
        record = rt.create(RunOptions(image="busybox", command=["cat", "hostname"],
                                      workdir=f"/proc/self/fd/{held}", detach=True,
                                      security_opt=security_opt))   # no-nnp: the cwd is
        # checked before the filter loads (it must load before the user switch then)
        with pytest.raises(SpawnError) as e:
            rt.start(record)
        assert str(e.value) == f"chdir /proc/self/fd/{held} (outside the container's root): No such file or directory"
    finally:
        os.close(held)
        if record is not None:
            rt.remove(record, force=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_exec_cannot_overwrite_the_runtime(clean, syscalls, tmp_path):
    """CVE-2019-5736: a process in the container opens /proc/PID/exe of the runtime while it
    sets up an `exec` (or the runtime execs /proc/self/exe itself, through a link planted in the
    container), keeps it, and writes to the host's binary once it is free. Here the runtime runs
    from a copy of the Python interpreter, so a success would damage only that copy; before the
    fix it did ("minirun-escaped" appended to it). Now the setup copies are not dumpable and the
    last execve goes through a sealed in-memory minirun-exec, so /proc/self/exe is never the host's."""
    copy = tmp_path / "python-copy"
    shutil.copy2(os.path.realpath(sys.executable), copy)
    before = _sha256(copy)
    site = sysconfig.get_paths()["purelib"]
    code = (f"import site, sys; site.addsitedir({site!r}); sys.argv[0] = 'minirun'; "
            "from minirun.cli.main import main; sys.exit(main())")

    def minirun_from_copy(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(copy), "-c", code, "--root", str(clean.root), *args],
                              capture_output=True, text=True, timeout=30)

    # the host's libraries, so that a dynamically linked interpreter could start in the container
    libs = [a for d in ("/lib", "/lib64") if os.path.isdir(d) for a in ("-v", f"{d}:{d}:ro")]
    with clean.detached("-v", syscalls, *libs, "busybox", "/syscalls", "grab_exe=python-copy") as cid:
        clean("exec", cid, "ln", "-s", "/proc/self/exe", "/evil")
        assert minirun_from_copy("exec", cid, "true").returncode == 0
        evil = minirun_from_copy("exec", cid, "/evil")
        assert evil.returncode == 126
        assert "minirun-exec: runs only as the last step" in evil.stderr   # not the host's Python
        assert clean.out("wait", cid) == "0"
        grabbed = clean.out("logs", cid)
    assert grabbed in ("grab_exe NONE", "grab_exe EACCES", "grab_exe EPERM"), grabbed
    assert _sha256(copy) == before


def test_the_exec_trampoline_is_sealed():
    """The in-memory minirun-exec cannot be changed either: F_SEAL_WRITE refuses every write."""
    from minirun.runtime.plan import exec_trampoline

    fd = os.open(f"/proc/self/fd/{exec_trampoline()}", os.O_RDWR)
    try:
        with pytest.raises(PermissionError):
            os.write(fd, b"x")
        with pytest.raises(PermissionError):
            os.truncate(fd, 0)
    finally:
        os.close(fd)


# --- mounts ---------------------------------------------------------------------------------------

def _plant(data_root: Path, cid: str, name: str, link: str) -> None:
    """Put a symlink into the container's own files, as its image or a previous run could."""
    os.symlink(link, data_root / "containers" / cid / "upper" / name)


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_symlink_in_a_volume_target_stays_inside(clean, data_root, tmp_path, kind):
    """CVE-2021-30465: a symlink planted where a volume is to be mounted (by the image, or by the
    container's previous run; here /data -> a directory that exists both on the host and in the
    container) must not take the mount — or the directories made for it — outside the root.
    Targets are resolved with openat2(RESOLVE_IN_ROOT): the link is followed inside the root."""
    source = tmp_path / "volume"
    source.mkdir()
    (source / "marker").write_text("from the volume\n")
    victim = tmp_path / "victim"                         # what the symlink points at, on the host
    victim.mkdir()
    cid = clean.out("create", "-v", f"{source}:/data/vol", "busybox", "sh", "-c",
                    "cat /data/vol/marker; readlink /data")
    try:
        inside = data_root / "containers" / cid / "upper" / str(victim).lstrip("/")
        inside.mkdir(parents=True)                      # the same path, in the container's root
        link = str(victim) if kind == "absolute" else "../" * 12 + str(victim).lstrip("/")
        _plant(data_root, cid, "data", link)
        clean("start", cid)
        assert clean.out("wait", cid) == "0"
        assert clean.out("logs", cid).splitlines() == ["from the volume", link]
        assert list(victim.iterdir()) == []                 # nothing made or mounted on the host
        assert (inside / "vol").is_dir()                    # the mount point was made in the root
    finally:
        clean("rm", "-f", cid)
    assert str(victim) not in Path("/proc/self/mountinfo").read_text()


def test_symlink_to_a_host_only_path_is_refused(clean, data_root, tmp_path):
    """CVE-2021-30465, the other case: the link leads to a directory only the host has. Followed
    inside the root it leads nowhere, so the start fails (exit 125, naming the mount) and the
    host's directory stays empty."""
    source, victim = tmp_path / "volume", tmp_path / "victim"
    source.mkdir()
    victim.mkdir()
    cid = clean.out("create", "-v", f"{source}:/data/vol", "busybox", "true")
    try:
        _plant(data_root, cid, "data", str(victim))
        r = clean("start", cid, check=False)
        assert r.returncode == 125
        assert r.stderr == f"minirun: create mount point {source} on /data/vol: No such file or directory\n"
        assert list(victim.iterdir()) == []
    finally:
        clean("rm", "-f", cid)
