"""The start-up waterfall's logic on synthetic stamps: merging Python phases with the child's
end-of-step stamps, the text drawing, the JSON, and the recorder itself."""

from __future__ import annotations

import json
import os
import time

from minirun.observe.trace import (
    GAP,
    NATIVE,
    PYTHON,
    Span,
    Tracer,
    merge,
    render,
    to_json,
    total_ns,
)

MS = 1_000_000
NAMES = ["none", "fork monitor", "clone", "join cgroup", "wait for parent", "mount rootfs", "exec"]


def name(i: int) -> str:
    return NAMES[i]


def stamps(**at_ms: float) -> list[int]:
    """A stamp array like the child's: ns per step index, 0 for steps that did not run."""
    out = [0] * len(NAMES)
    for step, ms in at_ms.items():
        out[NAMES.index(step.replace("_", " "))] = int(ms * MS)
    return out


PHASES = [Span("image lookup", 1 * MS, 2 * MS, PYTHON), Span("mr_spawn", 3 * MS, 4 * MS, PYTHON),
          Span("wait for the child", 4 * MS, 9 * MS, PYTHON)]


def test_a_native_step_runs_from_the_previous_stamp_to_its_own():
    spans = merge(PHASES, stamps(clone=3.5, join_cgroup=3.6, wait_for_parent=5, exec=8), name)
    native = [(s.name, s.start_ns / MS, s.end_ns / MS) for s in spans if s.source == NATIVE]
    # clone starts with the Python phase around its stamp (mr_spawn, which called into C)
    assert native == [("clone", 3, 3.5), ("join cgroup", 3.5, 3.6), ("wait for parent", 3.6, 5),
                      ("exec", 5, 8)]


def test_clone_starts_with_mr_spawn_even_when_the_child_first_ran_after_it_returned():
    # on a busy machine the child's first instruction (clone's stamp) can come after mr_spawn
    # returned, in a gap or in the next phase: the clone still began in mr_spawn
    for first_ran in (4.5, 4.0):
        spans = merge(PHASES, stamps(clone=first_ran, exec=8), name)
        [clone] = [s for s in spans if s.name == "clone"]
        assert (clone.start_ns / MS, clone.end_ns / MS) == (3, first_ran)
    phases = [PHASES[1], Span("record pid", 4.2 * MS, 4.4 * MS, PYTHON)]
    [clone] = [s for s in merge(phases, stamps(clone=4.3), name) if s.name == "clone"]
    assert clone.start_ns == 3 * MS


def test_steps_that_did_not_run_are_left_out():
    spans = merge(PHASES, stamps(clone=3.5, exec=8), name)
    assert [s.name for s in spans if s.source == NATIVE] == ["clone", "exec"]


def test_spans_are_in_time_order_and_gaps_between_python_phases_are_named():
    spans = merge(PHASES, stamps(clone=3.5, exec=8), name)
    assert [s.start_ns for s in spans] == sorted(s.start_ns for s in spans)
    gaps = [(s.start_ns / MS, s.end_ns / MS) for s in spans if s.name == GAP]
    assert gaps == [(2, 3)]                       # image lookup → mr_spawn; 4 → 4 is no gap
    python = [s for s in spans if s.source == PYTHON]
    assert all(a.end_ns <= b.start_ns for a, b in zip(python, python[1:], strict=False))


def test_tiny_gaps_are_not_worth_a_line():
    phases = [Span("a", 0, MS, PYTHON), Span("b", MS + 50_000, 2 * MS, PYTHON)]
    assert [s.name for s in merge(phases, [], name)] == ["a", "b"]


def test_a_first_stamp_outside_any_phase_is_an_instant():
    [clone] = merge([], stamps(clone=7), name)
    assert (clone.start_ns, clone.end_ns) == (7 * MS, 7 * MS)


def test_total_is_first_start_to_last_end():
    spans = merge(PHASES, stamps(clone=3.5, exec=9.5), name)
    assert total_ns(spans) == int(8.5 * MS)
    assert total_ns([]) == 0


def test_render_has_a_line_per_span_with_offset_duration_and_a_bar():
    spans = merge(PHASES, stamps(clone=3.5, exec=8), name)
    text = render(spans, width=80)
    lines = text.splitlines()
    assert len(lines) == 2 + len(spans) + 1       # legend, header, spans, total
    assert all(len(line) <= 80 for line in lines)
    wait = next(line for line in lines if "wait for the child" in line)
    assert wait.split()[:3] == ["3.00", "5.00", "python"]
    assert "#" in wait and "\033" not in text     # plain characters unless asked for colour
    assert lines[-1].split()[:2] == ["8.00", "total"]
    # the bar is placed on the time axis: the later span's bar starts further right
    lookup = next(line for line in lines if "image lookup" in line)
    assert wait.index("#") > lookup.index("#")


def test_render_colours_only_when_asked():
    spans = merge(PHASES, stamps(clone=3.5, exec=8), name)
    assert "\033[" in render(spans, width=80, colour=True)


