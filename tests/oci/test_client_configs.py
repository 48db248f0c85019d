"""The config.json that real clients write (podman 4.3, `ctr run` of containerd 1.6, dockerd 20.10,
`runc spec`; captured on this machine by tests/oci/capture_clients.py, see
tests/oci/fixtures/clients/README.md) and a minimal seccomp allow-list without close_range, each
run through minirun-oci create/state/start/kill/delete as the client would run it.

Only what must be machine-specific is adapted (`adapt` lists it): root.path, the process args
and terminal, bind sources that were the client's files, the cgroup path's parent, hooks that
point at a binary absent here, and an rlimit above what root may raise here. Everything else —
namespaces, mounts, masked and read-only paths, the seccomp profile, capabilities, no_new_privs,
rlimits, sysctls, cgroup resources, devices — is the client's. The container reports what it sees
(a busybox script); the test compares it with the config, looks at the cgroup from outside, and
checks that nothing is left after `delete`. The same scenario runs with runc, the reference:
every fixture runs there, so a failure of minirun-oci alone is minirun-oci's.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from minirun.spec import cap_mask
from tests.conftest import IMAGE_TAR, extract_trusted, requires

OCI = str(Path(sys.executable).with_name("minirun-oci"))
FIXTURES = Path(__file__).parent / "fixtures" / "clients"
PARENT = f"minirun-clients-{os.getpid()}"
CGROUP = Path("/sys/fs/cgroup")

SCRIPT = r"""
echo ready
echo "hostname=$(hostname)"
echo "uid=$(id -u)"
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t ' | tr : =
echo "nofile=$(grep '^Max open files' /proc/self/limits | awk '{print $4":"$5}')"
echo "masked=$(stat -L -c '%F' MASKED 2>&1)"
echo "procsys=$(grep ' /proc/sys ' /proc/self/mounts | awk '{print substr($4,1,2)}')"
unshare -U true 2>/dev/null && echo unshare=allowed || echo unshare=refused
for k in SYSCTLS; do echo "sysctl:$k=$(tr -s '\t ' '  ' < /proc/sys/$(echo $k | tr . /))"; done
env | sed 's/^/env:/'
trap 'echo got-term; exit 0' TERM
echo waiting
while :; do sleep 0.1; done
"""


def adapt(config: dict, bundle: Path, sources: Path, cid: str) -> list[str]:
    """Make a captured config runnable here; returns what was changed (for the failure message)."""
    changed = []
    config["root"]["path"] = str(bundle / "rootfs")
    # the first masked file this kernel has (/proc/kcore is not on every kernel)
    masked = [p for p in config.get("linux", {}).get("maskedPaths", []) if Path(p).is_file()]
    sysctls = " ".join(config.get("linux", {}).get("sysctl", {}))
    script = SCRIPT.replace("MASKED", masked[0] if masked else "/").replace("SYSCTLS", sysctls)
    config["process"]["args"] = ["sh", "-c", script]
    if config["process"].get("terminal"):
        config["process"]["terminal"] = False
        changed.append("process.terminal: false (no console socket here)")
    for i, m in enumerate(config.get("mounts", [])):
        if m.get("type") == "bind" or "bind" in m.get("options", []) or "rbind" in m.get("options", []):
            if not Path(m["source"]).exists():
                src = sources / f"mount-{i}"
                if (bundle / "rootfs" / m["destination"].lstrip("/")).is_dir() or m["destination"] == "/dev/shm":
                    src.mkdir(parents=True)
                else:
                    src.parent.mkdir(parents=True, exist_ok=True)
                    name = Path(m["destination"]).name
                    src.write_text({"hostname": f"{config.get('hostname', '')}\n",
                                    "hosts": "127.0.0.1\tlocalhost\n"}.get(name, ""))
                m["source"] = str(src)
                changed.append(f"mounts/{i} ({m['destination']}): source was the client's file")
    linux = config.setdefault("linux", {})
    if "cgroupsPath" in linux:
        linux["cgroupsPath"] = f"/{PARENT}/{cid}"
        changed.append("linux.cgroupsPath: parent and id of this run")
    for kind, hooks in list(config.get("hooks", {}).items()):
        kept = [h for h in hooks if Path(h["path"]).exists() and not h["path"].startswith("/proc/")]
        if len(kept) != len(hooks):
            changed.append(f"hooks.{kind}: dropped {[h['path'] for h in hooks if h not in kept]}")
            config["hooks"][kind] = kept
    own_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for rl in config["process"].get("rlimits", []):
        if rl["type"] == "RLIMIT_NOFILE" and rl["hard"] > own_hard:
            # raising a hard limit needs CAP_SYS_RESOURCE, which root lacks on this VM: runc
            # refuses podman's default here too
            changed.append(f"RLIMIT_NOFILE {rl['hard']} -> {own_hard} (this host's hard limit)")
            rl["hard"] = rl["soft"] = own_hard
    return changed


def cgroup_dirs(path: str) -> list[Path]:
    rel = path.lstrip("/")
    return [d for d in [*CGROUP.glob(f"*/{rel}"), CGROUP / rel] if d.is_dir()]


def remove_parent() -> list[Path]:
    """Remove this run's cgroup parent; returns groups still under it (a leak)."""
    left = []
    for top in cgroup_dirs(PARENT):
        left += [p for p in top.iterdir() if p.is_dir()]
        try:
            top.rmdir()
        except OSError:
            pass
    return left


