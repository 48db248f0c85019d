"""ECS task definitions: the JSON a user registers, checked field by field.

A task definition is ECS's description of a group of containers that run together on one
instance: `family` (its name; every registration adds a revision), `containerDefinitions`, and
task-level `cpu`/`memory`, `networkMode`, `volumes`, `placementConstraints`. We accept the subset
that means something on one machine and refuse the rest by name, so a definition written for ECS
either works here or says which field does not. Reference: the ECS developer guide, "Task
definition parameters".

`validate()` returns the definition with ECS's defaults filled in, or raises TaskDefinitionError
listing every problem as `JSON pointer: what is expected`, e.g.
`containerDefinitions/0/memory: must be an integer ≥ 6 (MiB)`.

Units are ECS's: cpu in *CPU units* (1024 = one CPU), memory in MiB.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from minirun.errors import TaskDefinitionError
from minirun.sched.ecs_units import CPU_UNITS_PER_CPU, MIN_MEMORY_MIB

MAX_CONTAINERS = 10
NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
NETWORK_MODES = ("none", "host", "bridge")     # bridge: the data root's default network
DEPENDENCY_CONDITIONS = ("START", "COMPLETE", "SUCCESS", "HEALTHY")
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")

TASK_FIELDS = {"family", "containerDefinitions", "cpu", "memory", "networkMode", "volumes",
               "placementConstraints"}
# what `describe` adds; accepted (and dropped) so a described definition registers again
# What validate() works out once and stores with the definition, so that placement, the worker
# and the Kubernetes export read it instead of walking the containers again. Read-only: a
# definition sent back (describe, edit, register) is validated again and they are worked out anew.
DERIVED_FIELDS = {"startOrder", "reservation", "hostPorts"}
READ_ONLY_FIELDS = {"revision", "status", "registeredAt", "taskDefinitionArn"} | DERIVED_FIELDS
CONTAINER_FIELDS = {"name", "image", "cpu", "memory", "memoryReservation", "essential", "command",
                    "entryPoint", "environment", "portMappings", "healthCheck", "dependsOn",
                    "mountPoints", "ulimits", "workingDirectory", "user", "hostname",
                    "stopTimeout", "readonlyRootFilesystem"}
HEALTH_FIELDS = {"command": None, "interval": (1, 300, 30), "timeout": (1, 60, 5),
                 "retries": (1, 10, 3), "startPeriod": (0, 300, 0)}


def _pointer_token(key: str) -> str:
    """A user's key as a JSON pointer token (RFC 6901: ~ is ~0, / is ~1), with control and other
    unprintable characters shown escaped, so that a problem stays one readable line."""
    key = key.replace("~", "~0").replace("/", "~1")
    return key if key.isprintable() else key.encode("unicode_escape").decode("ascii")


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, ptr: str, text: str) -> None:
        self.items.append((ptr, text))

    def unknown(self, obj: dict, ptr: str, allowed: set[str]) -> None:
        for key in obj:
            if key not in allowed:
                key = _pointer_token(key)
                self.add(f"{ptr}/{key}" if ptr else key,
                         f"unknown field (known here: {', '.join(sorted(allowed))})")

    def int_in(self, obj: dict, key: str, ptr: str, lo: int, hi: int | None, what: str,
               default: int | None = None) -> int | None:
        """obj[key] as an int in [lo, hi]; problems say the range and the unit."""
        if key not in obj:
            return default
        value = obj[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
            rng = f"≥ {lo}" if hi is None else f"from {lo} to {hi}"
            self.add(f"{ptr}/{key}", f"must be an integer {rng}{what}")
            return default
        return value

    def str_list(self, obj: dict, key: str, ptr: str, nonempty: bool = False) -> list[str] | None:
        if key not in obj:
            return None
        value = obj[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (nonempty and not value):
            self.add(f"{ptr}/{key}", "must be a " + ("non-empty " if nonempty else "") + "list of strings")
            return None
        return value

    def objects(self, obj: dict, key: str, ptr: str) -> list[tuple[str, dict]]:
        """obj[key] as a list of objects, with each one's pointer; problems for the others."""
        value = obj.get(key, [])
        if not isinstance(value, list):
            self.add(f"{ptr}/{key}" if ptr else key, "must be a list of objects")
            return []
        out = []
        for i, item in enumerate(value):
            p = f"{ptr}/{key}/{i}" if ptr else f"{key}/{i}"
            if isinstance(item, dict):
                out.append((p, item))
            else:
                self.add(p, "must be an object")
        return out


