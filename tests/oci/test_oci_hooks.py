"""OCI hooks: each kind runs at its point of the lifecycle, in order, with the state JSON on its
stdin, its own args and env; failures and timeouts fail create with one line (and leave nothing),
poststart/poststop failures are warnings; the kinds minirun cannot honour are refused by name."""

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
    for kind in ("prestart", "createRuntime"):
        state = json.loads((out / f"{kind}.json").read_text())
        assert (state["id"], state["pid"], state["status"]) == ("hooked", pid, "creating")
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


@pytest.mark.parametrize("kind", ["prestart", "createRuntime"])
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
    ({"createContainer": [{"path": "/bin/true"}]}, "hooks/createContainer: not supported by minirun-oci"),
    ({"startContainer": [{"path": "/bin/true"}]}, "hooks/startContainer: not supported by minirun-oci"),
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
