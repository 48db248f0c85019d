"""Task definitions -> Kubernetes manifests (minirun/sched/kube.py): each field's mapping, what is
listed as not mapped, and YAML that parses back into well-formed objects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from minirun.sched import kube
from minirun.sched.taskdef import validate

MINIRUN = str(Path(sys.executable).with_name("minirun"))


def td(revision: int | None = None, **fields):
    """A validated definition; `revision` as the manager adds it on registration."""
    base = {"family": "web", "containerDefinitions": [
        {"name": "web", "image": "busybox", "memory": 128, "command": ["httpd", "-f"]}]}
    base.update(fields)
    out = validate(base)
    if revision is not None:
        out["revision"] = revision
    return out


def docs(definition, **kw):
    """Export, write YAML, parse it back: what a cluster would read."""
    text = kube.to_yaml(kube.export(definition, **kw))
    parsed = list(yaml.safe_load_all(text))
    for d in parsed:                 # the shape every object must have
        assert set(d) >= {"apiVersion", "kind", "metadata", "spec"}
        assert kube.dns_label(d["metadata"]["name"]) == d["metadata"]["name"]
    return text, parsed


def pod_spec(d):
    return d["spec"]["template"]["spec"] if d["kind"] == "Deployment" else d["spec"]


def test_a_minimal_definition_is_a_deployment_and_nothing_else():
    text, (dep,) = docs(td(revision=3), replicas=4)
    assert dep["apiVersion"] == "apps/v1" and dep["kind"] == "Deployment"
    assert dep["spec"]["replicas"] == 4
    assert dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    (c,) = pod_spec(dep)["containers"]
    assert c == {"name": "web", "image": "busybox", "args": ["httpd", "-f"],
                 "resources": {"requests": {"memory": "128Mi"}, "limits": {"memory": "128Mi"}}}
    assert dep["metadata"]["annotations"][kube.TASK_ANNOTATION] == "web:3"
    assert pod_spec(dep)["terminationGracePeriodSeconds"] == 10       # ECS's default stopTimeout
    # networkMode defaults to none, which has no equivalent: said at the top, before any object
    head = text.split("---")[0]
    assert head.startswith("# Kubernetes manifests exported by minirun from the task definition web:3")
    assert '#  - networkMode: "none" has no equivalent' in head


def test_entrypoint_command_environment_workdir_user_readonly():
    d = td(networkMode="host", containerDefinitions=[{
        "name": "app", "image": "img", "memory": 64, "entryPoint": ["/bin/app"], "command": ["--port", "80"],
        "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": ""}],
        "workingDirectory": "/srv", "user": "1000:2000", "readonlyRootFilesystem": True}])
    text, (dep,) = docs(d)
    c = pod_spec(dep)["containers"][0]
    assert c["command"] == ["/bin/app"] and c["args"] == ["--port", "80"]
    assert c["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": ""}]
    assert c["workingDir"] == "/srv"
    assert c["securityContext"] == {"readOnlyRootFilesystem": True, "runAsUser": 1000, "runAsGroup": 2000}
    assert pod_spec(dep)["hostNetwork"] is True
    assert "Every field mapped." in text


def test_cpu_units_and_memory_become_requests_and_limits():
    d = td(containerDefinitions=[{"name": "a", "image": "i", "cpu": 256, "memory": 512,
                                  "memoryReservation": 128}])
    c = pod_spec(docs(d)[1][0])["containers"][0]
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    assert kube.millicores(1024) == "1000m" and kube.millicores(1) == "1m"


def test_ports_make_a_service_that_selects_the_pods():
    d = td(containerDefinitions=[
        {"name": "web", "image": "i", "memory": 64, "portMappings": [
            {"containerPort": 8080, "hostPort": 80}, {"containerPort": 53, "protocol": "udp"}]}])
    text, (dep, svc) = docs(d)
    assert pod_spec(dep)["containers"][0]["ports"] == [{"containerPort": 8080, "protocol": "TCP"},
                                                       {"containerPort": 53, "protocol": "UDP"}]
    assert svc["kind"] == "Service" and svc["apiVersion"] == "v1"
    assert svc["spec"]["selector"] == dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["ports"] == [
        {"name": "tcp-80", "port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"name": "udp-53", "port": 53, "targetPort": 53, "protocol": "UDP"}]
    assert "portMappings/0/hostPort: 80 is the Service's port" in text


def test_health_check_is_a_liveness_probe():
    d = td(containerDefinitions=[
        {"name": "a", "image": "i", "memory": 64, "healthCheck": {
            "command": ["CMD-SHELL", "wget -q localhost"], "interval": 7, "timeout": 2, "retries": 4,
            "startPeriod": 15}},
        {"name": "b", "image": "i", "memory": 64, "healthCheck": {"command": ["CMD", "/bin/check", "-v"]}}])
    a, b = pod_spec(docs(d)[1][0])["containers"]
    assert a["livenessProbe"] == {"exec": {"command": ["/bin/sh", "-c", "wget -q localhost"]},
                                  "periodSeconds": 7, "timeoutSeconds": 2, "failureThreshold": 4,
                                  "initialDelaySeconds": 15}
    assert b["livenessProbe"] == {"exec": {"command": ["/bin/check", "-v"]}, "periodSeconds": 30,
                                  "timeoutSeconds": 5, "failureThreshold": 3}


def test_depends_on_success_is_an_init_container_and_the_rest_is_listed():
    d = td(containerDefinitions=[
        {"name": "app", "image": "i", "memory": 64, "dependsOn": [
            {"containerName": "migrate", "condition": "SUCCESS"},
            {"containerName": "cache", "condition": "START"},
            {"containerName": "db", "condition": "HEALTHY"}]},
        {"name": "cache", "image": "i", "memory": 64},
        {"name": "db", "image": "i", "memory": 64, "healthCheck": {"command": ["CMD", "true"]}},
        {"name": "migrate", "image": "i", "memory": 64, "essential": False, "command": ["migrate"]}])
    text, (dep,) = docs(d)
    spec = pod_spec(dep)
    assert [c["name"] for c in spec["initContainers"]] == ["migrate"]
    # dependencies are listed before the containers that wait for them
    assert [c["name"] for c in spec["containers"]] == ["cache", "db", "app"]
    assert "containerDefinitions/0/dependsOn/1: START is not enforced" in text
    assert "containerDefinitions/0/dependsOn/2: HEALTHY has no equivalent" in text
    assert "migrate" not in text.split("---")[0], "an init container's essential=false is natural"


def test_an_init_candidate_that_waits_for_a_long_running_container_stays_a_container():
    d = td(containerDefinitions=[
        {"name": "app", "image": "i", "memory": 64, "dependsOn": [{"containerName": "seed", "condition": "SUCCESS"}]},
        {"name": "db", "image": "i", "memory": 64},
        {"name": "seed", "image": "i", "memory": 64, "essential": False,
         "dependsOn": [{"containerName": "db", "condition": "START"}]}])
    text, (dep,) = docs(d)
    assert "initContainers" not in pod_spec(dep)
    assert "seed waits for a long-running container" in text


def test_ulimits_essential_and_user_names_are_listed_as_not_mapped():
    d = td(containerDefinitions=[
        {"name": "a", "image": "i", "memory": 64, "user": "nobody",
         "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}]},
        {"name": "b", "image": "i", "memory": 64, "essential": False}])
    text, (dep,) = docs(d)
    head = text.split("---")[0]
    assert "containerDefinitions/0/ulimits: Kubernetes has no per-container rlimits (nofile=1024:4096)" in head
    assert "containerDefinitions/0/user: 'nobody' is a name" in head
    assert "containerDefinitions/1/essential: false has no equivalent" in head
    assert "securityContext" not in pod_spec(dep)["containers"][0]


def test_volumes_and_mount_points():
    d = td(volumes=[{"name": "scratch"}, {"name": "host_logs", "host": {"sourcePath": "/var/log"}}],
           containerDefinitions=[{"name": "a", "image": "i", "memory": 64, "mountPoints": [
               {"sourceVolume": "scratch", "containerPath": "/tmp/s"},
               {"sourceVolume": "host_logs", "containerPath": "/logs", "readOnly": True}]}])
    spec = pod_spec(docs(d)[1][0])
    assert spec["volumes"] == [{"name": "scratch", "emptyDir": {}},
                               {"name": "host-logs", "hostPath": {"path": "/var/log"}}]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "scratch", "mountPath": "/tmp/s"},
        {"name": "host-logs", "mountPath": "/logs", "readOnly": True}]


@pytest.mark.parametrize(("expression", "terms"), [
    ("attribute:zone == a", [[{"key": "zone", "operator": "In", "values": ["a"]}]]),
    ("attribute:zone in [a, b] and attribute:gpu exists",
     [[{"key": "zone", "operator": "In", "values": ["a", "b"]}, {"key": "gpu", "operator": "Exists"}]]),
    ("attribute:zone == a or attribute:zone != b",
     [[{"key": "zone", "operator": "In", "values": ["a"]}],
      [{"key": "zone", "operator": "NotIn", "values": ["b"]}]]),
    ("not attribute:spot exists", [[{"key": "spot", "operator": "DoesNotExist"}]]),
    ("attribute:cores >= 4", [[{"key": "cores", "operator": "Gt", "values": ["3"]}]]),
])
def test_member_of_becomes_required_node_affinity(expression, terms):
    d = td(placementConstraints=[{"type": "memberOf", "expression": expression}])
    aff = pod_spec(docs(d)[1][0])["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert aff["nodeSelectorTerms"] == [{"matchExpressions": t} for t in terms]


def test_a_regular_expression_constraint_is_listed_not_dropped():
    d = td(placementConstraints=[{"type": "memberOf", "expression": "attribute:host =~ web-.*"}])
    text, (dep,) = docs(d)
    assert "affinity" not in pod_spec(dep)
    assert "placementConstraints/0: 'attribute:host =~ web-.*': =~ (a regular expression)" in text


def test_kind_pod_and_names_made_dns_safe():
    d = td(family="My_App", containerDefinitions=[{"name": "Main_1", "image": "i", "memory": 64,
                                                    "portMappings": [{"containerPort": 80}]}])
    text, (pod, svc) = docs(d, kind="pod")
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == "my-app" and pod["spec"]["containers"][0]["name"] == "main-1"
    assert svc["spec"]["selector"] == pod["metadata"]["labels"] == {"app": "my-app"}
    assert "family: 'My_App' is not a DNS-1123 name: exported as 'my-app'" in text


def test_the_definition_is_not_changed_by_the_export():
    d = td(containerDefinitions=[
        {"name": "b", "image": "i", "memory": 64, "dependsOn": [{"containerName": "a", "condition": "START"}]},
        {"name": "a", "image": "i", "memory": 64}])
    before = json.dumps(d, sort_keys=True)
    kube.export(d)
    assert json.dumps(d, sort_keys=True) == before


# -- the CLI: --file needs no cluster ---------------------------------------------------------
def test_cli_export_from_a_file(tmp_path):
    f = tmp_path / "td.json"
    f.write_text(json.dumps({"family": "web", "containerDefinitions": [
        {"name": "web", "image": "busybox", "memory": 64, "portMappings": [{"containerPort": 80}]}]}))
    out = tmp_path / "web.yaml"
    p = subprocess.run([MINIRUN, "task-definition", "export", "--file", str(f), "--replicas", "3",
                        "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    kinds = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out.read_text())]
    assert kinds == [("Deployment", "web"), ("Service", "web")]


@pytest.mark.parametrize(("args", "message"), [
    (["--file", "/nonexistent.json"], "/nonexistent.json: No such file or directory"),
    (["--file", "BAD", "--format", "helm"], "--format helm: use kubernetes"),
    (["--file", "BAD", "--kind", "job"], "--kind job: use deployment or pod"),
    ([], "give FAMILY[:REVISION] (from the cluster) or --file FILE, one of them"),
    (["--file", "BAD"], "containerDefinitions/0/memory"),
])
def test_cli_export_errors_are_one_line(tmp_path, args, message):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"family": "web", "containerDefinitions": [
        {"name": "web", "image": "busybox", "memory": 1}]}))
    args = [str(bad) if a == "BAD" else a for a in args]
    p = subprocess.run([MINIRUN, "task-definition", "export", *args], capture_output=True, text=True)
    assert p.returncode != 0 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
