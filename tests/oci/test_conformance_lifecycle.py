"""The validation suite's lifecycle checks, driven as it drives them (conformance.py): create,
start, state, kill and delete — what each must do, what each must refuse, and that a refusal
changes nothing; the pid file; signals; hooks' stdin; edits to config.json after create."""

from __future__ import annotations

import json
import time

from tests.oci.conformance import suite_config


def test_create_needs_an_id_and_a_unique_one(rt):
    rt.configure(suite_config(["ls"]))
    assert rt.create(cid="").returncode != 0
    assert rt.create().returncode == 0
    assert rt.state()["id"] == rt.id
    again = rt.create()
    assert again.returncode == 1 and again.stderr.strip() == f"minirun-oci: container with id exists: {rt.id}"
    assert rt.state()["status"] == "created"          # the first one is untouched
    assert rt.delete(force=True).returncode == 0


def test_state_has_the_spec_fields_at_each_step(rt):
    config = suite_config(["sleep", "30"])
    config["annotations"] = {"org.example.key": "value"}
    rt.configure(config)
    assert rt.state() is None                          # unknown id: an error
    assert rt._run("state").returncode != 0            # no id: an error
    rt.create()
    st = rt.state()
    assert st["ociVersion"] and st["id"] == rt.id and st["status"] == "created"
    assert st["pid"] > 0 and st["bundle"] == str(rt.bundle) and st["bundle"].startswith("/")
    assert st["annotations"] == {"org.example.key": "value"}
    assert rt.start().returncode == 0
    assert rt.state()["status"] == "running"
    assert rt.kill("KILL").returncode == 0
    assert rt.wait_status("stopped")["status"] == "stopped"
    assert rt.delete().returncode == 0
    assert rt.state() is None


def test_start_runs_the_process_only_once_and_only_from_created(rt):
    rt.configure(suite_config(["sh", "-c", "echo 'process called' >> /output"]))
    assert rt.start(cid="").returncode != 0            # no id
    assert rt.start().returncode != 0                  # does not exist
    rt.create()
    time.sleep(0.2)
    assert not (rt.bundle / "output").exists(), "process.args ran before start"
    assert rt.start().returncode == 0
    assert rt.wait_status("stopped")["status"] == "stopped"
    assert rt.start().returncode != 0                  # stopped: refused, and no second run
    assert (rt.bundle / "output").read_text() == "process called\n"
    assert rt.delete().returncode == 0


def test_kill_a_created_or_running_container_but_not_a_stopped_one(rt):
    rt.configure(suite_config(["true"]))
    assert rt.kill("KILL", cid="").returncode != 0
    assert rt.kill("KILL").returncode != 0             # does not exist
    rt.create()
    assert rt.kill("KILL").returncode == 0             # created
    assert rt.wait_status("stopped")["status"] == "stopped"
    assert rt.delete().returncode == 0
    rt.create()
    rt.start()
    assert rt.wait_status("stopped")["status"] == "stopped"
    refused = rt.kill("KILL")                          # kill_no_effect
    assert refused.returncode == 1 and "it is stopped" in refused.stderr
    assert rt.state()["status"] == "stopped"
    assert rt.delete().returncode == 0


def test_delete_refuses_a_running_container_and_changes_nothing(rt):
    rt.configure(suite_config(["sleep", "30"]))
    assert rt.delete(cid="").returncode != 0
    rt.create()
    rt.start()
    refused = rt.delete()
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"minirun-oci: cannot delete container {rt.id} that is not stopped: running"
    assert rt.state()["status"] == "running"
    rt.kill("KILL")
    assert rt.wait_status("stopped")["status"] == "stopped"
    assert rt.delete().returncode == 0


def test_delete_of_a_created_container_removes_it_as_runc_does(rt):
    """The suite wants an error here (a created container is not stopped); runc deletes it, and
    podman and containerd rely on that to clean up after a failed start: we follow runc."""
    rt.configure(suite_config(["true"]))
    rt.create()
    assert rt.delete().returncode == 0
    assert rt.state() is None


def test_pid_file_holds_the_pid_of_state(rt):
    rt.pid_file = rt.bundle.parent / "ct.pid"
    rt.configure(suite_config(["sleep", "30"]))
    rt.create()
    assert rt.pid_file.read_text() == str(rt.state()["pid"])
    assert rt.delete(force=True).returncode == 0


