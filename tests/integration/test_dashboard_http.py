"""The dashboard's port, without a browser: the page's files, the token, what the port lets
through (reads and three actions, nothing else), and a non-loopback bind refused without a token.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import urllib.parse
from pathlib import Path

from cluster_helpers import FAST, register, running, sleeper, tasks, wait_until, workers


def _address(m) -> tuple[str, int, str]:
    url = m.out("dashboard")
    base, _, token = url.partition("#token=")
    u = urllib.parse.urlsplit(base)
    return u.hostname, u.port, token


def _http(host: str, port: int, method: str, path: str, token: str | None = None, body=None):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        return r.status, dict(r.getheaders()), raw
    finally:
        conn.close()


def test_page_token_and_what_the_port_allows(cluster, tmp_path):
    out = cluster.out("cluster", "up", "--workers", "2", "--worker-memory", "256m", *FAST)
    host, port, token = _address(cluster)
    assert f"dashboard http://127.0.0.1:{port}/#token={token}" in out   # printed at start
    assert host == "127.0.0.1" and len(token) >= 16
    assert cluster.out("cluster", "dashboard") == cluster.out("dashboard")
    assert (cluster.root / "cluster" / "dashboard.token").stat().st_mode & 0o077 == 0

    # the page: static files from the package, each with a policy that forbids outside content
    status, headers, body = _http(host, port, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script src="app.js"' in body and b"http" not in body.split(b"<body>")[0]
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for name in ("app.js", "style.css"):
        assert _http(host, port, "GET", f"/{name}")[0] == 200
    for path in ("/nope.js", "/../pyproject.toml", "/%2e%2e/__init__.py"):
        assert _http(host, port, "GET", path)[0] == 404

    # the API: the same answers as the socket, but only with the token
    for bad in (None, "x" * len(token), token[:-1]):
        status, _, body = _http(host, port, "GET", "/v1/cluster", bad)
        assert status == 401 and json.loads(body)["error"]["type"] == "Unauthorized"
    status, _, body = _http(host, port, "GET", "/v1/cluster", token)
    st = json.loads(body)
    assert status == 200 and [w["id"] for w in st["workers"]] == ["w1", "w2"]
    assert st["manager"]["dashboard"] == f"http://127.0.0.1:{port}/"
    assert json.loads(_http(host, port, "GET", "/v1/services/nope", token)[2])["error"]["type"] == "ResourceNotFound"

    # nothing that starts code or stops the cluster goes through this port
    register(cluster, sleeper(), tmp_path)
    refused = [("POST", "/v1/cluster/shutdown", {}), ("POST", "/v1/services", {"name": "x", "taskDefinition": "sleeper"}),
               ("POST", "/v1/tasks", {"taskDefinition": "sleeper"}), ("POST", "/v1/workers", {"spawn": True}),
               ("POST", "/v1/task-definitions", sleeper("evil")), ("DELETE", "/v1/task-definitions/sleeper:1", None),
               ("POST", "/v1/workers/w1/heartbeat", {}), ("PATCH", "/v1/services/web", {"desiredCount": 1, "taskDefinition": "sleeper"})]
    for method, path, body in refused:
        status, _, raw = _http(host, port, method, path, token, body)
        assert status == 403, (method, path, raw)
        assert json.loads(raw)["error"]["type"] == "Forbidden"
    assert len(workers(cluster)) == 2 and tasks(cluster) == []

    # the three actions, through the same handlers as `service update`, `task stop`, `cluster drain`
    cluster("service", "create", "web", "-t", "sleeper", "-n", "2", "--wait")
    status, _, raw = _http(host, port, "PATCH", "/v1/services/web", token, {"desiredCount": 3})
    assert status == 200 and json.loads(raw)["desired"] == 3
    wait_until("3 running", lambda: len(running(cluster, "web")) == 3)
    victim = running(cluster, "web")[0]["id"]
    status, _, raw = _http(host, port, "POST", f"/v1/tasks/{victim}/stop", token, {"reason": "from the test"})
    assert status == 200
    wait_until("the task stopped", lambda: next(t for t in tasks(cluster, "--all") if t["id"] == victim)["status"] == "STOPPED")
    assert next(t for t in tasks(cluster, "--all") if t["id"] == victim)["stop_reason"] == "from the test"
    status, _, raw = _http(host, port, "POST", "/v1/workers/w1/drain", token, {})
    assert status == 200 and workers(cluster)["w1"]["status"] == "DRAINING"
    wait_until("3 running on w2", lambda: [t["worker"] for t in running(cluster, "web")] == ["w2"] * 3)
    status, _, raw = _http(host, port, "PATCH", "/v1/services/web", token, {"desiredCount": -1})
    assert status == 400 and "desired-count" in json.loads(raw)["error"]["message"]
    for path in ("/v1/events?since=x", "/v1/events?wait=soon"):      # bad numbers: 400, not a crash
        status, _, raw = _http(host, port, "GET", path, token)
        assert status == 400 and json.loads(raw)["error"]["type"] == "UsageError"

    status, _, raw = _http(host, port, "PATCH", "/v1/services/web", token, {"desiredCount": 3, "x": "a" * 70_000})
    assert status == 413

    # a manager killed and started again takes the same port and token: an open page goes on
    url = cluster.out("dashboard")
    mpid = int((cluster.root / "cluster" / "manager.pid").read_text().split()[0])
    os.kill(mpid, signal.SIGKILL)
    wait_until("the manager gone", lambda: not Path(f"/proc/{mpid}").exists())
    cluster("cluster", "up")
    assert cluster.out("dashboard") == url
    assert _http(host, port, "GET", "/v1/services/web", token)[0] == 200

    cluster("cluster", "down")
    assert not (cluster.root / "cluster" / "dashboard.token").exists()
    assert not (cluster.root / "cluster" / "dashboard.json").exists()
    r = cluster("dashboard", check=False)
    assert r.returncode == 125 and "the cluster is not running" in r.stderr and "Traceback" not in r.stderr


def test_non_loopback_bind_needs_a_token(cluster, tmp_path):
    r = cluster("cluster", "up", "--workers", "1", "--dashboard-host", "0.0.0.0", check=False)
    assert r.returncode == 125 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "minirun: --dashboard-host 0.0.0.0 is not a loopback address: it needs "
        "--dashboard-token-file FILE as well (docs/security.md)"]
    assert not (cluster.root / "cluster").exists()          # nothing was started or written
    short = tmp_path / "short"
    short.write_text("abc\n")
    r = cluster("cluster", "up", "--dashboard-host", "0.0.0.0", "--dashboard-token-file", str(short), check=False)
    assert r.returncode == 125 and "at least 16" in r.stderr and not (cluster.root / "cluster").exists()
    r = cluster("cluster", "up", "--dashboard-token-file", str(tmp_path / "missing"), check=False)
    assert r.returncode == 125 and "no such file" in r.stderr
    r = cluster("cluster", "up", "--dashboard-port", "70000", check=False)
    assert r.returncode == 125 and "--dashboard-port 70000" in r.stderr

    # a token of one's own works on loopback too; the port is the one asked for
    mine = tmp_path / "token"
    mine.write_text("correct-horse-battery-staple\n")
    free = _free_port()
    cluster("cluster", "up", "--workers", "1", "--dashboard-port", str(free), "--dashboard-token-file", str(mine), *FAST)
    host, port, token = _address(cluster)
    assert (host, port, token) == ("127.0.0.1", free, "correct-horse-battery-staple")
    assert _http(host, port, "GET", "/v1/workers", token)[0] == 200


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
