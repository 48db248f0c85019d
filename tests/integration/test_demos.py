"""The demos (`make demo`, `make demo-namespaces`, `demo-cgroups`, `demo-trace`, `demo-images`,
`demo-network`, `demo-scheduler`, `demo-failure`) run as a user would run them, succeed, show what they promise, and leave nothing
on the host: their data root is gone (they make it under TMPDIR, which the test points at an
empty directory), nothing is mounted under it, no monitor of theirs runs. docs/demos/lib.sh also
checks the cgroups, veths, bridges, nft table and netd of what a demo made, and fails the demo if
one is left; the two "leaves ... behind" tests show that check bites.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, requires

pytestmark = pytest.mark.root


def run_demo(script: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    requires("root", "overlay", "busybox-image")
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "TMPDIR": str(tmp_path), "LC_ALL": "C.UTF-8", "COLUMNS": "100", "DEMO_NO_PAUSE": "1"}
    return subprocess.run(["bash", str(REPO / "docs" / "demos" / script)], cwd="/", env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_nothing_left(proc: subprocess.CompletedProcess, tmp_path: Path) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"mounts: 0, (container )?cgroups: 0, containers: 0", proc.stdout), proc.stdout
    assert list(tmp_path.iterdir()) == [], "the demo's data root is still there"
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
    monitors = subprocess.run(["pgrep", "-f", f"minirun-monitor.*{tmp_path}"], capture_output=True)
    assert monitors.stdout == b""


def test_main_demo(tmp_path):
    proc = run_demo("main.sh", tmp_path)
    assert_nothing_left(proc, tmp_path)
    assert "pid=1 hostname=demo" in proc.stdout
    assert "exit status: 137" in proc.stdout and '"OOMKilled": true' in proc.stdout


def test_namespaces_demo_shows_the_containers_view_and_the_clone_flags(tmp_path):
    proc = run_demo("namespaces.sh", tmp_path)
    assert_nothing_left(proc, tmp_path)
    out = proc.stdout
    assert re.search(r"pid=1 hostname=demo processes=\d interfaces=1 cgroup=/\n", out), out
    assert "flags=CLONE_VM|CLONE_VFORK|CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET|SIGCHLD" in out
    assert "unshare(CLONE_NEWCGROUP)" in out
    for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup"):
        assert re.search(rf"^{ns} .* own$", out, re.M), ns
    assert re.search(r"^user .* shared$", out, re.M)
    assert "sethostname: Operation not permitted" in proc.stderr
    assert "$ minirun exec demo hostname\nrenamed-from-the-host\n" in out


def test_cgroups_demo_contains_the_hog_and_the_bomb_and_holds_the_quota(tmp_path):
    proc = run_demo("cgroups.sh", tmp_path)
    assert_nothing_left(proc, tmp_path)
    out = proc.stdout
    assert "exit status: 137" in out and '"OOMKilled": true' in out
    assert re.search(r"oom_kill [1-9]", out)
    current, limit, refused = map(int, re.search(
        r"pids.current (\d+) of pids.max (\d+); forks refused \(pids.events\): (\d+)", out).groups())
    assert limit == 64 and current <= 64 and refused > 0
    quarter, half = map(int, re.findall(r"CPU time used: (\d+) ms per second", out))
    assert quarter <= 300 and half <= 560, (quarter, half)
    if quarter >= 200:          # it got its quarter, so the machine was not starving it
        assert half > quarter, "the live update did not give it more CPU"


def test_trace_demo_draws_the_waterfall_and_the_table(tmp_path):
    proc = run_demo("trace.sh", tmp_path)
    assert_nothing_left(proc, tmp_path)
    out = proc.stdout
    assert "hello\nstart-up of busybox echo hello\n" in out
    table = out[out.index("source  row"):]
    for row in ("native  clone", "native  mount", "native  pivot_root", "native  exec",
                "python  cgroup create", "total"):
        assert re.search(rf"^ *{re.escape(row)} +.* [0-9.]+ +[0-9.]+$", table, re.M), row
    joined = out[out.index("exec in joined: true"):]
    for row in ("native  setns", "native    setns net", "native    setns mnt", "native  clone",
                "python  command runs (until exit)"):
        assert row in joined, row
    assert "pivot_root" not in joined[:joined.index("total")]


def test_a_demo_that_leaves_something_behind_fails_and_says_what(tmp_path):
    script = tmp_path / "leaky.sh"
    script.write_text(f"""set -euo pipefail