def beyond_bounding(config: dict) -> list[str]:
    """The capabilities the config asks for that this process's bounding set lacks."""
    held = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("CapBnd:")), 16)
    asked = {c for caps in config["process"].get("capabilities", {}).values() for c in caps}
    return sorted(c for c in asked if not cap_mask([c], "capabilities") & held)


def seccomp_allows(seccomp: dict | None, name: str) -> bool | None:
    """Whether the profile allows `name` with any arguments; None: not decided by the profile
    alone (no profile, or a rule with conditions)."""
    if not seccomp:
        return None
    for rule in seccomp.get("syscalls", []):
        if name in rule.get("names", []):
            if rule.get("args"):
                return None
            return rule["action"] == "SCMP_ACT_ALLOW"
    return seccomp["defaultAction"] == "SCMP_ACT_ALLOW"


@pytest.fixture(scope="module", autouse=True)
def cgroup_parent():
    yield
    left = remove_parent()
    assert not left, f"groups left under {PARENT}: {left}"


class Runtime:
    """minirun-oci or runc, with a --root of its own; create's stdio on a file (the container
    inherits them, as from a client's shim)."""

    def __init__(self, command: str, root: Path):
        self.command, self.root = command, root

    def __call__(self, *args: str, stdout=None) -> subprocess.CompletedProcess:
        return subprocess.run([self.command, "--root", str(self.root), *args],
                              stdin=subprocess.DEVNULL, stdout=stdout or subprocess.PIPE,
                              stderr=stdout or subprocess.PIPE, text=True, timeout=30)

    def state(self, cid: str) -> dict:
        proc = self("state", cid)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while (now := self.state(cid)["status"]) != status and time.monotonic() < deadline:
            time.sleep(0.05)
        return now

    def exists(self, cid: str) -> bool:
        return self("state", cid).returncode == 0


