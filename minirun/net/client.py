"""Asking netd (netd.py) to change the host's network: one JSON request per connection.

The first request of a data root starts netd (about 0.3 s, once); a netd that has exited since
(idle, killed) is started again transparently. Errors come back by kind and are raised as the
same domain errors the CLI maps to exit statuses.
"""

from __future__ import annotations

import _socket as socket
import json
import os
import sys
import time
from pathlib import Path

from minirun import errors

_KINDS = {"AddressInUse": errors.AddressInUse, "NetworkNotFound": errors.NetworkNotFound,
          "UsageError": errors.UsageError}


def socket_path(root: Path) -> Path:
    return root / "net" / "netd.sock"


def call(root: Path, request: dict, start: bool = True) -> dict:
    """Send a request, return the reply; raises NetworkError (or the kind netd names)."""
    from minirun import faults

    root = Path(os.path.abspath(root))
    if faults.armed():                       # a test crashes us, and netd, at one of netd's steps
        request = dict(request, fault=faults.armed())
    payload = json.dumps(request).encode()
    started = None
    while True:
        try:
            reply = _exchange(socket_path(root), payload)
            break
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, _NoReply):
            if not start:
                raise errors.NetworkError("the network helper is not running") from None
            if started is None:
                _start(root)
                started = time.monotonic()
            elif time.monotonic() - started > 30:
                raise errors.NetworkError(f"the network helper does not answer (see {root}/net/netd.log)") from None
            else:
                time.sleep(0.01)      # another command is starting it right now
    if "error" in reply:
        raise _KINDS.get(reply.get("kind"), errors.NetworkError)(reply["error"])
    return reply


class _NoReply(Exception):
    pass


def _exchange(path: Path, payload: bytes) -> dict:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(60.0)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        s.close()
    if not chunks:
        raise _NoReply
    return json.loads(b"".join(chunks))


def _start(root: Path) -> None:
    """Start netd and wait until its socket is bound (its first process exits then)."""
    import subprocess

    (root / "net").mkdir(parents=True, exist_ok=True)
    with open(root / "net" / "netd.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "minirun.net.netd", "--root", str(root)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, close_fds=True, cwd="/")
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = -1
    if code != 0:
        raise errors.NetworkError(f"the network helper failed to start (see {root}/net/netd.log)")


def running(root: Path) -> bool:
    try:
        _exchange(socket_path(Path(os.path.abspath(root))), b'{"op": "ping"}')
    except (OSError, _NoReply):
        return False
    return True


def shutdown(root: Path, timeout: float = 5.0) -> None:
    """Ask netd to exit (nothing happens if it is not running) and wait until it has: it holds
    ROOT/net/netd.lock for as long as it lives."""
    import fcntl
    import time

    root = Path(os.path.abspath(root))
    try:
        _exchange(socket_path(root), b'{"op": "shutdown"}')
    except (OSError, _NoReply):
        pass
    try:
        fd = os.open(root / "net" / "netd.lock", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
    finally:
        os.close(fd)