source {REPO}/docs/demos/lib.sh
mkdir "$ROOT/m" && mount -t tmpfs leak "$ROOT/m"
""")
    (tmp_path / "tmp").mkdir()
    try:
        proc = run_demo(str(script), tmp_path / "tmp")
        assert proc.returncode == 1
        assert "minirun demo: left behind on the host:\nmount " in proc.stderr
    finally:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if str(tmp_path) in line:
                subprocess.run(["umount", line.split()[4]], check=True)


def test_images_demo_shares_layers_shows_the_whiteout_and_round_trips_the_id(tmp_path):
    proc = run_demo("images.sh", tmp_path)
    assert_nothing_left(proc, tmp_path)
    out = proc.stdout
    assert out.count("hello from demo, layer by layer\n") == 2
    assert re.search(r"layer 3: sha256:[0-9a-f]{12}\.\.\.\nlayers in the store: 3\n", out)
    assert "--> Using cache" in out and "layers in the store: 4 " in out
    assert "ls: /bin/vi: No such file or directory\n$ minirun run --rm tools:1 ls /bin/vi\n/bin/vi\n" in out
    assert re.search(r"/diff/bin/vi: character special file 0:0\n", out)
    before, after = re.search(r"before: ([0-9a-f]{12})  after: ([0-9a-f]{12})", out).groups()
    assert before == after and "same id" in out


def test_network_demo_resolves_names_publishes_a_port_isolates_and_removes_it_all(tmp_path):
    proc = run_demo("network.sh", tmp_path)
    assert_nothing_left(proc, tmp_path)
    out = proc.stdout
    web_ip = re.search(r"^(10\.\d+\.\d+\.\d+)\tweb$", out, re.M)[1]
    # by name on the same network: ping and HTTP
    assert f"PING web ({web_ip})" in out and "1 packets received" in out
    hostport = re.search(r"^80/tcp -> (127\.0\.0\.1:\d+)$", out, re.M)[1]
    # from the host through the published port (the curl), and from client by name (the wget)
    assert out.count(f"hello from web ({web_ip})\n") == 2, out
    assert re.search(rf"^\$ curl http://{hostport}/\nhello from web", out, re.M), out
    assert re.search(rf"tcp dport {hostport.split(':')[1]} dnat to {web_ip}:80", out), out
    # another network: no name, and nothing gets through by address
    assert "ping: bad address 'web'\nexit status: 1" in out
    assert "0 packets received" in out and "nc: timed out\nexit status: 1" in out
    # seen from the host afterwards: no bridge, veth, nft table or netd of the demo's
    table = re.search(r"nft list chain ip (\S+) output", out)[1]
    bridges = re.findall(r"\s(mr-[0-9a-f]{12}|mrdemo[0-9a-f]{8})\n", out)
    veths = re.findall(r"^(mr[0-9a-f]{13})@", out, re.M)
    assert len(set(bridges)) == 3 and len(veths) == 2, out
    for name in bridges + veths:
        assert not Path(f"/sys/class/net/{name}").exists(), f"{name} is still there"
    assert subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode != 0
    assert subprocess.run(["pgrep", "-f", f"minirun.net.netd --root {tmp_path}"],
                          capture_output=True).stdout == b""


def test_a_demo_that_leaves_a_veth_behind_fails_and_names_it(tmp_path):
    fake = "0123456789ab" + "c" * 52           # a container id this demo "made"
    link = f"mr{fake[:12]}0"
    script = tmp_path / "leaky.sh"
    script.write_text(f"""set -euo pipefail
source {REPO}/docs/demos/lib.sh
echo {fake} >>"$SEEN"
ip link add {link} type veth peer name mrleakpeer
""")
    (tmp_path / "tmp").mkdir()
    try:
        proc = run_demo(str(script), tmp_path / "tmp")
        assert proc.returncode == 1
        assert f"minirun demo: left behind on the host:\nveth {link}\n" in proc.stderr
    finally:
        subprocess.run(["ip", "link", "del", link], capture_output=True)


def _workers_of(table: str) -> dict[str, int]:
    """{worker: tasks RUNNING} from a `task ls` table."""
    counts: dict[str, int] = {}
    for line in table.splitlines()[1:]:
        fields = line.split()
        if "RUNNING" in fields[:6]:
            worker = fields[fields.index("RUNNING") - 1]
            counts[worker] = counts.get(worker, 0) + 1
    return counts


def test_scheduler_demo_spreads_over_zones_binpacks_and_explains_a_pending_task(tmp_path):
    proc = run_demo("scheduler.sh", tmp_path, timeout=240)
    assert_nothing_left(proc, tmp_path)
    out = proc.stdout
    # spread(attribute:zone),spread(instanceId): 6 tasks, 3 per zone (w1, w2: a; w3, w4: b)
    status = out[out.index("== 2."):out.index("== 3.")]
    running = {m[1]: int(m[2]) for m in re.finditer(r"^(w\d)\s+ACTIVE\s+\d+\s+\S+\s+\S+\s+(\d+)", status, re.M)}
    assert running["w1"] + running["w2"] == 3 and running["w3"] + running["w4"] == 3, running
    assert max(running.values()) - min(running.values()) <= 1, running
    # binpack(memory): the 3 batch tasks all on one worker, the fullest
    batch = out[out.index("== 3."):out.index("== 4.")]
    ids = re.findall(r"^([0-9a-f]{12})$", batch, re.M)
    assert len(ids) == 3
    workers = {re.search(rf"^{i}\s+web:1\s+(w\d)", batch, re.M)[1] for i in ids}
    assert len(workers) == 1, workers
    assert "PENDING" in out and "distinctInstance: already runs a task of one-each" in out
    assert "web: 10 × web:2" in out and "cluster processes left: 0, containers left: 0" in out


def test_failure_demo_backs_off_replaces_and_recovers_from_kill_9(tmp_path):
    proc = run_demo("failure.sh", tmp_path, timeout=300)
    assert_nothing_left(proc, tmp_path)
    out = proc.stdout
    delays = [float(d) for d in re.findall(r"next start in ([0-9.]+) s \(failure \d in a row\)", out)]
    assert len(delays) >= 3 and delays[0] < delays[1] < delays[2], delays      # backing off
    assert "Task failed container health checks" in out and "web: 6 tasks running again" in out
    after = float(re.search(r"6 tasks running on w2 and w3, ([0-9.]+) s after the kill", out)[1])
    assert after <= 10, after
    assert "the same 6 tasks, none started twice" in out
    assert "cluster processes left: 0, containers left: 0" in out
