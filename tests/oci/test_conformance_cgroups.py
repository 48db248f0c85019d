"""The validation suite's cgroup checks (linux_cgroups_* and linux_cgroups_relative_*): after
`create`, the host's cgroupfs — found the way the suite finds it, from /proc/PID/cgroup — holds
every value of linux.resources; `delete` removes the groups `create` made and nothing else."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from minirun.runtime.cgroups import detect
from minirun.runtime.cgroups.v2 import shares_to_weight
from tests.conftest import cgroup_dirs, requires, slow
from tests.oci.conformance import Runtime, suite_config


def mount_of(controller: str) -> Path:
    """The hierarchy that holds a controller here: its v1 mount, or cgroup2's."""
    return Path(detect().hierarchies()[controller])


def v2(controller: str) -> bool:
    return detect().available().get(controller) == "v2"


def group_dir(pid: int, controller: str) -> Path:
    """Where the suite reads a controller's files, from /proc/PID/cgroup: a v1 line names its
    controllers ("4:memory:/path": that controller's mount + the path); cgroup2's is "0::/path"
    (its mount + the path), for a controller that v1 does not hold."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controllers == "" and v2(controller)):
            return mount_of(controller) / path.lstrip("/")
    raise AssertionError(f"{controller} is not in /proc/{pid}/cgroup")


def read(pid: int, controller: str, name: str) -> str:
    return (group_dir(pid, controller) / name).read_text().strip()


def created(rt: Runtime, resources: dict, cgroups_path: str) -> int:
    config = suite_config(["true"])
    config["linux"]["cgroupsPath"] = cgroups_path
    config["linux"]["resources"].update(resources)
    rt.configure(config)
    proc = rt.create()
    assert proc.returncode == 0, proc.stderr
    return rt.state()["pid"]


def stop_and_delete(rt: Runtime) -> None:
    rt.kill("KILL")
    assert rt.wait_status("stopped")["status"] == "stopped"
    assert rt.delete().returncode == 0


@pytest.fixture
def name():
    return f"minirun-conftest-{uuid.uuid4().hex[:8]}"


MEMORY = {"limit": 50593792, "reservation": 50593792, "swap": 50593792, "kernelTCP": 50593792,
          "swappiness": 10, "disableOOMKiller": True}


@pytest.mark.parametrize("absolute", [True, False], ids=["absolute", "relative"])
def test_memory_limits_are_in_the_group(rt, name, absolute):
    requires("cgroup:memory")
    if v2("memory"):
        memory_on_cgroup2(rt, name, absolute)
        return
    memsw = (mount_of("memory") / "memory.memsw.limit_in_bytes").exists()
    memory = MEMORY if memsw else {k: v for k, v in MEMORY.items() if k != "swap"}
    pid = created(rt, {"memory": memory}, f"/{name}" if absolute else name)
    d = group_dir(pid, "memory")
    assert d == mount_of("memory") / name if absolute else str(d).endswith(name)
    values = {f: read(pid, "memory", f"memory.{f}") for f in
              ("limit_in_bytes", "soft_limit_in_bytes", "kmem.tcp.limit_in_bytes", "swappiness")}
    assert values == {"limit_in_bytes": "50593792", "soft_limit_in_bytes": "50593792",
                      "kmem.tcp.limit_in_bytes": "50593792", "swappiness": "10"}
    if memsw:
        assert read(pid, "memory", "memory.memsw.limit_in_bytes") == "50593792"
    assert "oom_kill_disable 1" in read(pid, "memory", "memory.oom_control")
    stop_and_delete(rt)
    assert not d.exists()


def memory_on_cgroup2(rt: Runtime, name: str, absolute: bool) -> None:
    """cgroup2 has no swappiness, kernel TCP or OOM-killer switch (runc leaves them out there
    too): the limit, the reservation (memory.low) and swap (memory.swap.max holds swap alone)."""
    swap = (mount_of("memory") / "memory.swap.max").exists()
    memory = {k: MEMORY[k] for k in ("limit", "reservation", *(["swap"] if swap else []))}
    pid = created(rt, {"memory": memory}, f"/{name}" if absolute else name)
    d = group_dir(pid, "memory")
    assert d == mount_of("memory") / name if absolute else str(d).endswith(name)
    assert [read(pid, "memory", f) for f in ("memory.max", "memory.low")] == ["50593792"] * 2
    if swap:
        assert read(pid, "memory", "memory.swap.max") == "0"     # limit + 0 of swap
    stop_and_delete(rt)
    assert not d.exists()


def test_cpu_shares_quota_period_realtime_and_cpuset(rt, name):
    requires("cgroup:cpu", "cgroup:cpuset")
    cpus = f"0-{os.cpu_count() - 1}" if os.cpu_count() > 1 else "0"
    cpu = {"shares": 2048, "period": 500000, "quota": 200000, "cpus": cpus, "mems": "0"}
    rt_knobs = (mount_of("cpu") / "cpu.rt_runtime_us").exists()
    if rt_knobs:   # the suite sets them when the kernel has CONFIG_RT_GROUP_SCHED (v1 only)
        cpu.update(realtimePeriod=1000000, realtimeRuntime=950000)
    pid = created(rt, {"cpu": cpu}, f"/{name}")
    if v2("cpu"):
        assert [read(pid, "cpu", f"cpu.{f}") for f in ("weight", "max")] == \
            [str(shares_to_weight(2048)), "200000 500000"]
    else:
        assert [read(pid, "cpu", f"cpu.{f}") for f in ("shares", "cfs_quota_us", "cfs_period_us")] == \
            ["2048", "200000", "500000"]
    assert [read(pid, "cpuset", f"cpuset.{f}") for f in ("cpus", "mems")] == [cpus, "0"]
    if rt_knobs:
        assert [read(pid, "cpu", f"cpu.rt_{f}_us") for f in ("period", "runtime")] == \
            ["1000000", "950000"]
    stop_and_delete(rt)


@pytest.mark.parametrize("absolute", [True, False], ids=["absolute", "relative"])
def test_pids_limit_and_delete_removes_the_group(rt, name, absolute):
    requires("cgroup:pids")
    pid = created(rt, {"pids": {"limit": 1000}}, f"/{name}" if absolute else name)
    d = group_dir(pid, "pids")
    assert read(pid, "pids", "pids.max") == "1000"
    stop_and_delete(rt)
    assert not d.exists()                    # delete_resources
    assert not cgroup_dirs(name)


def test_device_rules_are_in_the_devices_list(rt, name):
    requires("cgroup:devices")
    if "devices" not in detect().available():
        pytest.skip("cgroup2 has no devices.list (the rules are an eBPF program): "
                    "tests/security/test_devices.py checks that fence by what opens")
    rules = [{"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
             {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"}]
    pid = created(rt, {"devices": [{"allow": False, "access": "rwm"}, *rules]}, f"/{name}")
    listed = read(pid, "devices", "devices.list").splitlines()
    assert "c 10:229 rw" in listed and "b 8:0 r" in listed
    assert "a *:* rwm" not in listed
    stop_and_delete(rt)


def test_blkio_throttles_on_a_real_disk(rt, name):
    requires("cgroup:blkio")
    disk = next((d for d in sorted(Path("/sys/block").iterdir())
                 if not d.name.startswith(("loop", "ram", "zram"))), None)
    if disk is None:
        pytest.skip("no block device to throttle")
    major, minor = (disk / "dev").read_text().strip().split(":")
    dev = {"major": int(major), "minor": int(minor)}
    blkio = {"throttleReadBpsDevice": [dict(dev, rate=102400)],
             "throttleWriteBpsDevice": [dict(dev, rate=204800)],
             "throttleReadIOPSDevice": [dict(dev, rate=300)],
             "throttleWriteIOPSDevice": [dict(dev, rate=400)]}
    pid = created(rt, {"blockIO": blkio}, f"/{name}")
    got = [read(pid, "blkio", f"blkio.throttle.{f}_device")
           for f in ("read_bps", "write_bps", "read_iops", "write_iops")]
    assert got == [f"{major}:{minor} {r}" for r in (102400, 204800, 300, 400)]
    stop_and_delete(rt)


def test_a_device_the_kernel_lacks_fails_create_naming_the_file(rt, name):
    """The suite's blkio cases assume a /dev/sda (8:0); where there is none, create fails, as
    runc's does, with the file and the errno — and leaves no group behind."""
    requires("cgroup:blkio")
    if Path("/sys/dev/block/8:0").exists():
        pytest.skip("this machine has a block device 8:0")
    config = suite_config(["true"])
    config["linux"]["cgroupsPath"] = f"/{name}"
    config["linux"]["resources"]["blockIO"] = {
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 102400}]}
    rt.configure(config)
    proc = rt.create()
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"minirun-oci: cgroup: write '8:0 102400' to /sys/fs/cgroup/"
                                   f"blkio/{name}/blkio.throttle.read_bps_device: No such device")
    assert not cgroup_dirs(name) and rt.state() is None


