"""What a service should do next: start how many tasks, stop which ones.

The service scheduler is level-triggered: every pass compares the desired state (count, task
definition, deployment bounds) with the tasks that exist and returns the difference. Nothing
here remembers the previous pass, so a manager that restarts, or the simulator, reaches the
same answer from the same facts.

A deployment (a new task definition) follows ECS's two bounds: at most `maximumPercent` of the
desired count may exist at once (so new tasks start while old ones still serve), and at least
`minimumHealthyPercent` must stay RUNNING and healthy (so old tasks stop only as new ones are
healthy). With the defaults 100/200 a service of 4 starts 4 new tasks, then stops the old ones
as the new ones come up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class TaskView:
    id: str
    taskdef: str           # "family:revision"
    status: str            # PENDING, RUNNING (last known); STOPPED tasks are not passed in
    healthy: bool = True   # RUNNING and not UNHEALTHY
    created: float = 0.0


@dataclass
class ServiceView:
    name: str
    taskdef: str
    desired: int
    minimum_healthy_percent: int = 100
    maximum_percent: int = 200


def check_bounds(minimum_healthy_percent: int, maximum_percent: int) -> str | None:
    """The problem with a pair of deployment bounds, or None."""
    if not 0 <= minimum_healthy_percent <= 100:
        return "minimumHealthyPercent must be from 0 to 100"
    if not 100 <= maximum_percent <= 200:
        return "maximumPercent must be from 100 to 200"
    if minimum_healthy_percent == 100 and maximum_percent == 100:
        return ("minimumHealthyPercent 100 with maximumPercent 100 leaves no room to replace a "
                "task: lower the first or raise the second")
    return None


def plan(svc: ServiceView, tasks: list[TaskView]) -> tuple[int, list[str]]:
    """(tasks to start with svc.taskdef, ids of tasks to stop)."""
    new = [t for t in tasks if t.taskdef == svc.taskdef]
    old = [t for t in tasks if t.taskdef != svc.taskdef]
    stop: list[str] = []
    # surplus of the current definition (scaling down): pending ones first, then the newest
    if len(new) > svc.desired:
        surplus = sorted(new, key=lambda t: (t.status == "RUNNING", t.healthy, -t.created))
        stop += [t.id for t in surplus[:len(new) - svc.desired]]
        new = surplus[len(new) - svc.desired:]
    max_total = svc.desired * svc.maximum_percent // 100
    min_healthy = math.ceil(svc.desired * svc.minimum_healthy_percent / 100)
    start = max(0, min(svc.desired - len(new), max_total - len(new) - len(old)))
    if not old and len(new) < svc.desired:
        start = svc.desired - len(new)        # no deployment: replace what is missing at once
    healthy = sum(1 for t in new + old if t.status == "RUNNING" and t.healthy)
    room = healthy - min_healthy
    for t in sorted(old, key=lambda t: (t.status == "RUNNING" and t.healthy, t.created)):
        if not (t.status == "RUNNING" and t.healthy):
            stop.append(t.id)                 # not serving: nothing is lost by stopping it
        elif room > 0:
            stop.append(t.id)
            room -= 1
    return start, stop
