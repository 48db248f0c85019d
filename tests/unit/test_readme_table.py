"""README.md's benchmark table is what benchmarks/readme_table.py renders from the committed
benchmarks/results/samples.json: never edited by hand, never older than the samples beside it.

If the first test fails, run `.venv/bin/python benchmarks/readme_table.py` (make bench does) and
commit README.md with the samples.json it came from.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import readme_table  # noqa: E402


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(readme_table.SAMPLES.read_text())


def test_the_readme_table_is_what_the_committed_samples_say():
    diff = readme_table.check()
    assert not diff, ("README.md's benchmark table differs from what benchmarks/results/samples.json "
                      "renders; run benchmarks/readme_table.py (make bench does):\n" + "\n".join(diff))


def test_every_row_of_the_committed_run_has_its_figure_and_date(committed):
    """Each row's figure is in the committed samples.json: none renamed out of the table's reach."""
    table = readme_table.render(committed).split("\n\n")[0].splitlines()[2:]
    assert len(table) == len(readme_table.ROWS)
    dates = {readme_table._when(b["run"]) for b in committed["figures"].values()}
    for line in table:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert cells[1] not in ("not measured", "") and "FAILED" not in cells[1], line
        assert cells[-1] in dates, line


def _with(samples: dict, tmp_path: Path) -> Path:
    path = tmp_path / "samples.json"
    path.write_text(json.dumps(samples))
    return path


def test_a_hand_edit_or_new_samples_make_the_check_fail(committed, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(readme_table.README.read_text())
    samples = _with(committed, tmp_path)
    assert readme_table.check(readme, samples) == []
    figure = "| 33.6 ms (42.9 ms) |"
    if figure in readme.read_text():                  # a hand edit of a figure
        readme.write_text(readme.read_text().replace(figure, "| 30.1 ms (42.9 ms) |", 1))
        assert readme_table.check(readme, samples)
        assert readme_table.main(["--check", "--readme", str(readme), "--samples", str(samples)]) == 1
        assert readme_table.write(readme, samples) and readme_table.check(readme, samples) == []
    newer = copy.deepcopy(committed)                  # a new run's samples, the table not rewritten
    newer["figures"]["startup"]["run"] = dict(newer["figures"]["startup"]["run"], date="2099-01-01 00:00 UTC")
    samples = _with(newer, tmp_path)
    assert any("2099-01-01 00:00 UTC" in line for line in readme_table.check(readme, samples))
    assert readme_table.main(["--readme", str(readme), "--samples", str(samples)]) == 0
    assert readme_table.check(readme, samples) == [] and "2099-01-01" in readme.read_text()
    readme.write_text("# no markers\n")
    assert readme_table.main(["--check", "--readme", str(readme), "--samples", str(samples)]) == 2


def test_missing_and_failed_benchmarks_are_said_never_filled_in(committed):
    samples = copy.deepcopy(committed)
    del samples["figures"]["network"]                 # never measured
    samples["figures"]["cli"]["sections"] = [{"title": "cli: FAILED", "columns": [], "rows": [],
                                              "notes": ["Traceback ..."]}]
    quick = dict(samples["figures"]["scheduler"]["run"], date="2026-12-07 22:30 UTC", quick=True)
    samples["figures"]["scheduler"]["run"] = quick    # a later --quick --only scheduler
    out = readme_table.render(samples)
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    bridge = rows["bridge networking added to `run --rm`"]
    assert "not measured" in bridge and bridge.rstrip().endswith("| never |") and "+10.4" not in bridge
    cli = rows["`minirun --help` / `ps -a`"]
    assert "FAILED" in cli and "103.0" not in cli
    assert rows["placement decisions/s, 100 workers"].rstrip().endswith("| 2026-12-07 22:30 UTC (quick) |")
    assert "Run of 2026-12-07 22:30 UTC (quick):" in out and "Run of 2026-11-26 07:43 UTC:" in out
    assert readme_table.render({}).count("| never |") == len(readme_table.ROWS)


def test_run_all_stores_every_printed_table_with_its_run(tmp_path, monkeypatch, committed):
    """The round trip: what run_all.py writes is what readme_table.py reads."""
    import run_all
    from _common import Section

    monkeypatch.setattr(run_all, "RESULTS", tmp_path)
    (tmp_path / "samples.json").write_text(json.dumps(committed))
    run = {"date": "2026-12-07 23:00 UTC", "machine": {"nproc": "2"}, "tools": {"runc": "1.1.5"}, "quick": False}
    network = [Section(s["title"], s["columns"], s["rows"], s["notes"])
               for s in committed["figures"]["network"]["sections"]]
    network[0].rows[1][3] = "+8.8 ms"                  # minirun run --rm --network bridge, added
    samples = run_all.write_samples({"network": network}, run)
    assert json.loads((tmp_path / "samples.json").read_text()) == samples
    assert samples["figures"]["network"]["run"] == run
    assert samples["figures"]["startup"] == committed["figures"]["startup"]   # --only keeps the others
    rows = [line for line in readme_table.render(samples).splitlines() if line.startswith("| bridge")]
    assert rows == ["| bridge networking added to `run --rm` | +8.8 ms | podman +191.4 ms | ≤ 15 ms: PASS "
                    "| 2026-12-07 23:00 UTC |"]
