"""The parent's side of the conversation with the native child (unix(7) SOCK_SEQPACKET).

The protocol is drawn once, with its numbered sync points, at the top of c_ext/sync.h; the
numbers in this module's comments are those. Here: send_go() is (5), wait_ready() reads (7)
(and (6a) the pty master, (6b) the hooks stop), go_and_wait() runs (5) to (7) in order.
"""

from __future__ import annotations

# The C module, not socket.py: the wrapper's imports cost ~1.5 ms on every `minirun run`.
import _socket as socket
import os
import sys

from minirun import lean
from minirun._native import ffi, lib
from minirun.records import field, record

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

MSG_SIZE = ffi.sizeof("struct mr_msg")
_INT = ffi.sizeof("int")


@record
class ChildReport:
    """What the child said before execve (or before blocking on the exec fifo)."""

    error: object | None = None          # a copy of struct mr_err, if it failed
    tty_master: int | None = None        # the pty master fd, for a terminal
    stamps: list[int] = field(default_factory=list)   # CLOCK_MONOTONIC ns per step (trace)
    items: list[int] = field(default_factory=list)    # ... per entry of the mount list / setns
    ready: bool = False                  # blocked on the exec fifo, waiting for `start`
    hooks: bool = False                  # (6b) stopped before pivot_root, waiting for GO


def socketpair() -> tuple[socket.socket, socket.socket]:
    """(parent end, child end); both close-on-exec, so execve in the child closes its end."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


class Channel:
    """The spawn channel: the socketpair of one spawn (2) and the fds lent to the child for it
    (namespace and cgroup.procs files, the exec fifo, pipes). As a context manager around the
    launch: when the block ends, however it ends, the child's end and the lent fds are closed
    (the child has its copies by then); if it raised, our end too, which makes a child that
    waits for GO fail and exit. After a successful block, `parent` is left for the handshake
    (go_and_wait or wait_ready close it)."""

    def __init__(self):
        self.parent, self.child = socketpair()
        self.lent: list[int] = []

    def lend(self, *fds: int) -> None:
        """Close these fds of ours when the launch is over."""
        self.lent += fds

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, kind, value, traceback) -> bool:
        self.child.close()
        for fd in self.lent:
            os.close(fd)
        self.lent.clear()
        if kind is not None:
            self.parent.close()
        return False


def send_go(sock: socket.socket) -> None:
    """(5) The parent has done its part; the child may build the container."""
    msg = ffi.new("struct mr_msg *")
    msg.type = lib.MR_MSG_GO
    sock.sendall(bytes(ffi.buffer(msg)))


def go_and_wait(sock: socket.socket, record_pid: Callable[[], None],
                waiting: AbstractContextManager | None = None,
                on_hooks: Callable[[], None] | None = None, go: bool = True) -> ChildReport:
    """(5) GO, then record the pid while the child builds its container (6), then (7) its
    report; the socket is closed at the end. Recording after GO is safe because the cgroup,
    made before the clone and named after the container, already ties the process to it.
    `waiting` wraps the wait (a tracer's phase). (6b) If the child stops for the hooks,
    `on_hooks()` runs and GO lets it go on; if it raises, closing the socket makes the child
    fail at that step and exit. `go=False` (3'): the child did not wait for GO, and has
    exec'd or failed already; only its report is left to read."""
    try:
        if go:
            with lean.suppress(BrokenPipeError, ConnectionResetError):
                send_go(sock)               # a child already gone has left its report
        record_pid()
        with waiting or lean.suppress():       # (suppressing nothing: a null context)
            report = wait_ready(sock)
            if report.hooks:
                if on_hooks is not None:
                    on_hooks()
                with lean.suppress(BrokenPipeError, ConnectionResetError):
                    send_go(sock)
                report = wait_ready(sock)
            return report
    finally:
        sock.close()


def wait_ready(sock: socket.socket) -> ChildReport:
    """(7) Read what the child reports until EOF (exec happened), an error, or READY."""
    report = ChildReport()
    while True:
        try:
            data, fds = _recv_with_fds(sock)
        except ConnectionResetError:
            # the child exited with a message of ours unread (a GO sent after it had failed,
            # e.g. at "join cgroup"): the kernel says so once; what it sent is still queued
            try:
                data, fds = _recv_with_fds(sock)
            except ConnectionResetError:
                data, fds = b"", []
        if not data:
            return report
        msg = ffi.new("struct mr_msg *")
        ffi.memmove(msg, data, min(len(data), MSG_SIZE))
        if msg.type == lib.MR_MSG_TTY and fds:
            report.tty_master = fds[0]
        elif msg.type == lib.MR_MSG_TRACE:
            report.stamps = list(msg.stamps)
            report.items = list(msg.items)
        elif msg.type == lib.MR_MSG_ERROR:
            err = ffi.new("struct mr_err *")
            err[0] = msg.err
            report.error = err
            return report
        elif msg.type == lib.MR_MSG_READY:
            report.ready = True
            return report
        elif msg.type == lib.MR_MSG_HOOKS:
            report.hooks = True
            return report


def _recv_with_fds(sock) -> tuple[bytes, list[int]]:
    """One message and any fds passed with it (SCM_RIGHTS), like socket.recv_fds. The payload
    is an array of C ints, read here without the array module (which imports collections)."""
    data, ancdata, _flags, _addr = sock.recvmsg(MSG_SIZE, socket.CMSG_SPACE(_INT))
    fds = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += [int.from_bytes(payload[i:i + _INT], sys.byteorder, signed=True)
                    for i in range(0, len(payload) - len(payload) % _INT, _INT)]
    return data, fds
