"""Kubernetes manifests from an ECS task definition: a Deployment (or a bare Pod) and, when the
containers publish ports, a Service.

Beyond one machine minirun does not grow a cluster of its own: a task definition that ran on
`minirun cluster` is exported to the objects Kubernetes runs, field by field, deliberately. What
has no Kubernetes equivalent is not dropped silently: it is listed in the comment at the top of
the YAML (`Export.unmapped`), so a reader sees what changes when the task moves. docs/kubernetes.md
has the table. Units: ECS cpu is in CPU units (1024 = one CPU) -> millicores; memory in MiB -> Mi.

The library returns data (`export()`) and YAML text (`to_yaml()`); it never prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from minirun.sched.ecs_units import mebibytes, millicores
from minirun.sched.taskdef import start_order

KINDS = ("deployment", "pod")
TASK_ANNOTATION = "minirun.io/task-definition"


@dataclass
class Export:
    """The manifests (dicts, in the order they are written) and what did not map, each line a
    `JSON pointer of the task definition: why`."""

    documents: list[dict[str, Any]]
    unmapped: list[str] = field(default_factory=list)
    source: str = ""


def dns_label(name: str) -> str:
    """An ECS name (letters, digits, '-', '_', up to 255) as a Kubernetes DNS-1123 label:
    lowercase, '_' -> '-', no leading or trailing '-', at most 63 characters."""
    label = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "task"


def export(td: dict[str, Any], *, kind: str = "deployment", replicas: int = 1,
           name: str | None = None) -> Export:
    """Map a validated task definition (minirun.sched.taskdef.validate) to Kubernetes objects."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    ref = f"{td['family']}:{td['revision']}" if td.get("revision") else td["family"]
    out = Export(documents=[], source=ref)
    app = name or dns_label(td["family"])
    if app != td["family"]:
        out.unmapped.append(f"family: {td['family']!r} is not a DNS-1123 name: exported as {app!r}")
    labels = {"app": app}
    pod = _pod_spec(td, out)
    meta = {"name": app, "labels": labels, "annotations": {TASK_ANNOTATION: ref}}
    if kind == "pod":
        out.documents.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod})
    else:
        out.documents.append({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels),
                                               "annotations": {TASK_ANNOTATION: ref}},
                                  "spec": pod}},
        })
    service = _service(td, app, labels, out)
    if service:
        out.documents.append(service)
    # in the order of the definition's fields: family, containerDefinitions/0/..., 1/..., task keys
    out.unmapped.sort(key=lambda line: [int(t) if t.isdigit() else t
                                        for t in re.split(r"(\d+)", line.split(":", 1)[0])])
    return out


def _pod_spec(td: dict[str, Any], out: Export) -> dict[str, Any]:
    index = {c["name"]: i for i, c in enumerate(td["containerDefinitions"])}
    by_name = {c["name"]: c for c in td["containerDefinitions"]}
    defs = [by_name[n] for n in start_order(td)]   # dependencies first
    init_names = _init_containers(td["containerDefinitions"], out)
    volumes = _volumes(td)
    pod: dict[str, Any] = {}
    init = [_container(c, index[c["name"]], volumes, out, init=True) for c in defs
            if c["name"] in init_names]
    if init:
        pod["initContainers"] = init
    pod["containers"] = [_container(c, index[c["name"]], volumes, out) for c in defs
                         if c["name"] not in init_names]
    if volumes:
        pod["volumes"] = list(volumes.values())
    grace = max(c.get("stopTimeout", 10) for c in defs)
    if grace != 30:                  # Kubernetes' default; ECS's is 10 s
        pod["terminationGracePeriodSeconds"] = grace
    mode = td.get("networkMode", "none")
    if mode == "host":
        pod["hostNetwork"] = True
    elif mode == "none":
        out.unmapped.append('networkMode: "none" has no equivalent: every pod gets a network '
                            "(restrict it with a NetworkPolicy)")
    hostnames = {c["hostname"] for c in defs if c.get("hostname")}
    if len(hostnames) == 1:
        pod["hostname"] = dns_label(hostnames.pop())
    elif len(hostnames) > 1:
        out.unmapped.append("containerDefinitions/*/hostname: a pod has one hostname; the "
                            f"containers ask for {', '.join(sorted(hostnames))}: none is set")
    affinity = _affinity(td, out)
    if affinity:
        pod["affinity"] = affinity
    for key in ("cpu", "memory"):
        if td.get(key):
            out.unmapped.append(f"{key}: the task-level {key} ({td[key]}"
                                f"{' units' if key == 'cpu' else ' MiB'}) has no pod-level "
                                "equivalent here: the containers' requests and limits carry it")
    return pod


