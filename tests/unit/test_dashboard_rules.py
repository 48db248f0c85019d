"""What the dashboard's port lets through, and which addresses count as loopback."""

from __future__ import annotations

import pytest

from minirun.errors import UsageError
from minirun.sched import dashboard


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("example.org", False), ("", False)])
def test_loopback(host, loopback):
    assert dashboard.is_loopback(host) is loopback


def test_a_non_loopback_bind_needs_a_good_token():
    dashboard.check_bind("127.0.0.1", None)
    dashboard.check_bind("0.0.0.0", "a" * 16)
    with pytest.raises(UsageError, match="not a loopback address"):
        dashboard.check_bind("0.0.0.0", None)
    for bad in ("a" * 15, "a" * 16 + " b", "a" * 16 + "\n"):
        with pytest.raises(UsageError, match="at least 16"):
            dashboard.check_bind("::", bad)


@pytest.mark.parametrize("method, path, body, ok", [
    ("GET", "/v1/cluster", None, True),
    ("GET", "/v1/tasks/abc/explain", None, True),
    ("POST", "/v1/tasks/abc/stop", {}, True),
    ("POST", "/v1/workers/w1/drain", {}, True),
    ("PATCH", "/v1/services/web", {"desiredCount": 3}, True),
    ("PATCH", "/v1/services/web", {"desiredCount": 3, "cpu": 256}, False),
    ("PATCH", "/v1/services/web", [], False),
    ("POST", "/v1/tasks", {}, False),
    ("POST", "/v1/services", {}, False),
    ("DELETE", "/v1/services/web", None, False),
    ("POST", "/v1/cluster/shutdown", {}, False),
    ("POST", "/v1/workers", {}, False),
    ("POST", "/v1/workers/w1/heartbeat", {}, False),
    ("POST", "/v1/task-definitions", {}, False),
])
def test_what_the_dashboard_may_call(method, path, body, ok):
    parts = path.strip("/").split("/")
    assert (dashboard.allowed(method, parts, body) is None) is ok