def validate(definition: Any) -> dict[str, Any]:
    """The definition with defaults filled in, or TaskDefinitionError naming every bad field."""
    p = _Problems()
    if not isinstance(definition, dict):
        raise TaskDefinitionError([("/", "a task definition must be a JSON object")])
    td = {k: copy.deepcopy(v) for k, v in definition.items() if k not in READ_ONLY_FIELDS}
    p.unknown(td, "", TASK_FIELDS)
    family = td.get("family")
    if not isinstance(family, str) or not NAME.match(family):
        p.add("family", "required: 1 to 255 letters, digits, '-' or '_'")
    task_cpu = _task_units(td, "cpu", p)
    task_memory = _task_units(td, "memory", p)
    mode = td.setdefault("networkMode", "none")
    if mode not in NETWORK_MODES:
        p.add("networkMode", f"must be one of {', '.join(NETWORK_MODES)} (awsvpc is not "
              "supported)" if mode == "awsvpc" else f"must be one of {', '.join(NETWORK_MODES)}")
    volumes = _volumes(td, p)
    _task_constraints(td, p)

    containers = td.get("containerDefinitions")
    if not isinstance(containers, list) or not containers:
        p.add("containerDefinitions", "required: a non-empty list of container definitions")
        containers = []
    elif len(containers) > MAX_CONTAINERS:
        p.add("containerDefinitions", f"at most {MAX_CONTAINERS} containers per task")
    names: dict[str, int] = {}
    for i, c in enumerate(containers):
        ptr = f"containerDefinitions/{i}"
        if not isinstance(c, dict):
            p.add(ptr, "must be an object")
            continue
        _container(c, ptr, p, task_memory, volumes)
        name = c.get("name")
        if isinstance(name, str):
            if name in names:
                p.add(f"{ptr}/name", f"{name!r} is already the name of container {names[name]}")
            names.setdefault(name, i)
    good = [c for c in containers if isinstance(c, dict)]
    if good and not any(c.get("essential") is True for c in good):
        p.add("containerDefinitions", "at least one container must be essential")
    for i, c in enumerate(containers):
        if isinstance(c, dict):
            _dependencies(c, f"containerDefinitions/{i}", p,
                          {c2["name"]: c2 for c2 in good if isinstance(c2.get("name"), str)})
    if not p.items:
        _no_cycles(good, p)
    if task_memory is not None and not p.items:
        hard = sum(c.get("memory", 0) for c in good)
        if hard > task_memory:
            p.add("memory", f"the containers' memory adds up to {hard} MiB, more than the task's {task_memory} MiB")
    if task_cpu is not None and not p.items:
        units = sum(c["cpu"] for c in good)
        if units > task_cpu:
            p.add("cpu", f"the containers' cpu adds up to {units} units, more than the task's {task_cpu}")
    if p.items:
        raise TaskDefinitionError(p.items)
    return derive(td)


def derive(td: dict[str, Any]) -> dict[str, Any]:
    """`td` (valid) with DERIVED_FIELDS filled in; validate() calls it, and the manager for a
    definition stored before they existed."""
    cpu, memory = _reservation(td)
    td.update(startOrder=_start_order(td), reservation={"cpu": cpu, "memory": memory},
              hostPorts=_host_ports(td))
    return td


def _task_units(td: dict, key: str, p: _Problems) -> int | None:
    """Task-level cpu/memory: an integer, or a string as ECS writes them ("256", "1 vCPU",
    "0.5 GB", "512 MiB"). Stored back as an integer (CPU units, MiB)."""
    if key not in td:
        return None
    value = td[key]
    unit = {"cpu": ("vcpu", CPU_UNITS_PER_CPU), "memory": ("gb", 1024)}[key]
    number: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in ("", unit[0], "mib" if key == "memory" else "units"):
            number = float(m.group(1)) * (unit[1] if m.group(2).lower() == unit[0] else 1)
    lo = 128 if key == "cpu" else MIN_MEMORY_MIB
    if number is None or number < lo or number != int(number):
        what = "CPU units, or \"N vCPU\"" if key == "cpu" else "MiB, or \"N GB\""
        p.add(key, f"must be an integer ≥ {lo} ({what})")
        return None
    td[key] = int(number)
    return int(number)


def _volumes(td: dict, p: _Problems) -> set[str]:
    names = set()
    for ptr, v in p.objects(td, "volumes", ""):
        p.unknown(v, ptr, {"name", "host"})
        name = v.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            p.add(f"{ptr}/name", "required: 1 to 255 letters, digits, '-' or '_'")
        else:
            names.add(name)
        host = v.get("host")
        if host is not None:
            if not isinstance(host, dict) or set(host) - {"sourcePath"}:
                p.add(f"{ptr}/host", "must be an object with sourcePath")
            elif not str(host.get("sourcePath", "")).startswith("/"):
                p.add(f"{ptr}/host/sourcePath", "must be an absolute path on the host")
    return names


