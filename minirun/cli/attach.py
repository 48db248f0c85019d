"""Being attached to a foreground container: wait for it, pass on signals, or relay a terminal.

For `run -it` and `exec -it` the container has a pty from its own devpts; we hold the master.
Our terminal goes into raw mode so every key (Ctrl-C included) reaches the container's line
discipline, which delivers SIGINT to the container's foreground process as a real terminal
would; SIGWINCH copies our window size to the pty. Without a terminal, the signals we receive
(Ctrl-C, SIGTERM from a supervisor...) are forwarded to the container's process.
"""

from __future__ import annotations

# `minirun run` waits here for every foreground container: _signal rather than signal (whose
# IntEnums import enum), and the terminal's modules (termios, tty, select, fcntl) only for -t
import _signal
import os
import sys
from _signal import SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2

FORWARDED = (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2)


def console_size() -> tuple[int, int]:
    try:
        size = os.get_terminal_size(sys.stdin.fileno())
    except OSError:
        return 0, 0
    return size.lines, size.columns


def wait_child(pid: int, target_pid: int, master: int | None) -> int:
    """Wait for our child `pid` (the monitor, or the exec'd process), relaying the terminal or
    forwarding signals to `target_pid`. Returns the child's exit status (128+N for signal N)."""
    if master is not None:
        _relay(master)
        return _wait(pid)
    previous = {}
    for sig in FORWARDED:
        previous[sig] = _signal.signal(sig, lambda s, _f: _forward(target_pid, s))
    try:
        return _wait(pid)
    finally:
        for sig, handler in previous.items():
            _signal.signal(sig, handler)


def _forward(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait(pid: int) -> int:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 255
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _relay(master: int) -> None:
    import contextlib
    import fcntl
    import select
    import signal
    import termios
    import tty

    stdin = sys.stdin.fileno()
    stdout = sys.stdout.fileno()
    is_tty = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if is_tty else None

    def resize(*_):
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8))

    old_winch = signal.signal(signal.SIGWINCH, resize) if is_tty else None
    try:
        if is_tty:
            tty.setraw(stdin)
            resize()
        inputs = [master, stdin]
        while True:
            try:
                ready, _, _ = select.select(inputs, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:          # EIO: every slave fd is closed, the container is done
                    data = b""
                if not data:
                    return
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    inputs.remove(stdin)  # our input ended; keep showing the output
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        os.close(master)
