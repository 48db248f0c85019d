"""Progress for long image operations (load, save, build): a rich bar on a terminal, one plain
line per step when stderr is a pipe or a file (CI logs, `2>log`). The library reports events
through a callback; this module turns them into output, so the library never prints.
"""

from __future__ import annotations

import contextlib
import sys


class Reporter:
    """`progress(event, **info)` for ImageStore.load / save and the builder."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.rich = sys.stderr.isatty() and not quiet
        self._progress = None
        self._task = None

    @contextlib.contextmanager
    def running(self, title: str):
        if not self.rich:
            yield self
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                      console=Console(stderr=True), transient=True) as p:
            self._progress = p
            self._task = p.add_task(title, total=None)
            try:
                yield self
            finally:
                self._progress = None

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(text, highlight=False, markup=False)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def __call__(self, event: str, **info) -> None:
        if event == "layer":
            i, total, diff_id = info["index"], info["total"], info["diff_id"]
            state = info.get("state") or ("already present" if info.get("cached") else "unpacking")
            if self._progress is not None:
                self._progress.update(self._task, total=total, completed=i,
                                      description=f"layer {diff_id[7:19]}: {state}")
            else:
                self.line(f"layer {i + 1}/{total} {diff_id[7:19]}: {state}")
        elif event == "bytes":
            if self._progress is not None:  # on a pipe, bytes would be a line per 4 MiB: none
                self._progress.update(self._task, total=info["total"], completed=info["done"])
        elif event == "image":
            if self._progress is not None:
                self._progress.update(self._task, completed=self._progress.tasks[0].total)
        elif event == "step":
            if self._progress is not None and "index" in info:
                self._progress.update(self._task, total=info["total"], completed=info["index"],
                                      description=info["text"][:40])
            self.line(info["text"])
        elif event == "output":
            if self._progress is not None:
                self._progress.console.print(info["text"], end="", highlight=False, markup=False)
            elif not self.quiet:
                sys.stderr.write(info["text"])
