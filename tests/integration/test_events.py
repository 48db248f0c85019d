"""`minirun events`: what a user watching `docker events` relies on, checked through the CLI.

The tests share one data root (and so one event log): each names its containers uniquely and
filters by name, or reads only what happened since it began.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import MINIRUN, requires

pytestmark = pytest.mark.root


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def history(mr, *args: str) -> list[dict]:
    """Every stored event matching the flags, up to now."""
    out = mr.out("events", "--until", str(time.time()), "--format", "json", *args)
    return [json.loads(line) for line in out.splitlines()]


def actions(events: list[dict]) -> list[str]:
    return [e["Action"] for e in events]


@pytest.mark.parametrize("network", [[], ["--network", "none"]])
def test_a_container_that_exits_3_shows_create_start_die_destroy(clean, network):
    # --network none: the container runs before mr_spawn returns (c_ext/spawn.c, share_memory),
    # so "start" is logged before the clone; still before the monitor's "die"
    name = unique("exit3")
    r = clean("run", "--rm", "--name", name, *network, "busybox", "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3
    evs = history(clean, "--since", "1h", "--filter", f"container={name}")
    assert actions(evs) == ["create", "start", "die", "destroy"]
    die = evs[2]
    assert die["Type"] == "container" and die["Actor"]["Attributes"] == {
        "exitCode": "3", "image": "busybox", "name": name}
    assert len({e["Actor"]["ID"] for e in evs}) == 1 and len(evs[0]["Actor"]["ID"]) == 64
    stamps = [e["timeNano"] for e in evs]
    assert stamps == sorted(stamps) and all(e["time"] == e["timeNano"] // 10**9 for e in evs)


def test_an_oom_killed_container_shows_oom_then_die_137(clean):
    requires("cgroup:memory")
    name = unique("hog")
    hog = "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while :; do x=$x$x; done"
    r = clean("run", "--rm", "--name", name, "-m", "32m", "busybox", "sh", "-c", hog, check=False)
    assert r.returncode == 137
    evs = history(clean, "--since", "1h", "--filter", f"container={name}")
    assert actions(evs) == ["create", "start", "oom", "die", "destroy"]
    assert evs[3]["Actor"]["Attributes"]["exitCode"] == "137"


class Lines:
    """A follower's output, line by line, with a timeout (no buffered readline: select must see
    exactly what has not been read yet)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.buf = proc, b""

    def next(self, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0, deadline - time.monotonic()))
            assert ready, "minirun events printed nothing in time"
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            assert chunk, f"minirun events ended: {self.proc.stderr.read()}"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def test_follow_mode_receives_what_happens_after_it_started(clean):
    name = unique("follow")
    with clean.detached("--name", name, "busybox", "sleep", "60"):
        proc = subprocess.Popen(
            [*MINIRUN, "--root", str(clean.root), "events", "--since", "1h", "--format", "json",
             "--filter", f"container={name}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = Lines(proc)
        try:
            # history first: the follower is running and has read the log to its end
            assert [lines.next()["Action"] for _ in range(2)] == ["create", "start"]
            clean("kill", name)
            kill, die = lines.next(), lines.next()
            assert (kill["Action"], kill["Actor"]["Attributes"]["signal"]) == ("kill", "9")
            assert (die["Action"], die["Actor"]["Attributes"]["exitCode"]) == ("die", "137")
        finally:
            proc.terminate()                  # Ctrl-C's cousin: the command ends cleanly
            proc.communicate(timeout=10)


def test_ctrl_c_ends_follow_mode_with_status_0(clean):
    proc = subprocess.Popen([*MINIRUN, "--root", str(clean.root), "events"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)                           # long enough to be following
    proc.send_signal(2)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err


def test_filters_by_type_event_container_and_image(clean):
    a, b = unique("fa"), unique("fb")
    t0 = str(time.time())
    clean("run", "--rm", "--name", a, "busybox", "true")
    clean("run", "--rm", "--name", b, "busybox", "sh", "-c", "exit 1", check=False)
    clean("image", "tag", "busybox", f"{a}:v1")
    clean("image", "rm", f"{a}:v1")
    only_b = history(clean, "--since", t0, "--filter", f"container={b}")
    assert {e["Actor"]["Attributes"]["name"] for e in only_b} == {b}
    dies = history(clean, "--since", t0, "--filter", "event=die")
    assert [e["Actor"]["Attributes"]["name"] for e in dies] == [a, b]
    # the same key twice: either; different keys: both
    dies_b = history(clean, "--since", t0, "--filter", "event=die", "--filter", f"container={b}")
    assert actions(dies_b) == ["die"]
    both = history(clean, "--since", t0, "--filter", f"container={a}", "--filter", f"container={b}")
    assert len(both) == 8
    images = history(clean, "--since", t0, "--filter", "type=image")
    assert [(e["Action"], e["Actor"]["Attributes"].get("name")) for e in images] == [
        ("tag", f"{a}:v1"), ("untag", f"{a}:v1")]
    by_image = history(clean, "--since", t0, "--filter", "image=busybox", "--filter", "event=start")
    assert [e["Actor"]["Attributes"]["name"] for e in by_image] == [a, b]


def test_since_and_until_select_a_window(clean):
    first, second = unique("w1"), unique("w2")
    clean("run", "--rm", "--name", first, "busybox", "true")
    time.sleep(0.05)
    middle = time.time()
    time.sleep(0.05)
    clean("run", "--rm", "--name", second, "busybox", "true")
    before = history(clean, "--since", "1h", "--until", str(middle), "--filter", "type=container")
    after = history(clean, "--since", str(middle), "--filter", "type=container")
    names = lambda evs: {e["Actor"]["Attributes"]["name"] for e in evs}  # noqa: E731
    assert first in names(before) and second not in names(before)
    assert names(after) == {second}
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle - 3600)) + "Z"
    assert len(history(clean, "--since", iso, "--filter", f"container={second}")) == 4


def test_bad_flags_are_one_line_with_status_125(clean):
    for args, words in [(["--filter", "colour=red"], "--filter colour=red"),
                        (["--filter", "type=volume"], "type is one of"),
                        (["--since", "yesterday"], "'yesterday': not a time"),
                        (["--since", "10", "--until", "5"], "before --since"),
                        (["--format", "xml"], "--format xml")]:
        r = clean("events", *args, check=False, timeout=10)
        assert r.returncode == 125 and words in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_stop_and_exec_are_recorded(clean):
    name = unique("stop")
    # PID 1 ignores a signal it has no handler for: this one handles SIGTERM
    script = "trap 'exit 143' TERM; sleep 60 & wait"
    with clean.detached("--name", name, "busybox", "sh", "-c", script):
        clean("exec", name, "true")
        clean("stop", "-t", "5", name)
    evs = history(clean, "--since", "1h", "--filter", f"container={name}")
    assert actions(evs) == ["create", "start", "exec_start: true", "kill", "die", "stop", "destroy"]
    assert evs[3]["Actor"]["Attributes"]["signal"] == "15"
    assert evs[4]["Actor"]["Attributes"]["exitCode"] == "143"
    assert actions(history(clean, "--since", "1h", "--filter", f"container={name}",
                           "--filter", "event=exec_start")) == ["exec_start: true"]


def test_concurrent_writers_never_interleave_lines(clean):
    names = [unique(f"par{i}") for i in range(8)]
    script = "echo $(head -c 3000 /dev/zero | tr '\\0' x) >/dev/null"
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda n: clean("run", "--rm", "--name", n, "busybox", "sh", "-c", script,
                                              check=False).returncode, names))
    assert codes == [0] * 8
    log = clean.root / "events" / "events.jsonl"
    raw = log.read_bytes()
    assert raw.endswith(b"\n")
    parsed = [json.loads(line) for line in raw.splitlines()]    # every line is whole JSON
    for n in names:
        mine = [e["Action"] for e in parsed if e["Actor"]["Attributes"].get("name") == n]
        assert mine == ["create", "start", "die", "destroy"], (n, mine)


