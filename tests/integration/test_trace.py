"""`minirun trace run`: the start-up waterfall of a real container, checked against the clock."""

from __future__ import annotations

import json
import re
import time

import pytest

pytestmark = pytest.mark.root

NATIVE_IN_ORDER = ["clone", "join cgroup", "wait for parent", "mount rootfs", "mount", "pivot_root",
                   "capset", "load seccomp filter", "exec"]
# --network none: the parent has nothing to do before the execve, so the child does not wait for
# GO at all (sync point 3', c_ext/sync.h)
NO_GO = [n for n in NATIVE_IN_ORDER if n != "wait for parent"]
PYTHON_PHASES = ["interpreter start", "image lookup", "spec build", "cgroup create", "plan build",
                 "mr_spawn", "wait for the child", "remove"]


def test_waterfall_lists_the_native_steps_in_order_and_the_python_phases(clean):
    out = clean.out("trace", "run", "busybox", "true")
    rows = [re.match(r"\s*[\d.]+\s+[\d.]+\s+(python|native)\s+(.+?)(\s{2}|$)", line)
            for line in out.splitlines()]
    names = [row[2] for row in rows if row]
    native = [n for n in names if n in NATIVE_IN_ORDER]
    assert native == NATIVE_IN_ORDER, out
    for phase in PYTHON_PHASES:
        assert phase in names, f"{phase} missing from\n{out}"
    assert out.splitlines()[-1].split()[1] == "total"


def test_the_child_waits_for_go_only_when_the_parent_has_work_for_it(clean):
    """A bridge network is moved into the child's namespace between clone and GO: the child
    waits for it. With --network none there is nothing to wait for, and no wait."""
    def native(*args):
        out = clean.out("trace", "run", *args, "busybox", "true")
        return [n for s, n in _rows(out) if s == "native" and n in NATIVE_IN_ORDER]

    assert native() == NATIVE_IN_ORDER
    assert native("--network", "none") == NO_GO


def test_json_spans_are_ordered_non_overlapping_and_add_up_to_the_wall_clock(clean):
    t = time.monotonic_ns()
    proc = clean("trace", "run", "--format", "json", "busybox", "true")
    wall = time.monotonic_ns() - t
    data = json.loads(proc.stdout)
    spans = data["spans"]
    assert all(s["end_ns"] >= s["start_ns"] and s["duration_ms"] >= 0 for s in spans)
    _check_spans(data, wall)


def test_the_containers_own_output_comes_first_and_the_exit_status_is_kept(clean):
    proc = clean("trace", "run", "busybox", "sh", "-c", "echo hello; exit 3", check=False)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "hello"
    assert "exec" in proc.stdout and "total" in lines[-1]


def test_run_flags_work_and_keep_keeps_the_container(clean):
    out = clean.out("trace", "run", "--keep", "--name", "traced", "-e", "X=42", "busybox",
                    "sh", "-c", "echo $X")
    assert out.splitlines()[0] == "42"
    assert clean.out("ps", "-a", "--format", "json").count('"traced"') == 1
    clean("rm", "traced")


def test_detach_is_refused(clean):
    proc = clean("trace", "run", "-d", "busybox", "true", check=False)
    assert proc.returncode == 125 and "drop -d" in proc.stderr


def _rows(out: str) -> list[tuple[str, str]]:
    """(source, name) of each waterfall row."""
    rows = [re.match(r"\s*[\d.]+\s+[\d.]+\s+(python|native)\s+(.+?)(\s{2}|$)", line)
            for line in out.splitlines()]
    return [(r[1], r[2]) for r in rows if r]


def _check_spans(data: dict, wall_ns: int) -> None:
    spans = data["spans"]
    for source in ("python", "native"):
        mine = [s for s in spans if s["source"] == source]
        assert mine, source
        assert all(a["end_ns"] <= b["start_ns"] for a, b in zip(mine, mine[1:], strict=False)), source
    total = data["total_ms"] * 1e6
    assert abs(total - wall_ns) <= 0.2 * wall_ns, (total / 1e6, wall_ns / 1e6)


