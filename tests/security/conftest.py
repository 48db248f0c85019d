"""The static payload (tests/payload/syscalls.c), built once and mounted into containers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PAYLOAD = Path(__file__).resolve().parent.parent / "payload" / "syscalls.c"


@pytest.fixture(scope="session")
def syscalls(tmp_path_factory) -> str:
    """The static helper, built once, as a `-v` argument that puts it at /syscalls."""
    if not shutil.which("gcc"):
        pytest.skip("needs gcc to build tests/payload/syscalls.c")
    out = tmp_path_factory.mktemp("payload") / "syscalls"
    build = subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(PAYLOAD)],
                           capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"cannot build a static payload (libc6-dev?): {build.stderr.strip()[:200]}")
    return f"{out}:/syscalls:ro"


def calls(mr, volume: str, *names: str, opts: tuple[str, ...] = ()) -> dict[str, str]:
    """Run /syscalls NAME... in a new container; {name: "0" or the errno's name}."""
    out = mr.out("run", "--rm", *opts, "-v", volume, "busybox", "/syscalls", *names)
    return dict(line.split() for line in out.splitlines())
