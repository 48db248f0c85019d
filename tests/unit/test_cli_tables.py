"""cli/app.py names every verb's module without importing it; the tables must match the modules."""

from __future__ import annotations

import importlib

from minirun.cli import app


def test_every_top_level_verb_is_in_the_module_the_table_names():
    modules = set(app.TOP_VERBS.values())
    declared = {}
    for name in modules:
        for verb in importlib.import_module(f"minirun.cli.{name}").VERBS:
            declared[verb] = name
    assert declared == app.TOP_VERBS


def test_every_group_exists():
    import typer

    for module, attribute in app.GROUPS.values():
        assert isinstance(getattr(importlib.import_module(f"minirun.cli.{module}"), attribute), typer.Typer)


def test_a_verb_builds_only_its_own_command():
    import typer

    cmd = typer.main.get_command(app.build("stats"))
    assert set(cmd.commands) == {"stats"}
    assert set(typer.main.get_command(app.build("cluster")).commands) == {"cluster"}
    everything = set(typer.main.get_command(app.build()).commands)
    assert everything == set(app.TOP_VERBS) | set(app.GROUPS)
