"""A real cluster: a manager and workers as processes, tasks as busybox containers.

Placement as specified (spread over attribute values, binpack, distinctInstance, a task that
fits nowhere stays PENDING with its reason), exact counts when a service scales, the CLI's
answers to bad input, and `cluster down` leaving nothing (the `cluster` fixture checks).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from cluster_helpers import FAST, containers, register, running, sleeper, tasks, wait_until, workers

from tests.conftest import cgroup_value


def test_up_status_and_down(cluster):
    out = cluster.out("cluster", "up", "--workers", "2", "--worker-cpus", "0.5", "--worker-memory", "256m", *FAST)
    assert "worker w1 started" in out and "worker w2 started" in out
    ws = workers(cluster)
    assert [(w["status"], w["cpu"], w["memory"]) for w in ws.values()] == [("ACTIVE", 512, 256)] * 2
    for w in ws.values():
        comm = Path(f"/proc/{w['pid']}/comm").read_text().strip()
        assert comm == "minirun-worker"                     # prctl(PR_SET_NAME): ps tells the story
        assert Path(f"/proc/{w['pid']}/status").read_text().count("\n") > 0
    # `up` again: everything runs already, nothing new is started
    again = cluster.out("cluster", "up", "--workers", "2")
    assert "manager already running" in again and "started (pid" not in again.split("\n", 1)[0]
    assert len(workers(cluster)) == 2
    cluster.out("cluster", "down")
    assert not (cluster.root / "cluster" / "manager.sock").exists()
    r = cluster("task", "ls", check=False)
    assert r.returncode == 125 and "the cluster is not running" in r.stderr and "Traceback" not in r.stderr


def test_up_after_down_starts_a_clean_cluster_and_the_old_one_stays_in_the_events(cluster, tmp_path):
    """up → down → up on one data root: the new cluster lists only its own workers, tasks and
    services (in `cluster status` and in the dashboard's API), named from w1 again; the old
    cluster's story (a worker LOST, its tasks, the service) is still in `cluster events`, and
    task definitions outlive a cluster, as ECS's outlive an ECS cluster."""
    import os
    import signal
    import urllib.parse
    import urllib.request

    cluster("cluster", "up", "--workers", "2", *FAST)
    register(cluster, sleeper(), tmp_path)
    cluster("service", "create", "web", "-t", "sleeper", "-n", "2", "--wait")
    old_pids = {w["pid"] for w in workers(cluster).values()}
    os.kill(workers(cluster)["w2"]["pid"], signal.SIGKILL)            # the old cluster loses w2
    wait_until("w2 LOST", lambda: workers(cluster)["w2"]["status"] == "LOST")
    wait_until("its task replaced on w1", lambda: len(running(cluster, "web")) == 2)
    old_tasks = {t["id"] for t in tasks(cluster, "--all")}
    assert len(old_tasks) == 3
    cluster("cluster", "down")

    cluster("cluster", "up", "--workers", "1", *FAST)
    ws = workers(cluster)
    assert [(wid, w["status"]) for wid, w in ws.items()] == [("w1", "ACTIVE")], ws
    assert ws["w1"]["pid"] not in old_pids
    assert tasks(cluster, "--all") == []
    assert json.loads(cluster.out("service", "ls", "--format", "json")) == []
    # the dashboard reads the same state through its own port: only the new worker there too
    base, _, token = cluster.out("dashboard").partition("#token=")

    def board(path: str):
        req = urllib.request.Request(urllib.parse.urljoin(base, path), headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())
    assert [w["id"] for w in board("/v1/cluster")["workers"]] == ["w1"]
    assert [w["id"] for w in board("/v1/workers")] == ["w1"]
    assert board("/v1/tasks?all=1") == [] and board("/v1/services?all=1") == []

    # the history keeps the old cluster, then says where the new one begins
    history = [json.loads(line) for line in cluster.out("cluster", "events").splitlines()]
    assert any(e["subject"] == "w2" and e["message"].startswith("LOST") for e in history)
    assert old_tasks <= {e["subject"].rsplit("/", 1)[-1] for e in history}
    new_cluster = [e for e in history if e["kind"] == "cluster" and e["message"].startswith("a new cluster")]
    assert len(new_cluster) == 1, history
    assert "(2 workers, 3 tasks, 1 service)" in new_cluster[0]["message"]

    # the definitions are still registered; a service of the old name starts afresh on w1
    assert cluster.out("task-definition", "ls").splitlines()[1].split()[:2] == ["sleeper:1", "ACTIVE"]
    cluster("service", "create", "web", "-t", "sleeper", "-n", "1", "--wait")
    assert [t["worker"] for t in running(cluster, "web")] == ["w1"]
    described = json.loads(cluster.out("service", "describe", "web"))
    assert not {e["seq"] for e in described["events"]} & {e["seq"] for e in history}   # its own events only


def test_spread_by_attribute_binpack_and_distinct_instance(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "1", "--attribute", "zone=a", *FAST)
    cluster("cluster", "add-worker", "--count", "2", "--attribute", "zone=b")
    register(cluster, sleeper(memory=100), tmp_path)
    cluster("service", "create", "web", "-t", "sleeper", "-n", "4", "--wait",
            "--placement-strategy", "spread(attribute:zone),spread(instanceId)")
    placed = Counter(t["worker"] for t in running(cluster, "web"))
    assert placed == {"w1": 2, "w2": 1, "w3": 1}            # 2 per zone, the b zone spread over 2
    assert len(containers(cluster)) == 4

    ids = cluster.out("task", "run", "sleeper", "--count", "3", "--placement-strategy", "binpack(memory)").split()
    wait_until("3 tasks running", lambda: all(t["status"] == "RUNNING" for t in tasks(cluster) if t["id"] in ids))
    # binpack: the fullest worker that fits first (w1 holds 200 MiB of the service)
    assert {t["worker"] for t in tasks(cluster) if t["id"] in ids} == {"w1"}

    ids = cluster.out("task", "run", "sleeper", "--count", "4", "--group", "one-each",
                      "--placement-constraint", "distinctInstance").split()
    wait_until("3 of 4 running", lambda: sum(t["status"] == "RUNNING" for t in tasks(cluster) if t["id"] in ids) == 3)
    mine = [t for t in tasks(cluster) if t["id"] in ids]
    assert sorted(t["worker"] for t in mine if t["worker"]) == ["w1", "w2", "w3"]
    pending = [t for t in mine if t["status"] == "PENDING"]
    assert len(pending) == 1
    assert pending[0]["pending_reason"] == "no worker fits (cpu 64, memory 100 MiB): 3 distinctInstance"
    table = cluster.out("task", "ls")
    assert "3 distinctInstance" in table
    explain = cluster.out("explain", pending[0]["id"])
    assert explain.splitlines()[0].startswith(f"task {pending[0]['id']}: PENDING — no worker fits")
    assert explain.count("dropped") == 3 and "already runs a task of one-each" in explain

    placed_one = next(t for t in mine if t["worker"])
    explain = cluster.out("explain", placed_one["id"][:8])
    assert f"placed on {placed_one['worker']}" in explain and "(chosen)" in explain

    cluster("task", "stop", *ids)
    wait_until("the group stopped", lambda: not [t for t in tasks(cluster) if t["id"] in ids])


def test_a_task_too_big_for_every_worker_stays_pending_with_the_reason(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "2", "--worker-memory", "128m", *FAST)
    register(cluster, sleeper("big", memory=200), tmp_path)
    tid = cluster.out("task", "run", "big")
    t = wait_until("a pending reason", lambda: [x for x in tasks(cluster) if x["id"] == tid and x["pending_reason"] != "not placed yet"])[0]
    assert t["status"] == "PENDING"
    assert t["pending_reason"] == "no worker fits (cpu 64, memory 200 MiB): 2 not enough memory"
    assert "memory: needs 200 MiB, 128 of 128 free" in cluster.out("explain", tid)
    cluster("task", "stop", tid)
    assert tasks(cluster, "--all")[0]["status"] == "STOPPED"
    assert containers(cluster) == []


def test_scaling_reaches_exact_counts(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "3", *FAST)
    register(cluster, sleeper(), tmp_path)
    cluster("service", "create", "web", "-t", "sleeper", "-n", "5", "--wait")
    assert len(running(cluster, "web")) == 5 and len(containers(cluster)) == 5
    cluster("service", "update", "web", "--desired-count", "9", "--wait")
    assert len(running(cluster, "web")) == 9
    assert Counter(t["worker"] for t in running(cluster, "web")) == {"w1": 3, "w2": 3, "w3": 3}
    cluster("service", "update", "web", "--desired-count", "2", "--wait")
    wait_until("7 containers removed", lambda: len(containers(cluster)) == 2)
    assert len(running(cluster, "web")) == 2
    stopped = [t for t in tasks(cluster, "--all") if t["status"] == "STOPPED"]
    assert len(stopped) == 7 and all("scaled down" in t["stop_reason"] for t in stopped)
    ls = cluster.out("service", "ls")
    assert ls.splitlines()[1].split()[:5] == ["web", "sleeper:1", "2", "2", "0"]
    cluster("service", "rm", "web")
    wait_until("no task left", lambda: not tasks(cluster) and not containers(cluster))


def test_rolling_deployment_and_vertical_scaling(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "2", *FAST)
    register(cluster, sleeper(), tmp_path)
    cluster("service", "create", "web", "-t", "sleeper", "-n", "3", "--wait")
    old = {t["id"] for t in running(cluster, "web")}
    assert register(cluster, sleeper(command=["sleep", "7200"]), tmp_path) == "sleeper:2"
    cluster("service", "update", "web", "--task-definition", "sleeper:2", "--wait")
    now = running(cluster, "web")
    assert len(now) == 3 and {t["taskdef"] for t in now} == {"sleeper:2"} and not old & {t["id"] for t in now}
    assert sorted(c["Command"] for c in containers(cluster)) == ['"sleep 7200"'] * 3
    events = json.loads(cluster.out("service", "describe", "web"))["events"]
    assert any("rolling deployment" in e["message"] for e in events)

    # vertical: a task-level memory limit, applied live to the containers' cgroups (the
    # container itself only reserves memory, so the task's limit is its hard limit)
    td = sleeper(command=["sleep", "7200"])
    del td["containerDefinitions"][0]["memory"]
    td["containerDefinitions"][0]["memoryReservation"] = 32
    register(cluster, td, tmp_path)
    cluster("service", "update", "web", "--task-definition", "sleeper:3", "--wait")
    ids = {t["id"] for t in running(cluster, "web")}

    def limits():
        return {json.loads(cluster.out("inspect", c["Id"]))[0]["HostConfig"]["Memory"] for c in containers(cluster)}
    assert limits() == {0}
    out = cluster.out("service", "update", "web", "--memory", "48m")
    assert out == "web: 3 × sleeper:3"
    wait_until("the new limit applied", lambda: limits() == {48 << 20})
    assert {cgroup_value(c["Id"], "memory", "memory.limit_in_bytes", "memory.max") for c in containers(cluster)} == {str(48 << 20)}
    assert {t["id"] for t in running(cluster, "web")} == ids     # live: no task was replaced
    assert all(t["memory"] == 48 for t in running(cluster, "web"))
    events = json.loads(cluster.out("service", "describe", "web"))["events"]
    assert "memory 48 applied live" in events[-1]["message"]


def test_bad_input_gets_one_line(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "1", *FAST)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"family": "x", "containerDefinitions": [
        {"name": "a", "image": "busybox", "memory": 4, "colour": "red"}]}))
    r = cluster("task-definition", "register", str(bad), check=False)
    assert r.returncode == 125
    assert r.stderr == ("minirun: containerDefinitions/0/colour: unknown field (known here: command, cpu, "
                        "dependsOn, entryPoint, environment, essential, healthCheck, hostname, image, memory, "
                        "memoryReservation, mountPoints, name, portMappings, readonlyRootFilesystem, "
                        "stopTimeout, ulimits, user, workingDirectory); containerDefinitions/0/memory: "
                        "must be an integer ≥ 6 (MiB)\n")
    bad.write_text("{nope")
    r = cluster("task-definition", "register", str(bad), check=False)
    assert r.returncode == 125 and r.stderr.startswith(f"minirun: {bad}: not JSON: line 1 column 2")
    for args, message in [
        (["task", "run", "nosuch"], "no active task definition of family 'nosuch'"),
        (["task", "stop", "0000"], "no task 0000"),
        (["service", "describe", "nosuch"], "no service nosuch"),
        (["service", "create", "s", "-t", "nosuch"], "no active task definition"),
        (["task", "run", "x", "--placement-strategy", "pack"], "placement strategy 'pack'"),
        (["cluster", "drain", "w9"], "no worker w9"),
    ]:
        r = cluster(*args, check=False)
        assert r.returncode == 125 and message in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
    assert tasks(cluster, "--all") == []