def test_kill_sends_the_named_signal(rt):
    for sig in ("TERM", "USR1", "USR2"):
        rt.configure(suite_config(["sh", "-c", f"trap 'touch /{sig}' {sig}; sleep 10 & wait $!"]))
        rt.new_id()
        rt.create()
        rt.start()
        assert rt.wait_status("running")["status"] == "running"
        time.sleep(0.2)                                # the shell has set its trap
        assert rt.kill(sig).returncode == 0
        assert rt.wait_status("stopped")["status"] == "stopped"
        assert (rt.bundle / sig).exists(), f"SIG{sig} did not reach the process"
        assert rt.delete().returncode == 0


def test_editing_config_json_after_create_has_no_effect(rt):
    config = suite_config(["sh", "-c", "cat /proc/self/oom_score_adj > /seen"])
    config["process"]["oomScoreAdj"] = 100
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    config["linux"]["rootfsPropagation"] = "shared"
    rt.configure(config)
    assert rt.create().returncode == 0
    (rt.bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.0"}))
    assert rt.start().returncode == 0
    assert rt.wait_status("stopped")["status"] == "stopped"
    assert (rt.bundle / "seen").read_text().strip() == "100"
    assert rt.delete().returncode == 0


def test_unknown_properties_and_annotations_are_accepted_invalid_values_are_not(rt):
    config = suite_config(["true"])
    config["unknown"] = "unknown"
    config["annotations"] = {f"org.{rt.id}": ""}
    rt.configure(config)
    assert rt.create().returncode == 0
    assert rt.delete(force=True).returncode == 0
    rt.configure(dict(suite_config(["true"]), ociVersion="invalid"))
    refused = rt.create()
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("minirun-oci: ociVersion: 'invalid' is not a 1.x SemVer "
                                      "version like '1.2.0'")
    assert rt.state() is None


def hook(rt, name: str, command: str, **extra) -> dict:
    """A hook as the suite writes them: the bundle's own busybox sh, by its host path."""
    return {"path": str(rt.bundle / "bin/sh"), "args": ["sh", "-c", command], **extra}


def test_hooks_are_called_in_order_with_the_state_on_stdin(rt):
    out = rt.bundle / "output"
    config = suite_config(["true"])
    config["annotations"] = {"org.opencontainers.runtime-tools": "hook stdin test"}
    config["hooks"] = {
        kind: [hook(rt, kind, f"cat > {rt.bundle}/{kind}.json; echo '{kind}1 called' >> {out}", timeout=5),
               hook(rt, kind, f"echo '{kind}2 called' >> {out}")]
        for kind in ("prestart", "poststart", "poststop")}
    rt.configure(config)
    rt.create()
    pid = rt.state()["pid"]
    rt.start()
    assert rt.wait_status("stopped")["status"] == "stopped"
    assert rt.delete().returncode == 0
    assert out.read_text().split("\n") == [f"{k}{n} called" for k in ("prestart", "poststart", "poststop")
                                           for n in (1, 2)] + [""]
    for kind, status in (("prestart", "created"), ("poststart", "running"), ("poststop", "stopped")):
        state = json.loads((rt.bundle / f"{kind}.json").read_text())
        assert (state["id"], state["bundle"], state["status"]) == (rt.id, str(rt.bundle), status)
        assert state["annotations"] == {"org.opencontainers.runtime-tools": "hook stdin test"}
        if kind != "poststop":
            assert state["pid"] == pid


def test_a_failing_prestart_hook_fails_create_and_nothing_runs(rt):
    config = suite_config(["sh", "-c", "touch /output"])
    config["hooks"] = {"prestart": [{"path": str(rt.bundle / "bin/false"), "args": ["false"]}]}
    rt.configure(config)
    proc = rt.create()
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"minirun-oci: hooks/prestart/0: {rt.bundle}/bin/false exited 1"
    assert rt.start().returncode != 0 and rt.state() is None
    assert not (rt.bundle / "output").exists()


def test_failing_poststart_and_poststop_hooks_are_warnings(rt):
    out = rt.bundle / "output"
    config = suite_config(["true"])
    false = {"path": str(rt.bundle / "bin/false"), "args": ["false"]}
    config["hooks"] = {kind: [false, hook(rt, kind, f"echo '{kind} called' >> {out}")]
                       for kind in ("poststart", "poststop")}
    rt.configure(config)
    rt.create()
    started = rt.start()
    assert started.returncode == 0 and "warning: hooks/poststart/0:" in started.stderr
    assert rt.wait_status("stopped")["status"] == "stopped"
    deleted = rt.delete()
    assert deleted.returncode == 0 and "warning: hooks/poststop/0:" in deleted.stderr
    assert out.read_text() == "poststart called\npoststop called\n"