EXEC_NATIVE = ["fork", "join cgroup", "setns", "clone", "set up stdio", "capset", "load seccomp filter",
               "exec"]
EXEC_PHASES = ["interpreter start", "container lookup", "cgroup open", "plan build", "mr_enter",
               "wait for the child", "command runs (until exit)"]


def test_trace_exec_draws_setns_and_the_steps_of_the_new_process_and_keeps_the_status(clean):
    with clean.detached("--network", "none", "busybox", "sleep", "60") as cid:
        proc = clean("trace", "exec", cid, "sh", "-c", "echo inside; exit 4", check=False)
        assert proc.returncode == 4, proc.stderr
        assert proc.stdout.splitlines()[0] == "inside"
        rows = _rows(proc.stdout)
        assert [n for s, n in rows if s == "native"] == EXEC_NATIVE, proc.stdout
        names = [n for _, n in rows]
        for phase in EXEC_PHASES:
            assert phase in names, f"{phase} missing from\n{proc.stdout}"
        # the process really ran inside: the exec after the trace sees the same pid namespace
        assert clean.out("exec", cid, "cat", "/proc/1/cmdline").startswith("sleep")


def test_trace_exec_json_adds_up_to_the_wall_clock(clean):
    with clean.detached("--network", "none", "busybox", "sleep", "60") as cid:
        t = time.monotonic_ns()
        proc = clean("trace", "exec", "--format", "json", cid, "true")
        wall = time.monotonic_ns() - t
        _check_spans(json.loads(proc.stdout), wall)


def test_trace_exec_of_a_stopped_container_is_one_line_and_no_waterfall(clean):
    cid = clean.out("create", "--network", "none", "busybox", "true")
    try:
        proc = clean("trace", "exec", cid, "true", check=False)
        assert proc.returncode == 125 and proc.stdout == ""
        assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    finally:
        clean("rm", cid)


def test_trace_start_draws_the_start_of_a_created_container_which_keeps_running(clean):
    cid = clean.out("create", "--network", "none", "busybox", "sleep", "60")
    try:
        t = time.monotonic_ns()
        out = clean.out("trace", "start", "--format", "json", cid)
        wall = time.monotonic_ns() - t
        first, doc = out.split("\n", 1)
        assert first == cid                               # what `start` prints, then the trace
        data = json.loads(doc)
        _check_spans(data, wall)
        native = [s["name"] for s in data["spans"] if s["source"] == "native"]
        assert [n for n in native if n in NO_GO] == NO_GO, native
        assert '"Running": true' in clean.out("inspect", cid)
        proc = clean("trace", "start", cid, check=False)
        assert proc.returncode == 125 and "running" in proc.stderr and "total" not in proc.stdout
        clean("stop", "-t", "0", cid)
        out = clean.out("trace", "start", cid)            # a stopped container starts again
        assert [n for s, n in _rows(out) if s == "native" and n in NO_GO] == NO_GO
        assert out.splitlines()[-1].split()[1] == "total"
    finally:
        clean("rm", "-f", cid)


def test_svg_output_is_a_drawing_of_every_span(clean, tmp_path):
    import xml.etree.ElementTree as ET

    svg = tmp_path / "startup.svg"
    out = clean.out("trace", "run", "--network", "none", "-o", str(svg), "busybox", "true")
    assert f"drawn: {svg}" in out
    root = ET.parse(svg).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    titles = [t.text for t in root.iter(f"{ns}title")]
    rows = _rows(out)
    assert len(titles) == len(rows)
    for (_, name), title in zip(rows, titles, strict=True):
        assert title.startswith(f"{name}: "), (name, title)
    assert "total" in "".join(t.text or "" for t in root.iter(f"{ns}text"))