def test_depends_on_order_and_a_scratch_volume_shared_by_the_task(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "1", *FAST)
    shared = [{"sourceVolume": "shared", "containerPath": "/shared"}]
    td = {"family": "pod", "volumes": [{"name": "shared"}], "containerDefinitions": [
        {"name": "setup", "image": "busybox", "memory": 16, "essential": False, "mountPoints": shared,
         "command": ["sh", "-c", "sleep 0.3; echo ready > /shared/flag"]},
        {"name": "app", "image": "busybox", "memory": 16, "mountPoints": shared, "stopTimeout": 1,
         "dependsOn": [{"containerName": "setup", "condition": "SUCCESS"}],
         "command": ["sh", "-c", "cat /shared/flag; exec sleep 3600"],
         "healthCheck": {"command": ["CMD", "test", "-e", "/shared/flag"], "interval": 1}},
        {"name": "sidecar", "image": "busybox", "memory": 16, "essential": False, "stopTimeout": 1,
         "dependsOn": [{"containerName": "app", "condition": "HEALTHY"}], "command": ["sleep", "3600"]},
    ]}
    register(cluster, td, tmp_path)
    tid = cluster.out("task", "run", "pod")

    def sidecar_running():
        t = json.loads(cluster.out("task", "describe", tid))[0]
        c = {x["name"]: x for x in t["containers"]}
        return c.get("sidecar", {}).get("status") == "RUNNING" and t
    t = wait_until("the sidecar started", sidecar_running)
    c = {x["name"]: x for x in t["containers"]}
    assert c["setup"]["status"] == "STOPPED" and c["setup"]["exitCode"] == 0
    assert t["status"] == "RUNNING" and t["health"] == "HEALTHY"
    assert cluster.out("logs", c["app"]["id"]) == "ready"       # started after setup wrote it
    started = {n: json.loads(cluster.out("inspect", c[n]["id"]))[0]["State"] for n in c}
    assert started["setup"]["FinishedAt"] <= started["app"]["StartedAt"] < started["sidecar"]["StartedAt"]
    assert t["stats"]["memory_usage"] > 0                      # from the containers' cgroups
    assert (cluster.root / "cluster" / "volumes" / tid / "shared" / "flag").read_text() == "ready\n"
    cluster("task", "stop", tid)
    wait_until("the task and its volume gone", lambda: not containers(cluster)
               and not (cluster.root / "cluster" / "volumes" / tid).exists())


