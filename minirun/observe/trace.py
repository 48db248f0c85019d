"""The start-up waterfall (`minirun trace run`): Python's phases and the native child's steps,
on one clock.

Both sides read CLOCK_MONOTONIC (clock_gettime(2)): Python through `time.monotonic_ns()`, the C
child through `mr_now_ns()` in c_ext/util.h. So a phase timed here and a step stamped in the child
after clone(2) can be drawn on one time axis without any conversion.

* `Tracer` records Python phases: `with tracer.phase("image lookup"): ...`. It is only made when
  someone traces; the runtime's untraced path never imports this module (runtime/containers.py
  uses a shared no-op context instead).
* `merge()` turns the phases and the child's stamps into one ordered list of `Span`s. A stamp is
  taken at the *end* of a step (c_ext/spawn.c `STAMP(...)`), so a step's span runs from the
  previous stamp to its own; the first (clone) starts where the Python phase around it started.
* `render()` draws the waterfall as text, `to_json()` gives the spans to programs.

docs/trace.md explains what each step is, with its man page and the lines of c_ext/ that do it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PYTHON, NATIVE = "python", "native"
GAP = "(between phases)"          # Python time no phase covers, shown when it is worth a line
MIN_GAP_NS = 100_000               # shorter gaps are noise: 0.1 ms


@dataclass(frozen=True)
class Span:
    name: str
    start_ns: int
    end_ns: int
    source: str                    # "python" or "native"
    parts: tuple[Span, ...] = ()   # a native step's list, entry by entry (each mount, each setns)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


class _Phase:
    """The context manager `Tracer.phase()` returns: two clock reads and one append."""

    __slots__ = ("_tracer", "_name", "_start")

    def __init__(self, tracer: Tracer, name: str):
        self._tracer, self._name = tracer, name

    def __enter__(self) -> _Phase:
        self._start = time.monotonic_ns()
        return self

    def __exit__(self, *exc) -> bool:
        # a phase that raised still took its time: keep it, the waterfall shows where it stopped
        self._tracer.phases.append(Span(self._name, self._start, time.monotonic_ns(), PYTHON))
        return False


class Tracer:
    """Records Python phases; the runtime hands it the child's stamps (`stamps`)."""

    def __init__(self) -> None:
        self.phases: list[Span] = []
        self.stamps: list[int] = []           # CLOCK_MONOTONIC ns per native step, 0 = not run
        self.item_step: str | None = None     # the native step whose list was timed entry by entry
        self.items: list[int] = []            # ... the end of each entry, 0 = not run
        self.item_names: list[str] = []       # ... and what each entry is ("mount proc on /proc")

    def phase(self, name: str) -> _Phase:
        return _Phase(self, name)

    def set_items(self, step: str, items: Sequence[int], names: Sequence[str]) -> None:
        """The child's per-entry stamps of one step's list (c_ext/sync.h, MR_TRACE_ITEMS)."""
        self.item_step, self.items, self.item_names = step, list(items), list(names)

    def add(self, name: str, start_ns: int, end_ns: int) -> None:
        """A phase timed some other way (the interpreter's start, the CLI's start-up)."""
        self.phases.append(Span(name, start_ns, end_ns, PYTHON))

    def fill(self, after: str, before: str, name: str) -> None:
        """Name the time between the last phase `after` and the next phase `before` (e.g. the
        container running, between the runtime's last start-up phase and `remove`)."""
        ends = [p.end_ns for p in self.phases if p.name == after]
        if not ends:
            return
        starts = [p.start_ns for p in self.phases if p.name == before and p.start_ns >= ends[-1]]
        if starts:
            self.add(name, ends[-1], min(starts))


