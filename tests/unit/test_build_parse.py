"""Containerfile parsing and variable expansion (no root, no store)."""

from __future__ import annotations

import pytest

from minirun.build import parse, substitute
from minirun.errors import BuildError


def test_parse_joins_continuations_and_skips_comments():
    steps = parse("# c\nARG V=1\nFROM busybox\n\nRUN echo a \\\n  # inner comment\n  && echo b\n"
                  'cmd ["sh", "-c", "x"]\n')
    assert [(s.line, s.cmd) for s in steps] == [(2, "ARG"), (3, "FROM"), (5, "RUN"), (8, "CMD")]
    assert steps[2].args == "echo a && echo b"
    assert steps[3].json_args() == ["sh", "-c", "x"] and steps[2].json_args() is None


@pytest.mark.parametrize("text, message", [
    ("RUN true\n", "first instruction must be FROM"),
    ("FROM x\nHEALTHCHECK CMD true\n", r"'HEALTHCHECK' \(not supported"),
    ("FROM x\nFOO bar\n", "Containerfile:2: unknown instruction 'FOO'"),
    ("FROM x\nRUN <<EOF\nx\nEOF\n", "heredocs"),
])
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(BuildError, match=message):
        parse(text)


def test_substitute_like_a_dockerfile():
    env = {"A": "1", "EMPTY": ""}
    assert substitute("$A ${A} ${B:-def} ${A:-x} ${A:+alt} ${B:+alt}|$EMPTY|", env) == \
        "1 1 def 1 alt |" + "|"


def test_ignore_file_rules(tmp_path):
    from minirun.build import Ignore

    (tmp_path / ".dockerignore").write_text(
        "# comment\n.git\n*.log\n**/secret*\n!keep.log\nbuild/\n/tmp?\n")
    ignore = Ignore.load(tmp_path)
    assert ignore(".git") and ignore(".git/config")  # a directory takes its contents along
    assert ignore("x.log") and not ignore("keep.log") and not ignore("d/x.log")
    assert ignore("secret.txt") and ignore("a/b/secret.key") and not ignore("a/notsecret")
    assert ignore("build/out.o") and ignore("tmp1") and not ignore("tmp12")
    assert not ignore("src/main.py")
    assert not Ignore.load(tmp_path / "nowhere")("anything")
