"""Every `--help` answers: each verb and group of `minirun` (found by walking the click command
tree typer builds, so a new verb is covered without touching this file) and of `minirun-oci`
(walking its argparse parser). Each is the installed command in its own process, as a user runs
it, and must exit 0 with nothing on stderr and show its usage line, its own help text and every
option with its help, as written: `run --help` once died with rich's MarkupError on
"[ip:]hostPort:containerPort[/udp]" (issue 18), and rich silently dropped "[ip:]" as a style.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest
import typer

from minirun.cli import app
from minirun.oci import main as oci_main

MINIRUN = str(Path(sys.executable).with_name("minirun"))
OCI = str(Path(sys.executable).with_name("minirun-oci"))


def _minirun_tree() -> dict[tuple[str, ...], click.Command]:
    found = {}

    def walk(path: tuple[str, ...], command: click.Command) -> None:
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk((*path, name), sub)

    walk((), typer.main.get_command(app.build()))
    return found


def _oci_tree() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    top = oci_main.parser()
    found = {(): top}
    for action in top._subparsers._group_actions:      # the one add_subparsers() action
        for name, sub in action.choices.items():
            found[(name,)] = sub
    return found


MINIRUN_TREE = _minirun_tree()
OCI_TREE = _oci_tree()


def _squash(text: str) -> str:
    """Words only: the help is rewrapped to the terminal's width."""
    return "".join(text.split())


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """Every `--help` of both commands, run a few at a time (77 + 17 processes)."""
    argvs = [(MINIRUN, *p) for p in MINIRUN_TREE] + [(OCI, *p) for p in OCI_TREE]

    def one(argv):
        return argv, subprocess.run([*argv, "--help"], capture_output=True, text=True,
                                    timeout=60, stdin=subprocess.DEVNULL)

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, argvs))


def _check(proc: subprocess.CompletedProcess, usage: str) -> str:
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    assert usage in proc.stdout, proc.stdout[:500]
    return _squash(proc.stdout)


def test_the_tree_is_whole():
    """The walk sees nested groups and the verbs of each, not only the top level."""
    assert {("run",), ("create",), ("image", "ls"), ("cluster", "up"), ("task-definition",)} \
        <= set(MINIRUN_TREE)
    assert {("run",), ("create",), ("kill",), ("features",)} <= set(OCI_TREE)


@pytest.mark.parametrize("path", list(MINIRUN_TREE), ids=lambda p: " ".join(p) or "minirun")
def test_minirun_help(helps, path):
    command = MINIRUN_TREE[path]
    out = _check(helps[(MINIRUN, *path)], " ".join(("Usage: minirun", *path)))
    if command.help:
        assert _squash(command.help.split("\f")[0]) in out
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        for opt in param.opts if isinstance(param, click.Option) else ():
            assert opt in out, (opt, out)
        if getattr(param, "help", None):
            assert _squash(param.help) in out, (param.name, param.help)
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            assert name in out


@pytest.mark.parametrize("path", list(OCI_TREE), ids=lambda p: " ".join(p) or "minirun-oci")
def test_minirun_oci_help(helps, path):
    parser = OCI_TREE[path]
    out = _check(helps[(OCI, *path)], " ".join(("usage: minirun-oci", *path)))
    assert _squash(parser.description) in out
    for action in parser._actions:
        for opt in action.option_strings:
            assert opt in out, (opt, out)
        if action.help and action.help != argparse.SUPPRESS:
            assert _squash(action.help % {"default": action.default}) in out, action.help