def test_render_of_nothing():
    assert "no spans" in render([])


def test_json_has_every_span_with_its_offset_and_duration():
    spans = merge(PHASES, stamps(clone=3.5, exec=8), name)
    data = json.loads(json.dumps(to_json(spans)))
    assert data["total_ms"] == 8.0 and data["start_ns"] == 1 * MS
    assert [s["name"] for s in data["spans"]] == [s.name for s in spans]
    exec_ = next(s for s in data["spans"] if s["name"] == "exec")
    assert (exec_["source"], exec_["offset_ms"], exec_["duration_ms"]) == ("native", 2.5, 4.5)


def test_tracer_records_phases_on_the_monotonic_clock_even_when_they_raise():
    tracer = Tracer()
    before = time.monotonic_ns()
    with tracer.phase("image lookup"):
        pass
    try:
        with tracer.phase("spec build"):
            raise ValueError("bad flag")
    except ValueError:
        pass
    after = time.monotonic_ns()
    assert [p.name for p in tracer.phases] == ["image lookup", "spec build"]
    assert all(before <= p.start_ns <= p.end_ns <= after for p in tracer.phases)


def test_fill_names_the_time_between_two_phases():
    tracer = Tracer()
    tracer.add("wait for the child", 0, 2 * MS)
    tracer.add("remove", 5 * MS, 6 * MS)
    tracer.fill("wait for the child", "remove", "container runs")
    assert ("container runs", 2 * MS, 5 * MS) in [(p.name, p.start_ns, p.end_ns) for p in tracer.phases]
    tracer.fill("never happened", "remove", "nothing")
    assert "nothing" not in [p.name for p in tracer.phases]


def test_process_start_is_before_now_and_within_a_tick_of_procs_starttime():
    from minirun.observe.trace import process_start_ns

    now, cpu = time.monotonic_ns(), time.process_time_ns()
    start = process_start_ns(now, cpu)
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    began = time.monotonic_ns() - (time.clock_gettime_ns(time.CLOCK_BOOTTIME) - ticks * tick)
    # within the tick proc(5) allows (and a little slack for the two clock reads above)
    assert began - 5 * MS <= start <= began + tick + 5 * MS


def test_svg_is_well_formed_escapes_names_and_places_bars_on_the_time_axis():
    import xml.etree.ElementTree as ET

    from minirun.observe.trace import to_svg

    spans = [Span("interpreter start", 0, 10 * MS, PYTHON),
             Span("exec <sh> & co", 10 * MS, 30 * MS, NATIVE),
             Span(GAP, 30 * MS, 40 * MS, PYTHON)]
    root = ET.fromstring(to_svg(spans, title="a < b"))
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in root.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]
    assert [b.find(f"{ns}title").text.split(":")[0] for b in bars] == \
        ["interpreter start", "exec <sh> & co", GAP]
    xs = [float(b.get("x")) for b in bars]
    widths = [float(b.get("width")) for b in bars]
    assert xs[0] < xs[1] < xs[2]
    assert abs(widths[1] - 2 * widths[0]) < 0.01          # 20 ms is twice 10 ms
    assert abs(xs[1] - (xs[0] + widths[0])) < 0.01         # the second starts where the first ends
    texts = "".join(t.text or "" for t in root.iter(f"{ns}text"))
    assert "a < b" in texts and "40.00" in texts


def test_tick_step_gives_five_to_ten_round_ticks():
    from minirun.observe.trace import _tick_step

    for total in (0.7, 3, 12, 73.95, 140, 999, 4321):
        step = _tick_step(total)
        assert str(step).lstrip("0.").rstrip("0.")[:1] in "125", (total, step)
        assert 1 <= total / step <= 10, (total, step)


def test_a_steps_list_becomes_parts_that_tile_it_and_the_rest_is_one_part():
    names5 = ["none", "clone", "mount", "exec"]
    st = [0, 1 * MS, 5 * MS, 6 * MS]
    phases = [Span("mr_spawn", 0, 2 * MS, PYTHON)]
    items = [2 * MS, 3 * MS, 0, 0]                     # the child stamped 2 entries of 3 (cap 2)
    spans = merge(phases, st, lambda i: names5[i], item_step="mount", items=items[:2],
                  item_names=["mount a", "mount b", "mount c"])
    mount = next(s for s in spans if s.name == "mount")
    assert [(p.name, p.start_ns, p.end_ns) for p in mount.parts] == [
        ("mount a", 1 * MS, 2 * MS), ("mount b", 2 * MS, 3 * MS), ("… 1 more", 3 * MS, 5 * MS)]
    assert all(not s.parts for s in spans if s.name != "mount")
    text = render(spans, detail=True)
    assert "native    mount b" in text                  # indented under its step
    assert "mount a" not in render(spans)               # only with detail
    assert [p["name"] for p in next(s for s in to_json(spans)["spans"] if s["name"] == "mount")["parts"]] \
        == ["mount a", "mount b", "… 1 more"]
