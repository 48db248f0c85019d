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
checks that nothing is left after `delete`.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest

from minirun.spec import cap_mask
from tests.conftest import IMAGE_TAR, extract_trusted, requires
from tests.oci.conftest import Oci

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
    config["process"]["args"] = ["sh", "-c", SCRIPT.replace("MASKED", masked[0] if masked else "/")]
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


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_a_client_s_config_runs_as_the_client_wrote_it(fixture, tmp_path):
    requires("root", "busybox-image")
    config = json.loads((FIXTURES / fixture).read_text())
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    extract_trusted(IMAGE_TAR, bundle / "rootfs")
    cid = f"{fixture.split('.')[0]}-{uuid.uuid4().hex[:8]}"
    changed = adapt(config, bundle, tmp_path / "sources", cid)
    (bundle / "config.json").write_text(json.dumps(config))
    oci = Oci(tmp_path / "state", bundle)
    out = bundle / "create.out"
    try:
        created = oci("create", "--bundle", str(bundle), cid, check=False, detached=True)
        assert created.returncode == 0, (f"{fixture}: create failed: {created.stderr.strip()}\n"
                                         f"adapted: {changed}")
        state = oci.state(cid)
        assert state["status"] == "created"
        pid = state["pid"]
        # from outside: the process is in the group the config names, with its limits
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        group = config["linux"].get("cgroupsPath", f"/minirun-oci/{cid}")
        assert f":{group}\n" in cgroups, cgroups
        resources = config["linux"].get("resources", {})
        if "limit" in resources.get("pids", {}):
            pids_max = [d / "pids.max" for d in cgroup_dirs(group) if (d / "pids.max").exists()]
            assert pids_max and pids_max[0].read_text().strip() == str(resources["pids"]["limit"])
        if resources.get("cpu", {}).get("shares") and (CGROUP / "cpu").is_dir():
            shares = next(d / "cpu.shares" for d in cgroup_dirs(group) if (d / "cpu.shares").exists())
            assert shares.read_text().strip() == str(resources["cpu"]["shares"])

        oci("start", cid)
        deadline = time.monotonic() + 10
        while "waiting" not in out.read_text():
            assert oci.state(cid)["status"] == "running", out.read_text()
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
        assert {k: seen.get(k) for k in expected} == expected, f"adapted: {changed}"

        oci("kill", cid, "TERM")
        assert oci.wait_status(cid, "stopped", timeout=10)["status"] == "stopped"
        assert out.read_text().splitlines()[-1] == "got-term"
        oci("delete", cid)
    finally:
        if (oci.root / cid).exists():
            oci("delete", "--force", cid, check=False)
    # nothing left: state, the group, mounts under the bundle, the process
    assert not (oci.root / cid).exists()
    assert not cgroup_dirs(group)
    assert str(bundle) not in Path("/proc/self/mountinfo").read_text()
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    shutil.rmtree(tmp_path / "sources", ignore_errors=True)
