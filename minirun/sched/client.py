"""The manager's API from the outside: HTTP/1.0 + JSON over the Unix socket ROOT/cluster/manager.sock.

The CLI and the workers call `call()`. It uses http.client with a socket of family AF_UNIX, no
third-party HTTP library, so a `minirun service ls` stays quick to start. An error the manager
reports comes back as the same domain exception (by its class name), so the CLI maps it to an
exit status in its one place; a manager that is not there is a ClusterError that says so.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from pathlib import Path
from typing import Any

from minirun import errors
from minirun.errors import ClusterError


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


def socket_path(root: str | os.PathLike) -> Path:
    return Path(root) / "cluster" / "manager.sock"


def call(root: str | os.PathLike, method: str, path: str, body: Any = None,
         timeout: float = 30.0) -> Any:
    sock = socket_path(root)
    conn = _UnixConnection(str(sock), timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (FileNotFoundError, ConnectionRefusedError):
            raise ClusterError(f"the cluster is not running (no manager at {sock}): "
                               "start it with minirun cluster up") from None
        except TimeoutError:
            raise ClusterError(f"the manager did not answer {method} {path} within {timeout:g} s") from None
        except BlockingIOError:
            # connect() to a Unix socket whose backlog is full: EAGAIN, not a wait
            raise ClusterError("the manager is busy (its queue of connections is full): try again") from None
        except (ConnectionError, http.client.HTTPException) as e:
            raise ClusterError(f"lost the connection to the manager ({e.__class__.__name__})") from None
    finally:
        conn.close()
    try:
        payload = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        raise ClusterError(f"the manager answered {resp.status} with something that is not JSON") from None
    if resp.status >= 400:
        err = (payload or {}).get("error", {})
        cls = getattr(errors, err.get("type", ""), None)
        message = err.get("message", f"HTTP {resp.status}")
        if cls is errors.TaskDefinitionError:
            raise errors.TaskDefinitionError([tuple(p) for p in err.get("problems", [])])
        if isinstance(cls, type) and issubclass(cls, errors.MinirunError):
            raise cls(message)
        raise ClusterError(message)
    return payload