def test_delete_leaves_a_group_it_did_not_make(rt, name):
    """delete_only_create_resources: the suite moves the container into a group of its own
    making; delete must not remove that group."""
    requires("cgroup:pids")
    theirs = mount_of("pids") / name
    theirs.mkdir()
    try:
        rt.configure(suite_config(["true"]))
        assert rt.create().returncode == 0
        (theirs / "cgroup.procs").write_text(str(rt.state()["pid"]))
        assert rt.start().returncode == 0
        assert rt.wait_status("stopped")["status"] == "stopped"
        assert rt.delete().returncode == 0
        assert theirs.is_dir()
    finally:
        theirs.rmdir()


def test_a_field_the_controller_lacks_is_refused_by_name(rt, name):
    config = suite_config(["true"])
    config["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 1 << 21}]
    rt.configure(config)
    proc = rt.create()
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("minirun-oci: linux/resources/hugepageLimits: not supported "
                                   "by minirun-oci (refused, not ignored)")


# linux.resources as dockerd 20.10 writes them for `docker run` with no limits (captured on
# this machine; moby daemon/oci_linux.go WithResources: the blkio weight is always a pointer to
# HostConfig's, 0 unless --blkio-weight; getCPUResources sets shares whenever they are >= 0;
# adaptContainerSettings makes OomKillDisable false), plus weight-device zeros. runc 1.1 reads
# 0 and false as "unset" (fs/blkio.go, fs/cpu.go: `!= 0`; fs/memory.go: `if r.OomKillDisable`).
DOCKERD_DEFAULTS = {"memory": {"disableOOMKiller": False}, "cpu": {"shares": 0},
                    "blockIO": {"weight": 0, "leafWeight": 0,
                                "weightDevice": [{"major": 1, "minor": 0, "weight": 0, "leafWeight": 0}]}}


def test_dockerds_zero_weight_and_shares_are_unset(rt, name):
    """The weight 0 dockerd passes is "unset": create does not write it (where no proportional
    I/O scheduler is loaded, as here, writing it failed create with `blkio weight needs a
    proportional I/O scheduler`, and `docker run --runtime minirun` with it), and cpu.shares
    stays the kernel's 1024 (a 0 written there is taken as 2, the least CPU there is)."""
    requires("cgroup:blkio", "cgroup:cpu")
    pid = created(rt, DOCKERD_DEFAULTS, f"/{name}")
    assert read(pid, "cpu", "cpu.shares") == "1024"
    for f in ("blkio.weight", "blkio.bfq.weight"):
        if (group_dir(pid, "blkio") / f).exists():      # a proportional scheduler: its default
            assert read(pid, "blkio", f) == (group_dir(pid, "blkio").parent / f).read_text().strip()
    stop_and_delete(rt)
    assert not cgroup_dirs(name)


def test_a_weight_the_kernel_cannot_apply_fails_create_as_runcs_does(rt, name):
    """A real weight (500) on a host whose disks have no proportional I/O scheduler (none,
    mq-deadline, kyber: no blkio.weight nor blkio.bfq.weight): runc 1.1.5 fails create here
    (`openat2 .../blkio.bfq.weight: no such file or directory`); so do we, in one line that
    says what to load, and leave nothing behind."""
    requires("cgroup:blkio")
    if any((mount_of("blkio") / f).exists() for f in ("blkio.weight", "blkio.bfq.weight")):
        pytest.skip("this machine has a proportional I/O scheduler (bfq or cfq)")
    config = suite_config(["true"])
    config["linux"]["cgroupsPath"] = f"/{name}"
    config["linux"]["resources"]["blockIO"] = {"weight": 500}
    rt.configure(config)
    proc = rt.create()
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"minirun-oci: cgroup: blkio weight needs a proportional I/O scheduler (no blkio.weight "
        f"or blkio.bfq.weight in /sys/fs/cgroup/blkio/{name}; load bfq)")
    assert not cgroup_dirs(name) and rt.state() is None