def _init_containers(defs: list[dict[str, Any]], out: Export) -> set[str]:
    """Containers others wait for with SUCCESS (or COMPLETE) run to the end before the rest start:
    Kubernetes' initContainers, in dependency order. START and HEALTHY do not map."""
    init: set[str] = set()
    for i, c in enumerate(defs):
        for j, d in enumerate(c.get("dependsOn", [])):
            where = f"containerDefinitions/{i}/dependsOn/{j}"
            cond, target = d["condition"], d["containerName"]
            if cond == "SUCCESS":
                init.add(target)
            elif cond == "COMPLETE":
                init.add(target)
                out.unmapped.append(f"{where}: COMPLETE (any exit status) becomes an init "
                                    f"container for {target}, which must exit 0")
            elif cond == "START":
                out.unmapped.append(f"{where}: START is not enforced: containers start in the "
                                    f"order listed ({target} is listed first when possible)")
            else:
                out.unmapped.append(f"{where}: HEALTHY has no equivalent (a pod's containers do "
                                    f"not wait for {target}'s health)")
    # an init container waiting on a long-running one could never start: keep only those whose
    # own dependencies are init containers too
    changed = True
    while changed:
        changed = False
        for c in defs:
            if c["name"] in init and any(d["containerName"] not in init for d in c.get("dependsOn", [])):
                init.discard(c["name"])
                out.unmapped.append(f"containerDefinitions: {c['name']} waits for a long-running "
                                    "container, so it cannot be an init container: kept as a container")
                changed = True
    for c in defs:
        if c["name"] in init and c.get("essential"):
            out.unmapped.append(f"containerDefinitions: {c['name']} is essential, but as an init "
                                "container it is expected to exit")
    return init


