"""`minirun task-definition export FAMILY[:REV]` reads the definition from the running cluster's
registry (the same JSON `describe` prints), so the revision is in the manifests."""

from __future__ import annotations

import yaml
from cluster_helpers import FAST, register, sleeper


def test_export_a_registered_revision(cluster, tmp_path):
    cluster("cluster", "up", "--workers", "1", *FAST)
    register(cluster, sleeper(), tmp_path)
    assert register(cluster, sleeper(memory=48, portMappings=[{"containerPort": 80}]), tmp_path) == "sleeper:2"
    docs = list(yaml.safe_load_all(cluster.out("task-definition", "export", "sleeper:1", "--replicas", "2")))
    assert [d["kind"] for d in docs] == ["Deployment"]
    assert docs[0]["metadata"]["annotations"]["minirun.io/task-definition"] == "sleeper:1"
    assert docs[0]["spec"]["replicas"] == 2
    latest = list(yaml.safe_load_all(cluster.out("task-definition", "export", "sleeper")))
    assert [d["kind"] for d in latest] == ["Deployment", "Service"]
    (c,) = latest[0]["spec"]["template"]["spec"]["containers"]
    assert c["resources"]["limits"]["memory"] == "48Mi" and c["args"] == ["sleep", "3600"]
    r = cluster("task-definition", "export", "nosuch", check=False)
    assert r.returncode != 0 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
    cluster("cluster", "down")
