"""minirun-oci's fast path for its per-container verbs (oci/main.py fast_parse) must read every
command line exactly as the argparse parser does, or leave it to argparse: whatever it accepts,
argparse accepts with the same values."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minirun.oci.main import fast_parse, parser

TYPICAL = [
    # podman/conmon, containerd's shim and our own tests, as they call runc
    ["--root", "/run/x", "--log", "/tmp/log.json", "--log-format", "json", "create", "--bundle",
     "/b", "--pid-file", "/b/pid", "--console-socket", "/s.sock", "ctr1"],
    ["--root=/run/x", "--debug", "run", "-b", "/b", "--preserve-fds", "2", "--no-pivot", "c"],
    ["run", "--bundle=/b", "c"],
    ["run", "c", "--bundle", "/b"],
    ["start", "c"], ["state", "c"], ["--root", "/r", "state", "c"],
    ["kill", "c"], ["kill", "c", "KILL"], ["kill", "--all", "c", "9"], ["kill", "-a", "c"],
    ["delete", "c"], ["delete", "--force", "c"], ["delete", "-f", "c"],
    ["--systemd-cgroup", "create", "c"],
]

REFUSED = [
    [], ["--help"], ["run", "--help"], ["run", "-h", "c"], ["run", "--bund", "/b", "c"],
    ["run"], ["run", "a", "b"], ["run", "--preserve-fds", "x", "c"], ["run", "--bundle"],
    ["--log-format", "yaml", "run", "c"], ["list"], ["exec", "c", "sh"], ["kill", "c", "9", "x"],
    ["run", "--", "c"], ["--rot", "/r", "state", "c"], ["state", "--bundle", "/b", "c"],
    ["kill", "c", "--all", "9"],        # argparse: "unrecognized arguments: 9" (hypothesis found it)
    ["create", "c", "--preserve-fds", "x", "--preserve-fds=3"],  # argparse checks each value (hypothesis)
]


def _same_as_argparse(argv: list[str]) -> None:
    fast = fast_parse(argv)
    if fast is None:
        return
    slow = parser().parse_args(argv)
    assert vars(fast) == vars(slow), argv


@pytest.mark.parametrize("argv", TYPICAL, ids=" ".join)
def test_typical_command_lines_take_the_fast_path_with_argparse_values(argv):
    assert fast_parse(argv) is not None
    _same_as_argparse(argv)


@pytest.mark.parametrize("argv", REFUSED, ids=lambda a: " ".join(a) or "(none)")
def test_anything_else_is_left_to_argparse(argv):
    assert fast_parse(argv) is None


tokens = st.sampled_from(["--root", "/r", "--root=/r", "--log", "--log-format", "json", "text",
                          "--debug", "--systemd-cgroup", "create", "run", "start", "state", "kill",
                          "delete", "--bundle", "-b", "/b", "--bundle=/b", "--pid-file", "/p",
                          "--console-socket", "/s", "--no-pivot", "--preserve-fds", "1", "x",
                          "--all", "-a", "--force", "-f", "c1", "c2", "KILL", "9", "-", "--",
                          "--help", "-h", "--bun", "--preserve-fds=3", "--log=/l"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(tokens, max_size=9))
@example(["kill", "/r", "--all", "/r"])
@example(["create", "/r", "--preserve-fds", "/r", "--preserve-fds=3"])
def test_any_command_line_is_read_as_argparse_reads_it(argv):
    fast = fast_parse(argv)
    if fast is None:
        return
    try:
        slow = parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"fast_parse accepted what argparse refuses: {argv}")
    assert vars(fast) == vars(slow), argv
