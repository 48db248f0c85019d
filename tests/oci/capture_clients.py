"""Capture the config.json that real OCI clients write, as fixtures for test_client_configs.py.

    make capture-clients       # or: .venv/bin/python -m tests.oci.capture_clients [OUT_DIR]

Each client is configured to use a tiny wrapper runtime (a shell script written here) that copies
the bundle's config.json on `create` (or `run`), then execs runc: the client writes exactly what it
writes for runc. podman, containerd and dockerd run privately (their state under a temporary
directory, as in test_podman.py, test_containerd.py and test_docker.py, whose classes are used),
on `--network none`, with the busybox image imported from rootfs/build/busybox.tar. Each client
is asked for its defaults: `run IMAGE true`, no other option but those the private set-up needs.
README.md in OUT_DIR is written here too, with the versions, the commands and the date.

The minimal allow-list (minimal-allowlist.json) is made here from `runc spec`: a seccomp profile
that denies by default and allows what busybox and the runtime's last steps need, without
close_range, with noNewPrivileges false.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import IMAGE_TAR

HERE = Path(__file__).resolve().parent
MINIRUN = str(Path(sys.executable).with_name("minirun"))

WRAPPER = """#!/bin/sh
# a runtime that keeps the bundle's config.json, then is runc
b=""; prev=""
for a in "$@"; do
  case "$prev" in --bundle|-b) b=$a;; esac
  case "$a" in --bundle=*) b=${a#--bundle=};; esac
  prev=$a
done
[ -n "$b" ] && [ -f "$b/config.json" ] && cp "$b/config.json" "{out}"
exec runc "$@"
"""

# what busybox's sh, echo, cat, grep, id, hostname, sleep and the runtime's steps after the
# filter (set user and groups, capabilities, exec) need; close_range is left out on purpose
MINIMAL_SYSCALLS = """
    access arch_prctl brk capget capset chdir close dup dup2 dup3 execve exit exit_group
    faccessat faccessat2 fchdir fcntl fstat futex getcwd getdents64 getegid geteuid getgid
    getgroups getpgid getpgrp getpid getppid getrandom getresgid getresuid gettid getuid ioctl
    kill lseek lstat mmap mprotect munmap nanosleep clock_nanosleep newfstatat open openat pipe
    pipe2 poll ppoll prctl pread64 prlimit64 read readlink readlinkat rseq rt_sigaction
    rt_sigprocmask rt_sigreturn sched_getaffinity set_robust_list set_tid_address setgid
    setgroups setpgid setresgid setresuid setsid setuid sigaltstack stat statfs fstatfs statx
    sysinfo uname
    vfork clone clone3 wait4 waitid write writev
""".split()


def version(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0].strip()


class Capture:
    def __init__(self, work: Path):
        self.work = work
        self.n = 0

    def wrapper(self) -> tuple[str, Path]:
        """A fresh wrapper script and the file it will write."""
        self.n += 1
        out = self.work / f"captured-{self.n}.json"
        script = self.work / f"capture-runtime-{self.n}"
        script.write_text(WRAPPER.replace("{out}", str(out)))
        script.chmod(0o755)
        return str(script), out


def runc_spec(work: Path) -> dict:
    d = work / "runc-spec"
    d.mkdir()
    subprocess.run(["runc", "spec"], cwd=d, check=True)
    return json.loads((d / "config.json").read_text())


def podman(cap: Capture, *flags: str) -> tuple[dict, list[str]]:
    base = cap.work / "podman"
    wrapper, out = cap.wrapper()
    argv = ["podman", "--root", str(base / "root"), "--runroot", str(base / "runroot"),
            "--tmpdir", str(base / "tmp"), "--network-config-dir", str(base / "net"),
            "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--storage-driver", "overlay", "--runtime", wrapper]
    host = [Path(p) for p in ("/var/lib/containers", "/var/cache/containers", "/run/containers",
                              "/etc/containers/networks", "/run/runc")]
    created = [p for p in host if not p.exists()]
    parents = {*Path("/sys/fs/cgroup").glob("*/libpod_parent")}
    try:
        subprocess.run([*argv, "import", str(IMAGE_TAR), "localhost/minirun-busybox"],
                       check=True, capture_output=True)
        cmd = ["run", "--rm", *flags, "--network", "none", "localhost/minirun-busybox", "true"]
        # runc refuses podman's default RLIMIT_NOFILE 1048576 here (root lacks
        # CAP_SYS_RESOURCE on this VM): the config is written all the same
        subprocess.run([*argv, *cmd], capture_output=True)
        subprocess.run([*argv, "rmi", "-af"], capture_output=True)
    finally:
        from tests.oci.test_podman import remove_podman_store

        remove_podman_store(base, created, parents)
    return json.loads(out.read_text()), ["podman", "--cgroup-manager", "cgroupfs",
                                          "--runtime", "WRAPPER", *cmd]


def containerd(cap: Capture, seccomp: bool) -> tuple[dict, list[str]]:
    from tests.oci.test_containerd import NS, SHIM_SOCKETS, Containerd

    base = cap.work / ("ctrd-seccomp" if seccomp else "ctrd")
    base.mkdir()
    created = [p for p in (SHIM_SOCKETS.parent, SHIM_SOCKETS) if not p.exists()]
    wrapper, out = cap.wrapper()
    c = Containerd(base)
    try:
        c.start()
        store = base / "minirun"
        subprocess.run([MINIRUN, "--root", str(store), "image", "import", str(IMAGE_TAR),
                        "busybox"], check=True, capture_output=True)
        subprocess.run([MINIRUN, "--root", str(store), "image", "save", "-q", "--format", "oci",
                        "-o", str(base / "busybox.tar"), "busybox"], check=True, capture_output=True)
        c.ctr("images", "import", str(base / "busybox.tar"))
        cmd = ["run", "--rm", *(["--seccomp"] if seccomp else []), "busybox:latest", "capture",
               "true"]
        c.ctr("run", "--fifo-dir", str(c.fifos), "--runc-root", str(base / "runc"),
              "--runc-binary", wrapper, *cmd[1:])
        c.ctr("images", "rm", "--sync", "busybox:latest")
    finally:
        c.stop()
        for path in reversed(created):
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        shutil.rmtree(base, ignore_errors=True)
    return json.loads(out.read_text()), ["ctr", "-n", NS, "run", "--runc-binary", "WRAPPER",
                                          *cmd[1:]]


def dockerd(cap: Capture, *flags: str) -> tuple[dict, list[str]]:
    from tests.oci.test_docker import IMAGE, private_dockerd

    wrapper, out = cap.wrapper()
    base = cap.work / f"dockerd-{cap.n}"
    base.mkdir()
    cmd = ["run", "--rm", *flags, "--runtime", "capture", "--network", "none", IMAGE, "true"]
    with private_dockerd(base, {"capture": wrapper}) as d:
        # runc refuses --privileged here (a capability outside the bounding set): the config is
        # written all the same
        d.docker(*cmd, check=False)
    return json.loads(out.read_text()), ["docker", *cmd]


GENERATE = """package main

// the default config.json of runtime-tools' generator, which the OCI validation suite starts
// every test from (validation/util: generate.New("linux"))
import (
	"encoding/json"
	"os"

	"github.com/opencontainers/runtime-tools/generate"
)

func main() {
	g, err := generate.New("linux")
	if err != nil {
		panic(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(g.Config); err != nil {
		panic(err)
	}
}
"""


def runtime_tools_generate(work: Path) -> dict:
    """Built from Debian's golang-github-opencontainers-runtime-tools-dev, offline (GOPATH mode
    on /usr/share/gocode, where Debian's Go packages are)."""
    d = work / "generate"
    d.mkdir()
    (d / "main.go").write_text(GENERATE)
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode",
           "GOCACHE": str(d / "cache"), "GOFLAGS": ""}
    subprocess.run(["go", "build", "-o", str(d / "generate"), "."], cwd=d, env=env, check=True)
    return json.loads(subprocess.run([str(d / "generate")], capture_output=True, text=True,
                                     check=True).stdout)


def minimal_allowlist(spec: dict) -> dict:
    config = json.loads(json.dumps(spec))
    config["process"]["noNewPrivileges"] = False
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": sorted(MINIMAL_SYSCALLS), "action": "SCMP_ACT_ALLOW"}],
    }
    return config


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "fixtures" / "clients"
    out_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        sys.exit("capture_clients: needs root (it starts podman, containerd and dockerd)")
    docker_version = subprocess.run(["dockerd", "--version"], capture_output=True,
                                    text=True).stdout.split()[2].rstrip(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="capture-clients-") as tmp:
        work = Path(tmp)
        cap = Capture(work)
        spec = runc_spec(work)
        captures = {
            "runc-spec.json": (spec, ["runc", "spec"], version("runc", "--version")),
            "podman.json": (*podman(cap), version("podman", "--version")),
            "podman-privileged.json": (*podman(cap, "--privileged"), version("podman", "--version")),
            "ctr-run.json": (*containerd(cap, False), version("containerd", "--version")),
            "ctr-run-seccomp.json": (*containerd(cap, True), version("containerd", "--version")),
            "dockerd.json": (*dockerd(cap), f"dockerd {docker_version}"),
            "dockerd-privileged.json": (*dockerd(cap, "--privileged"), f"dockerd {docker_version}"),
            "runtime-tools-generate.json": (
                runtime_tools_generate(work), ['generate.New("linux")'],
                "runtime-tools " + subprocess.run(
                    ["dpkg-query", "-W", "-f", "${Version}",
                     "golang-github-opencontainers-runtime-tools-dev"],
                    capture_output=True, text=True).stdout + " (Debian), " + version(
                    "go", "version").split()[2]),
        }
        captures["minimal-allowlist.json"] = (
            minimal_allowlist(spec), ["(made from runc-spec.json by capture_clients.py)"],
            "seccomp: deny by default, no close_range, noNewPrivileges false")
        for name, (config, argv, client) in captures.items():
            (out_dir / name).write_text(json.dumps(config, indent=1) + "\n")
            rows.append(f"| `{name}` | {client} | `{' '.join(argv)}` |")
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    (out_dir / "README.md").write_text(f"""\
# config.json as real OCI clients write it

Written by `tests/oci/capture_clients.py` on {today}, on Debian 12 (kernel {os.uname().release}),
as root, each client configured to use a wrapper runtime that copies the bundle's config.json on
`create` and then execs runc. Regenerate with `make capture-clients`
(which installs the clients, golang-go and golang-github-opencontainers-runtime-tools-dev, then
runs `.venv/bin/python -m tests.oci.capture_clients`).

podman, containerd and dockerd run privately (state under a temporary directory), on
`--network none` (their default networks would change the host's network configuration), with the
busybox image from rootfs/build/busybox.tar. Paths, ids and the dockerd pid in these files are
those of the capture run: tests/oci/test_client_configs.py adapts what must be machine-specific
(root.path, the process args, bind sources that no longer exist, the cgroup path's parent, hooks
that point at a binary absent here, an rlimit above what root may raise here) and keeps the rest
as the client wrote it. The seccomp profiles are the clients' own defaults: podman's and
Docker's built-in profiles, containerd's with `ctr run --seccomp` (ctr applies none without it);
`runc spec` writes none. The `-privileged` ones are `run --privileged`: every capability (this
VM's bounding set lacks CAP_SYS_RESOURCE, so runc refuses them here), every host device, no
seccomp. runtime-tools-generate.json is the config the OCI runtime validation
suite starts each of its tests from (runtime-tools' `generate.New("linux")`, printed by a small Go
program built offline from Debian's golang-github-opencontainers-runtime-tools-dev): its seccomp
profile denies by default and predates close_range. dockerd's cgroup parent is test_docker.py's private one (its default
is /docker). minimal-allowlist.json is `runc spec`'s config with noNewPrivileges false and a
seccomp profile that denies by default and allows only what busybox and runc 1.1's steps after
the filter need (runc runs it; it needs fstatfs to check /proc/self/fd), without close_range.

| fixture | client | command (WRAPPER: the capture runtime) |
|---|---|---|
""" + "\n".join(rows) + "\n")
    print(f"wrote {len(rows)} fixtures to {out_dir}")


if __name__ == "__main__":
    main()
