"""The lifecycle from the outside: run, create/start, ps, logs, exec, stop, kill, rm, wait, top."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import MINIRUN, quiet_warmer

pytestmark = pytest.mark.root


def test_run_hello(clean):
    assert clean.out("run", "--rm", "busybox", "echo", "hello") == "hello"


def test_exit_status_is_the_containers(clean):
    assert clean("run", "--rm", "busybox", "sh", "-c", "exit 42", check=False).returncode == 42


def test_detached_container_outlives_the_cli_and_is_listed(clean):
    cid = clean.out("run", "-d", "--name", "ticker", "busybox", "sh", "-c", "while :; do date; sleep 0.2; done")
    try:
        assert len(cid) == 64
        ps = clean.out("ps")
        assert "ticker" in ps and "Up " in ps
        assert clean.out("ps", "-q") == cid[:12]
        [entry] = json.loads(clean.out("ps", "--format", "json"))
        assert entry["Id"] == cid and entry["State"] == "running"
        time.sleep(0.6)
        assert len(clean.out("logs", "ticker").splitlines()) >= 2
        clean("stop", "-t", "1", "ticker")
        assert "ticker" not in clean.out("ps")
        assert "Exited (137)" in clean.out("ps", "-a")   # sh as PID 1 ignores SIGTERM: killed
    finally:
        clean("rm", "-f", "ticker")


def test_stop_a_shell_trapping_term_exits_with_its_own_status(clean):
    cid = clean.out("run", "-d", "busybox", "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done")
    time.sleep(0.3)
    started = time.monotonic()
    clean("stop", cid)
    assert time.monotonic() - started < 5
    assert clean.out("wait", cid) == "7"
    clean("rm", cid)


def test_kill_with_a_signal(clean):
    cid = clean.out("run", "-d", "--init", "busybox", "sleep", "30")
    clean("kill", "-s", "TERM", cid)             # init forwards TERM to sleep, which dies of it
    assert clean.out("wait", cid) == str(128 + 15)
    clean("rm", cid)


def test_init_reaps_zombies(clean):
    script = "(sleep 0.1 &); sleep 0.6; ps -o stat,comm | grep -c '^Z' || true"
    assert clean.out("run", "--rm", "--init", "busybox", "sh", "-c", script) == "0"
    assert clean.out("run", "--rm", "--init", "busybox", "sh", "-c", "echo $PPID") == "1"


def test_logs_are_complete_and_streams_kept_apart(clean):
    cid = clean.out("run", "-d", "busybox", "sh", "-c", "seq 1 2000; sleep 0.2; echo oops >&2")
    assert clean.out("wait", cid) == "0"
    r = clean("logs", cid)
    assert r.stdout.split() == [str(i) for i in range(1, 2001)]
    assert r.stderr.strip() == "oops"
    tail = clean("logs", "--tail", "3", cid)
    assert (tail.stdout + tail.stderr).split() == ["1999", "2000", "oops"]
    stamped = clean("logs", "-t", "--tail", "1", cid).stderr.strip()
    assert stamped.startswith("20") and stamped.endswith("Z oops")
    clean("rm", cid)


def test_logs_follow_ends_when_the_container_does(clean):
    cid = clean.out("run", "-d", "busybox", "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done")
    out = clean.out("logs", "-f", cid, timeout=10)
    assert out.split() == ["1", "2", "3"]
    clean("rm", cid)


def test_exec_shares_the_containers_namespaces(clean):
    cid = clean.out("run", "-d", "-h", "shared", "busybox", "sleep", "30")
    try:
        assert clean.out("exec", cid, "hostname") == "shared"
        assert clean.out("exec", cid, "cat", "/proc/1/comm") == "sleep"
        pid = json.loads(clean.out("inspect", cid))[0]["State"]["Pid"]
        for ns in ("pid", "mnt", "uts", "ipc", "net"):
            inside = clean.out("exec", cid, "readlink", f"/proc/self/ns/{ns}")
            assert inside == os.readlink(f"/proc/{pid}/ns/{ns}")
        assert clean("exec", cid, "sh", "-c", "exit 5", check=False).returncode == 5
        assert clean.out("exec", "-e", "X=1", "-w", "/tmp", "-u", "nobody", cid, "sh", "-c", "echo $X $(pwd) $(id -u)") == "1 /tmp 65534"
        top = clean.out("top", cid)
        assert "sleep 30" in top
    finally:
        clean("rm", "-f", cid)


def test_create_then_start(clean):
    clean.out("create", "--name", "later", "busybox", "echo", "started")
    assert "Created" in clean.out("ps", "-a")
    clean("start", "later")
    assert clean.out("wait", "later") == "0"
    assert clean.out("logs", "later") == "started"
    clean("start", "later")                       # a stopped container starts again
    assert clean.out("wait", "later") == "0"
    clean("rm", "later")


def test_inspect_reports_config_state_and_limits(clean):
    cid = clean.out("run", "-d", "--name", "insp", "-m", "64m", "--cpus", "0.5", "--pids-limit", "64",
                    "-e", "A=b", "busybox", "sleep", "30")
    try:
        [info] = json.loads(clean.out("inspect", "insp"))
        assert info["Id"] == cid and info["Name"] == "insp"
        assert info["State"]["Running"] and info["State"]["Pid"] > 0 and info["State"]["StartedAt"]
        assert info["HostConfig"]["Memory"] == 64 << 20
        assert info["HostConfig"]["NanoCpus"] == 500_000_000
        assert info["HostConfig"]["PidsLimit"] == 64
        assert "A=b" in info["Config"]["Env"]
        assert info["Config"]["Cmd"] == ["sleep", "30"]
    finally:
        clean("rm", "-f", "insp")
    assert "insp" not in clean.out("ps", "-a")


def test_short_id_prefix_is_accepted(clean):
    cid = clean.out("create", "busybox", "true")
    assert clean.out("inspect", cid[:6]).count(cid) >= 1
    clean("rm", cid[:8])


def test_environment_workdir_user_entrypoint(clean, tmp_path):
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=yes\n")
    out = clean.out("run", "--rm", "-e", "A=1", "--env-file", str(envfile), "-w", "/tmp", "-u", "65534:65534",
                    "busybox", "sh", "-c", "echo $A $FROM_FILE $(pwd) $(id -u):$(id -g) $HOSTNAME")
    a, from_file, cwd, ids, hostname = out.split()
    assert (a, from_file, cwd, ids) == ("1", "yes", "/tmp", "65534:65534") and len(hostname) == 12
    assert clean.out("run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint") == "via entrypoint"


def test_volumes_read_write_and_read_only(clean, tmp_path):
    (tmp_path / "in.txt").write_text("from host")
    out = clean.out("run", "--rm", "-v", f"{tmp_path}:/data", "busybox", "sh", "-c", "cat /data/in.txt; echo hi > /data/out.txt")
    assert out == "from host"
    assert (tmp_path / "out.txt").read_text() == "hi\n"
    r = clean("run", "--rm", "-v", f"{tmp_path}:/data:ro", "busybox", "sh", "-c", "echo x > /data/x", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    assert not (tmp_path / "x").exists()


def test_a_read_only_volume_is_read_only_all_the_way_down(clean, tmp_path):
    # -v is a recursive bind: mounts below the host directory come along. Docker (>= 25) makes
    # them read-only too; a remount changes only the top mount, so they stayed writable.
    sub = tmp_path / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "lab-sub", str(sub)], check=True)
    try:
        r = clean("run", "--rm", "-v", f"{tmp_path}:/data:ro", "busybox", "sh", "-c",
                  "echo x > /data/sub/x; grep ' /data/sub ' /proc/self/mountinfo", check=False)
        assert "/data/sub/x: Read-only file system" in r.stderr
        assert not (sub / "x").exists()
        assert r.stdout.split()[5].split(",")[0] == "ro", r.stdout
        out = clean.out("run", "--rm", "-v", f"{tmp_path}:/data", "busybox", "sh", "-c",
                        "echo y > /data/sub/y && cat /data/sub/y")
        assert out == "y"                        # without :ro, the submount stays writable
    finally:
        subprocess.run(["umount", str(sub)], check=True)


def test_read_only_root_with_a_tmpfs(clean):
    r = clean("run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c",
              "touch /scratch/ok && echo tmpfs-ok; touch /nope", check=False)
    assert "tmpfs-ok" in r.stdout and "Read-only file system" in r.stderr


def test_interactive_stdin(clean):
    assert clean.out("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input="hello\n") == "HELLO"
    assert clean.out("run", "--rm", "busybox", "cat", input="ignored\n") == ""   # no -i: no stdin


def _read_until(fd: int, marker: bytes | None, seconds: float) -> bytes:
    """Read a pty until `marker` shows up (or EOF / EIO when marker is None)."""
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (marker is None or marker not in out):
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:              # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
    return out


def _exit_status(pid: int, seconds: float = 10) -> int | None:
    """The exit status of our child `pid` once it exits, or None if it is still running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    return None


