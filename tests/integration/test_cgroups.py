"""cgroups on the real kernel: limits land in the files and the kernel enforces them.

Needs root. Each test uses its own group "minirun/test-<hex>", kills the processes it starts,
and checks that nothing is left under /sys/fs/cgroup afterwards.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from minirun.errors import CgroupError
from minirun.runtime.cgroups import Resources, detect
from tests.conftest import slow

pytestmark = pytest.mark.root

MiB = 1 << 20


@pytest.fixture(scope="module")
def mgr():
    if os.geteuid() != 0:
        pytest.skip("cgroup tests need root")
    try:
        return detect()
    except CgroupError as err:
        pytest.skip(f"no cgroups here: {err}")


def requires(mgr, *controllers):
    missing = [c for c in controllers if c not in mgr.available()]
    if missing:
        pytest.skip(f"this machine lacks the cgroup controller(s) {', '.join(missing)}")


def leftovers(mgr, name):
    return [d for m in set(mgr.hierarchies().values()) if os.path.exists(d := os.path.join(m, name))]


@pytest.fixture
def name(mgr):
    """A fresh group name; the test fails if the group survives it."""
    group = f"minirun/test-{secrets.token_hex(4)}"
    yield group
    left = leftovers(mgr, group)
    if left:
        mgr.open(group).destroy()
    assert not left, f"test left cgroups behind: {left}"


@pytest.fixture
def procs():
    """Start processes blocked before exec; killed and reaped whatever happens."""
    started: list[subprocess.Popen] = []

    def start(*argv, **kw):
        # The shell waits for a line on stdin, so the program only starts once it is in the group.
        p = subprocess.Popen(["sh", "-c", 'read _ && exec "$@"', "sh", *argv],
                             stdin=subprocess.PIPE, text=True, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        for stream in (p.stdin, p.stdout, p.stderr):
            if stream:
                stream.close()


def release(p):
    p.stdin.write("go\n")
    p.stdin.flush()


def read(*path):
    return Path(*path).read_text().strip()


def test_create_writes_limits(mgr, name):
    requires(mgr, "memory", "pids", "cpu", "cpuset")
    cg = mgr.create(name, Resources(memory=64 * MiB, pids_limit=50, cpu_quota=50000,
                                    cpu_shares=512, cpuset_cpus="0"))
    try:
        p = cg.paths
        if mgr.available()["memory"] == "v1":
            assert int(read(p["memory"], "memory.limit_in_bytes")) == 64 * MiB
            assert read(p["pids"], "pids.max") == "50"
            assert read(p["cpu"], "cpu.cfs_quota_us") == "50000"
            assert read(p["cpu"], "cpu.cfs_period_us") == "100000"
            assert read(p["cpu"], "cpu.shares") == "512"
        else:
            assert int(read(p["memory"], "memory.max")) == 64 * MiB
            assert read(p["cpu"], "cpu.max") == "50000 100000"
        assert read(p["cpuset"], "cpuset.cpus") == "0"
        s = cg.stats()
        assert s["memory_limit"] == 64 * MiB and s["pids_limit"] == 50
        assert s["cpu_quota_us"] == 50000 and s["cpu_period_us"] == 100000
        assert s["cpuset_cpus"] == "0" and s["pids_current"] == 0
    finally:
        cg.destroy()


def test_process_joins_every_hierarchy(mgr, name, procs):
    cg = mgr.create(name, Resources())
    try:
        p = procs("sleep", "30")
        cg.add(p.pid)
        assert cg.pids() == [p.pid]
        lines = read(f"/proc/{p.pid}/cgroup").splitlines()
        joined = [line for line in lines if line.endswith("/" + name)]
        # one line per hierarchy we created the group in (v1 ones and the unified "0::")
        assert len(joined) == len(cg.procs_files()), lines
    finally:
        cg.destroy()
    assert p.wait(timeout=5) == -signal.SIGKILL


def test_child_can_join_by_writing_zero(mgr, name):
    """The runtime's child joins by writing "0" to each cgroup.procs opened by the parent."""
    cg = mgr.create(name, Resources())
    try:
        script = ("import sys\nfor f in sys.argv[1:]:\n    open(f, 'w').write('0')\n"
                  "print(open('/proc/self/cgroup').read())")
        out = subprocess.run([sys.executable, "-c", script, *cg.procs_files()],
                             capture_output=True, text=True, check=True).stdout
        assert sum(line.endswith("/" + name) for line in out.splitlines()) == len(cg.procs_files())
    finally:
        cg.destroy()


