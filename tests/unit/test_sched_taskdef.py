"""Task definitions as a user writes them: ECS's JSON accepted, mistakes named by JSON pointer."""

from __future__ import annotations

import copy

import pytest

from minirun.errors import TaskDefinitionError
from minirun.sched import taskdef

GOOD = {
    "family": "web",
    "containerDefinitions": [
        {"name": "app", "image": "busybox", "cpu": 256, "memory": 64, "essential": True,
         "command": ["httpd", "-f"], "environment": [{"name": "MODE", "value": "prod"}],
         "portMappings": [{"containerPort": 80, "hostPort": 8080}],
         "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 2, "retries": 2},
         "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
         "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": True}]},
        {"name": "sidecar", "image": "busybox", "memoryReservation": 16, "essential": False,
         "dependsOn": [{"containerName": "app", "condition": "HEALTHY"}]},
    ],
    "volumes": [{"name": "data", "host": {"sourcePath": "/tmp"}}],
    "placementConstraints": [{"type": "memberOf", "expression": "attribute:zone in [a, b]"}],
}


def problems(td) -> list[str]:
    with pytest.raises(TaskDefinitionError) as e:
        taskdef.validate(td)
    return [f"{p}: {t}" for p, t in e.value.problems]


def test_a_good_definition_gets_ecs_defaults():
    td = taskdef.validate(GOOD)
    app, side = td["containerDefinitions"]
    assert td["networkMode"] == "none"
    assert side["cpu"] == 0 and side["essential"] is False and side["stopTimeout"] == 10
    assert app["healthCheck"] == {"command": ["CMD-SHELL", "true"], "interval": 2, "timeout": 5,
                                  "retries": 2, "startPeriod": 0}
    assert app["portMappings"][0]["protocol"] == "tcp"
    assert taskdef.reservation(td) == (256, 64 + 16)
    assert taskdef.host_ports(td) == [8080]
    assert taskdef.start_order(td) == ["app", "sidecar"]
    assert GOOD["containerDefinitions"][1].get("cpu") is None   # the input is not changed


def test_task_level_units_as_ecs_writes_them():
    td = taskdef.validate({"family": "f", "cpu": "0.5 vCPU", "memory": "1 GB",
                           "containerDefinitions": [{"name": "a", "image": "busybox"}]})
    assert (td["cpu"], td["memory"]) == (512, 1024)
    assert taskdef.reservation(td) == (512, 1024)


def test_what_describe_adds_registers_again():
    described = dict(taskdef.validate(GOOD), revision=3, status="ACTIVE", registeredAt=1.0)
    assert "revision" not in taskdef.validate(described)


def mutated(fn):
    td = copy.deepcopy(GOOD)
    fn(td)
    return td


def c0(td):
    return td["containerDefinitions"][0]


@pytest.mark.parametrize("mutate, expected", [
    (lambda td: c0(td).update(memory=4), "containerDefinitions/0/memory: must be an integer ≥ 6 (MiB)"),
    (lambda td: c0(td).update(memory="64"), "containerDefinitions/0/memory: must be an integer ≥ 6 (MiB)"),
    (lambda td: c0(td).update(cpu=-1), "containerDefinitions/0/cpu: must be an integer from 0 to 10240 (CPU units, 1024 = one CPU)"),
    (lambda td: c0(td).pop("image"), "containerDefinitions/0/image: required: an image name (see minirun image ls)"),
    (lambda td: c0(td).update(memroy=64), "containerDefinitions/0/memroy: unknown field"),
    (lambda td: td.update(taskRoleArn="x"), "taskRoleArn: unknown field"),
    (lambda td: td.pop("family"), "family: required"),
    (lambda td: td.update(containerDefinitions=[]), "containerDefinitions: required"),
    (lambda td: td.update(networkMode="awsvpc"), "networkMode: must be one of none, host, bridge (awsvpc is not supported)"),
    (lambda td: c0(td).update(essential="yes"), "containerDefinitions/0/essential: must be true or false"),
    (lambda td: c0(td).update(command="sleep 1"), "containerDefinitions/0/command: must be a list of strings"),
    (lambda td: c0(td)["environment"].append({"name": "A=B", "value": "1"}), "containerDefinitions/0/environment/1/name"),
    (lambda td: c0(td)["portMappings"].append({"containerPort": 70000}), "containerDefinitions/0/portMappings/1/containerPort: must be an integer from 1 to 65535"),
    (lambda td: c0(td)["healthCheck"].update(command=["true"]), "containerDefinitions/0/healthCheck/command"),
    (lambda td: c0(td)["healthCheck"].update(retries=0), "containerDefinitions/0/healthCheck/retries: must be an integer from 1 to 10"),
    (lambda td: c0(td)["mountPoints"][0].update(sourceVolume="nope"), "containerDefinitions/0/mountPoints/0/sourceVolume: must name a volume of the task's volumes (data)"),
    (lambda td: c0(td)["ulimits"][0].update(name="files"), "containerDefinitions/0/ulimits/0/name: must be one of"),
    (lambda td: c0(td)["ulimits"][0].update(softLimit=4096), "containerDefinitions/0/ulimits/0/softLimit: must not be more than hardLimit"),
    (lambda td: td["containerDefinitions"][1].update(name="app"), "containerDefinitions/1/name: 'app' is already the name of container 0"),
    (lambda td: td["containerDefinitions"][1].pop("memoryReservation"), "containerDefinitions/1: needs memory or memoryReservation"),
    (lambda td: td["containerDefinitions"][1]["dependsOn"][0].update(containerName="db"), "containerDefinitions/1/dependsOn/0/containerName: must name another container"),
    (lambda td: td["containerDefinitions"][1]["dependsOn"][0].update(condition="SUCCESS"), "containerDefinitions/1/dependsOn/0/condition: SUCCESS cannot wait for app: it is essential"),
    (lambda td: c0(td).update(essential=False), "containerDefinitions: at least one container must be essential"),
    (lambda td: td["placementConstraints"][0].update(expression="zone == a"), "placementConstraints/0/expression: expected attribute:NAME"),
    (lambda td: td["placementConstraints"][0].update(type="distinctInstance"), "placementConstraints/0/type: must be memberOf in a task definition"),
    (lambda td: td.update(memory=32), "memory: the containers' memory adds up to 64 MiB, more than the task's 32 MiB"),
    (lambda td: td.update(cpu="lots"), "cpu: must be an integer ≥ 128"),
])
def test_bad_definitions_name_the_field(mutate, expected):
    found = problems(mutated(mutate))
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_not_just_the_first():
    found = problems(mutated(lambda td: (c0(td).update(memory=1, bogus=1), td.update(extra=2))))
    assert len(found) == 3
    assert [f.split(":")[0] for f in found] == ["extra", "containerDefinitions/0/bogus",
                                                "containerDefinitions/0/memory"]


def test_dependency_cycle_is_refused():
    td = {"family": "f", "containerDefinitions": [
        {"name": "a", "image": "busybox", "memory": 8, "dependsOn": [{"containerName": "b", "condition": "START"}]},
        {"name": "b", "image": "busybox", "memory": 8, "dependsOn": [{"containerName": "a", "condition": "START"}]},
    ]}
    assert problems(td) == ["containerDefinitions: dependsOn makes a cycle: a -> b -> a"]


def test_not_an_object():
    assert problems([1]) == ["/: a task definition must be a JSON object"]