def _kill_if_running(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, ProcessLookupError):
        if not os.waitpid(pid, os.WNOHANG)[0]:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def test_tty_is_a_real_terminal(clean, data_root):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(MINIRUN[0], [*MINIRUN, "--root", str(data_root), "run", "-it", "--rm", "busybox", "sh"])
    try:
        assert b"# " in _read_until(fd, b"# ", 15)        # the shell's prompt: it has a terminal
        os.write(fd, b"tty; echo $((6*7))\r")
        assert b"42" in _read_until(fd, b"42", 10)
        os.write(fd, b"sleep 30\r")
        time.sleep(0.3)
        os.write(fd, b"\x03")                             # Ctrl-C reaches the container's sleep
        os.write(fd, b"echo after-ctrl-c\r")
        text = _read_until(fd, b"after-ctrl-c\r\n", 10)
        assert b"after-ctrl-c\r\n" in text
        os.write(fd, b"exit 3\r")
        _read_until(fd, None, 10)
        assert _exit_status(pid) == 3, "minirun run -it did not exit with the shell's status"
    finally:
        _kill_if_running(pid)
        os.close(fd)


def test_names_are_unique_even_under_a_race(clean):
    def create():
        return subprocess.run([*MINIRUN, "--root", str(clean.root), "create", "--name", "racer", "busybox", "true"],
                              capture_output=True, text=True)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: create(), range(4)))
    assert sorted(r.returncode for r in results) == [0, 125, 125, 125]
    assert all("already in use" in r.stderr for r in results if r.returncode)
    clean("rm", "racer")


