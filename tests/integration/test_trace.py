"""`minirun trace run`: the start-up waterfall of a real container, checked against the clock."""

from __future__ import annotations

import json
import re
import time

import pytest

pytestmark = pytest.mark.root

NATIVE_IN_ORDER = ["clone", "join cgroup", "wait for parent", "mount rootfs", "mount", "pivot_root",
                   "capset", "exec"]
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


def test_json_spans_are_ordered_non_overlapping_and_add_up_to_the_wall_clock(clean):
    t = time.monotonic_ns()
    proc = clean("trace", "run", "--format", "json", "busybox", "true")
    wall = time.monotonic_ns() - t
    data = json.loads(proc.stdout)
    spans = data["spans"]
    assert all(s["end_ns"] >= s["start_ns"] and s["duration_ms"] >= 0 for s in spans)
    for source in ("python", "native"):
        mine = [s for s in spans if s["source"] == source]
        assert mine, source
        assert all(a["end_ns"] <= b["start_ns"] for a, b in zip(mine, mine[1:], strict=False)), source
    total = data["total_ms"] * 1e6
    assert abs(total - wall) <= 0.2 * wall, (total / 1e6, wall / 1e6)


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
