"""observe/events.py: the log's format, rotation, reading and following (no root needed)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from minirun.errors import UsageError
from minirun.observe import events


def test_a_line_has_dockers_fields_and_string_attributes(tmp_path):
    events.emit(tmp_path, "container", "die", "abc", {"exitCode": 3, "name": "web", "skip": None})
    line = events.path(tmp_path).read_bytes()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    ev = json.loads(line)
    assert ev["Type"] == "container" and ev["Action"] == "die" and ev["scope"] == "local"
    assert ev["Actor"] == {"ID": "abc", "Attributes": {"exitCode": "3", "name": "web"}}
    assert ev["time"] == ev["timeNano"] // 10**9 and abs(ev["time"] - time.time()) < 5


def test_times_as_docker_takes_them():
    now = 1_800_000_000.0
    assert events.parse_time("1764115200", now) == 1764115200 * 10**9
    assert events.parse_time("1764115200.5", now) == 1764115200_500_000_000
    assert events.parse_time("10m", now) == int((now - 600) * 1e9)
    assert events.parse_time("1h30m", now) == int((now - 5400) * 1e9)
    assert events.parse_time("500ms", now) == int((now - 0.5) * 1e9)
    assert events.parse_time("2026-11-26T00:10:00Z", now) == events.parse_time("2026-11-26T00:10:00", now)
    assert events.parse_time("2026-11-26T01:10:00+01:00", now) == events.parse_time("2026-11-26T00:10:00Z")
    with pytest.raises(UsageError, match="not a time"):
        events.parse_time("tomorrow")


def test_filters_same_key_or_different_keys_and():
    f = events.parse_filters(["event=die", "event=oom", "container=web"])
    assert f == {"event": {"die", "oom"}, "container": {"web"}}
    web = {"Type": "container", "Action": "oom", "Actor": {"ID": "ab12", "Attributes": {"name": "web"}}}
    db = {"Type": "container", "Action": "die", "Actor": {"ID": "cd34", "Attributes": {"name": "db"}}}
    assert events.matches(web, f) and not events.matches(db, f)
    assert events.matches(db, events.parse_filters(["container=cd"]))          # an id prefix
    exec_ev = {"Type": "container", "Action": "exec_start: sh -c date", "Actor": {"ID": "x"}}
    assert events.matches(exec_ev, events.parse_filters(["event=exec_start"]))
    for bad in ("colour=red", "type=volume", "event", "event="):
        with pytest.raises(UsageError):
            events.parse_filters([bad])


def test_rotation_keeps_the_previous_file_and_history_reads_both(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "ROTATE_BYTES", 4096)
    for i in range(100):
        events.emit(tmp_path, "container", "create", f"id{i}", {"n": i})
    old = events.path(tmp_path).with_name("events.jsonl.1")
    assert old.exists() and old.stat().st_size <= 4096 + 200
    assert events.path(tmp_path).stat().st_size <= 4096 + 200
    kept = [int(e["Actor"]["Attributes"]["n"]) for e in events.history(tmp_path)]
    assert kept == list(range(kept[0], 100)) and len(kept) >= 4096 // 200   # newest kept, in order


def test_follow_sees_every_event_across_a_rotation(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "ROTATE_BYTES", 2048)
    events.emit(tmp_path, "container", "create", "before")     # history: not shown without since

    def writer():
        time.sleep(0.3)
        for i in range(60):
            events.emit(tmp_path, "container", "start", f"id{i}")
            time.sleep(0.005)

    t = threading.Thread(target=writer)
    t.start()
    seen = [e["Actor"]["ID"] for e in events.follow(tmp_path, until=time.time_ns() + int(2.5e9), poll=0.01)]
    t.join()
    assert seen == [f"id{i}" for i in range(60)]
    assert events.path(tmp_path).with_name("events.jsonl.1").exists()      # it did rotate


def test_follow_with_since_prints_history_first(tmp_path):
    t0 = time.time_ns()
    events.emit(tmp_path, "image", "import", "sha256:aa", {"name": "busybox:latest"})
    got = list(events.follow(tmp_path, since=t0, until=time.time_ns() + int(0.3e9)))
    assert [e["Action"] for e in got] == ["import"]


def test_image_filter_takes_a_name_with_or_without_its_tag_and_an_id_prefix():
    from minirun.observe.events import matches

    ev = {"Type": "image", "Action": "import",
          "Actor": {"ID": "sha256:abcdef0123", "Attributes": {"name": "web:latest"}}}
    assert matches(ev, {"image": {"web"}}) and matches(ev, {"image": {"web:latest"}})
    assert matches(ev, {"image": {"abcdef"}}) and matches(ev, {"image": {"sha256:abcdef"}})
    assert not matches(ev, {"image": {"web:2"}}) and not matches(ev, {"image": {"we"}})


def test_container_filter_selects_a_containers_network_events_by_id():
    from minirun.observe.events import matches

    ev = {"Type": "network", "Action": "connect",
          "Actor": {"ID": "n" * 64, "Attributes": {"container": "c0ffee" + "0" * 58, "name": "backend"}}}
    assert matches(ev, {"container": {"c0ffee"}}) and matches(ev, {"network": {"backend"}})
    assert not matches(ev, {"container": {"backend"}}) and not matches(ev, {"container": {"beef"}})