def _task_constraints(td: dict, p: _Problems) -> None:
    from minirun.sched.placement import ExpressionError, parse_expression

    for ptr, c in p.objects(td, "placementConstraints", ""):
        p.unknown(c, ptr, {"type", "expression"})
        if c.get("type") != "memberOf":
            p.add(f"{ptr}/type", "must be memberOf in a task definition (distinctInstance is "
                  "given to service create or task run, as in ECS)")
        try:
            parse_expression(c.get("expression"))
        except ExpressionError as e:
            p.add(f"{ptr}/expression", str(e))


def _container(c: dict, ptr: str, p: _Problems, task_memory: int | None, volumes: set[str]) -> None:
    p.unknown(c, ptr, CONTAINER_FIELDS)
    if not isinstance(c.get("name"), str) or not NAME.match(c["name"]):
        p.add(f"{ptr}/name", "required: 1 to 255 letters, digits, '-' or '_'")
    if not isinstance(c.get("image"), str) or not c["image"]:
        p.add(f"{ptr}/image", "required: an image name (see minirun image ls)")
    c["cpu"] = p.int_in(c, "cpu", ptr, 0, 10 * CPU_UNITS_PER_CPU, " (CPU units, 1024 = one CPU)", 0)
    memory = p.int_in(c, "memory", ptr, MIN_MEMORY_MIB, None, " (MiB)")
    reservation = p.int_in(c, "memoryReservation", ptr, MIN_MEMORY_MIB, None, " (MiB)")
    if memory is not None and reservation is not None and reservation > memory:
        p.add(f"{ptr}/memoryReservation", f"must not be more than memory ({memory} MiB)")
    if memory is None and reservation is None and task_memory is None and "memory" not in c \
            and "memoryReservation" not in c:
        p.add(ptr, "needs memory or memoryReservation (MiB) when the task has no task-level memory")
    essential = c.setdefault("essential", True)
    if not isinstance(essential, bool):
        p.add(f"{ptr}/essential", "must be true or false")
    for key in ("command", "entryPoint"):
        p.str_list(c, key, ptr)
    for key in ("workingDirectory", "user", "hostname"):
        if key in c and not isinstance(c[key], str):
            p.add(f"{ptr}/{key}", "must be a string")
    if "workingDirectory" in c and isinstance(c["workingDirectory"], str) and not c["workingDirectory"].startswith("/"):
        p.add(f"{ptr}/workingDirectory", "must be an absolute path")
    c["stopTimeout"] = p.int_in(c, "stopTimeout", ptr, 0, 120, " (seconds)", 10)
    if not isinstance(c.setdefault("readonlyRootFilesystem", False), bool):
        p.add(f"{ptr}/readonlyRootFilesystem", "must be true or false")
    for eptr, e in p.objects(c, "environment", ptr):
        p.unknown(e, eptr, {"name", "value"})
        if not isinstance(e.get("name"), str) or not e["name"] or "=" in e["name"]:
            p.add(f"{eptr}/name", "required: a variable name without '='")
        if not isinstance(e.get("value", ""), str):
            p.add(f"{eptr}/value", "must be a string")
    for mptr, m in p.objects(c, "portMappings", ptr):
        p.unknown(m, mptr, {"containerPort", "hostPort", "protocol"})
        if "containerPort" not in m:
            p.add(f"{mptr}/containerPort", "required: an integer from 1 to 65535")
        p.int_in(m, "containerPort", mptr, 1, 65535, "")
        p.int_in(m, "hostPort", mptr, 0, 65535, " (0: any)")
        if m.setdefault("protocol", "tcp") not in ("tcp", "udp"):
            p.add(f"{mptr}/protocol", "must be tcp or udp")
    for mptr, m in p.objects(c, "mountPoints", ptr):
        p.unknown(m, mptr, {"sourceVolume", "containerPath", "readOnly"})
        if not isinstance(m.get("sourceVolume"), str) or m["sourceVolume"] not in volumes:
            p.add(f"{mptr}/sourceVolume", "must name a volume of the task's volumes"
                  + (f" ({', '.join(sorted(volumes))})" if volumes else " (there are none)"))
        if not isinstance(m.get("containerPath"), str) or not m["containerPath"].startswith("/"):
            p.add(f"{mptr}/containerPath", "required: an absolute path in the container")
        if not isinstance(m.setdefault("readOnly", False), bool):
            p.add(f"{mptr}/readOnly", "must be true or false")
    for uptr, u in p.objects(c, "ulimits", ptr):
        p.unknown(u, uptr, {"name", "softLimit", "hardLimit"})
        if u.get("name") not in ULIMIT_NAMES:
            p.add(f"{uptr}/name", f"must be one of {', '.join(ULIMIT_NAMES)}")
        soft = p.int_in(u, "softLimit", uptr, 0, None, "")
        hard = p.int_in(u, "hardLimit", uptr, 0, None, "")
        if "softLimit" not in u or "hardLimit" not in u:
            p.add(uptr, "needs softLimit and hardLimit")
        elif soft is not None and hard is not None and soft > hard:
            p.add(f"{uptr}/softLimit", "must not be more than hardLimit")
    if "healthCheck" in c:
        _health_check(c, f"{ptr}/healthCheck", p)


