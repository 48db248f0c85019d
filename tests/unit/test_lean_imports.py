"""The modules `minirun-oci run` imports for every container stay off the standard library's
slow start-up imports (issue 7: a container should start about as fast as with runc).

pathlib pulls in re, fnmatch, urllib.parse and ntpath (3-8 ms); re needs enum (~4.7 ms); signal
wraps its numbers in IntEnums (enum again, 3 ms); contextlib, collections, functools and
threading ~2.5 ms together; typing ~2 ms. Each module in LEAN is imported alone in a fresh
interpreter, and none of HEAVY may be in sys.modules afterwards.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from minirun.lean import PER_CONTAINER

# the modules on the per-container path and `minirun run`'s own, listed once in minirun/lean.py
# (tests/oci/test_oci_startup.py and tests/integration/test_startup_imports.py run the commands)
LEAN = PER_CONTAINER

HEAVY = ("pathlib", "re", "signal", "enum", "contextlib", "functools", "collections",
         "threading", "typing", "json", "array", "hashlib")


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys\nimport {module}\nprint('\\n'.join(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


@pytest.mark.parametrize("module", LEAN)
def test_module_imports_none_of_the_slow_stdlib_modules(module):
    loaded = _modules_after_import(module)
    assert module in loaded                       # the measurement saw the real import
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert not heavy, f"import {module} also imports {heavy}"


def test_the_check_sees_a_heavy_import():
    """What makes the test above able to fail: an import of re is seen (sys.modules is honest)."""
    assert "re" in _modules_after_import("fnmatch")