def test_memory_limit_kills_a_memory_hog(mgr, name, procs):
    requires(mgr, "memory")
    cg = mgr.create(name, Resources(memory=32 * MiB, memory_swap=32 * MiB))
    try:
        hog = procs(sys.executable, "-c", "b = b'x' * (200 << 20)")
        cg.add(hog.pid)
        release(hog)
        assert hog.wait(timeout=30) == -signal.SIGKILL
        assert cg.oom_kill_count() >= 1
        assert cg.stats()["oom_kills"] >= 1
        assert cg.oom_events_file() and os.path.exists(cg.oom_events_file())
    finally:
        cg.destroy()


def test_pids_limit_stops_fork(mgr, name, procs):
    requires(mgr, "pids")
    cg = mgr.create(name, Resources(pids_limit=3))
    try:
        sh = procs("sh", "-c", "for i in 1 2 3 4 5 6; do sleep 2 & done; wait",
                   stderr=subprocess.PIPE)
        cg.add(sh.pid)
        release(sh)
        _, err = sh.communicate(timeout=30)
        assert "fork" in err.lower(), err          # dash: "Cannot fork"; bash: "fork: retry"
        events = Path(cg.paths["pids"], "pids.events")
        assert int(read(events).split()[-1]) >= 1
    finally:
        cg.destroy()


def test_cpu_quota_throttles(mgr, name, procs):
    """At 0.2 CPUs a busy loop gets a fifth of a CPU: the group's CPU time over a second of wall
    time, both read here (a slow machine's Python start-up, in the group too, is not counted)."""
    requires(mgr, "cpu")
    cg = mgr.create(name, Resources.from_cpus(0.2))
    try:
        busy = procs("sh", "-c", "while :; do :; done")
        cg.add(busy.pid)
        release(busy)
        used, start = cg.stats()["cpu_usage_ns"], time.monotonic()
        time.sleep(1)
        used, took = (cg.stats()["cpu_usage_ns"] - used) / 1e9, time.monotonic() - start
        assert 0.03 < used / took <= 0.3, f"used {used:.3f}s of CPU in {took:.2f}s at 0.2 CPUs"
    finally:
        cg.destroy()


def test_cpuset_pins_the_process(mgr, name, procs):
    requires(mgr, "cpuset")
    cpu = str(max(os.sched_getaffinity(0)))
    cg = mgr.create(name, Resources(cpuset_cpus=cpu))
    try:
        p = procs("sleep", "30")
        cg.add(p.pid)
        assert os.sched_getaffinity(p.pid) == {int(cpu)}
    finally:
        cg.destroy()


def test_apply_updates_live(mgr, name, procs):
    requires(mgr, "pids", "memory", "cpu")
    cg = mgr.create(name, Resources(pids_limit=10, memory=64 * MiB, memory_swap=64 * MiB))
    try:
        p = procs("sleep", "30")
        cg.add(p.pid)
        cg.apply(Resources(pids_limit=20, memory=128 * MiB, memory_swap=256 * MiB))
        s = cg.stats()
        assert s["pids_limit"] == 20 and s["memory_limit"] == 128 * MiB
        cg.apply(Resources(memory=48 * MiB, memory_swap=48 * MiB))   # lowering: other order
        assert cg.stats()["memory_limit"] == 48 * MiB
        assert cg.stats()["pids_limit"] == 20                          # untouched field kept
        cg.apply(Resources(pids_limit=-1, cpu_quota=30000))
        s = cg.stats()
        assert s["pids_limit"] is None and s["cpu_quota_us"] == 30000
        assert s["cpu_period_us"] == 100000
    finally:
        cg.destroy()


def test_swap_limit_below_memory_is_refused(mgr, name):
    requires(mgr, "memory")
    with pytest.raises(CgroupError, match="memsw|swap"):
        mgr.create(name, Resources(memory=64 * MiB, memory_swap=32 * MiB))
    assert leftovers(mgr, name) == []