def _volumes(td: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """ECS volumes -> pod volumes: a host sourcePath is a hostPath, a task-scoped one an emptyDir."""
    out = {}
    for v in td.get("volumes", []):
        source = (v.get("host") or {}).get("sourcePath")
        out[v["name"]] = ({"name": dns_label(v["name"]), "hostPath": {"path": source}} if source
                          else {"name": dns_label(v["name"]), "emptyDir": {}})
    return out


def _container(c: dict[str, Any], i: int, volumes: dict[str, dict], out: Export,
               init: bool = False) -> dict[str, Any]:
    where = f"containerDefinitions/{i}"
    k: dict[str, Any] = {"name": dns_label(c["name"]), "image": c["image"]}
    if c.get("entryPoint"):
        k["command"] = list(c["entryPoint"])        # ENTRYPOINT, as ECS's entryPoint
    if c.get("command"):
        k["args"] = list(c["command"])              # CMD, as ECS's command
    if c.get("workingDirectory"):
        k["workingDir"] = c["workingDirectory"]
    if c.get("environment"):
        k["env"] = [{"name": e["name"], "value": e.get("value", "")} for e in c["environment"]]
    ports = [{"containerPort": m["containerPort"], "protocol": m.get("protocol", "tcp").upper()}
             for m in c.get("portMappings", [])]
    if ports:
        k["ports"] = ports
    resources = _resources(c)
    if resources:
        k["resources"] = resources
    if c.get("healthCheck"):
        k["livenessProbe"] = _probe(c["healthCheck"])
    if c.get("mountPoints"):
        k["volumeMounts"] = [{"name": volumes[m["sourceVolume"]]["name"], "mountPath": m["containerPath"],
                              **({"readOnly": True} if m.get("readOnly") else {})}
                             for m in c["mountPoints"]]
    security = _security(c, where, out)
    if security:
        k["securityContext"] = security
    if c.get("ulimits"):
        names = ", ".join(f"{u['name']}={u['softLimit']}:{u['hardLimit']}" for u in c["ulimits"])
        out.unmapped.append(f"{where}/ulimits: Kubernetes has no per-container rlimits ({names}); "
                            "the node's container runtime defaults apply")
    if c.get("essential") is False and not init:
        out.unmapped.append(f"{where}/essential: false has no equivalent: in a pod every container "
                            f"is restarted when it exits, and none stops the others ({c['name']})")
    if c["name"] != k["name"]:
        out.unmapped.append(f"{where}/name: {c['name']!r} exported as {k['name']!r} (DNS-1123)")
    return k


def _resources(c: dict[str, Any]) -> dict[str, Any]:
    """cpu (a relative share in ECS) -> requests.cpu; memory (hard) -> limits.memory, and the
    request too unless memoryReservation (soft) gives a smaller one."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if c.get("cpu"):
        requests["cpu"] = millicores(c["cpu"])
    if c.get("memoryReservation"):
        requests["memory"] = mebibytes(c['memoryReservation'])
    if c.get("memory"):
        limits["memory"] = mebibytes(c['memory'])
        requests.setdefault("memory", mebibytes(c['memory']))
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _probe(hc: dict[str, Any]) -> dict[str, Any]:
    """ECS healthCheck -> an exec livenessProbe: CMD runs the program, CMD-SHELL through /bin/sh
    (as ECS does); startPeriod, during which failures do not count, is the initial delay."""
    cmd = hc["command"]
    argv = list(cmd[1:]) if cmd[0] == "CMD" else ["/bin/sh", "-c", cmd[1]]
    probe: dict[str, Any] = {"exec": {"command": argv}, "periodSeconds": hc.get("interval", 30),
                             "timeoutSeconds": hc.get("timeout", 5),
                             "failureThreshold": hc.get("retries", 3)}
    if hc.get("startPeriod"):
        probe["initialDelaySeconds"] = hc["startPeriod"]
    return probe


def _security(c: dict[str, Any], where: str, out: Export) -> dict[str, Any]:
    sec: dict[str, Any] = {}
    if c.get("readonlyRootFilesystem"):
        sec["readOnlyRootFilesystem"] = True
    user = c.get("user")
    if user:
        uid, _, gid = user.partition(":")
        if uid.isdigit() and (not gid or gid.isdigit()):
            sec["runAsUser"] = int(uid)
            if gid:
                sec["runAsGroup"] = int(gid)
        else:
            out.unmapped.append(f"{where}/user: {user!r} is a name: Kubernetes takes numeric ids "
                                "(runAsUser, runAsGroup); not set")
    return sec


def _service(td: dict[str, Any], app: str, labels: dict[str, str], out: Export) -> dict[str, Any] | None:
    """One ClusterIP Service for every port mapping: port = hostPort (or the container port),
    targetPort = the container port."""
    ports, seen = [], set()
    for i, c in enumerate(td["containerDefinitions"]):
        for j, m in enumerate(c.get("portMappings", [])):
            proto = m.get("protocol", "tcp")
            port = m.get("hostPort") or m["containerPort"]
            if (port, proto) in seen:
                out.unmapped.append(f"containerDefinitions/{i}/portMappings/{j}: {proto} port "
                                    f"{port} is already in the Service")
                continue
            seen.add((port, proto))
            ports.append({"name": f"{proto}-{port}", "port": port, "targetPort": m["containerPort"],
                          "protocol": proto.upper()})
            if m.get("hostPort") and td.get("networkMode") != "host":
                out.unmapped.append(f"containerDefinitions/{i}/portMappings/{j}/hostPort: {port} "
                                    "is the Service's port, not a port on the node")
    if not ports:
        return None
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": app, "labels": dict(labels)},
            "spec": {"selector": dict(labels), "ports": ports}}


# -- placement: memberOf expressions -> required node affinity ---------------------------------
_OPS = {"==": "In", "!=": "NotIn", "in": "In", "not_in": "NotIn"}


def _affinity(td: dict[str, Any], out: Export) -> dict[str, Any] | None:
    """memberOf constraints are ANDed; each expression becomes node-label terms in disjunctive
    form (nodeSelectorTerms are ORed, a term's expressions ANDed). attribute:NAME is the node
    label NAME. Regular expressions and comparisons of non-integers do not map."""
    from minirun.sched.placement import parse_expression

    terms: list[list[dict[str, Any]]] = [[]]
    for i, c in enumerate(td.get("placementConstraints", [])):
        try:
            dnf = _dnf(parse_expression(c["expression"]))
        except _Unmappable as e:
            out.unmapped.append(f"placementConstraints/{i}: {c['expression']!r}: {e}")
            continue
        terms = [t + u for t in terms for u in dnf]
    if terms == [[]]:
        return None
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]}}}


class _Unmappable(Exception):
    pass


def _dnf(tree) -> list[list[dict[str, Any]]]:
    op = tree[0]
    if op == "or":
        return _dnf(tree[1]) + _dnf(tree[2])
    if op == "and":
        return [a + b for a in _dnf(tree[1]) for b in _dnf(tree[2])]
    if op == "exists":
        return [[{"key": tree[1], "operator": "Exists"}]]
    if op == "not":
        inner = tree[1]
        if inner[0] == "exists":
            return [[{"key": inner[1], "operator": "DoesNotExist"}]]
        if inner[0] in ("==", "in"):
            return [[dict(_term(inner), operator="NotIn")]]
        raise _Unmappable("only 'not' of exists, == or in maps to node affinity")
    if op in _OPS:
        return [[_term(tree)]]
    if op in (">", ">=", "<", "<="):
        value = tree[2]
        if not re.fullmatch(r"-?\d+", value):
            raise _Unmappable(f"{op} compares {value!r}: node affinity compares integers only")
        n = int(value) + {">": 0, ">=": -1, "<": 0, "<=": 1}[op]
        return [[{"key": tree[1], "operator": "Gt" if op.startswith(">") else "Lt", "values": [str(n)]}]]
    raise _Unmappable(f"{op} (a regular expression) has no node-affinity equivalent")


def _term(tree) -> dict[str, Any]:
    values = list(tree[2]) if isinstance(tree[2], tuple) else [tree[2]]
    return {"key": tree[1], "operator": _OPS[tree[0]], "values": values}


# -- YAML -----------------------------------------------------------------------------------
def to_yaml(ex: Export) -> str:
    """The documents as YAML, after a comment that says where they come from and lists what did
    not map (`# - pointer: why`)."""
    import yaml

    head = [f"# Kubernetes manifests exported by minirun from the task definition {ex.source}.",
            "# Images are minirun store names: push them where the cluster pulls from."]
    if ex.unmapped:
        head.append("# Not mapped, or mapped approximately:")
        head += [f"#  - {line}" for line in ex.unmapped]
    else:
        head.append("# Every field mapped.")
    body = yaml.safe_dump_all(ex.documents, sort_keys=False, default_flow_style=False,
                              explicit_start=True, width=100)
    return "\n".join(head) + "\n" + body
