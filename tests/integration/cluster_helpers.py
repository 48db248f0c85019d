"""What the cluster tests share: short timeouts, task definitions, waiting for a condition."""

from __future__ import annotations

import json
import time

# fast failure detection, so the suite stays short: heartbeat every 0.3 s, lost after 1.5 s
FAST = ["--heartbeat", "0.3", "--lost-after", "1.5", "--backoff-base", "0.5"]


def sleeper(family: str = "sleeper", memory: int = 32, cpu: int = 64, **extra) -> dict:
    container = {"name": "main", "image": "busybox", "memory": memory, "cpu": cpu,
                 "command": ["sleep", "3600"], "stopTimeout": 1}
    container.update(extra)
    return {"family": family, "containerDefinitions": [container]}


def register(m, td: dict, tmp_path) -> str:
    path = tmp_path / f"{td['family']}.json"
    path.write_text(json.dumps(td))
    return m.out("task-definition", "register", str(path))


def tasks(m, *args: str) -> list[dict]:
    return json.loads(m.out("task", "ls", "--format", "json", *args))


def running(m, service: str) -> list[dict]:
    return [t for t in tasks(m, "--service", service) if t["status"] == "RUNNING"]


def workers(m) -> dict[str, dict]:
    return {w["id"]: w for w in json.loads(m.out("cluster", "status", "--format", "json"))["workers"]}


def containers(m) -> list[dict]:
    return json.loads(m.out("ps", "--format", "json"))


def wait_until(what: str, check, timeout: float = 15.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