def test_freeze_and_thaw(mgr, name, procs):
    requires(mgr, "freezer")
    if "cpuacct" not in mgr.available() and "unified" not in mgr.hierarchies():
        pytest.skip("no CPU accounting here (v1 cpuacct, or cgroup2's core cpu.stat)")
    cg = mgr.create(name, Resources())
    try:
        busy = procs(sys.executable, "-c", "while True: pass")
        cg.add(busy.pid)
        release(busy)
        time.sleep(0.2)
        cg.freeze()
        if "freezer" in cg.paths and mgr.available()["freezer"] == "v1":
            assert read(cg.paths["freezer"], "freezer.state") == "FROZEN"
        before = cg.stats()["cpu_usage_ns"]
        time.sleep(0.3)
        assert cg.stats()["cpu_usage_ns"] == before, "a frozen process kept running"
        cg.thaw()
        time.sleep(0.3)
        assert cg.stats()["cpu_usage_ns"] > before
    finally:
        cg.destroy()


def test_destroy_leaves_nothing_and_is_idempotent(mgr, name, procs):
    cg = mgr.create(name, Resources(pids_limit=100))
    p = procs("sh", "-c", "sleep 30 & sleep 30 & wait")
    cg.add(p.pid)
    release(p)
    deadline = time.monotonic() + slow(2)       # the shell forks its two sleeps meanwhile
    while len(cg.pids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(cg.pids()) == 3
    cg.destroy()
    assert leftovers(mgr, name) == []
    for mount in set(mgr.hierarchies().values()):
        parent = Path(mount, "minirun")
        # gone, unless another container (another test run) still uses it
        try:
            others = [c for c in parent.iterdir() if c.is_dir()]
        except FileNotFoundError:
            others = []
        assert not parent.exists() or others, f"{parent} left empty"
    cg.destroy()
    mgr.open(name).destroy()


def test_concurrent_create_and_destroy(mgr):
    names = [f"minirun/test-{secrets.token_hex(4)}" for _ in range(8)]
    errors: list[BaseException] = []

    def work(group):
        try:
            for _ in range(3):
                mgr.create(group, Resources(pids_limit=10, cpuset_cpus="0")).destroy()
        except BaseException as err:   # report in the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for n in names:
        if leftovers(mgr, n):
            mgr.open(n).destroy()
    assert not errors, errors
    assert all(leftovers(mgr, n) == [] for n in names)


def test_bad_value_names_the_file_and_leaves_nothing(mgr, name):
    requires(mgr, "cpuset")
    with pytest.raises(CgroupError) as info:
        mgr.create(name, Resources(cpuset_cpus="99", pids_limit=5))
    assert "cpuset.cpus" in str(info.value) and "'99'" in str(info.value)
    # the kernel's errno text: EINVAL or ERANGE depending on the version
    assert str(info.value).endswith(("Invalid argument", "Numerical result out of range"))
    assert info.value.path and info.value.path.endswith("cpuset.cpus")
    assert leftovers(mgr, name) == []


def test_missing_group_opens_and_destroys(mgr, name):
    cg = mgr.open(name)
    assert cg.paths == {} and cg.pids() == []
    cg.destroy()


def test_available_matches_mounts(mgr):
    avail = mgr.available()
    assert set(avail.values()) <= {"v1", "v2"}
    for controller, version in avail.items():
        if version == "v1":
            assert os.path.isdir(mgr.hierarchies()[controller])


def test_unified_group_tracks_freezes_and_kills(mgr, name, procs):
    """On a hybrid host the cgroup2 group only tracks; its core files still work."""
    from minirun.runtime.cgroups.v2 import V2Driver
    if "unified" not in mgr.hierarchies():
        pytest.skip("no cgroup2 mount on this machine")
    cg = mgr.create(name, Resources())
    try:
        p = procs("sleep", "30")
        cg.add(p.pid)
        unified = cg.paths["unified"]
        assert read(unified, "cgroup.procs") == str(p.pid)
        driver = V2Driver(mgr.hierarchies()["unified"], set())
        if not os.path.exists(os.path.join(unified, "cgroup.freeze")):
            pytest.skip("kernel without cgroup.freeze (< 5.2)")
        driver.freeze(cg.paths)
        assert "frozen 1" in read(unified, "cgroup.events")
        driver.thaw(cg.paths)
        assert "frozen 0" in read(unified, "cgroup.events")
    finally:
        cg.destroy()
    assert p.wait(timeout=5) == -signal.SIGKILL


def test_device_rules_on_cgroup2_are_enforced_by_an_ebpf_program(mgr, name, procs):
    """cgroup2 has no devices controller: minirun attaches a BPF_PROG_TYPE_CGROUP_DEVICE program
    to the group. Here the host's cgroup2 mount is used as a cgroup2-only host would be (the v1
    hierarchies left out), and a process in the group meets the rules the kernel enforces."""
    from minirun.runtime.cgroups import CgroupManager
    from minirun.runtime.cgroups._mounts import Mounts

    unified = mgr.hierarchies().get("unified")
    if unified is None:
        pytest.skip("no cgroup2 mount on this machine")
    v2_only = CgroupManager(Mounts(unified=unified))
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},   # /dev/zero, read
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"}]   # /dev/null, write
    cg = v2_only.create(name, Resources(devices=rules))
    try:
        # (no /dev/null redirections: opening /dev/null is what the rules deny)
        probe = ("for f in /dev/zero:r /dev/zero:w /dev/null:w /dev/full:w; do path=${f%:*}; "
                 "if [ ${f#*:} = r ]; then n=$(head -c1 $path 2>&1 | wc -c); "
                 "[ \"$n\" = 1 ] && echo $f ok || echo $f denied; "
                 "else (: > $path) 2>&1 | grep -q . && echo $f denied || echo $f ok; fi; done")
        p = procs("sh", "-c", probe, stdout=subprocess.PIPE)
        cg.add(p.pid)
        release(p)
        assert p.communicate(timeout=10)[0].split() == [
            "/dev/zero:r", "ok", "/dev/zero:w", "denied", "/dev/null:w", "ok", "/dev/full:w", "denied"]
    finally:
        cg.destroy()


