"""Joining namespaces by path (linux.namespaces[].path): what podman pods, CNI and Kubernetes
ask of a runtime. A "pod" container holds the namespaces; a second container lists them by path
(/proc/PID/ns/..., or a netns made with `ip netns add`) and must see, from inside, the same
network, IPC objects, hostname and processes."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.oci.conftest import Oci, assert_nothing_left, one_line

NS_FILE = {"network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid", "cgroup": "cgroup"}


@pytest.fixture
def pod(oci):
    """Container "pod" (its own namespaces, hostname podhost, kernel.msgmax=12345 in its IPC
    namespace, net.ipv4.ip_default_ttl=77 in its network one), created and started; yields
    (oci, its pid). Removed after."""
    spec = oci.configure(["sh", "-c", "echo up > /tmp/ready; exec sleep 100"])
    spec["hostname"] = "podhost"
    spec["linux"]["sysctl"] = {"kernel.msgmax": "12345", "net.ipv4.ip_default_ttl": "77"}
    oci.write(spec)
    oci("create", "-b", str(oci.bundle), "pod", detached=True)
    oci("start", "pod")
    pid = oci.state("pod")["pid"]
    ready = oci.bundle / "rootfs/tmp/ready"
    for _ in range(200):
        if ready.exists():
            break
        subprocess.run(["sleep", "0.02"])
    assert ready.exists(), "the pod container did not start"
    try:
        yield oci, pid
    finally:
        oci("delete", "--force", "pod", check=False)
        ready.unlink(missing_ok=True)


def joiner(oci: Oci, args: list[str], joins: dict[str, str], **changes) -> Oci:
    """A second bundle on the same rootfs (read-only) whose namespaces of the given types are the
    given paths; the others are its own."""
    bundle = oci.bundle.parent / "joiner"
    bundle.mkdir(exist_ok=True)
    spec = json.loads((oci.bundle / "config.json").read_text())
    spec["root"] = {"path": str(oci.bundle / "rootfs"), "readonly": True}
    spec["process"]["args"] = args
    spec.pop("hostname", None)
    spec["linux"].pop("sysctl", None)
    spec["linux"]["namespaces"] = [
        {"type": n["type"], **({"path": joins[n["type"]]} if n["type"] in joins else {})}
        for n in spec["linux"]["namespaces"]]
    spec.update(changes)
    (bundle / "config.json").write_text(json.dumps(spec))
    return Oci(oci.root, bundle)


def ns_id(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_ino}"


def test_join_network_ipc_uts_of_another_container(pod):
    oci, pid = pod
    b = joiner(oci, ["sh", "-c", "stat -L -c %i /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts"
                     " /proc/self/ns/cgroup; cat /proc/sys/net/ipv4/ip_default_ttl /proc/sys/kernel/msgmax;"
                     " hostname"],
               {t: f"/proc/{pid}/ns/{NS_FILE[t]}" for t in ("network", "ipc", "uts", "cgroup")})
    out = b("run", "-b", str(b.bundle), "joiner").stdout.split()
    assert out[:4] == [ns_id(f"/proc/{pid}/ns/{n}") for n in ("net", "ipc", "uts", "cgroup")]
    # what the pod set up is what the joiner sees: its network and IPC sysctls, its hostname
    assert out[4:] == ["77", "12345", "podhost"]
    assert_nothing_left(b, "joiner")


def test_without_joining_the_namespaces_are_its_own(pod):
    """The control case: the same joiner with no paths sees none of the pod's settings."""
    oci, pid = pod
    b = joiner(oci, ["sh", "-c", "cat /proc/sys/net/ipv4/ip_default_ttl /proc/sys/kernel/msgmax;"
                     " hostname"], {}, hostname="other")
    out = b("run", "-b", str(b.bundle), "joiner").stdout.split()
    assert out == ["64", "8192", "other"]        # a new namespace's defaults


def test_join_the_pid_namespace_sees_the_pod_s_processes(pod):
    oci, pid = pod
    b = joiner(oci, ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$"],
               {"pid": f"/proc/{pid}/ns/pid"})
    first, own = b("run", "-b", str(b.bundle), "joiner").stdout.splitlines()
    assert first.startswith("sleep 100")          # PID 1 is the pod's process
    assert own != "1"                             # and the joiner is not the namespace's init
    # the namespace of this test process's own children is untouched
    assert subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip() != ""
    assert os.stat("/proc/self/ns/pid").st_ino == os.stat("/proc/self/ns/pid_for_children").st_ino


