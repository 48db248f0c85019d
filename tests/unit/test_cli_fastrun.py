"""`minirun run`'s typer-free path (cli/fastrun.py) must read a command line exactly as click
reads it for the typer command, or leave it to typer: the typer command is made of its flag
table, and whatever it accepts, click accepts with the same values."""

from __future__ import annotations

import warnings

import click
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

from minirun.cli import fastrun
from minirun.cli.app import build


def _click_parse(argv: list[str]) -> tuple[str | None, dict]:
    """What click gives the run command for argv (minirun's global options, then `run ...`)."""
    group = typer.main.get_command(build("run"))
    ctx = group.make_context("minirun", list(argv), resilient_parsing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)       # protected_args, click 8.2
        verb, *rest = ctx.protected_args + ctx.args
    assert verb == "run"
    command = group.get_command(ctx, "run")
    sub = command.make_context("run", rest, parent=ctx)
    return ctx.params.get("root"), dict(sub.params)


def _norm(params: dict) -> dict:
    """Lists as lists (click gives tuples, or None when absent; the body takes either)."""
    return {k: list(v or []) if k in LISTS else v for k, v in params.items()}


LISTS = {p for p, (kind, _, _) in fastrun.RUN_OPTIONS.items() if kind == "list"} | {"command"}


def _same(argv: list[str], monkeypatch) -> None:
    monkeypatch.delenv("MINIRUN_ROOT", raising=False)
    fast = fastrun.parse(argv)
    if fast is None:
        return
    try:
        root, params = _click_parse(argv)
    except click.exceptions.ClickException as e:
        pytest.fail(f"fastrun accepted what click refuses ({e.format_message()}): {argv}")
    assert fast[0] == root, argv
    assert _norm(fast[1]) == _norm(params), argv


def test_the_typer_command_is_made_of_the_flag_table():
    command = typer.main.get_command(build("run")).get_command(None, "run")
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    assert set(options) == set(fastrun.RUN_OPTIONS)
    for name, (kind, names, help) in fastrun.RUN_OPTIONS.items():
        o = options[name]
        assert set(o.opts) == set(names) and o.help == help, name
        expected = {"flag": o.is_flag, "list": o.multiple, "int": isinstance(o.type, click.types.IntParamType),
                    "float": isinstance(o.type, click.types.FloatParamType)}.get(kind, True)
        assert expected and (kind != "str" or (not o.is_flag and not o.multiple)), name


TYPICAL = [
    ["run", "--rm", "--network", "none", "busybox", "true"],
    ["--root", "/r", "run", "-it", "--rm", "busybox", "sh"],
    ["--root=/r", "run", "-d", "--name", "web", "-m", "64m", "--cpus", "0.5", "--pids-limit", "64",
     "busybox", "sh", "-c", "while :; do date; sleep 1; done"],
    ["run", "-e", "A=1", "-eB=2", "--env=C=3", "-v", "/h:/c:ro", "-w", "/tmp", "-u", "1000:1000",
     "-h", "box", "busybox", "ls", "-l", "--rm"],
    ["run", "-ite", "X=1", "busybox"], ["run", "--pids-limit", "-1", "busybox"],
    ["run", "--net=host", "-p", "8080:80", "-P", "busybox", "true"],
]
REFUSED = [
    ["run"], ["run", "--help"], ["run", "--rmm", "busybox"], ["run", "-x", "busybox"],
    ["run", "--cpus", "half", "busybox"], ["run", "--rm=1", "busybox"], ["run", "--", "busybox"],
    ["--version", "run", "busybox"], ["--debug", "run", "busybox"], ["trace", "run", "busybox"],
    ["run", "--name"], ["run", "-it"],
]


@pytest.mark.parametrize("argv", TYPICAL, ids=" ".join)
def test_typical_command_lines_take_the_fast_path_with_clicks_values(argv, monkeypatch):
    assert fastrun.parse(argv) is not None
    _same(argv, monkeypatch)


@pytest.mark.parametrize("argv", REFUSED, ids=" ".join)
def test_anything_else_is_left_to_typer(argv):
    assert fastrun.parse(argv) is None


def test_the_root_comes_from_the_environment_as_with_click(monkeypatch):
    monkeypatch.setenv("MINIRUN_ROOT", "/from/env")
    assert fastrun.parse(["run", "busybox"])[0] == "/from/env"
    assert fastrun.parse(["--root", "/flag", "run", "busybox"])[0] == "/flag"


tokens = st.sampled_from(["--root", "/r", "--root=/r", "run", "busybox", "true", "-d", "--rm", "-i",
                          "-t", "-it", "-dit", "-e", "A=1", "-eA=1", "--env", "--env=B=2", "-m",
                          "64m", "--memory=1g", "--cpus", "0.5", "1", "--cpu-shares", "-1",
                          "--pids-limit", "x", "-h", "-hbox", "--name", "n", "--network", "none",
                          "--net=host", "-v", "/a:/b", "-p", "80", "-P", "--read-only", "--init",
                          "--help", "--", "-", "-x", "--rmm", "-w", "/", "--cap-add", "ALL",
                          "--privileged", "--sysctl", "net.x=1", "-u", "0"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(tokens, max_size=10))
def test_any_command_line_is_read_as_click_reads_it(argv):
    with pytest.MonkeyPatch.context() as mp:
        _same(argv, mp)
