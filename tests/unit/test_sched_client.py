"""The cluster client's one-line errors: a manager whose queue of connections is full."""

from __future__ import annotations

import socket

import pytest

from minirun.errors import ClusterError
from minirun.sched import client


def test_a_full_connection_queue_is_a_cluster_error_not_a_crash(tmp_path):
    """connect() with a timeout to a Unix socket whose backlog is full fails at once with EAGAIN
    (BlockingIOError). It reached a worker's reconciler thread uncaught and ended it, so the
    worker never started its tasks (`service create --wait` timed out in a CI run). It must be
    a ClusterError, which the worker and the CLI already handle: retry, or one line."""
    path = client.socket_path(tmp_path)
    path.parent.mkdir()
    server = socket.socket(socket.AF_UNIX)
    held = []
    try:
        server.bind(str(path))
        server.listen(0)                      # never accepted: the queue fills
        with pytest.raises(ClusterError, match="queue of connections is full"):
            for _ in range(8):
                c = socket.socket(socket.AF_UNIX)
                held.append(c)
                c.setblocking(False)
                try:
                    c.connect(str(path))
                except BlockingIOError:
                    break                     # full now
            client.call(tmp_path, "GET", "/v1/cluster", timeout=2)
    finally:
        for c in held:
            c.close()
        server.close()


def test_the_manager_listens_with_room_for_a_burst():
    from minirun.sched.manager import _Server

    assert _Server.request_queue_size >= 64
