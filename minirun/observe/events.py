"""`minirun events`: what happened to containers and images, as Docker's `docker events` shows it.

The log is one append-only file of JSON lines, `ROOT/events/events.jsonl`:

    {"Type": "container", "Action": "die", "Actor": {"ID": "3f2a…", "Attributes":
     {"exitCode": "3", "image": "busybox", "name": "web"}}, "scope": "local",
     "time": 1764115200, "timeNano": 1764115200123456789}

Writers are whoever makes the change, in whatever process: the library (runtime/containers.py,
images/store.py; `emit()` below) and the native monitor (c_ext/monitor.c), which writes "oom" and
"die" at the moment the container exits, when no Python process may be running at all. Every
writer opens the file with O_APPEND and puts each event in a single write(2): the kernel moves
to the end and writes under the file's lock, so lines from any number of processes never
interleave (write(2), "O_APPEND"; a line is far below any size where a regular-file write is
split). No daemon, no lock on the hot path: an event costs one open, one write, one close.

When the file passes ROTATE_BYTES, the writer that notices renames it to `events.jsonl.1`
(replacing the previous one), so the log keeps between 1 and 2 ROTATE_BYTES of history
(~4,000–8,000 events). Readers read `.1` then the current file; a follower notices the rename
(a new inode at the path) and carries on with the new file.

Other subsystems emit through `emit(root, type, action, actor_id, attributes)`: networking
(net/container.py, net/networks.py) writes `Type "network"` with Actions "create", "destroy",
"connect" and "disconnect", the network's id as the Actor and `{"container": ID, "name":
NETWORK, "type": "bridge"}` as attributes, as Docker does.
"""

from __future__ import annotations

import fcntl
import os
import time

# every container start emits events: no json (it imports re), no pathlib at import; the
# readers (`minirun events`) are not on that path
from minirun import lean

TYPE_CHECKING = False     # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

ROTATE_BYTES = 1 << 20
FILE = "events.jsonl"
TYPES = ("container", "image", "network")
FILTER_KEYS = ("type", "event", "container", "image", "network")


def path(root: str | os.PathLike) -> Path:
    from pathlib import Path

    return Path(root) / "events" / FILE