def test_png_output_is_a_png_when_matplotlib_is_there(clean, tmp_path):
    pytest.importorskip("matplotlib", reason="the bench extra (matplotlib) is not installed")
    png = tmp_path / "startup.png"
    with clean.detached("--network", "none", "busybox", "sleep", "60") as cid:
        clean("trace", "exec", "--output", str(png), cid, "true")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_png_without_matplotlib_says_how_to_get_it_and_runs_nothing(clean, tmp_path, data_root):
    import subprocess
    import sys

    code = ("import sys; sys.modules['matplotlib'] = None; from minirun.cli.main import main; "
            "sys.argv = ['minirun'] + sys.argv[1:]; main()")
    png = tmp_path / "x.png"
    proc = subprocess.run([sys.executable, "-c", code, "--root", str(data_root), "trace", "run",
                           "--name", "never", "-o", str(png), "busybox", "true"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125, proc.stderr
    assert "matplotlib" in proc.stderr and ".svg" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not png.exists() and "never" not in clean.out("ps", "-a")


@pytest.mark.parametrize("bad", ["trace.txt", "/nonexistent/dir/t.svg"])
def test_bad_output_names_are_refused_before_anything_runs(clean, bad):
    proc = clean("trace", "run", "--name", "never", "-o", bad, "busybox", "true", check=False)
    assert proc.returncode == 125 and bad in proc.stderr and proc.stdout == ""
    assert "never" not in clean.out("ps", "-a")


def test_detail_times_each_mount_of_the_list_in_the_plans_order(clean, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    out = clean.out("trace", "run", "--network", "none", "--format", "json", "--tmpfs", "/scratch",
                    "-v", f"{vol}:/data", "busybox", "true")
    mount = next(s for s in json.loads(out)["spans"] if s["name"] == "mount")
    parts = mount["parts"]
    names = [p["name"] for p in parts]
    assert names[0] == "mount proc on /proc", names
    assert "mount tmpfs on /scratch" in names and f"mount {vol} on /data" in names
    assert "mknod /dev/null" in names and "symlink /dev/fd -> /proc/self/fd" in names
    # the parts tile the step: each starts where the previous ended, inside the step's span
    assert parts[0]["start_ns"] == mount["start_ns"] and parts[-1]["end_ns"] <= mount["end_ns"]
    assert all(a["end_ns"] == b["start_ns"] for a, b in zip(parts, parts[1:], strict=False))
    # and the table shows them under "mount" only with --detail
    plain = clean.out("trace", "run", "--network", "none", "busybox", "true")
    detail = clean.out("trace", "run", "--network", "none", "--detail", "busybox", "true")
    assert "mount proc on /proc" not in plain
    rows = [n for s, n in _rows(detail) if s == "native"]
    i = rows.index("mount")
    assert rows[i + 1] == "mount proc on /proc" and rows[-1] == "exec", rows


def test_exec_detail_has_one_setns_per_namespace_mount_last(clean):
    with clean.detached("--network", "none", "busybox", "sleep", "60") as cid:
        data = json.loads(clean.out("trace", "exec", "--format", "json", cid, "true"))
    setns = next(s for s in data["spans"] if s["name"] == "setns")
    assert [p["name"] for p in setns["parts"]] == \
        ["setns ipc", "setns uts", "setns net", "setns pid", "setns cgroup", "setns mnt"]


def test_the_seccomp_filter_is_a_step_of_its_own_when_there_is_one(clean):
    def native(*flags: str) -> list[str]:
        data = json.loads(clean.out("trace", "run", "--network", "none", "--format", "json", *flags,
                                    "busybox", "true"))
        return [s["name"] for s in data["spans"] if s["source"] == "native"]

    assert native()[-3:] == ["capset", "load seccomp filter", "exec"]
    assert "load seccomp filter" not in native("--security-opt", "seccomp=unconfined")
    # without no_new_privs the filter is loaded with the credentials, inside "capset"
    assert "load seccomp filter" not in native("--security-opt", "no-new-privileges=false")
