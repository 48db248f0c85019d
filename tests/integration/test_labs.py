"""The labs in docs/labs/ are run as a student would run them, and their promises checked.

Each lab's ```console commands run in order in one bash (tests/labdoc.py explains the format),
with `minirun` on the PATH from the venv and a throwaway data root (MINIRUN_ROOT) holding the
busybox image, in the repository's top directory. A lab whose commands or output drift from what
minirun does fails here, naming the line; so does a lab that leaves a container, a mount, a
cgroup or a monitor behind, and a lab that points at code (`c_ext/fs.c: mr_pivot_root`) which
is no longer there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import (
    IMAGE_TAR,
    REPO,
    cluster_leftovers,
    leftovers,
    private_network_settings,
    requires,
)
from tests.labdoc import Shell, check, parse

LAB_DIR = REPO / "docs" / "labs"
LABS = sorted(LAB_DIR.glob("[0-9][0-9]-*.md"))
SECTIONS = ["## Man pages", "## In minirun", "## How to check your work", "## Exercises"]
# `path/to/file.ext: name` or `path/to/file.ext: Class.method` in a lab's text
CODE_REF = re.compile(r"`((?:c_ext|minirun|tests|rootfs|docs)/[\w/.-]+\.\w+)(?::\s*([\w.]+))?`")


def test_the_labs_are_numbered_in_order_and_the_index_links_each_one():
    assert [int(p.name[:2]) for p in LABS] == list(range(1, len(LABS) + 1))
    index = (LAB_DIR / "README.md").read_text()
    linked = re.findall(r"\]\((\d\d-[\w-]+\.md)\)", index)
    assert sorted(set(linked)) == [p.name for p in LABS]


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.stem)
def test_every_lab_has_its_sections_and_its_code_references_exist(lab):
    text = lab.read_text()
    for heading in SECTIONS:
        assert f"\n{heading}" in text, f"{lab.name}: no '{heading}' section"
    assert len(parse(text)) >= 5, f"{lab.name}: too few tested commands"
    refs = CODE_REF.findall(text)
    assert refs, f"{lab.name}: names no code"
    for path, name in refs:
        source = REPO / path
        assert source.exists(), f"{lab.name}: {path} does not exist"
        body = source.read_text()
        for part in filter(None, (name or "").split(".")):
            assert re.search(rf"\b{re.escape(part)}\b", body), f"{lab.name}: no {part!r} in {path}"


@pytest.fixture
def lab_shell():
    """A bash whose `minirun` is the venv's CLI on a fresh data root with busybox imported;
    afterwards, the check that the lab removed what it made (a cluster included)."""
    requires("root", "overlay", "busybox-image")
    root = Path(tempfile.mkdtemp(prefix="minirun-lab-"))
    private_network_settings(root)         # a bridge and nft table of its own, removed below
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               MINIRUN_ROOT=str(root), LC_ALL="C.UTF-8", COLUMNS="100", TERM="dumb")
    env.pop("NO_COLOR", None)
    subprocess.run([f"{bindir}/minirun", "image", "import", str(IMAGE_TAR), "busybox"], env=env,
                   check=True, capture_output=True)
    shell = Shell(env, REPO)
    try:
        yield shell
    finally:
        shell.close()
        leaks = leftovers(root)
        if (root / "cluster").exists():
            # labs 8 and 9 bring a cluster up and must take it down again: a manager, worker or
            # socket still there is a leak; then it is taken down here, whatever the lab did.
            # The root's network helper (netd) is not the lab's to stop: stopped first.
            from minirun.net import client

            client.shutdown(root)
            leaks += cluster_leftovers(root, [])
            subprocess.run([f"{bindir}/minirun", "cluster", "down", "--timeout", "5"], env=env,
                           capture_output=True)
        # a lab that failed half-way may leave a mount of its own under the root (lab 2 mounts
        # a tmpfs): unmount it, deepest first, before removing the root
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            if str(root) in line.split()[4]:
                subprocess.run(["umount", "-l", line.split()[4]], capture_output=True)
        left = subprocess.run([f"{bindir}/minirun", "ps", "-a", "-q"], env=env, capture_output=True,
                              text=True).stdout.split()
        if left:
            subprocess.run([f"{bindir}/minirun", "rm", "-f", *left], env=env, capture_output=True)
        from minirun.net.container import teardown

        teardown(root)
        shutil.rmtree(root, ignore_errors=True)
    assert not leaks, f"the lab left these behind: {leaks}"


REQUIRES = re.compile(r"^<!-- requires: ([^(]*?) *(?:\(.*)?-->$", re.M)


def skip_unless_the_machine_has(lab: Path) -> None:
    """A lab's `<!-- requires: ... -->` line: `command:NAME` (on the PATH) and `cgroup-v1:CTRL`
    (the controller is in a v1 hierarchy here: lab 4 reads those files by path)."""
    m = REQUIRES.search(lab.read_text())
    for need in m[1].split() if m else []:
        kind, _, what = need.partition(":")
        if kind == "command" and not shutil.which(what):
            pytest.skip(f"{lab.name} needs {what} (make prereqs installs it)")
        elif kind == "cgroup-v1":
            from minirun.runtime.cgroups import detect

            if detect().available().get(what) != "v1":
                pytest.skip(f"{lab.name} is written for a {what} controller in cgroup v1")
        elif kind not in ("command", "cgroup-v1"):
            raise AssertionError(f"{lab.name}: unknown requirement {need!r}")


@pytest.mark.root
@pytest.mark.parametrize("lab", [*LABS, LAB_DIR / "README.md"], ids=lambda p: p.stem)
def test_lab_commands_print_what_the_lab_says(lab, lab_shell):
    skip_unless_the_machine_has(lab)
    failure = None
    try:
        check(lab, lab_shell, timeout=60)
    except AssertionError as e:
        failure = str(e)
    if failure:
        pytest.fail(failure, pytrace=False)