def process_start_ns(entered_ns: int, cpu_at_entry_ns: int, proc: str = "/proc/self/stat") -> int:
    """When this process began, on CLOCK_MONOTONIC, given when main() was entered and the CPU
    time the process had used by then.

    proc(5)'s `starttime` is exact but counted in clock ticks (10 ms with USER_HZ=100) and on the
    boot clock; the CPU time used before main() is exact to the ns and, while the interpreter
    starts without waiting for the disk, equals the wall time. So: main() minus that CPU time,
    kept within the tick that `starttime` allows."""
    with open(proc) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    boot_ago = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - int(fields[19]) * tick
    floor = time.monotonic_ns() - boot_ago      # starttime (field 22) on CLOCK_MONOTONIC
    return max(floor, min(entered_ns - cpu_at_entry_ns, floor + tick))


def merge(phases: Sequence[Span], stamps: Sequence[int],
          step_name: Callable[[int], str], first_from: str = "mr_spawn", *,
          item_step: str | None = None, items: Sequence[int] = (),
          item_names: Sequence[str] = ()) -> list[Span]:
    """One list of spans, ordered by start time: the Python phases, the Python time between them
    (as GAP, when ≥ 0.1 ms), and one span per native step that ran (stamp ≠ 0). The first
    native step starts with the last phase named `first_from` begun before its stamp (the call
    into C), else with the phase around its stamp. The step named `item_step` gets `parts`:
    one span per entry of its list that ran (`items`, named by `item_names`)."""
    spans = sorted(phases, key=lambda s: (s.start_ns, s.end_ns))
    gaps = [Span(GAP, a.end_ns, b.start_ns, PYTHON)
            for a, b in zip(spans, spans[1:], strict=False) if b.start_ns - a.end_ns >= MIN_GAP_NS]
    native = []
    ran = sorted((t, i) for i, t in enumerate(stamps) if t)
    previous = None
    for t, i in ran:
        if previous is None:
            # clone's stamp is the child's first instant: its span starts with the Python phase
            # that called into C (mr_spawn), which also forked the monitor — even when the child
            # first ran after that call had returned (a busy machine schedules it late)
            caller = [p.start_ns for p in spans if p.name == first_from and p.start_ns <= t]
            around = caller or [p.start_ns for p in spans if p.start_ns <= t <= p.end_ns]
            previous = around[-1] if around else t
        name = step_name(i)
        parts = _parts(previous, t, items, item_names) if name == item_step else ()
        native.append(Span(name, previous, t, NATIVE, parts))
        previous = t
    return sorted([*spans, *gaps, *native], key=lambda s: (s.start_ns, s.source != PYTHON))


def _parts(start: int, end: int, items: Sequence[int], names: Sequence[str]) -> tuple[Span, ...]:
    """A step's span cut at its entries' end stamps: each entry from the previous one's end (the
    first from the step's start). Entries past the ones the child could stamp are one last part."""
    out, previous = [], start
    stamped = [(names[k], t) for k, t in enumerate(items[:len(names)]) if t]
    for name, t in stamped:
        out.append(Span(name, previous, t, NATIVE))
        previous = t
    unstamped = len(names) - len(items) if len(names) > len(items) else 0
    if out and unstamped:
        out.append(Span(f"… {unstamped} more", previous, end, NATIVE))
    return tuple(out)


def short(name: str) -> str:
    """A row's label for people: container and cgroup ids (64 hex digits) cut to 12, as `ps`
    shows them (the JSON keeps the whole name)."""
    import re

    return re.sub(r"[0-9a-f]{64}", lambda m: m[0][:12] + "…", name)


def rows(spans: Sequence[Span], detail: bool = False) -> list[tuple[Span, int]]:
    """(span, depth) in drawing order: with `detail`, each span's parts right under it."""
    out = []
    for s in spans:
        out.append((s, 0))
        if detail:
            out += [(p, 1) for p in s.parts]
    return out


def total_ns(spans: Sequence[Span]) -> int:
    return max(s.end_ns for s in spans) - min(s.start_ns for s in spans) if spans else 0


def to_json(spans: Sequence[Span]) -> dict:
    origin = min((s.start_ns for s in spans), default=0)
    return {
        "clock": "CLOCK_MONOTONIC",
        "start_ns": origin,
        "total_ms": round(total_ns(spans) / 1e6, 3),
        "spans": [_span_json(s, origin) for s in spans],
    }