def test_events_follow_and_metrics(cluster, tmp_path):
    import subprocess
    import urllib.request

    from tests.conftest import MINIRUN
    cluster("cluster", "up", "--workers", "2", *FAST)
    follower = subprocess.Popen([*MINIRUN, "--root", str(cluster.root), "cluster", "events", "-f"],
                                stdout=subprocess.PIPE, text=True)
    try:
        register(cluster, sleeper(), tmp_path)
        cluster("service", "create", "web", "-t", "sleeper", "-n", "3", "--wait")
        seen = []
        while not any(e["message"] == "RUNNING on w2" for e in seen) or len([e for e in seen if e["message"].startswith("RUNNING")]) < 3:
            seen.append(json.loads(follower.stdout.readline()))
        assert {"seq", "time", "kind", "subject", "message"} <= set(seen[-1])
        assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
    finally:
        follower.kill()
        follower.wait()
    port = int((cluster.root / "cluster" / "metrics.port").read_text())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    assert 'minirun_tasks{status="RUNNING",service="web"} 3' in text
    assert 'minirun_workers{status="ACTIVE"} 2' in text
    assert "# TYPE minirun_worker_memory_usage_bytes gauge" in text
    assert 'minirun_service_desired_tasks{service="web"} 3' in text
    stats = cluster.out("cluster", "stats")
    assert stats.splitlines()[0].split() == ["WORKER", "TASK", "SERVICE", "MEMORY", "CPU", "TIME"]
    assert stats.count(" web ") == 3


