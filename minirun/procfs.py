"""Facts about processes from /proc (proc(5)): is this pid still *our* process?

A pid alone can be reused after the process dies; pid + start time (field 22 of /proc/PID/stat,
in clock ticks since boot) names one process for the life of the machine.
"""

from __future__ import annotations

# _signal, not signal: the C module signal.py wraps, loaded at start-up already (no new module
# on the run path); its SIG* constants are signal.Signals' members
import _signal
import os

from minirun.errors import MinirunError

PROC = "/proc"


def start_time(pid: int, proc: str = PROC) -> int | None:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":       # a zombie has exited; only its exit status is left to collect
        return None
    return int(fields[19])


def is_alive(pid: int | None, started: int | None, proc: str = PROC) -> bool:
    return bool(pid) and started is not None and start_time(pid, proc) == started


def send_signal(pid: int | None, started: int | None, sig: int) -> None:
    """Send `sig` to process `pid` if it is still the one that started at `started`: through a
    pidfd (pidfd_open(2)) checked against the start time, so a recycled pid is never hit. No such
    process (or none recorded): nothing to do."""
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, TypeError):
        return
    try:
        if start_time(pid) == started:
            _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def kill_child(pid: int) -> None:
    """SIGKILL a child of ours (one we have not reaped cannot have been recycled: no pid check)."""
    try:
        os.kill(pid, _signal.SIGKILL)
    except ProcessLookupError:
        pass


def reap(pid: int, flags: int = 0) -> None:
    """Collect child `pid`'s exit status (waitpid(2)); not our child, or collected: no-op."""
    try:
        os.waitpid(pid, flags)
    except ChildProcessError:
        pass


def signal_number(name: str | int) -> int:
    """9, KILL or SIGKILL, as kill(1) and runc accept them."""
    if isinstance(name, int) or str(name).isdigit():
        return int(name)
    name = str(name).upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    # SIG_DFL, SIG_IGN, SIG_BLOCK...: constants of _signal, but no signals
    number = getattr(_signal, name, None) if "_" not in name else None
    if not isinstance(number, int):
        raise MinirunError(f"unknown signal {name}")
    return number


def wait_exited(pid: int, timeout: float | None) -> bool:
    """Block until process `pid` has exited, for at most `timeout` seconds (None: no bound).
    A pidfd turns readable when its process exits, whoever its parent is (pidfd_open(2)).
    False if it still runs at the timeout; True once it has exited, or if there is no such pid."""
    # imported here: a C module, but one most users of this module never need
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def process_info(pid: int, proc: str = PROC) -> dict | None:
    """uid, state, cpu time and command line of a process, for `top`."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        st = os.stat(f"{proc}/{pid}")
    except (FileNotFoundError, ProcessLookupError):
        return None
    comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode(errors="replace")
    fields = stat[stat.rindex(b")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    return {
        "pid": pid,
        "ppid": int(fields[1]),
        "uid": st.st_uid,
        "state": fields[0].decode(),
        "cpu_seconds": (int(fields[11]) + int(fields[12])) / ticks,
        "command": " ".join(args) if args else f"[{comm}]",
    }


def in_pid_namespace(pid: int, proc: str = "/proc") -> list[int]:
    """The processes in the pid namespace of `pid` (pid_namespaces(7)), as this namespace
    numbers them: for a container without a cgroup of its own (rootless)."""
    try:
        ns = os.readlink(f"{proc}/{pid}/ns/pid")
    except OSError:
        return []
    out = []
    for entry in os.listdir(proc):
        if entry.isdigit():
            try:
                if os.readlink(f"{proc}/{entry}/ns/pid") == ns:
                    out.append(int(entry))
            except OSError:
                continue
    return out