def test_a_long_device_list_loads_on_cgroup2_and_is_enforced(mgr, name, procs):
    """Sixty rules (a --device per disk partition, a GPU's nodes): a program of ~300 instructions.
    Loaded with a verifier log it failed with ENOSPC on every kernel here (the log filled up);
    on Debian's 6.1 even Docker's default list did. The first load now has no log."""
    from minirun.runtime.cgroups import CgroupManager
    from minirun.runtime.cgroups._mounts import Mounts

    unified = mgr.hierarchies().get("unified")
    if unified is None:
        pytest.skip("no cgroup2 mount on this machine")
    v2_only = CgroupManager(Mounts(unified=unified))
    rules = [{"allow": False, "access": "rwm"}]
    rules += [{"allow": True, "type": "b", "major": 8, "minor": m, "access": "rw"} for m in range(59)]
    rules += [{"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]   # /dev/zero
    cg = v2_only.create(name, Resources(devices=rules))
    try:
        p = procs("sh", "-c", "head -c1 /dev/zero | wc -c; head -c1 /dev/urandom 2>&- | wc -c",
                  stdout=subprocess.PIPE)
        cg.add(p.pid)
        release(p)
        assert p.communicate(timeout=10)[0].split() == ["1", "0"]     # urandom (1:9) denied
    finally:
        cg.destroy()


def test_the_first_device_program_load_carries_no_verifier_log(mgr, name):
    """What the kernel is asked, seen by strace: log_level=0 and no buffer, so no log can fill
    up (before: log_level=1 with a 4 KiB buffer)."""
    from minirun.runtime.cgroups import CgroupManager
    from minirun.runtime.cgroups._mounts import Mounts

    unified = mgr.hierarchies().get("unified")
    if unified is None:
        pytest.skip("no cgroup2 mount on this machine")
    cg = CgroupManager(Mounts(unified=unified)).create(name, Resources())
    code = ("import sys; from pathlib import Path; from minirun.runtime.cgroups import devices_bpf; "
            "devices_bpf.attach(Path(sys.argv[1]), [{'allow': False, 'access': 'rwm'}, "
            "{'allow': True, 'type': 'c', 'major': 1, 'minor': 3, 'access': 'rwm'}])")
    try:
        out = subprocess.run(["strace", "-f", "-v", "-e", "trace=bpf", sys.executable, "-c", code,
                              cg.paths["unified"]], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("strace is not installed")
    finally:
        cg.destroy()
    loads = [line for line in out.stderr.splitlines() if "BPF_PROG_LOAD" in line]
    assert out.returncode == 0 and len(loads) == 1, out.stderr
    assert "log_level=0" in loads[0] and "log_buf=NULL" in loads[0], loads[0]


def test_a_program_the_verifier_refuses_says_why():
    """Only a refused program is loaded again, with a log: the error carries the verifier's
    reason, here for a program that returns a register it never set."""
    from minirun.runtime.cgroups import devices_bpf as d

    if os.geteuid() != 0:
        pytest.skip("needs root")
    with pytest.raises(OSError) as refused:
        d.load(d._insn(d.EXIT))
    assert refused.value.strerror == os.strerror(refused.value.errno)
    assert refused.value.filename == "R0 !read_ok"


def test_kernel_memory_limits_are_skipped_with_a_warning_without_v1_memory(mgr, name):
    """cgroup v2 has no kernel or TCP buffer memory limit (both count in memory.max): runc
    warns and runs; before, the group was refused (`memory_kernel_tcp needs the v1 memory
    controller`). The host's cgroup2 mount, as a cgroup2-only host's would be: the group is
    made, and the manager says what it skipped. Where v1 memory exists, nothing is skipped."""
    from minirun.runtime.cgroups import CgroupManager
    from minirun.runtime.cgroups._mounts import Mounts

    unified = mgr.hierarchies().get("unified")
    if unified is None:
        pytest.skip("no cgroup2 mount on this machine")
    res = Resources(memory_kernel=50593792, memory_kernel_tcp=50593792, pids_limit=None)
    v2_only = CgroupManager(Mounts(unified=unified))
    assert v2_only.skipped(res) == [
        f"linux.resources.memory.{k} is ignored: cgroup v2 has no such limit (kernel memory "
        "counts in the memory limit)" for k in ("kernel", "kernelTCP")]
    cg = v2_only.create(name, res)
    try:
        assert os.path.isdir(cg.paths["unified"])
    finally:
        cg.destroy()
    if mgr.available().get("memory") == "v1":
        assert mgr.skipped(res) == []


def test_a_keep_parents_manager_makes_its_parents_once_and_again_when_removed(mgr, procs):
    """A long-lived Runtime's manager (keep_parents) makes and prepares the shared parent once;
    if another command removes it meanwhile (it was empty), the next group makes it again,
    prepared: a process can join, and the v1 cpuset has its cpus and mems."""
    from minirun.runtime.cgroups import detect

    parent = f"minirun-keep-{secrets.token_hex(4)}"
    warm = detect()
    warm.keep_parents = True
    try:
        for round_ in range(3):
            group = warm.create(f"{parent}/g{round_}", Resources(pids_limit=10))
            p = procs("true")
            group.add(p.pid)
            p.stdin.write("\n")
            p.stdin.close()
            assert p.wait(timeout=10) == 0
            if warm.available().get("cpuset") == "v1":
                cpuset = Path(group.paths["cpuset"])
                for f in ("cpuset.cpus", "cpuset.mems"):
                    assert (cpuset / f).read_text().strip()
                # children inherit the parent's cpus and mems (cgroup.clone_children)
                assert (cpuset.parent / "cgroup.clone_children").read_text().strip() == "1"
            elif "cpuset" in warm.available():
                # v2: the parent lends cpuset to its children (an empty cpuset.cpus = the parent's)
                cpuset = Path(group.paths["cpuset"])
                assert "cpuset" in (cpuset.parent / "cgroup.subtree_control").read_text().split()
                for f in ("cpuset.cpus.effective", "cpuset.mems.effective"):
                    assert (cpuset / f).read_text().strip()
            group.destroy()
            assert all(Path(m, parent).is_dir() for m in set(warm.hierarchies().values()))
            if round_ == 1:
                detect().remove_if_empty(parent)      # another command: the parent goes
                assert not any(Path(m, parent).exists() for m in set(warm.hierarchies().values()))
    finally:
        warm.remove_if_empty(parent)
    assert not any(Path(m, parent).exists() for m in set(mgr.hierarchies().values()))
