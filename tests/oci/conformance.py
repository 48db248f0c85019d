"""A harness that drives a runtime the way the OCI runtime validation suite does
(opencontainers/runtime-tools `validation/`), so each of its checks has a twin here.

What the suite does, and what this module does the same way:
  * the bundle is the root filesystem itself (busybox untarred), `root.path` is ".", so
    config.json sits inside it and the container sees /config.json;
  * config.json starts from the suite's generator defaults (`suite_config`, the generator's own
    output in fixtures/clients/runtime-tools-generate.json): hostname
    "mrsdalloway", all five capability sets (ambient too), RLIMIT_NOFILE 1024, the /proc, /dev,
    /dev/pts, /dev/shm, /dev/mqueue and /sys mounts, a deny-all devices rule, the pid, network,
    ipc, uts and mount namespaces, and a seccomp profile;
  * `create [--pid-file F] --bundle DIR ID` with stdout and stderr on files of the bundle, then
    `start ID`, `state ID` polled until a status, `kill ID SIG`, `delete [--force] ID`.
Instead of the suite's `runtimetest` binary the container runs a busybox shell script; the
checks that script makes are in the test modules (test_conformance_*.py). The same scenario runs
against `runc` where it is installed, so a failure of both is the environment's, not ours.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from tests.conftest import extract_trusted, slow

CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


# runtime-tools' generate.New("linux") as the suite calls it, captured by capture_clients.py
GENERATED = Path(__file__).parent / "fixtures" / "clients" / "runtime-tools-generate.json"


def suite_config(args: list[str] | None = None) -> dict:
    """The validation suite's default config.json: what runtime-tools' generator writes
    (generate.New("linux"): hostname "mrsdalloway", all five capability sets, RLIMIT_NOFILE 1024,
    its mounts and namespaces, a deny-all devices rule and its seccomp allow-list, which denies by
    default and has no close_range), with root "." as util.GetDefaultGenerator sets it."""
    config = json.loads(GENERATED.read_text())
    config["root"] = {"path": ".", "readonly": False}
    config["process"].update(terminal=False, args=args or ["sh"])
    return config


class Runtime:
    """One runtime command (minirun-oci or runc) on one bundle, with its own --root."""

    def __init__(self, command: str, root: Path, bundle: Path, tar: Path):
        self.command, self.root, self.bundle = command, root, bundle
        self.name = Path(command).name
        self.id = ""
        self.pid_file: Path | None = None
        if not bundle.exists():
            bundle.mkdir(parents=True)
            extract_trusted(tar, bundle)
        self.new_id()

    def new_id(self) -> str:
        self.id = f"ct-{uuid.uuid4().hex[:12]}"
        return self.id

    def configure(self, config: dict) -> dict:
        (self.bundle / "config.json").write_text(json.dumps(config, indent=1))
        return config

    def _run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([self.command, "--root", str(self.root), *args],
                              capture_output=True, text=True, timeout=slow(timeout))

    def create(self, cid: str | None = None) -> subprocess.CompletedProcess:
        """As the suite: stdout and stderr are files in the bundle (the container inherits them)."""
        args = ["create"]
        if self.pid_file:
            args += ["--pid-file", str(self.pid_file)]
        args += ["--bundle", str(self.bundle)]
        if (cid if cid is not None else self.id):
            args.append(cid if cid is not None else self.id)
        with open(self.bundle / "stdout", "w") as out, open(self.bundle / "stderr", "w") as err:
            proc = subprocess.run([self.command, "--root", str(self.root), *args],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=slow(30))
        proc.stderr = (self.bundle / "stderr").read_text()
        return proc

    def start(self, cid: str | None = None) -> subprocess.CompletedProcess:
        return self._run("start", *([cid if cid is not None else self.id] if (cid or self.id) else []))

    def state(self, cid: str | None = None) -> dict | None:
        proc = self._run("state", cid if cid is not None else self.id)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def kill(self, sig: str = "TERM", cid: str | None = None) -> subprocess.CompletedProcess:
        return self._run("kill", cid if cid is not None else self.id, sig)

    def delete(self, force: bool = False, cid: str | None = None) -> subprocess.CompletedProcess:
        return self._run("delete", *(["--force"] if force else []), cid if cid is not None else self.id)

    def wait_status(self, *statuses: str, timeout: float = 10.0) -> dict | None:
        deadline = time.monotonic() + slow(timeout)
        while True:
            st = self.state()
            if st is None or st["status"] in statuses or time.monotonic() > deadline:
                return st
            time.sleep(0.02)

    def output(self) -> str:
        return (self.bundle / "stdout").read_text()

    def inside(self, config: dict, script: str) -> tuple[int, str, str]:
        """Run `script` (busybox sh) as the container's process through create/start/stopped
        and delete, as RuntimeInsideValidate runs runtimetest; (create's status, the container's
        stdout, create's stderr)."""
        config = json.loads(json.dumps(config))
        (self.bundle / "check.sh").write_text(script)
        config["process"]["args"] = ["/bin/sh", "/check.sh"]
        self.configure(config)
        self.new_id()
        created = self.create()
        if created.returncode != 0:
            return created.returncode, self.output(), created.stderr
        started = self.start()
        assert started.returncode == 0, f"{self.name} start: {started.stderr}"
        st = self.wait_status("stopped")
        assert st is not None and st["status"] == "stopped", f"{self.name}: {st}"
        deleted = self.delete()
        assert deleted.returncode == 0, f"{self.name} delete: {deleted.stderr}"
        return 0, self.output(), created.stderr

    def clean(self) -> None:
        """The suite's Runtime.Clean: force-delete whatever is left, then the bundle."""
        for d in (self.root.iterdir() if self.root.exists() else []):
            if not d.name.startswith("."):
                self._run("delete", "--force", d.name)
        shutil.rmtree(self.bundle, ignore_errors=True)
