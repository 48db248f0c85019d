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

# the figures of one real run (2026-11-26 07:43), frozen here so the tests of how a table is
# rendered do not change with each `make bench`; only the first two tests read the committed run
FROZEN = Path(__file__).with_name("bench_figures_2026-11-26.json")


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(readme_table.SAMPLES.read_text())


@pytest.fixture
def frozen() -> dict:
    return json.loads(FROZEN.read_text())


def _rows(text: str) -> dict[str, list[str]]:
    """The table's rows by their first cell: the other cells, stripped."""
    return {cells[0]: cells[1:] for line in text.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip().strip("|").split("|")]]}


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


def test_the_frozen_run_renders_each_figure_beside_its_reference(frozen):
    rows = _rows(readme_table.render(frozen))
    assert rows["`minirun run --rm --network none busybox true`"] == [
        "33.6 ms (42.9 ms)", "podman (runc) 176.4 ms",
        "0.19× podman; goal ≤ 0.5× (stretch ≤ 0.3×): PASS (stretch PASS)", "2026-11-26 07:43 UTC"]
    assert rows["`minirun-oci run` of an OCI bundle, back to back"][:3] == [
        "21.1 ms (26.4 ms)", "runc 24.0 ms · crun 13.9 ms", "0.88× runc; 1.52× crun; goal ≤ 1.0×: PASS"]
    assert rows["throughput, 8 at once"][:2] == ["warm path 178 · CLI 44 per s", "runc 91 · crun 215 per s"]
    assert rows["monitor memory per detached container (PSS)"][:3] == [
        "235 KiB", "podman's conmon 696 KiB", "≤ 1024 KiB (1 MiB): PASS"]
    assert rows["`minirun --help` / `ps -a` with 100 containers"][0] == "103.0 ms / 51.8 ms"
    leaks = rows["soak: leaked mounts, cgroups, fds, processes, veths, nft rules, leases, temp dirs, records"]
    assert leaks[0].startswith("processes (monitors, containers, our children, zombies): 1") and leaks[2] == "0: MISS"


def test_a_hand_edit_or_new_samples_make_the_check_fail(frozen, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{readme_table.BEGIN}\n{readme_table.END}\n\nafter\n")
    samples = _with(frozen, tmp_path)
    assert readme_table.check(readme, samples)                        # empty markers: stale
    assert readme_table.write(readme, samples) and readme_table.check(readme, samples) == []
    assert readme.read_text().endswith(f"{readme_table.END}\n\nafter\n")   # only between the markers
    readme.write_text(readme.read_text().replace("| 33.6 ms (42.9 ms) |", "| 30.1 ms (42.9 ms) |", 1))
    assert readme_table.check(readme, samples)                        # a hand edit of a figure
    assert readme_table.main(["--check", "--readme", str(readme), "--samples", str(samples)]) == 1
    assert readme_table.write(readme, samples) and readme_table.check(readme, samples) == []
    newer = copy.deepcopy(frozen)                                     # a new run, the table not rewritten
    newer["figures"]["startup"]["run"] = dict(newer["figures"]["startup"]["run"], date="2099-01-01 00:00 UTC")
    samples = _with(newer, tmp_path)
    assert any("2099-01-01 00:00 UTC" in line for line in readme_table.check(readme, samples))
    assert readme_table.main(["--readme", str(readme), "--samples", str(samples)]) == 0
    assert readme_table.check(readme, samples) == [] and "2099-01-01" in readme.read_text()
    readme.write_text("# no markers\n")
    assert readme_table.main(["--check", "--readme", str(readme), "--samples", str(samples)]) == 2


def test_missing_and_failed_benchmarks_are_said_never_filled_in(frozen):
    samples = copy.deepcopy(frozen)
    del samples["figures"]["network"]                 # never measured
    samples["figures"]["cli"]["sections"] = [{"title": "cli: FAILED", "columns": [], "rows": [],
                                              "notes": ["Traceback ..."]}]
    quick = dict(samples["figures"]["scheduler"]["run"], date="2026-12-07 22:30 UTC", quick=True)
    samples["figures"]["scheduler"]["run"] = quick    # a later --quick --only scheduler
    out = readme_table.render(samples)
    rows = _rows(out)
    assert rows["bridge networking added to `run --rm`"] == ["not measured", "", "", "never"]
    assert rows["`minirun --help` / `ps -a`"][0].startswith("FAILED")
    assert rows["placement decisions/s, 100 workers"][-1] == "2026-12-07 22:30 UTC (quick)"
    assert "Run of 2026-12-07 22:30 UTC (quick):" in out and "Run of 2026-11-26 07:43 UTC:" in out
    assert [r[-1] for r in _rows(readme_table.render({})).values()][1:] == ["never"] * len(readme_table.ROWS)


def test_a_reference_that_was_not_measured_leaves_minirun_s_figure(frozen):
    """A host without podman or crun: minirun's figures stay, the missing reference says so."""
    for s in frozen["figures"]["startup"]["sections"]:
        s["rows"] = [r for r in s["rows"] if not r[0].startswith(("podman", "crun", "minirun run median /"))]
    rows = _rows(readme_table.render(frozen))
    assert rows["`minirun run --rm --network none busybox true`"][:3] == ["33.6 ms (42.9 ms)", "—", "—"]
    assert rows["`minirun-oci run` of an OCI bundle, back to back"][:2] == ["21.1 ms (26.4 ms)", "runc 24.0 ms"]


def test_run_all_stores_every_printed_table_with_its_run(tmp_path, monkeypatch, frozen):
    """The round trip: what run_all.py writes is what readme_table.py reads."""
    import run_all
    from _common import Section

    monkeypatch.setattr(run_all, "RESULTS", tmp_path)
    (tmp_path / "samples.json").write_text(json.dumps(frozen))
    run = {"date": "2026-12-07 23:00 UTC", "machine": {"nproc": "2"}, "tools": {"runc": "1.1.5"}, "quick": False}
    network = [Section(s["title"], s["columns"], s["rows"], s["notes"])
               for s in frozen["figures"]["network"]["sections"]]
    network[0].rows[1][3] = "+8.8 ms"                  # minirun run --rm --network bridge, added
    samples = run_all.write_samples({"network": network}, run)
    assert json.loads((tmp_path / "samples.json").read_text()) == samples
    assert samples["figures"]["network"]["run"] == run
    assert samples["figures"]["startup"] == frozen["figures"]["startup"]   # --only keeps the others
    assert _rows(readme_table.render(samples))["bridge networking added to `run --rm`"] == [
        "+8.8 ms", "podman +191.4 ms", "≤ 15 ms: PASS", "2026-12-07 23:00 UTC"]
