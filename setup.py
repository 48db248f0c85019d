"""Build glue: cffi compiles c_ext/ into minirun._native; small static programs (the container
monitor, the optional init, the exec trampoline) are compiled into minirun/libexec/; and the
minirun-oci command is a native launcher (c_ext/launch.c) where it can be built."""

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

# setuptools has no build_scripts of its own; after `import setuptools` this is its distutils
from distutils.command.build_scripts import build_scripts  # noqa: E402  (isort: skip)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "c_ext"))
from build import HERE, PROGRAMS  # noqa: E402


def compile_program(name: str, source: str, target: str) -> bool:
    """cc -static; without a C library first for FREESTANDING ones (c_ext/nolibc.h), with libc
    where nolibc.h has no port. False if neither builds."""
    cmd = [os.environ.get("CC", "cc"), "-O2", "-Wall", "-static", "-o", target, str(HERE / source)]
    if name in FREESTANDING:
        free = [*cmd[:4], *FREESTANDING_FLAGS, *cmd[4:]]
        print(" ".join(free))
        if subprocess.call(free) == 0:
            return True
        print(f"{name}: no freestanding build here, linking with libc")
    print(" ".join(cmd))
    return subprocess.call(cmd) == 0


class BuildExtAndPrograms(build_ext):
    def run(self):
        super().run()
        base = "." if self.inplace else self.build_lib
        out = os.path.join(base, "minirun", "libexec")
        os.makedirs(out, exist_ok=True)
        for name, source in PROGRAMS.items():
            if not compile_program(name, source, os.path.join(out, name)):
                raise SystemExit(f"{name}: the C compiler failed (output above)")


class BuildScriptsAndLauncher(build_scripts):
    """bin/ as it is, then minirun-oci replaced by its native launcher (c_ext/launch.c: it starts
    the kernel's grace period before Python starts). Where the launcher cannot be built, the
    Python script bin/minirun-oci stays: the same command, started later."""

    def run(self):
        super().run()
        target = os.path.join(self.build_dir, "minirun-oci")
        built = target + ".native"
        if compile_program("minirun-oci", "launch.c", built):
            os.replace(built, target)
        else:
            print("minirun-oci: no native launcher here, installing the Python script")


# minirun-exec runs in every container start, and minirun-oci's launcher in every call: built
# without libc, whose own start-up would be most of their cost (c_ext/nolibc.h). No stack
# protector (it needs TLS, which nothing sets up).
FREESTANDING = {"minirun-exec", "minirun-oci"}
FREESTANDING_FLAGS = ["-nostdlib", "-ffreestanding", "-fno-stack-protector", "-fno-pie", "-no-pie",
                      "-U_FORTIFY_SOURCE", "-DMR_NOLIBC"]


# bin/: the two console commands, as scripts (pip points their #!python at the environment's
# interpreter) rather than entry points, whose generated wrappers import re (see bin/minirun);
# minirun-oci becomes the native launcher where it builds (BuildScriptsAndLauncher)
setup(cffi_modules=["c_ext/build.py:ffibuilder"],
      cmdclass={"build_ext": BuildExtAndPrograms, "build_scripts": BuildScriptsAndLauncher},
      scripts=["bin/minirun", "bin/minirun-oci"])
