"""benchmarks/plots.py draws a PNG per benchmark present in samples.json, from its raw samples.

matplotlib is the optional `bench` extra: without it this test is skipped (the suite never needs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_each_benchmark_present_becomes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the `bench` extra) is not installed")
    import plots

    samples = {
        "startup": {"minirun run --rm": [60.0, 62.5, 70.1], "crun run (private mnt ns)": [7.5, 8.0, 9.1]},
        "throughput": {"levels": [1, 2, 4], "series": {"minirun warm path (processes)": [90.0, 150.0, 160.0]}},
        "memory": {"minirun-monitor": [226, 230], "conmon (podman)": []},
    }
    made = plots.draw(samples, tmp_path)
    assert sorted(p.name for p in made) == ["memory.png", "startup.png", "throughput.png"]
    for p in made:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    assert not (tmp_path / "scheduler.png").exists()        # no scheduler data: no plot
