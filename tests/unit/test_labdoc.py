"""The lab format (tests/labdoc.py): what a ```console block means, and how output is matched.
No root needed; the labs themselves run in tests/integration/test_labs.py."""

from __future__ import annotations

import os

import pytest

from tests.labdoc import Shell, matches, parse

LAB = """\
# A lab

```sh
$ not run: a sh block
```

```console
$ echo one
one
$ false
[1]
$ printf 'a\\nb\\nc\\n' \\
>   | tail -n 2
b
c
```

```console
$ echo 'a
> b'
a
b
```

````console
$ x=1
```
````
"""


def test_console_blocks_are_parsed_with_status_and_continuations():
    cmds = parse(LAB)
    assert [c.text for c in cmds] == ["echo one", "false", "printf 'a\\nb\\nc\\n' \\\n  | tail -n 2",
                                      "echo 'a\nb'", "x=1"]
    assert [c.status for c in cmds] == [0, 1, 0, 0, 0]
    assert cmds[0].expected == ["one"] and cmds[1].expected == []
    assert cmds[2].expected == ["b", "c"]
    assert cmds[3].expected == ["a", "b"]  # a "> " line continues a quoted string
    assert cmds[4].expected == ["```"]     # a longer fence may hold a shorter one
    assert cmds[0].line == 8


def test_output_without_a_command_and_unclosed_blocks_are_errors():
    with pytest.raises(ValueError, match="line 2: output before any command"):
        parse("```console\nhello\n```\n")
    with pytest.raises(ValueError, match="not closed"):
        parse("```console\n$ true\n")


@pytest.mark.parametrize("expected, actual, ok", [
    (["a", "b"], ["a", "b"], True),
    (["a", "b"], ["a", "b", "c"], False),          # all of the output must be accounted for
    (["a"], ["a", "b"], False),
    ([], [], True),
    ([], ["x"], False),                            # no lines: must print nothing
    (["..."], [], True),
    (["..."], ["x", "y"], True),
    (["a", "...", "z"], ["a", "z"], True),
    (["a", "...", "z"], ["a", "m", "n", "z"], True),
    (["a", "...", "z"], ["a", "m", "n"], False),
    (["pid=..."], ["pid=42"], True),
    (["pid=..."], ["uid=42"], False),
    (["x.y"], ["xzy"], False),                     # literal lines are literal
    (["[0-9]+ processes (re)"], ["12 processes"], True),
    (["[0-9]+ processes (re)"], ["12 processes!"], False),   # the whole line
])
def test_matching(expected, actual, ok):
    assert matches(expected, actual) is ok


def test_the_shell_keeps_variables_and_reports_status_and_both_streams(tmp_path):
    sh = Shell(dict(os.environ), tmp_path)
    try:
        assert sh.run("x=41") == ("", 0)
        assert sh.run("echo $((x + 1)); echo oops >&2; (exit 3)") == ("42\noops\n", 3)
        assert sh.run("printf 'no newline'") == ("no newline", 0)
        assert sh.run("cat") == ("", 0)                   # stdin is not the script
    finally:
        sh.close()
    assert sh.proc.returncode == 0