def test_task_definition_revisions_and_drain(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "3", *FAST)
    assert register(cluster, sleeper(), tmp_path) == "sleeper:1"
    assert register(cluster, sleeper(memory=48), tmp_path) == "sleeper:2"
    ls = cluster.out("task-definition", "ls")
    assert [line.split()[:2] for line in ls.splitlines()[1:]] == [["sleeper:1", "ACTIVE"], ["sleeper:2", "ACTIVE"]]
    latest = json.loads(cluster.out("task-definition", "describe", "sleeper"))
    assert latest["revision"] == 2 and latest["containerDefinitions"][0]["memory"] == 48
    assert cluster.out("task-definition", "deregister", "sleeper:2") == "sleeper:2 INACTIVE"
    assert json.loads(cluster.out("task-definition", "describe", "sleeper"))["revision"] == 1
    r = cluster("task", "run", "sleeper:2", check=False)
    assert r.returncode == 125 and "task definition sleeper:2 is deregistered (INACTIVE)" in r.stderr
    assert ["sleeper:2", "INACTIVE"] in [line.split()[:2] for line in cluster.out("task-definition", "ls", "--all").splitlines()]

    # drain: the service's tasks leave w1, a standalone task stays (as in ECS)
    cluster("service", "create", "web", "-t", "sleeper", "-n", "3", "--wait")
    alone = cluster.out("task", "run", "sleeper", "--placement-constraint", "memberOf(attribute:ecs.os-type == linux)")
    wait_until("the task running", lambda: [t for t in tasks(cluster) if t["id"] == alone and t["status"] == "RUNNING"])
    on_w1 = [t["id"] for t in running(cluster, "web") if t["worker"] == "w1"]
    assert on_w1
    assert cluster.out("cluster", "drain", "w1") == "w1 draining"
    wait_until("the service off w1", lambda: len(running(cluster, "web")) == 3
               and "w1" not in {t["worker"] for t in running(cluster, "web")})
    assert workers(cluster)["w1"]["status"] == "DRAINING"
    stopped = {t["id"]: t for t in tasks(cluster, "--all") if t["id"] in on_w1}
    assert all(t["stop_reason"] == "worker w1 is draining" for t in stopped.values())
    standalone = next(t for t in tasks(cluster) if t["id"] == alone)
    assert standalone["status"] == "RUNNING"
    new = cluster.out("task", "run", "sleeper", "--count", "3")
    wait_until("3 more running", lambda: sum(t["status"] == "RUNNING" for t in tasks(cluster) if t["id"] in new.split()) == 3)
    assert "w1" not in {t["worker"] for t in tasks(cluster) if t["id"] in new.split()}


