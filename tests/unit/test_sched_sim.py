"""The simulator: the scheduler's decisions on a virtual clock, reproducible from a seed."""

from __future__ import annotations

import json

import pytest

from minirun.errors import UsageError
from minirun.sched import sim


def run(name_or_scenario, seed=0):
    if isinstance(name_or_scenario, dict):
        return sim.Simulation(name_or_scenario, seed).run()
    return sim.simulate(name_or_scenario, seed)


def test_same_seed_same_output_other_seed_other_output():
    a, b, c = run("worker-loss", 1), run("worker-loss", 1), run("worker-loss", 2)
    assert a.timeline == b.timeline and a.summary() == b.summary()
    assert a.timeline != c.timeline


def test_a_lost_worker_is_noticed_after_lost_after_and_its_tasks_replaced():
    s = run("worker-loss", 1)
    lost = [line for line in s.timeline if "w2 lost" in line]
    assert len(lost) == 1 and 14.0 <= float(lost[0].split()[0]) <= 15.2   # killed at 10, lost after 5
    svc = s.services["web"]
    assert sum(t.status == "RUNNING" for t in svc.live.values()) == 36
    assert all(s.alive[t.worker] for t in svc.live.values())
    per_zone = {}
    for t in svc.live.values():
        zone = s.views[t.worker].attributes["zone"]
        per_zone[zone] = per_zone.get(zone, 0) + 1
    assert per_zone == {"a": 18, "c": 18}                     # zone b died: spread over what is left
    recoveries = [o["whole"] - o["at"] for o in s.outages]
    assert all(4.0 <= r <= 5.0 + 1.5 + 0.2 for r in recoveries), recoveries


def test_crash_loop_backs_off_and_leaves_the_steady_service_alone():
    s = run("crash-loop", 3)
    waits = [float(line.split("next start in ")[1].split(" s")[0]) for line in s.timeline if "next start in" in line]
    assert len(waits) >= 8 and max(waits) <= 60.0
    assert waits[5] > waits[0] * 4                             # exponential growth
    assert sum(t.status == "RUNNING" for t in s.services["steady"].live.values()) == 4


def test_binpack_fills_workers_in_order_and_reports_what_does_not_fit():
    s = run("binpack", 0)
    per_worker = {}
    for t in s.services["batch"].live.values():
        per_worker[t.worker] = per_worker.get(t.worker, 0) + 1
    assert per_worker == {"w1": 6, "w2": 6, "w3": 6, "w4": 2}
    assert any("huge: 1 PENDING: no worker fits (cpu 64, memory 4000 MiB): 6 not enough memory" in line
               for line in s.timeline)


def test_rolling_deployment_respects_the_bounds():
    scenario = dict(sim.BUILTIN["rolling"], events=[{"at": 5, "deploy": {"api": 2}}])
    s = sim.Simulation(scenario, 1)
    s.begin()
    most = 0
    while s.step():
        svc = s.services["api"]
        most = max(most, len(svc.live))
        if s.now > 5:
            running = sum(x.status == "RUNNING" for x in svc.live.values())
            assert running >= 6, (s.now, running)              # minimumHealthyPercent 50 of 12
    assert most <= 18                                          # maximumPercent 150 of 12
    assert {x.revision for x in s.services["api"].live.values()} == {2}


def test_scenario_files_and_errors(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"workers": {"count": 2}, "services": [{"name": "x", "desired": 2, "memory": 10}],
                             "duration": 10, "events": [{"at": 1, "kill": ["w1"]}]}))
    s = run(str(f))
    assert any("w1 lost" in line for line in s.timeline)
    f.write_text("{")
    with pytest.raises(UsageError, match="not JSON"):
        sim.load(str(f))
    with pytest.raises(UsageError, match="no scenario 'nope'"):
        sim.load("nope")
    f.write_text(json.dumps({"workers": {"count": 1}, "services": [{"name": "x", "desired": 1, "strategy": "pack"}]}))
    with pytest.raises(UsageError, match="scenario: placement strategy 'pack'"):
        sim.simulate(str(f))


def test_the_chart_is_a_png_of_the_run_and_the_same_for_the_same_seed():
    import struct
    import zlib

    from minirun.sched.chart import PALETTE, RED

    data = run("worker-loss", 1).png()
    assert data == run("worker-loss", 1).png()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = {}, 8
    while i < len(data):
        n, tag = struct.unpack(">I4s", data[i:i + 8])
        body = data[i + 8:i + 8 + n]
        assert struct.unpack(">I", data[i + 8 + n:i + 12 + n])[0] == zlib.crc32(tag + body)
        chunks[tag] = chunks.get(tag, b"") + body
        i += 12 + n
    w, h, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (w, h, depth, colour) == (800, 400, 8, 2)
    rows = zlib.decompress(chunks[b"IDAT"])
    assert len(rows) == h * (1 + 3 * w)
    pixels = {rows[r * (1 + 3 * w) + 1 + 3 * x:r * (1 + 3 * w) + 4 + 3 * x] for r in range(h) for x in range(0, w, 2)}
    assert bytes(PALETTE[0]) in pixels and bytes(RED) in pixels        # the service, the kills