def test_prune_removes_stopped_containers(clean):
    a = clean.out("create", "busybox", "true")
    b = clean.out("run", "-d", "busybox", "sleep", "30")
    try:
        clean("container", "prune", "-f")
        ids = clean.out("ps", "-a", "-q").split()
        assert a[:12] not in ids and b[:12] in ids
    finally:
        clean("rm", "-f", b)


def test_detached_rm_removes_itself_after_exit(clean):
    cid = clean.out("run", "-d", "--rm", "busybox", "sh", "-c", "echo bye")
    deadline = time.monotonic() + 15
    while cid[:12] in clean.out("ps", "-a", "-q") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cid[:12] not in clean.out("ps", "-a", "-q")


def test_image_import_from_stdin(clean):
    from tests.conftest import IMAGE_TAR

    out = clean.out("image", "import", "-", "frompipe:v1", input=IMAGE_TAR.read_bytes())
    assert out.startswith(b"sha256:")
    assert clean.out("run", "--rm", "frompipe:v1", "echo", "ok") == "ok"
    clean("image", "rm", "frompipe:v1")


def test_exec_it_gets_a_terminal_of_the_right_size(clean, data_root):
    import fcntl
    import struct
    import termios

    cid = clean.out("run", "-d", "busybox", "sleep", "30")
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        os.execv(MINIRUN[0], [*MINIRUN, "--root", str(data_root), "exec", "-it", cid, "sh"])
    try:
        assert b"# " in _read_until(fd, b"# ", 15)
        os.write(fd, b"tty; stty size\r")
        text = _read_until(fd, b"33 101", 10)
        assert b"/dev/pts/" in text and b"33 101" in text
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))   # resize
        os.kill(pid, __import__("signal").SIGWINCH)
        time.sleep(0.3)
        os.write(fd, b"stty size\r")
        assert b"40 120" in _read_until(fd, b"40 120", 10)
        os.write(fd, b"exit 4\r")
        _read_until(fd, None, 10)
        assert _exit_status(pid) == 4
    finally:
        _kill_if_running(pid)
        os.close(fd)
        clean("rm", "-f", cid)


