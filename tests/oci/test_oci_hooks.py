"""OCI hooks: each kind runs at its point of the lifecycle, in order, with the state JSON on its
stdin, its own args and env; failures and timeouts fail create with one line (and leave nothing),
poststart/poststop failures are warnings; createRuntime runs before pivot_root, createContainer and
startContainer inside the container's namespaces."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.oci.conftest import assert_nothing_left, one_line

KINDS = ("prestart", "createRuntime", "poststart", "poststop")


@pytest.fixture
def hook(tmp_path):
    """A hook program that saves its stdin as OUT/KIND.json, its args and env, and appends KIND
    to OUT/order; `exit=N` or `sleep=S` in its env make it fail or hang."""
    out = tmp_path / "hooks"
    out.mkdir()
    script = tmp_path / "hook.sh"
    script.write_text(f"""#!/bin/sh
cat > {out}/$KIND.json
echo "$@" > {out}/$KIND.args
env > {out}/$KIND.env
echo $KIND >> {out}/order
[ -n "$sleep" ] && sleep $sleep
[ -n "$exit" ] && {{ echo "hook says no" >&2; exit $exit; }}
exit 0
""")
    script.chmod(0o755)

    def make(kind: str, **env) -> dict:
        h = {"path": str(script), "args": ["hook.sh", kind, "second-arg"],
             "env": [f"KIND={kind}", *(f"{k}={v}" for k, v in env.items() if k != "timeout")]}
        if "timeout" in env:
            h["timeout"] = env["timeout"]
        return h

    make.out = out
    return make


def test_hooks_run_in_lifecycle_order_with_the_state_on_stdin(oci, hook):
    spec = oci.configure(["sh", "-c", "touch /tmp/ran; sleep 30"])
    spec["hooks"] = {k: [hook(k)] for k in KINDS}
    oci.write(spec)
    out = hook.out
    oci("create", "-b", str(oci.bundle), "hooked", detached=True)
    pid = oci.state("hooked")["pid"]
    assert (out / "order").read_text().split() == ["prestart", "createRuntime"]
    assert not (oci.bundle / "rootfs/tmp/ran").exists(), "the program ran before start"
    for kind, status in (("prestart", "created"), ("createRuntime", "creating")):
        state = json.loads((out / f"{kind}.json").read_text())
        assert (state["id"], state["pid"], state["status"]) == ("hooked", pid, status)
        assert state["bundle"] == str(oci.bundle) and state["ociVersion"]
    # the container's namespaces exist for it (what CNI-style set-up needs): its pid is live
    assert Path(f"/proc/{pid}/ns/net").exists()
    assert (out / "createRuntime.args").read_text().split() == ["createRuntime", "second-arg"]
    env = (out / "createRuntime.env").read_text()
    assert "KIND=createRuntime" in env and "MINIRUN" not in env   # only the hook's own env

    oci("start", "hooked")
    assert json.loads((out / "poststart.json").read_text())["status"] == "running"
    assert (out / "order").read_text().split() == ["prestart", "createRuntime", "poststart"]
    oci("kill", "hooked", "KILL")
    oci.wait_status("hooked", "stopped")
    assert not (out / "poststop.json").exists()
    oci("delete", "hooked")
    state = json.loads((out / "poststop.json").read_text())
    assert (state["id"], state["status"]) == ("hooked", "stopped")
    assert (out / "order").read_text().split() == list(KINDS)
    assert_nothing_left(oci, "hooked")


def test_run_runs_the_hooks_too(oci, hook):
    spec = oci.configure(["true"])
    spec["hooks"] = {k: [hook(k)] for k in KINDS}
    oci.write(spec)
    oci("run", "-b", str(oci.bundle), "once")
    assert (hook.out / "order").read_text().split() == list(KINDS)
    assert_nothing_left(oci, "once")


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_leaves_nothing(oci, hook, kind):
    spec = oci.configure(["sleep", "30"])
    spec["hooks"] = {kind: [hook(kind, exit=3)]}
    oci.write(spec)
    proc = oci("create", "-b", str(oci.bundle), "nohook", check=False)
    assert proc.returncode == 1
    assert one_line(proc.stderr) == (f"minirun-oci: hooks/{kind}/0: {hook.out.parent}/hook.sh "
                                     "exited 3: hook says no")
    assert_nothing_left(oci, "nohook")


def test_a_hook_past_its_timeout_is_killed_and_fails_create(oci, hook):
    spec = oci.configure(["sleep", "30"])
    spec["hooks"] = {"createRuntime": [hook("createRuntime", sleep=30, timeout=1)]}
    oci.write(spec)
    t0 = time.monotonic()
    proc = oci("create", "-b", str(oci.bundle), "slow", check=False)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 1
    assert "hooks/createRuntime/0: " in proc.stderr and "did not finish within its timeout (1 s)" in proc.stderr
    assert_nothing_left(oci, "slow")


def test_poststart_and_poststop_failures_are_warnings(oci, hook):
    spec = oci.configure(["sleep", "30"])
    spec["hooks"] = {"poststart": [hook("poststart", exit=2)], "poststop": [hook("poststop", exit=4)]}
    oci.write(spec)
    oci("create", "-b", str(oci.bundle), "warn", detached=True)
    proc = oci("start", "warn")
    assert "warning: hooks/poststart/0:" in proc.stderr and "exited 2" in proc.stderr
    assert oci.state("warn")["status"] == "running"
    proc = oci("delete", "--force", "warn")
    assert "warning: hooks/poststop/0:" in proc.stderr and "exited 4" in proc.stderr
    assert_nothing_left(oci, "warn")


@pytest.mark.parametrize(("hooks", "message"), [
    ({"prestart": [{"path": "bin/true"}]}, "hooks/prestart/0/path: required: an absolute path"),
    ({"poststop": [{"path": "/bin/true", "timeout": 0}]}, "hooks/poststop/0/timeout: must be an integer > 0"),
    ({"afterParty": []}, "hooks/afterParty: unknown hook kind"),
    ({"prestart": [{"path": "/nonexistent/hook"}]}, "hooks/prestart/0: /nonexistent/hook: No such file or directory"),
])
def test_bad_hooks_are_one_line(oci, hooks, message):
    spec = oci.configure(["true"])
    spec["hooks"] = hooks
    oci.write(spec)
    proc = oci("create", "-b", str(oci.bundle), "bad", check=False)
    assert proc.returncode == 1
    assert message in one_line(proc.stderr)
    assert_nothing_left(oci, "bad")


# A hook that says where it ran: its namespaces, whether the container's root is pivoted yet
# (the container's /proc/PID/root is still the host's "/" before pivot_root), what it sees as "/".
WHERE = r"""#!/bin/sh
state=$(cat)
pid=$(echo "$state" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
{
echo "kind $1"
echo "status $(echo "$state" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')"
echo "net $(readlink /proc/self/ns/net) $(readlink /proc/$pid/ns/net)"
echo "mnt $(readlink /proc/self/ns/mnt) $(readlink /proc/$pid/ns/mnt)"
[ "$(stat -L -c %d:%i /proc/$pid/root/)" = "$(stat -c %d:%i /)" ] && echo "pivoted no" || echo "pivoted yes"
[ -e /proc/$pid/root/ran ] && echo "program-ran yes" || echo "program-ran no"
} > OUT/$1
"""


def where_hook(tmp_path, kind: str, script_path: str | None = None) -> dict:
    return {"path": script_path or str(tmp_path / "where.sh"), "args": ["where.sh", kind]}


def report(out, kind: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in (out / kind).read_text().splitlines())


def test_create_hooks_run_before_pivot_root_in_their_namespaces(oci, tmp_path):
    out = tmp_path / "where"
    out.mkdir()
    (tmp_path / "where.sh").write_text(WHERE.replace("OUT", str(out)))
    (tmp_path / "where.sh").chmod(0o755)
    spec = oci.configure(["sh", "-c", "touch /ran; sleep 30"])
    spec["hooks"] = {k: [where_hook(tmp_path, k)] for k in ("prestart", "createRuntime", "createContainer")}
    oci.write(spec)
    oci("create", "-b", str(oci.bundle), "where", detached=True)
    for kind in ("prestart", "createRuntime", "createContainer"):
        r = report(out, kind)
        assert (r["status"], r["pivoted"], r["program-ran"]) == \
            ("created" if kind == "prestart" else "creating", "no", "no"), kind
    for kind in ("prestart", "createRuntime"):      # in ours, while the container's exist
        r = report(out, kind)
        assert r["net"].split()[0] != r["net"].split()[1]
        assert r["mnt"].split()[0] != r["mnt"].split()[1]
    # createContainer runs in them: its own namespaces are the container's
    r = report(out, "createContainer")
    assert r["net"].split()[0] == r["net"].split()[1] and r["mnt"].split()[0] == r["mnt"].split()[1]
    # prestart and createRuntime run in ours
    assert report(out, "createRuntime")["net"].split()[0] == f"net:[{Path('/proc/self/ns/net').stat().st_ino}]"
    oci("delete", "--force", "where")
    assert_nothing_left(oci, "where")


def test_start_container_hooks_run_inside_the_container_before_its_program(oci):
    """startContainer: in the container's namespaces and root (so /bin/sh is the container's),
    after `start` is called and before the program runs."""
    spec = oci.configure(["sh", "-c", "touch /ran; sleep 30"], cwd="/")
    spec["hostname"] = "inside"
    spec["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", "cat > /start.json; { hostname; [ -e /ran ] && echo ran || echo not-yet; } > /start.out"]}]}
    oci.write(spec)
    oci("create", "-b", str(oci.bundle), "sc", detached=True)
    assert not (oci.bundle / "rootfs/start.out").exists()
    pid = oci.state("sc")["pid"]
    oci("start", "sc")
    assert (oci.bundle / "rootfs/start.out").read_text().split() == ["inside", "not-yet"]
    state = json.loads((oci.bundle / "rootfs/start.json").read_text())
    assert (state["id"], state["pid"], state["status"]) == ("sc", pid, "created")
    assert oci.wait_status("sc", "running")["status"] == "running"
    oci("delete", "--force", "sc")
    assert_nothing_left(oci, "sc")


def test_a_failing_start_container_hook_fails_start_and_stops_the_container(oci, hook):
    spec = oci.configure(["sh", "-c", "touch /ran; sleep 30"])
    spec["hooks"] = {"startContainer": [{"path": "/bin/false", "args": ["false"]}],
                     "poststop": [hook("poststop")]}
    oci.write(spec)
    oci("create", "-b", str(oci.bundle), "scfail", detached=True)
    proc = oci("start", "scfail", check=False)
    assert proc.returncode == 1
    assert one_line(proc.stderr) == "minirun-oci: hooks/startContainer/0: /bin/false exited 1"
    assert oci.wait_status("scfail", "stopped")["status"] == "stopped"
    assert not (oci.bundle / "rootfs/ran").exists()
    oci("delete", "scfail")                         # the lifecycle goes on: poststop runs
    assert (hook.out / "order").read_text().split() == ["poststop"]
    assert_nothing_left(oci, "scfail")