def run_fixture(command: str, fixture: str, tmp_path: Path) -> None:
    """Create, look from outside, start, compare what the container saw with the config, kill,
    delete; then nothing may be left."""
    requires("root", "busybox-image")
    config = json.loads((FIXTURES / fixture).read_text())
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    extract_trusted(IMAGE_TAR, bundle / "rootfs")
    cid = f"{fixture.split('.')[0]}-{uuid.uuid4().hex[:8]}"
    changed = adapt(config, bundle, tmp_path / "sources", cid)
    (bundle / "config.json").write_text(json.dumps(config))
    rt = Runtime(command, tmp_path / "state")
    out = tmp_path / "container.out"
    group = config["linux"].get("cgroupsPath", f"/minirun-oci/{cid}")
    beyond = beyond_bounding(config)
    try:
        with open(out, "w") as f:
            created = rt("create", "--bundle", str(bundle), cid, stdout=f)
        if beyond:
            # capabilities this host's bounding set lacks (CAP_SYS_RESOURCE on the VM): runc
            # refuses them, and so must minirun-oci, naming one, rather than drop them silently
            assert created.returncode != 0, f"{fixture}: create ran without {beyond}"
            if command == OCI:
                line = out.read_text().strip()
                assert "\n" not in line and any(c in line for c in beyond), line
            assert not rt.exists(cid)
            assert not cgroup_dirs(group)
            assert str(bundle) not in Path("/proc/self/mountinfo").read_text()
            return
        assert created.returncode == 0, (f"{fixture}: create failed: {out.read_text().strip()}\n"
                                         f"adapted: {changed}")
        state = rt.state(cid)
        assert state["status"] == "created"
        pid = state["pid"]
        # from outside: the process is in the group the config names, with its limits
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        if command == OCI or "cgroupsPath" in config["linux"]:
            assert f":{group}\n" in cgroups, cgroups
        resources = config["linux"].get("resources", {})
        if "limit" in resources.get("pids", {}):
            pids_max = [d / "pids.max" for d in cgroup_dirs(group) if (d / "pids.max").exists()]
            assert pids_max and pids_max[0].read_text().strip() == str(resources["pids"]["limit"])
        if resources.get("cpu", {}).get("shares") and (CGROUP / "cpu").is_dir():
            shares = next(d / "cpu.shares" for d in cgroup_dirs(group) if (d / "cpu.shares").exists())
            assert shares.read_text().strip() == str(resources["cpu"]["shares"])

        started = rt("start", cid)
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 10
        while "waiting" not in out.read_text():
            assert rt.state(cid)["status"] == "running", out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.05)
        seen = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
        process = config["process"]
        caps = process.get("capabilities", {})
        expected = {
            "uid": str(process["user"]["uid"]),
            "CapEff": f"{cap_mask(caps.get('effective', []), 'effective'):016x}",
            "CapBnd": f"{cap_mask(caps.get('bounding', []), 'bounding'):016x}",
            "NoNewPrivs": "1" if process.get("noNewPrivileges") else "0",
            "Seccomp": "2" if config["linux"].get("seccomp") else "0",
        }
        if "hostname" in config:
            expected["hostname"] = config["hostname"]
        nofile = next((r for r in process.get("rlimits", []) if r["type"] == "RLIMIT_NOFILE"), None)
        if nofile:
            expected["nofile"] = f"{nofile['soft']}:{nofile['hard']}"
        if any(Path(p).is_file() for p in config["linux"].get("maskedPaths", [])):
            expected["masked"] = "character special file"       # /dev/null bound over it
        if "/proc/sys" in config["linux"].get("readonlyPaths", []):
            expected["procsys"] = "ro"
        if seccomp_allows(config["linux"].get("seccomp"), "unshare") is False:
            expected["unshare"] = "refused"
        for key, value in config["linux"].get("sysctl", {}).items():
            expected[f"sysctl:{key}"] = " ".join(value.split())
        for entry in process.get("env", []):
            expected[f"env:{entry.split('=', 1)[0]}"] = entry.split("=", 1)[1]
        assert {k: seen.get(k) for k in expected} == expected, f"adapted: {changed}"

        assert rt("kill", cid, "TERM").returncode == 0
        assert rt.wait_status(cid, "stopped") == "stopped"
        assert out.read_text().splitlines()[-1] == "got-term"
        deleted = rt("delete", cid)
        assert deleted.returncode == 0, deleted.stderr
    finally:
        if rt.exists(cid):
            rt("delete", "--force", cid)
    # nothing left: state, the group, mounts under the bundle, the process
    assert not rt.exists(cid)
    assert not (rt.root / cid).exists()
    assert not cgroup_dirs(group)
    assert str(bundle) not in Path("/proc/self/mountinfo").read_text()
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    shutil.rmtree(tmp_path / "sources", ignore_errors=True)


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_a_client_s_config_runs_as_the_client_wrote_it(fixture, tmp_path):
    run_fixture(OCI, fixture, tmp_path)


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_runc_runs_each_fixture_the_same_way(fixture, tmp_path):
    """The reference: the same scenario with runc, so a failure above is minirun-oci's, not the
    fixture's or the machine's."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (`make prereqs-ecosystem` installs it)")
    run_fixture(shutil.which("runc"), fixture, tmp_path)