def test_kernel_tcp_without_v1_memory_warns_and_runs(rt, name, tmp_path):
    """linux.resources.memory.kernelTCP where the memory controller is not v1 (cgroup v2 has no
    such limit): runc warns and runs; minirun-oci says it on stderr and in --log, and runs.
    On a hybrid host its v1 memory hierarchy is unmounted in a mount namespace of the test's own, so
    minirun-oci there sees memory as a cgroup2-only host's (the host's mounts are untouched)."""
    requires("cgroup:memory")
    if subprocess.run(["unshare", "--version"], capture_output=True).returncode != 0:
        pytest.skip("unshare(1) is not installed")
    config = suite_config(["true"])
    config["linux"]["cgroupsPath"] = f"/{name}"
    config["linux"]["resources"]["memory"] = {"kernelTCP": 50593792}
    rt.configure(config)
    log = tmp_path / "oci.log"
    command = [rt.command, "--root", str(rt.root), "--log", str(log), "run", "--bundle",
               str(rt.bundle), rt.id]
    if not v2("memory"):        # a hybrid host: hide its v1 memory hierarchy, in our namespace only
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   f'umount {mount_of("memory")} && exec "$@"', "sh", *command]
    proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=slow(60))
    warning = ("linux.resources.memory.kernelTCP is ignored: cgroup v2 has no such limit "
               "(kernel memory counts in the memory limit)")
    assert (proc.returncode, proc.stderr) == (0, f"minirun-oci: warning: {warning}\n")
    assert f'level=warning msg="{warning}"' in log.read_text()
    assert not cgroup_dirs(name) and rt.state() is None


def test_dockerds_defaults_ask_nothing_of_cgroup2():
    """The same resources on a cgroup2-only manager (this host's cgroup2 mount, the v1
    hierarchies left out): nothing in them needs a v1 controller. disableOOMKiller false, a
    v1-only setting, refused them there: `memory_disable_oom_killer needs the v1 memory
    controller`."""
    from minirun.runtime.cgroups import CgroupManager, Resources, detect
    from minirun.runtime.cgroups._mounts import Mounts

    unified = detect().hierarchies().get("unified")
    if unified is None:
        pytest.skip("no cgroup2 mount on this machine")
    resources = Resources.from_oci(DOCKERD_DEFAULTS)
    assert resources.set_fields() == []
    CgroupManager(Mounts(unified=unified)).planned("minirun-oci/dockerd", resources)