def _span_json(s: Span, origin: int) -> dict:
    out = {"name": s.name, "source": s.source, "start_ns": s.start_ns, "end_ns": s.end_ns,
           "offset_ms": round((s.start_ns - origin) / 1e6, 3),
           "duration_ms": round(s.duration_ns / 1e6, 3)}
    if s.parts:
        out["parts"] = [_span_json(p, origin) for p in s.parts]
    return out


COLOURS = {PYTHON: "\033[36m", NATIVE: "\033[33m", GAP: "\033[2m"}
BARS = {PYTHON: "#", NATIVE: "=", GAP: "."}
RESET = "\033[0m"


def render(spans: Sequence[Span], width: int = 100, colour: bool = False, title: str = "",
           detail: bool = False) -> str:
    """The waterfall: one line per span (offset from the start, duration, source, name, and a bar
    placed on a time axis that spans the terminal), then the total. With `detail`, each mount
    (each setns) under its step, indented."""
    if not spans:
        return "no spans recorded\n"
    origin = min(s.start_ns for s in spans)
    total = max(total_ns(spans), 1)
    drawn = rows(spans, detail)
    label = max(24, max(len(short(s.name)) + 2 * depth for s, depth in drawn))
    head = f"{'offset ms':>9} {'dur ms':>8}  {'source':<6}  {'step':<{label}}  "
    cols = max(10, width - len(head) - 1)
    lines = [title] if title else []
    lines.append("# python phase   = native step, in the child   . python between phases")
    end = f"{total / 1e6:.2f} ms"
    lines.append(head + "0 ms".ljust(cols - len(end)) + end)
    for s, depth in drawn:
        kind = GAP if s.name == GAP else s.source
        a = (s.start_ns - origin) * cols // total
        b = max(a + 1, -(-(s.end_ns - origin) * cols // total))
        bar = " " * a + BARS[kind] * (min(b, cols) - a)
        if colour:
            bar = COLOURS[kind] + bar + RESET
        name = "  " * depth + short(s.name)
        lines.append(f"{(s.start_ns - origin) / 1e6:9.2f} {s.duration_ns / 1e6:8.2f}  "
                     f"{s.source:<6}  {name:<{label}}  {bar}")
    lines.append(f"{'':9} {total / 1e6:8.2f}  total")
    return "\n".join(lines) + "\n"


# -- drawings: SVG (written here, no dependency) and PNG (matplotlib, the `bench` extra) -------
SVG_FILL = {PYTHON: "#2a9fd6", NATIVE: "#e8a317", GAP: "#c8c8c8"}


def _tick_step(total_ms: float) -> float:
    """A round interval giving 5 to 10 ticks up to `total_ms`."""
    step = 10 ** int(f"{total_ms / 10:e}".split("e")[1]) if total_ms > 0 else 1
    for m in (1, 2, 5, 10):
        if total_ms / (m * step) <= 10:
            return m * step
    return 10 * step


def to_svg(spans: Sequence[Span], title: str = "", width: int = 960, detail: bool = False) -> str:
    """The waterfall as a standalone SVG image: one row per span, a time axis in ms, and the
    total. Only text: no library, so `--output x.svg` costs nothing on the CLI's path."""
    from xml.sax.saxutils import escape

    if not spans:
        raise ValueError("no spans to draw")
    origin = min(s.start_ns for s in spans)
    total = max(total_ns(spans), 1)
    drawn = rows(spans, detail)
    row, top, right = 18, 74, 70
    label_w = max(330, 10 + round(7.3 * max(len(short(s.name)) + 2 * d for s, d in drawn)) + 70)
    width = max(width, label_w + right + 400)
    plot_w = width - label_w - right
    height = top + row * len(drawn) + 40

    def x(ns: int) -> float:
        return label_w + (ns - origin) * plot_w / total

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, monospace" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title or "start-up")}</text>',
           f'<text x="10" y="38" fill="#555">total {total / 1e6:.2f} ms on CLOCK_MONOTONIC — '
           f'<tspan fill="{SVG_FILL[PYTHON]}">■ python phase</tspan>  '
           f'<tspan fill="{SVG_FILL[NATIVE]}">■ native step, in the child</tspan>  '
           f'<tspan fill="#999">■ python between phases</tspan></text>']
    step = _tick_step(total / 1e6)
    t = 0.0
    while t <= total / 1e6 + 1e-9:
        px = x(origin + int(t * 1e6))
        out.append(f'<line x1="{px:.1f}" y1="{top - 6}" x2="{px:.1f}" y2="{top + row * len(drawn)}" '
                   'stroke="#e4e4e4"/>')
        out.append(f'<text x="{px:.1f}" y="{top - 9}" text-anchor="middle" fill="#555">{t:g}</text>')
        t += step
    out.append(f'<text x="{width - right + 6}" y="{top - 9}" fill="#555">ms</text>')
    out.append(f'<text x="10" y="{top - 9}" fill="#555">step</text>')
    out.append(f'<text x="{label_w - 8}" y="{top - 9}" text-anchor="end" fill="#555">dur ms</text>')
    for i, (s, depth) in enumerate(drawn):
        y = top + i * row
        kind = GAP if s.name == GAP else s.source
        if i % 2:
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{row}" fill="#000" fill-opacity="0.03"/>')
        out.append(f'<text x="{10 + 16 * depth}" y="{y + 13}" fill="{"#999" if kind == GAP else "#222"}">'
                   f'{escape(short(s.name))}</text>')
        out.append(f'<text x="{label_w - 8}" y="{y + 13}" text-anchor="end" fill="#555">'
                   f'{s.duration_ns / 1e6:.2f}</text>')
        bar = max(x(s.end_ns) - x(s.start_ns), 1.0)
        out.append(f'<rect x="{x(s.start_ns):.2f}" y="{y + 3}" width="{bar:.2f}" height="{row - 6}" '
                   f'fill="{SVG_FILL[kind]}"><title>{escape(s.name)}: {s.duration_ns / 1e6:.3f} ms at '
                   f'{(s.start_ns - origin) / 1e6:.3f} ms ({s.source})</title></rect>')
    y = top + row * len(drawn) + 22
    out.append(f'<text x="10" y="{y}" font-weight="bold">total</text>')
    out.append(f'<text x="{label_w - 8}" y="{y}" text-anchor="end" font-weight="bold">{total / 1e6:.2f}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_png(spans: Sequence[Span], title: str = "", detail: bool = False) -> bytes:
    """The waterfall as a PNG, drawn by matplotlib (installed with the `bench` extra); raises
    ImportError without it (the CLI checks first and says how to get it)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not spans:
        raise ValueError("no spans to draw")
    origin = min(s.start_ns for s in spans)
    total = total_ns(spans) / 1e6
    drawn = rows(spans, detail)
    fig, ax = plt.subplots(figsize=(10, 0.26 * len(drawn) + 1.4), dpi=110)
    for i, (s, _depth) in enumerate(drawn):
        kind = GAP if s.name == GAP else s.source
        ax.barh(i, max(s.duration_ns / 1e6, total / 2000), left=(s.start_ns - origin) / 1e6,
                height=0.7, color=SVG_FILL[kind])
    ax.set_yticks(range(len(drawn)),
                  [f"{'  ' * d}{short(s.name)}  {s.duration_ns / 1e6:.2f}" for s, d in drawn], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, total * 1.01)
    ax.set_xlabel(f"ms since the process started (CLOCK_MONOTONIC); total {total:.2f} ms")
    ax.grid(axis="x", color="#e4e4e4")
    ax.set_axisbelow(True)
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=SVG_FILL[k], label=t) for k, t in
                       ((PYTHON, "python phase"), (NATIVE, "native step, in the child"),
                        (GAP, "python between phases"))], loc="upper right", fontsize=8)
    ax.set_title(title or "start-up", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
