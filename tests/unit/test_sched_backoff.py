"""Restart backoff and the service reconciler, on a fake clock."""

from __future__ import annotations

import random

from minirun.sched.backoff import BackoffPolicy, RestartState
from minirun.sched.reconcile import ServiceView, TaskView, check_bounds, plan


def test_delays_double_up_to_the_cap_with_bounded_jitter():
    policy = BackoffPolicy(base=1, factor=2, cap=20, jitter=0.2, reset_after=30)
    state, rng, now = RestartState(), random.Random(1), 1000.0
    waits = []
    for _ in range(8):
        waits.append(state.failed(now, ran_for=2.0, policy=policy, rng=rng))
        assert not state.may_start(now + waits[-1] - 0.001)
        now += waits[-1]
        assert state.may_start(now)
    for n, w in enumerate(waits, start=1):
        nominal = min(20, 2 ** (n - 1))
        assert nominal * 0.8 <= w <= min(20, nominal * 1.2), (n, w)
    assert waits[-1] <= 20 and waits[-2] <= 20
    assert len({round(w, 6) for w in waits[5:]}) > 1        # jitter: capped waits still differ


def test_a_stable_run_resets_the_count():
    policy = BackoffPolicy(base=1, factor=2, cap=60, jitter=0, reset_after=30)
    state, rng = RestartState(), random.Random(0)
    assert [state.failed(0, 1, policy, rng) for _ in range(4)] == [1, 2, 4, 8]
    assert state.failed(100, ran_for=31, policy=policy, rng=rng) == 1
    assert state.failed(101, ran_for=None, policy=policy, rng=rng) == 2


def test_same_seed_same_delays():
    p = BackoffPolicy()
    a = [RestartState().failed(0, 0, p, random.Random(5)) for _ in range(3)]
    assert a == [RestartState().failed(0, 0, p, random.Random(5)) for _ in range(3)]


def tasks(td, n, status="RUNNING", start=0):
    return [TaskView(f"{td}-{i}", td, status, created=i) for i in range(start, start + n)]


def test_scaling_reaches_exact_counts():
    svc = ServiceView("s", "web:1", desired=5)
    assert plan(svc, []) == (5, [])
    assert plan(svc, tasks("web:1", 3)) == (2, [])
    svc.desired = 2
    current = tasks("web:1", 3) + tasks("web:1", 2, status="PENDING", start=3)
    start, stop = plan(svc, current)
    assert start == 0 and sorted(stop) == ["web:1-2", "web:1-3", "web:1-4"]   # pending first, then newest


def test_rolling_deployment_keeps_minimum_healthy_and_maximum():
    svc = ServiceView("s", "web:2", desired=4, minimum_healthy_percent=50, maximum_percent=150)
    old = tasks("web:1", 4)
    start, stop = plan(svc, old)
    assert start == 2 and len(stop) == 2           # 6 may exist; 2 must stay healthy
    old = [t for t in old if t.id not in stop]
    new = tasks("web:2", 2, status="PENDING")
    assert plan(svc, old + new) == (2, [])         # room for 2 more; the 2 old ones must stay
    new = tasks("web:2", 2, status="PENDING") + tasks("web:2", 2, start=2)
    assert plan(svc, old + new) == (0, sorted(t.id for t in old))   # 4 healthy, 2 needed
    new = tasks("web:2", 4)
    start, stop = plan(svc, old + new)
    assert start == 0 and len(stop) == 2
    assert plan(svc, tasks("web:2", 4)) == (0, [])


def test_default_bounds_start_all_new_before_stopping_old():
    svc = ServiceView("s", "web:2", desired=3)
    assert plan(svc, tasks("web:1", 3)) == (3, [])
    start, stop = plan(svc, tasks("web:1", 3) + tasks("web:2", 3))
    assert start == 0 and len(stop) == 3


def test_unhealthy_old_tasks_may_always_go():
    svc = ServiceView("s", "web:2", desired=2)
    old = tasks("web:1", 2)
    old[0].healthy = False
    assert plan(svc, old)[1] == ["web:1-0"]


def test_bounds():
    assert check_bounds(100, 200) is None
    assert "no room" in check_bounds(100, 100)
    assert check_bounds(101, 200) == "minimumHealthyPercent must be from 0 to 100"
