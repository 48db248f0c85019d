"""Placement as ECS specifies it: filters drop workers with a reason, strategies rank the rest."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from minirun.sched.placement import (
    ExpressionError,
    PlacementError,
    TaskRequest,
    WorkerView,
    evaluate,
    parse_constraint,
    parse_expression,
    parse_strategy,
    place,
)


def workers(n=3, cpu=1024, memory=1024, **attrs_by_id):
    return [WorkerView(f"w{i}", cpu, memory, dict(attrs_by_id.get(f"w{i}", {})))
            for i in range(1, n + 1)]


def place_many(req, ws, n, rng=None):
    chosen = []
    for _ in range(n):
        d = place(req, ws, rng)
        assert d.worker, d.reason
        next(w for w in ws if w.id == d.worker).add(req)
        chosen.append(d.worker)
    return chosen


def test_binpack_fills_a_worker_before_the_next():
    ws = workers(3, memory=1024)
    req = TaskRequest(cpu=0, memory=256, group="service:a", strategy=parse_strategy("binpack(memory)"))
    assert place_many(req, ws, 9) == ["w1"] * 4 + ["w2"] * 4 + ["w3"]


def test_binpack_prefers_the_fullest_worker_that_fits():
    ws = workers(3, memory=1024)
    ws[2].reserved_memory = 700            # w3 is the fullest
    req = TaskRequest(cpu=0, memory=256, group="g", strategy=parse_strategy("binpack(memory)"))
    assert place(req, ws).worker == "w3"
    big = TaskRequest(cpu=0, memory=400, group="g", strategy=parse_strategy("binpack(memory)"))
    assert place(big, ws).worker == "w1"   # w3 has only 324 MiB left


def test_spread_instance_balances_the_group():
    ws = workers(3)
    req = TaskRequest(cpu=10, memory=10, group="service:a")
    counts = Counter(place_many(req, ws, 9))
    assert counts == {"w1": 3, "w2": 3, "w3": 3}


def test_spread_counts_only_the_tasks_of_the_group():
    ws = workers(2)
    ws[0].groups["service:other"] = 5
    req = TaskRequest(cpu=10, memory=10, group="service:a")
    assert Counter(place_many(req, ws, 4)) == {"w1": 2, "w2": 2}


def test_spread_by_attribute_balances_values_not_workers():
    ws = workers(4, w1={"zone": "a"}, w2={"zone": "a"}, w3={"zone": "a"}, w4={"zone": "b"})
    req = TaskRequest(cpu=0, memory=10, group="g",
                      strategy=parse_strategy("spread(attribute:zone),spread(instanceId)"))
    chosen = place_many(req, ws, 6)
    zones = Counter({"w4": "b"}.get(w, "a") for w in chosen)
    assert zones == {"a": 3, "b": 3}
    assert Counter(w for w in chosen if w != "w4") == {"w1": 1, "w2": 1, "w3": 1}


def test_strategies_combine_in_order():
    ws = workers(4, w1={"zone": "a"}, w2={"zone": "a"}, w3={"zone": "b"}, w4={"zone": "b"})
    req = TaskRequest(cpu=0, memory=256, group="g",
                      strategy=parse_strategy("spread(attribute:zone) binpack(memory)"))
    # zones alternate; inside a zone binpack keeps to one worker until it is full
    assert place_many(req, ws, 6) == ["w1", "w3", "w1", "w3", "w1", "w3"]


def test_random_is_reproducible_with_a_seed_and_uses_every_worker():
    req = TaskRequest(cpu=0, memory=1, group="g", strategy=parse_strategy("random"))
    a = place_many(req, workers(4, memory=10_000), 40, random.Random(7))
    b = place_many(req, workers(4, memory=10_000), 40, random.Random(7))
    assert a == b and set(a) == {"w1", "w2", "w3", "w4"}


def test_distinct_instance_never_co_locates():
    ws = workers(3)
    req = TaskRequest(cpu=0, memory=10, group="service:a", constraints=[parse_constraint("distinctInstance")],
                      strategy=parse_strategy("binpack(memory)"))
    assert sorted(place_many(req, ws, 3)) == ["w1", "w2", "w3"]
    d = place(req, ws, explain=True)
    assert d.worker is None
    assert d.reason == "no worker fits (cpu 0, memory 10 MiB): 3 distinctInstance"
    assert all("already runs a task of service:a" in c.why for c in d.candidates)


def test_member_of_filters_by_attributes():
    ws = workers(3, w1={"zone": "a", "disk": "ssd"}, w2={"zone": "b", "disk": "ssd"}, w3={"zone": "b"})
    req = TaskRequest(cpu=0, memory=10, group="g",
                      constraints=[parse_constraint("memberOf(attribute:zone == b and attribute:disk exists)")])
    assert set(place_many(req, ws, 3)) == {"w2"}


@pytest.mark.parametrize("expr, attrs, expected", [
    ("attribute:zone == a", {"zone": "a"}, True),
    ("attribute:zone != a", {}, True),
    ("attribute:zone in [a, b]", {"zone": "b"}, True),
    ("attribute:zone not in [a, b]", {"zone": "b"}, False),
    ("attribute:zone not_in [a, b]", {"zone": "c"}, True),
    ("attribute:gpu exists", {"gpu": "1"}, True),
    ("attribute:gpu !exists", {"gpu": "1"}, False),
    ("attribute:cores >= 4", {"cores": "16"}, True),        # numbers compare as numbers
    ("attribute:cores > 4", {}, False),
    ("attribute:type =~ big.*", {"type": "big.2"}, True),
    ("not (attribute:zone == a or attribute:zone == b)", {"zone": "c"}, True),
    ("attribute:a == 1 && !(attribute:b == 2)", {"a": "1", "b": "3"}, True),
])
def test_expressions(expr, attrs, expected):
    assert evaluate(parse_expression(expr), attrs) is expected


@pytest.mark.parametrize("expr, message", [
    ("zone == a", "expected attribute:NAME but found 'zone'"),
    ("attribute:zone", "expected an operator"),
    ("attribute:zone in [a, b", "expected ] but found the end"),
    ("attribute:zone == a b", "unexpected 'b'"),
    ("attribute:t =~ (", "bad pattern"),
    ("", "required"),
])
def test_bad_expressions_say_what_was_expected(expr, message):
    with pytest.raises(ExpressionError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_expression(expr)


def test_a_task_that_fits_nowhere_says_why():
    ws = workers(3, cpu=1024, memory=512)
    ws[0].reserved_memory = 500
    ws[1].status = "DRAINING"
    ws[2].reserved_cpu = 1000
    req = TaskRequest(cpu=100, memory=100, group="g")
    d = place(req, ws, explain=True)
    assert d.worker is None
    assert d.reason == "no worker fits (cpu 100, memory 100 MiB): 1 draining, 1 not enough cpu, 1 not enough memory"
    why = {c.worker: c.why for c in d.candidates}
    assert why == {"w1": "memory: needs 100 MiB, 12 of 512 free", "w2": "draining",
                   "w3": "cpu: needs 100 units, 24 of 1024 free"}
    assert place(req, []).reason == "no workers in the cluster"


def test_host_ports_are_exclusive():
    ws = workers(2)
    req = TaskRequest(cpu=0, memory=1, group="g", ports=(8080,))
    assert sorted(place_many(req, ws, 2)) == ["w1", "w2"]
    assert "1 host port taken" in place(req, ws[:1]).reason


def test_explain_lists_every_candidate_with_its_score():
    ws = workers(3)
    ws[1].groups["g"] = 2
    ws[2].status = "LOST"
    d = place(TaskRequest(cpu=0, memory=1, group="g"), ws, explain=True)
    assert d.worker == "w1"
    assert [(c.worker, c.kept) for c in d.candidates] == [("w1", True), ("w2", True), ("w3", False)]
    assert d.candidates[0].why == "spread(instanceId): 0 of the group here (chosen)"
    assert d.candidates[1].why == "spread(instanceId): 2 of the group here (rank 2)"
    assert d.to_json()["candidates"][2] == {"worker": "w3", "kept": False, "why": "lost", "score": []}


@pytest.mark.parametrize("text", ["spread(cpu)", "binpack(disk)", "pack", "spread(attribute:)"])
def test_bad_strategies(text):
    with pytest.raises(PlacementError):
        parse_strategy(text)


def test_bad_constraint():
    with pytest.raises(PlacementError, match="use distinctInstance or memberOf"):
        parse_constraint("sameInstance")