def test_detached_rm_leaves_die_then_destroy_written_by_the_monitor_and_the_rm(clean):
    name = unique("drm")
    clean("run", "-d", "--rm", "--name", name, "busybox", "sh", "-c", "exit 5")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        evs = history(clean, "--since", "1h", "--filter", f"container={name}")
        if actions(evs)[-1:] == ["destroy"]:
            break
        time.sleep(0.1)
    assert actions(evs) == ["create", "start", "die", "destroy"]
    assert evs[2]["Actor"]["Attributes"]["exitCode"] == "5"
    assert os.stat(clean.root / "events" / "events.jsonl").st_mode & 0o777 == 0o644


def test_network_create_connect_disconnect_destroy(clean):
    n1, n2, name = unique("en1"), unique("en2"), unique("netc")
    t0 = str(time.time())
    clean("network", "create", n1)
    clean("network", "create", n2)
    try:
        with clean.detached("--name", name, "--network", n1, "busybox", "sleep", "60") as cid:
            clean("network", "connect", n2, name)
            clean("network", "disconnect", n2, name)
        clean("network", "rm", n1, n2)
    finally:
        clean("network", "rm", n1, n2, check=False)
    evs = history(clean, "--since", t0, "--filter", "type=network")
    seen = [(e["Action"], e["Actor"]["Attributes"]["name"], e["Actor"]["Attributes"].get("container"))
            for e in evs]
    assert seen == [("create", n1, None), ("create", n2, None), ("connect", n1, cid),
                    ("connect", n2, cid), ("disconnect", n2, cid), ("disconnect", n1, cid),
                    ("destroy", n1, None), ("destroy", n2, None)]
    assert len({e["Actor"]["ID"] for e in evs}) == 2           # each network keeps its id
    # --filter network=NAME and container=ID select the same story from both sides
    assert actions(history(clean, "--since", t0, "--filter", f"network={n2}")) == \
        ["create", "connect", "disconnect", "destroy"]
    mine = history(clean, "--since", t0, "--filter", f"container={cid}")
    assert [(e["Type"], e["Action"]) for e in mine] == [
        ("container", "create"), ("network", "connect"), ("container", "start"),
        ("network", "connect"), ("network", "disconnect"), ("container", "kill"),
        ("container", "die"), ("network", "disconnect"), ("container", "destroy")]


def test_image_import_is_recorded_with_the_images_id_and_name(clean):
    from tests.conftest import IMAGE_TAR

    name = unique("imp")
    t0 = str(time.time())
    clean("image", "import", str(IMAGE_TAR), name)
    try:
        image_id = json.loads(clean.out("image", "inspect", name))[0]["Id"]
    finally:
        clean("image", "rm", name)
    evs = history(clean, "--since", t0, "--filter", f"image={name}")
    assert [(e["Type"], e["Action"]) for e in evs][0] == ("image", "import")
    assert evs[0]["Actor"]["ID"].removeprefix("sha256:") == image_id.removeprefix("sha256:")
    assert evs[0]["Actor"]["Attributes"]["name"].startswith(name)
