"""Read the commands and expected output out of a lab (docs/labs/*.md) and check them.

The convention, also explained to readers in docs/labs/README.md ("How the labs are tested"):

* Only fenced blocks tagged ``console`` are run; ``sh``, ``text`` and other blocks are not.
* A line starting with ``$ `` is a command. It continues on the next line when it ends in ``\\``
  or when the next line starts with ``> `` (a shell's continuation prompt, which is dropped), so
  a quoted string may span lines.
* The lines after a command, up to the next command or the end of the block, are what it prints
  (stdout and stderr together, as on a terminal). They must match **all** of the output:
    - a line ``...`` matches any number of lines, none included;
    - ``...`` inside a line matches any text within that line;
    - a line ending in `` (re)`` is a Python regular expression for the whole line;
    - a last line ``[N]`` says the command exits with status N (otherwise it must exit 0).
  A command followed by no lines must print nothing.
* All commands of one lab run in order in one bash process, so variables set in one block are
  there in the next, as in a reader's terminal.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^(`{3,})\s*(\S*)")
STATUS = re.compile(r"^\[(\d+)\]$")


@dataclass
class Command:
    text: str                       # the shell command (continuations joined with newlines)
    line: int                       # 1-based line of the `$ ` in the markdown file
    expected: list[str] = field(default_factory=list)
    status: int = 0


def parse(markdown: str) -> list[Command]:
    """The commands of every ```console block, in document order."""
    commands: list[Command] = []
    fence: str | None = None          # the open fence's backticks
    run = False                       # is the open block a console block?
    current: Command | None = None    # the command the output lines belong to
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence, run, current = m.group(1), m.group(2) == "console", None
        elif m and not m.group(2) and m.group(1) == fence:
            fence = None
        elif not run:
            pass
        elif line.startswith("$ "):
            parts, start = [line[2:]], i
            while i + 1 < len(lines) and (parts[-1].endswith("\\") or lines[i + 1].startswith("> ")):
                i += 1
                parts.append(lines[i][2:] if lines[i].startswith("> ") else lines[i])
            current = Command("\n".join(parts), start + 1)
            commands.append(current)
        elif current is None:
            raise ValueError(f"line {i + 1}: output before any command in a console block")
        else:
            current.expected.append(line)
        i += 1
    if fence is not None:
        raise ValueError("a fenced block is not closed")
    for cmd in commands:
        if cmd.expected and (m := STATUS.match(cmd.expected[-1])):
            cmd.status = int(m[1])
            cmd.expected.pop()
    return commands


def _line_pattern(expected: str) -> re.Pattern:
    if expected.endswith(" (re)"):
        return re.compile(expected[: -len(" (re)")])
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")))


def matches(expected: list[str], actual: list[str]) -> bool:
    """True when the actual lines fit the expected ones (see the module docstring)."""
    memo: dict[tuple[int, int], bool] = {}

    def fit(e: int, a: int) -> bool:
        if (e, a) in memo:
            return memo[e, a]
        if e == len(expected):
            ok = a == len(actual)
        elif expected[e] == "...":
            ok = any(fit(e + 1, k) for k in range(a, len(actual) + 1))
        else:
            ok = a < len(actual) and _line_pattern(expected[e]).fullmatch(actual[a]) is not None \
                and fit(e + 1, a + 1)
        memo[e, a] = ok
        return ok

    return fit(0, 0)


class Shell:
    """One bash process, fed commands one at a time, like a reader's terminal."""

    def __init__(self, env: dict[str, str], cwd: str | os.PathLike):
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)

    def run(self, command: str, timeout: float = 60) -> tuple[str, int]:
        """Run one command; its output (stdout + stderr) and exit status."""
        token = f"__lab_{uuid.uuid4().hex}"
        # { ...; } runs in this shell (variables stay); stdin is not the script
        script = f"{{\n{command}\n}} </dev/null\nprintf '\\n{token} %d\\n' $?\n"
        self.proc.stdin.write(script.encode())
        self.proc.stdin.flush()
        end = re.compile(rb"\n" + token.encode() + rb" (\d+)\n")
        buf = b""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not (m := end.search(buf)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no end after {timeout:g}s; output so far:\n{buf.decode(errors='replace')}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"the shell exited; output:\n{buf.decode(errors='replace')}")
                buf += chunk
        return buf[: m.start()].decode(errors="replace"), int(m[1])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)   # the group we started, by its id
                self.proc.wait()
        self.proc.stdout.close()


def check(lab: Path, shell: Shell, timeout: float = 60) -> None:
    """Run every command of a lab; AssertionError at the first that does not print what the
    lab says, naming the file, the line and both outputs."""
    for cmd in parse(lab.read_text()):
        output, status = shell.run(cmd.text, timeout)
        actual = output.split("\n") if output else []
        if actual and actual[-1] == "":
            actual.pop()
        if status != cmd.status or not matches(cmd.expected, actual):
            raise AssertionError(
                f"{lab.name}:{cmd.line}: $ {cmd.text}\n"
                f"--- expected (exit {cmd.status})\n" + "\n".join(cmd.expected) +
                f"\n--- got (exit {status})\n" + "\n".join(actual))
