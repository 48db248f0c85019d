"""Build glue: cffi compiles c_ext/ into minirun._native, and two small static programs
(the container monitor and the optional init) are compiled into minirun/libexec/."""

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "c_ext"))
from build import HERE, PROGRAMS  # noqa: E402


class BuildExtAndPrograms(build_ext):
    def run(self):
        super().run()
        base = "." if self.inplace else self.build_lib
        out = os.path.join(base, "minirun", "libexec")
        os.makedirs(out, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        for name, source in PROGRAMS.items():
            target = os.path.join(out, name)
            cmd = [cc, "-O2", "-Wall", "-static", "-o", target, str(HERE / source)]
            if name in FREESTANDING:
                # without a C library (c_ext/nolibc.h); libc where nolibc.h has no port
                free = [*cmd[:4], *FREESTANDING_FLAGS, *cmd[4:]]
                print(" ".join(free))
                if subprocess.call(free) == 0:
                    continue
                print(f"{name}: no freestanding build here, linking with libc")
            print(" ".join(cmd))
            subprocess.check_call(cmd)


# minirun-exec runs in every container start: built without libc, whose own start-up would be
# most of its cost (c_ext/nolibc.h). No stack protector (it needs TLS, which nothing sets up).
FREESTANDING = {"minirun-exec"}
FREESTANDING_FLAGS = ["-nostdlib", "-ffreestanding", "-fno-stack-protector", "-fno-pie", "-no-pie",
                      "-U_FORTIFY_SOURCE", "-DMR_NOLIBC"]


# bin/: the two console commands, as scripts (pip points their #!python at the environment's
# interpreter) rather than entry points, whose generated wrappers import re (see bin/minirun)
setup(cffi_modules=["c_ext/build.py:ffibuilder"], cmdclass={"build_ext": BuildExtAndPrograms},
      scripts=["bin/minirun", "bin/minirun-oci"])