def encode(type: str, action: str, actor_id: str, attributes: dict | None = None,
           time_ns: int | None = None) -> bytes:
    """One event as the line written to the log (Docker's field names; attribute values strings)."""
    t = time.time_ns() if time_ns is None else time_ns
    attrs = {str(k): str(v) for k, v in (attributes or {}).items() if v is not None}
    return (lean.dumps({"Type": type, "Action": action, "Actor": {"ID": actor_id, "Attributes": attrs},
                        "scope": "local", "time": t // 1_000_000_000, "timeNano": t}) + "\n").encode()


def emit(root: str | os.PathLike, type: str, action: str, actor_id: str,
         attributes: dict | None = None) -> None:
    """Append one event to ROOT's log: one write(2) on an O_APPEND descriptor."""
    line = encode(type, action, actor_id, attributes)
    p = os.path.join(root, "events", FILE)      # path(root), as a str
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(p, flags, 0o644)
    except FileNotFoundError:                   # first event under this root
        os.makedirs(os.path.dirname(p), mode=0o755, exist_ok=True)
        fd = os.open(p, flags, 0o644)
    try:
        os.write(fd, line)
        if os.fstat(fd).st_size > ROTATE_BYTES:
            _rotate(fd, p)
    finally:
        os.close(fd)


def _rotate(fd: int, p: str) -> None:
    """Rename the full file to .1. Of several writers that see it full, the one holding the
    file's lock renames it, and only if the path still names this file (no one rotated it yet)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return                                  # another writer is rotating it
    try:
        if os.stat(p).st_ino == os.fstat(fd).st_ino:
            os.rename(p, p + ".1")                  # events.jsonl.1
    except FileNotFoundError:
        pass
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


# -- reading ----------------------------------------------------------------------------------
def parse_time(text: str, now: float | None = None) -> int:
    """--since/--until, as Docker takes them: Unix seconds (`1764115200`, `1764115200.5`), a
    duration before now (`10m`, `1h30m`, `45s`, `500ms`), or an RFC 3339 / ISO 8601 time
    (`2026-11-26T00:10:00Z`; a time without a zone is UTC). Returns nanoseconds since the epoch."""
    import datetime as _dt
    import re

    from minirun.errors import UsageError

    s = text.strip()
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return int(float(s) * 1e9)
    if re.fullmatch(r"(\d+(\.\d+)?(ms|h|m|s))+", s):
        units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
        seconds = sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", s))
        return int((now - seconds) * 1e9)
    try:
        dt = _dt.datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        raise UsageError(f"{text!r}: not a time (Unix seconds, a duration like 10m, or "
                         "2026-11-26T00:10:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.UTC)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def parse_filters(items: Iterable[str]) -> dict[str, set[str]]:
    """`--filter key=value`, repeatable: the same key twice is either, different keys are all."""
    from minirun.errors import UsageError

    out: dict[str, set[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value or key not in FILTER_KEYS:
            raise UsageError(f"--filter {item}: expected KEY=VALUE with KEY one of "
                             + ", ".join(FILTER_KEYS))
        if key == "type" and value not in TYPES:
            raise UsageError(f"--filter {item}: type is one of " + ", ".join(TYPES))
        out.setdefault(key, set()).add(value)
    return out


def matches(event: dict, filters: dict[str, set[str]]) -> bool:
    actor = event.get("Actor", {})
    ident = actor.get("ID", "")
    attrs = actor.get("Attributes", {})
    kind = event.get("Type")
    for key, wanted in filters.items():
        if key == "type":
            ok = kind in wanted
        elif key == "event":   # Docker's "exec_start: sh -c …" matches event=exec_start
            ok = event.get("Action", "").split(":", 1)[0] in wanted
        elif key in ("container", "network"):
            ok = kind == key and any(ident.startswith(w) or attrs.get("name") == w for w in wanted)
            if key == "container" and kind == "network":   # a container's connect/disconnect
                ok = any(attrs.get("container", "").startswith(w) for w in wanted)
        else:                  # image: the image's own events, and containers made from it
            names = {_tagged(n) for n in (attrs.get("image"), attrs.get("name") if kind == "image" else None) if n}
            ok = any(_tagged(w) in names
                     or (kind == "image" and ident.removeprefix("sha256:").startswith(w.removeprefix("sha256:")))
                     for w in wanted)
        if not ok:
            return False
    return True


def _tagged(name: str) -> str:
    """`busybox` and `busybox:latest` are one image name (a tag after the last '/')."""
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _lines(f) -> Iterator[dict]:
    for raw in f:
        if raw.endswith(b"\n"):
            try:
                yield lean.loads(raw)
            except ValueError:
                continue                        # a line cut by a crash mid-write: skip it


def history(root: str | os.PathLike, since: int | None = None, until: int | None = None,
            filters: dict[str, set[str]] | None = None) -> list[dict]:
    """The stored events between `since` and `until` (nanoseconds, inclusive) that pass the filters."""
    p = path(root)
    out = []
    for name in (p.with_name(FILE + ".1"), p):
        try:
            f = open(name, "rb")
        except FileNotFoundError:
            continue
        with f:
            for ev in _lines(f):
                t = ev.get("timeNano", 0)
                if (since is None or t >= since) and (until is None or t <= until) \
                        and matches(ev, filters or {}):
                    out.append(ev)
    out.sort(key=lambda e: e.get("timeNano", 0))    # two files; writers' clocks race by µs
    return out


def follow(root: str | os.PathLike, filters: dict[str, set[str]] | None = None,
           since: int | None = None, until: int | None = None, poll: float = 0.05) -> Iterator[dict]:
    """History from `since` (nothing from before the call if None), then every new event as it
    is appended, until the clock passes `until` (never if None) or the caller stops (Ctrl-C)."""
    filters = filters or {}
    p = path(root)
    f = None
    ino = None
    try:                   # open first, then read history up to the offset we follow from:
        f = open(p, "rb")  # nothing is lost or shown twice between the two
        ino = os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        pass
    end = f.seek(0, os.SEEK_END) if f else 0
    if since is not None:
        yield from (e for e in _upto(root, since, end, filters)
                    if until is None or e.get("timeNano", 0) <= until)
    buf = b""
    try:
        while until is None or time.time_ns() <= until:
            chunk = f.read() if f else b""
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                yield from (e for e in _decode(lines, filters)
                            if until is None or e.get("timeNano", 0) <= until)
                continue
            try:
                now_ino = os.stat(p).st_ino
            except FileNotFoundError:
                now_ino = None
            if now_ino is not None and now_ino != ino:    # created, or rotated to .1
                if f:
                    rest = f.read()                      # a write that raced the rename
                    f.close()
                    yield from _decode((buf + rest).split(b"\n")[:-1], filters)
                buf = b""
                f = open(p, "rb")
                ino = os.fstat(f.fileno()).st_ino
                continue
            time.sleep(poll)
    finally:
        if f:
            f.close()


def _decode(lines: Iterable[bytes], filters) -> Iterator[dict]:
    for raw in lines:
        try:
            ev = lean.loads(raw)
        except ValueError:
            continue
        if matches(ev, filters):
            yield ev


def _upto(root, since: int, end: int, filters) -> Iterator[dict]:
    """History from `since` in .1 and the current file's first `end` bytes."""
    p = path(root)
    found = []
    for name, limit in ((p.with_name(FILE + ".1"), None), (p, end)):
        try:
            with open(name, "rb") as f:
                data = f.read() if limit is None else f.read(limit)
        except FileNotFoundError:
            continue
        for ev in _lines(data.splitlines(keepends=True)):
            if ev.get("timeNano", 0) >= since and matches(ev, filters):
                found.append(ev)
    found.sort(key=lambda e: e.get("timeNano", 0))
    yield from found


def human(ev: dict) -> str:
    """Docker's plain line: `2026-11-26T00:12:00.123456789Z container die 3f2a… (exitCode=3, name=web)`."""
    import datetime as _dt

    t = ev.get("timeNano", 0)
    stamp = _dt.datetime.fromtimestamp(t // 1_000_000_000, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    attrs = ev.get("Actor", {}).get("Attributes", {})
    tail = f" ({', '.join(f'{k}={v}' for k, v in sorted(attrs.items()))})" if attrs else ""
    return f"{stamp}.{t % 1_000_000_000:09d}Z {ev.get('Type')} {ev.get('Action')} " \
           f"{ev.get('Actor', {}).get('ID', '')}{tail}"
