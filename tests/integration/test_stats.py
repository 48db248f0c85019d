"""`minirun stats`: the figures a user watches come from the container's own cgroup and netns."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import requires

pytestmark = pytest.mark.root


def readings(mr, *args: str) -> dict[str, dict]:
    lines = mr.out("stats", "--no-stream", "--format", "json", *args).splitlines()
    return {r["name"]: r for r in map(json.loads, lines)}


def test_cpu_quota_shows_as_cpu_percent(clean):
    requires("cgroup:cpu", "cgroup:cpuacct")
    with clean.detached("--name", "spin", "--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done"):
        cpu = readings(clean, "spin")["spin"]["cpu_percent"]
        assert 25 <= cpu <= 65, f"a loop held to half a CPU showed {cpu}%"


def test_memory_usage_limit_and_pids(clean):
    requires("cgroup:memory", "cgroup:pids")
    # 8 MiB in a shell variable, then three sleeping processes in all
    script = "x=$(head -c 8388608 /dev/zero | tr '\\0' a); sleep 60 & sleep 60 & wait"
    with clean.detached("--name", "mem", "-m", "64m", "busybox", "sh", "-c", script):
        for _ in range(50):
            r = readings(clean, "mem")["mem"]
            if r["pids"] == 3:
                break
        assert r["memory_limit"] == 64 << 20
        assert 8 << 20 <= r["memory_usage"] < 64 << 20
        assert r["memory_percent"] == pytest.approx(100 * r["memory_usage"] / (64 << 20), abs=0.01)
        assert r["pids"] == 3


def test_without_a_limit_the_host_memory_is_the_limit(clean):
    requires("cgroup:memory")
    with clean.detached("--name", "nolimit", "busybox", "sleep", "30"):
        total = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal:")).split()[1])
        assert readings(clean, "nolimit")["nolimit"]["memory_limit"] == total * 1024


def test_every_running_container_by_default_and_stopped_ones_with_all(clean):
    with clean.detached("--name", "up", "busybox", "sleep", "30"):
        clean("run", "--name", "down", "busybox", "true")
        try:
            assert set(readings(clean)) >= {"up"} and "down" not in readings(clean)
            stopped = readings(clean, "-a")["down"]
            assert stopped["cpu_percent"] is None and stopped["pids"] is None
        finally:
            clean("rm", "down")


def test_table_has_dockers_columns(clean):
    with clean.detached("--name", "tbl", "busybox", "sleep", "30"):
        header, row = clean.out("stats", "--no-stream", "tbl").splitlines()[:2]
        for column in ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                       "BLOCK I/O", "PIDS"):
            assert column in header
        assert row.split()[1] == "tbl"


def test_unknown_container_is_one_line_and_125(clean):
    r = clean("stats", "--no-stream", "nosuch", check=False)
    assert r.returncode == 125
    assert r.stdout == "" and r.stderr.strip().splitlines() == ["minirun: no such container: nosuch"]


def test_net_io_counts_the_containers_own_traffic(clean):
    # 5 pings of 1000 bytes to the bridge's gateway (the host): both directions carry > 5 kB
    script = ("ping -c 5 -s 1000 -i 0.2 $(ip route | awk '/default/ {print $3}') >/dev/null; "
              "echo done; sleep 60")
    with clean.detached("--name", "pinger", "busybox", "sh", "-c", script) as cid:
        clean.wait_for_log(cid, "done")
        r = readings(clean, "pinger")["pinger"]
        assert r["net_rx"] >= 5 * 1000 and r["net_tx"] >= 5 * 1000, r
    with clean.detached("--name", "quiet", "--network", "none", "busybox", "sleep", "60"):
        r = readings(clean, "quiet")["quiet"]
        assert (r["net_rx"], r["net_tx"]) == (0, 0)       # loopback only: nothing counted


def test_block_io_counts_what_the_container_writes_to_disk(clean, data_root):
    requires("cgroup:blkio")
    from minirun.runtime.cgroups import block_devices

    if not block_devices([data_root]):
        pytest.skip(f"the data root {data_root} is on no block device (tmpfs?): nothing to count")
    script = "dd if=/dev/zero of=/f bs=1M count=8 oflag=direct 2>/dev/null; echo done; sleep 60"
    with clean.detached("--name", "writer", "--network", "none", "busybox", "sh", "-c", script) as cid:
        clean.wait_for_log(cid, "done")
        r = readings(clean, "writer")["writer"]
        assert r["block_write"] >= 8 << 20, r


def test_live_refresh_on_a_terminal_redraws_until_ctrl_c(clean):
    import os
    import pty
    import select
    import signal

    from tests.conftest import MINIRUN

    with clean.detached("--name", "watched", "--network", "none", "busybox", "sleep", "60"):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(MINIRUN[0], [*MINIRUN, "--root", str(clean.root), "stats", "--interval", "0.3",
                                  "watched"])
        out = b""
        deadline = time.monotonic() + 15
        while out.count(b"watched") < 3 and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        os.kill(pid, signal.SIGINT)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        text = out.decode(errors="replace")
        assert text.count("\x1b[H\x1b[2J") >= 3, text      # redrawn in place, again and again
        assert text.count("watched") >= 3 and "NET I/O" in text
        assert os.waitstatus_to_exitcode(status) == 0