def test_a_resize_that_does_not_fit_rolls_the_tasks_over(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "2", "--worker-memory", "256m", *FAST)
    td = sleeper()
    del td["containerDefinitions"][0]["memory"]
    td["containerDefinitions"][0]["memoryReservation"] = 32
    register(cluster, td, tmp_path)
    cluster("service", "create", "web", "-t", "sleeper", "-n", "2", "--placement-strategy", "binpack(memory)", "--wait")
    old = running(cluster, "web")
    assert {t["worker"] for t in old} == {"w1"}
    # 2 × 200 MiB cannot stay on w1 (256 MiB): replaced, one at a time, keeping 2 running
    cluster("service", "update", "web", "--memory", "200m", "--wait")
    now = running(cluster, "web")
    assert sorted(t["worker"] for t in now) == ["w1", "w2"] and all(t["memory"] == 200 for t in now)
    assert not {t["id"] for t in old} & {t["id"] for t in now}
    stopped = [t for t in tasks(cluster, "--all") if t["id"] in {x["id"] for x in old}]
    assert all(t["stop_reason"].endswith("replaced with the new cpu/memory (deployment)") for t in stopped)
    limits = {json.loads(cluster.out("inspect", c["Id"]))[0]["HostConfig"]["Memory"] for c in containers(cluster)}
    assert limits == {200 << 20}
    events = json.loads(cluster.out("service", "describe", "web"))["events"]
    assert any("by rolling replacement" in e["message"] for e in events)


def test_a_bridge_task_publishes_its_port_on_loopback(cluster, tmp_path):
    """networkMode bridge: the task's container gets its own address on the root's bridge, and
    its portMappings are published on 127.0.0.1 as `run -p` would."""
    import socket
    import urllib.request

    from tests.conftest import private_network_settings

    private_network_settings(cluster.root)
    with socket.socket() as s:                       # a port free right now on this host
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    web = {"family": "web", "networkMode": "bridge", "containerDefinitions": [{
        "name": "httpd", "image": "busybox", "memory": 32, "cpu": 64, "stopTimeout": 1,
        "command": ["sh", "-c", "mkdir -p /www && echo from-the-task > /www/index.html && "
                                "exec httpd -f -p 80 -h /www"],
        "portMappings": [{"containerPort": 80, "hostPort": port}]}]}
    cluster("cluster", "up", "--workers", "1", *FAST)
    register(cluster, web, tmp_path)
    cluster("task", "run", "web")
    wait_until("the task to run", lambda: [t for t in tasks(cluster) if t["status"] == "RUNNING"])

    def fetch():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return None
    assert wait_until("the published port to answer", fetch).strip() == "from-the-task"
    name = containers(cluster)[0]["Names"]
    assert f"127.0.0.1:{port}" in cluster.out("port", name)