def test_join_a_pid_namespace_through_create_and_exec(pod):
    """create/start (the caller is the cloner) and exec into the joiner: exec follows the joined
    namespace, since it enters /proc/PID/ns of the joiner's process."""
    oci, pid = pod
    b = joiner(oci, ["sleep", "100"], {"pid": f"/proc/{pid}/ns/pid", "network": f"/proc/{pid}/ns/net"})
    b("create", "-b", str(b.bundle), "joiner", detached=True)
    try:
        b("start", "joiner")
        out = b("exec", "joiner", "sh", "-c", "cat /proc/sys/net/ipv4/ip_default_ttl /proc/1/cmdline").stdout
        assert out.startswith("77\nsleep") and "100" in out
        assert b.state("joiner")["status"] == "running"
    finally:
        b("delete", "--force", "joiner")
    assert_nothing_left(b, "joiner")


def test_join_a_netns_made_with_ip_netns_add(oci):
    name = f"minirun-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "10.231.0.1/32", "dev", "lo"], check=True)
        spec = oci.configure(["sh", "-c", "stat -L -c %i /proc/self/ns/net; ip -o addr show lo"])
        spec["linux"]["namespaces"] = [
            {"type": n["type"], **({"path": f"/run/netns/{name}"} if n["type"] == "network" else {})}
            for n in spec["linux"]["namespaces"]]
        oci.write(spec)
        out = oci("run", "-b", str(oci.bundle), "netns").stdout
        assert out.splitlines()[0] == ns_id(f"/run/netns/{name}")
        assert "10.231.0.1/32" in out
        assert_nothing_left(oci, "netns")
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)
    assert not Path(f"/run/netns/{name}").exists()


@pytest.mark.parametrize(("kind", "path", "message"), [
    ("network", "/nonexistent/ns", "/nonexistent/ns: No such file or directory"),
    ("network", "/etc/hostname", "/etc/hostname is not a namespace file"),
    ("network", "/proc/self/ns/uts", "/proc/self/ns/uts is a uts namespace, not a network one"),
    ("mount", "/proc/self/ns/mnt", "is the host's own mount namespace: building the container's "
                                   "root in it would change the root of every process on the host"),
])
def test_bad_namespace_paths_are_one_line_and_leave_nothing(oci, kind, path, message):
    spec = oci.configure(["true"])
    index = next(i for i, n in enumerate(spec["linux"]["namespaces"]) if n["type"] == kind)
    spec["linux"]["namespaces"][index]["path"] = path
    oci.write(spec)
    for verb in (["run", "-b", str(oci.bundle), "bad"], ["create", "-b", str(oci.bundle), "bad"]):
        proc = oci(*verb, check=False)
        assert proc.returncode == 1
        line = one_line(proc.stderr)
        assert line.startswith(f"minirun-oci: linux/namespaces/{index}/path: ") and message in line, line
        assert_nothing_left(oci, "bad")


def test_joining_the_host_s_uts_namespace_with_a_hostname_is_refused(oci):
    """It would rename the host."""
    spec = oci.configure(["true"])
    index = next(i for i, n in enumerate(spec["linux"]["namespaces"]) if n["type"] == "uts")
    spec["linux"]["namespaces"][index]["path"] = "/proc/self/ns/uts"     # the runtime's own
    spec["hostname"] = "not-the-host"
    oci.write(spec)
    before = Path("/proc/sys/kernel/hostname").read_text()
    proc = oci("run", "-b", str(oci.bundle), "host", check=False)
    assert proc.returncode == 1
    assert "is the host's own uts namespace, and hostname would change the host" in one_line(proc.stderr)
    assert Path("/proc/sys/kernel/hostname").read_text() == before
    assert_nothing_left(oci, "host")


def test_minirun_run_s_monitor_joins_a_pid_namespace(pod, clean, data_root, monkeypatch, capfd):
    """The other cloner: `minirun run` clones from its monitor, which must join the pid namespace
    itself. No flag of `minirun run` names a namespace path yet, so the spec is given one on
    its way to the plan builder."""
    from minirun.runtime import plan
    from minirun.runtime.containers import Runtime
    from minirun.runtime.options import RunOptions

    _, pid = pod
    build = plan.build

    def with_pid_path(spec, launch):
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = f"/proc/{pid}/ns/pid"
        return build(spec, launch)

    monkeypatch.setattr(plan, "build", with_pid_path)
    rt = Runtime(data_root)
    st = rt.run(RunOptions(image="busybox", command=["sh", "-c", "cat /proc/1/cmdline; echo; echo $$"],
                           network="none"))
    os.waitpid(st.monitor_pid, 0)
    rt.remove(st.record)
    first, own = capfd.readouterr().out.split("\n")[:2]
    assert first.replace("\0", " ").startswith("sleep 100")
    assert own != "1"