def test_parallel_runs_and_removals_stay_consistent(clean):
    def one(i):
        r = subprocess.run([*MINIRUN, "--root", str(clean.root), "run", "--rm", "--name", f"par{i}",
                            "busybox", "sh", "-c", f"echo {i}"], capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout.strip()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert results == [(0, str(i)) for i in range(16)]
    assert clean.out("ps", "-a", "-q") == ""


def test_the_library_leaves_no_zombie_monitors_or_fds(mr, data_root):
    """A long-lived process (a worker) that runs containers reaps their monitors and closes
    every fd it opened for them."""
    from minirun.errors import CommandNotFound
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions

    rt = Runtime(data_root)
    from minirun.runtime.plan import exec_trampoline

    rt.cgroups, rt.images, exec_trampoline()        # noqa: B018 — open what stays open first
    quiet_warmer()
    fds_before = sorted(os.listdir("/proc/self/fd"))
    started = [rt.run(RunOptions(image="busybox", command=["true"], detach=True)) for _ in range(3)]
    for s in started:
        assert rt.wait(s.record) == 0
        rt.remove(s.record)
    quiet_warmer()
    children = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
    zombies = [c for c in children if open(f"/proc/{c}/stat").read().split(")")[1].split()[0] == "Z"]
    assert not any(int(c) in {s.monitor_pid for s in started} for c in zombies)
    assert sorted(os.listdir("/proc/self/fd")) == fds_before      # and no fd leaks
    # a start that fails leaks nothing either
    with pytest.raises(CommandNotFound, match="nosuchcmd"):
        rt.run(RunOptions(image="busybox", command=["nosuchcmd"], auto_remove=True))
    quiet_warmer()
    assert sorted(os.listdir("/proc/self/fd")) == fds_before


def test_a_monitor_still_ending_is_collected_not_left_a_zombie():
    """wait() and remove() come once the container has exited, and its monitor ends just after
    recording that; now and then it has not ended yet (2 zombies in 150 run/wait/remove cycles,
    under load). A child that ends 0.2 s later stands in for such a monitor."""
    from minirun.runtime.containers import _reap_if_ours

    pid = os.posix_spawn("/bin/sleep", ["sleep", "0.2"], os.environ)
    _reap_if_ours(pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)                  # collected: no zombie left for us
    _reap_if_ours(os.getppid())                      # not our child: nothing to do, no error


def _parallel(clean, n: int, *args: str) -> list[subprocess.CompletedProcess]:
    def one(_):
        return subprocess.run([*MINIRUN, "--root", str(clean.root), *args], capture_output=True,
                              text=True, timeout=60)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_racing_removals_one_wins_the_others_get_no_such_container(clean):
    cid = clean.out("run", "-d", "busybox", "sleep", "30")
    results = _parallel(clean, 6, "rm", "-f", cid)
    assert sorted(r.returncode for r in results) == [0, 125, 125, 125, 125, 125], \
        [r.stderr for r in results]
    for r in results:
        if r.returncode:
            assert r.stderr.strip().splitlines() == [f"minirun: no such container: {cid}"]
    assert clean.out("ps", "-a", "-q") == ""


def test_racing_starts_exactly_one_starts_the_container(clean):
    cid = clean.out("create", "--name", "starter", "busybox", "sleep", "30")
    try:
        results = _parallel(clean, 4, "start", "starter")
        assert sorted(r.returncode for r in results) == [0, 125, 125, 125]
        assert all("it is running" in r.stderr for r in results if r.returncode)
        processes = json.loads(clean.out("top", "--format", "json", "starter"))
        assert [p["command"] for p in processes] == ["sleep 30"], "started more than once"
    finally:
        clean("rm", "-f", cid)


def test_a_long_lived_runtime_keeps_cgroup_parents_and_deletes_directories_behind(mr, data_root):
    """The warm path of a worker: the shared cgroup parent stays between containers, a removed
    container's directory is deleted in the background, and close() finishes the deletions."""
    from minirun.errors import ContainerNotFound
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions

    rt = Runtime(data_root, long_lived=True)
    try:
        for _ in range(3):
            st = rt.run(RunOptions(image="busybox", command=["true"], network="none", detach=True))
            assert rt.wait(st.record) == 0
            rt.remove(st.record)
            with pytest.raises(ContainerNotFound):
                rt.get(st.record.id)                      # gone at once for every reader
            for mount in set(rt.cgroups.hierarchies().values()):
                assert os.path.isdir(os.path.join(mount, "minirun"))   # kept for the next one
                assert not os.path.exists(os.path.join(mount, "minirun", st.record.id))
    finally:
        rt.close()
    assert not [p.name for p in (data_root / "containers").iterdir() if p.name.startswith(".removing-")]


_THREAD_CHURN = r'''
import os, sys, threading
from pathlib import Path
from minirun.runtime.containers import Runtime
from minirun.runtime.options import RunOptions

stop = threading.Event()
def churn():                      # threads forever being created and ending, as a worker's are
    while not stop.is_set():
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
for _ in range(2):
    threading.Thread(target=churn, daemon=True).start()
rt = Runtime(Path(sys.argv[1]), long_lived=True)
codes = []
for _ in range(int(sys.argv[2])):
    s = rt.run(RunOptions(image="busybox", command=["true"], network="none", auto_remove=True))
    codes.append(os.waitstatus_to_exitcode(os.waitpid(s.monitor_pid, 0)[1]))
    rt.remove(s.record)
stop.set()
rt.close()
print(sorted(set(codes)))
'''


def test_other_threads_being_created_never_hang_a_container(clean, data_root):
    """The container is a raw clone of its caller: glibc's setresuid/setgroups would wait for
    every thread glibc knew of, forever for one that was being created at the clone (found in a
    scheduler worker). The child changes its ids with the system calls themselves (util.h), so
    a caller full of threads starts containers as any other: here 150 while two threads keep
    creating threads (this hung within 150 before the fix)."""
    proc = subprocess.Popen([sys.executable, "-c", _THREAD_CHURN, str(data_root), "150"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)          # the caller and its hung container clone
        proc.communicate()
        pytest.fail("a container start hung while other threads were being created")
    assert proc.returncode == 0, err[-2000:]
    assert out.strip() == "[0]"