def _health_check(c: dict, ptr: str, p: _Problems) -> None:
    hc = c["healthCheck"]
    if not isinstance(hc, dict):
        p.add(ptr, "must be an object with command, interval, timeout, retries, startPeriod")
        return
    p.unknown(hc, ptr, set(HEALTH_FIELDS))
    cmd = hc.get("command")
    if (not isinstance(cmd, list) or len(cmd) < 2 or not all(isinstance(x, str) for x in cmd)
            or cmd[0] not in ("CMD", "CMD-SHELL")):
        p.add(f"{ptr}/command", 'required: ["CMD", program, args...] or ["CMD-SHELL", "shell command"]')
    for key, bounds in HEALTH_FIELDS.items():
        if bounds is not None:
            lo, hi, default = bounds
            hc[key] = p.int_in(hc, key, ptr, lo, hi, " (seconds)" if key != "retries" else "", default)


def _dependencies(c: dict, ptr: str, p: _Problems, by_name: dict) -> None:
    for dptr, d in p.objects(c, "dependsOn", ptr):
        p.unknown(d, dptr, {"containerName", "condition"})
        name = d.get("containerName")
        target = by_name.get(name) if isinstance(name, str) else None
        if target is None or target is c:
            p.add(f"{dptr}/containerName", "must name another container of this task")
        cond = d.get("condition")
        if cond not in DEPENDENCY_CONDITIONS:
            p.add(f"{dptr}/condition", f"must be one of {', '.join(DEPENDENCY_CONDITIONS)}")
        elif target is not None and target is not c:
            if cond == "HEALTHY" and "healthCheck" not in target:
                p.add(f"{dptr}/condition", f"HEALTHY needs a healthCheck on {target['name']}")
            if cond in ("COMPLETE", "SUCCESS") and target.get("essential") is True:
                p.add(f"{dptr}/condition", f"{cond} cannot wait for {target['name']}: it is essential "
                      "(its exit would stop the task)")


def _no_cycles(containers: list[dict], p: _Problems) -> None:
    deps = {c["name"]: [d["containerName"] for d in c.get("dependsOn", [])] for c in containers}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            p.add("containerDefinitions", "dependsOn makes a cycle: " + " -> ".join(cycle))
            raise StopIteration
        state[name] = 1
        for d in deps[name]:
            visit(d, path + [name])
        state[name] = 2

    try:
        for name in deps:
            visit(name, [])
    except StopIteration:
        pass


# -- what the scheduler needs from a definition ----------------------------------------------
def reservation(td: dict[str, Any]) -> tuple[int, int]:
    """(CPU units, MiB) a task of this (validated) definition reserves on a worker."""
    return td["reservation"]["cpu"], td["reservation"]["memory"]


def host_ports(td: dict[str, Any]) -> list[int]:
    """Host ports a task of this (validated) definition takes."""
    return list(td["hostPorts"])


def start_order(td: dict[str, Any]) -> list[str]:
    """The (validated) definition's container names, dependencies first."""
    return list(td["startOrder"])


def _reservation(td: dict[str, Any]) -> tuple[int, int]:
    """As ECS counts them: the task-level values when set, else the containers' sum
    (memoryReservation before memory)."""
    containers = td["containerDefinitions"]
    cpu = td.get("cpu") or sum(c.get("cpu", 0) for c in containers)
    memory = td.get("memory") or sum(c.get("memoryReservation") or c.get("memory") or 0 for c in containers)
    return int(cpu), int(memory)


def _host_ports(td: dict[str, Any]) -> list[int]:
    """Host ports the task takes (networkMode host: the container ports themselves)."""
    ports = []
    for c in td["containerDefinitions"]:
        for m in c.get("portMappings", []):
            port = m.get("hostPort") or (m["containerPort"] if td.get("networkMode") == "host" else 0)
            if port:
                ports.append(port)
    return ports


def _start_order(td: dict[str, Any]) -> list[str]:
    """Container names in an order that respects dependsOn (dependencies first)."""
    deps = {c["name"]: [d["containerName"] for d in c.get("dependsOn", [])]
            for c in td["containerDefinitions"]}
    order: list[str] = []

    def visit(name: str) -> None:
        if name not in order:
            for d in deps[name]:
                visit(d)
            order.append(name)

    for name in deps:
        visit(name)
    return order
