"""Fault injection for tests: `MINIRUN_FAULT=NAME` makes minirun kill itself (SIGKILL, so no
cleanup code runs) when it reaches the point NAME — the harshest crash there is, at the worst
moments. tests/integration/test_faults.py and test_faults_resources.py crash at every point
below and check that `minirun gc` then leaves the host clean and the state true
(docs/reliability.md).

The variable is read once, when this module is imported; without it `point()` costs one
comparison. Work done by another process on minirun's behalf carries the name along: netd's
points come with the request (`"fault"`), and both the asking command and netd die there;
the scheduler's manager and workers inherit the variable from `cluster up`.
"""

from __future__ import annotations

import os
from _signal import SIGKILL  # not signal: its IntEnums import enum, ~3 ms of start-up

# Every point, in the order a container's life (then an image's, a network's, a worker's)
# reaches them.
POINTS = {
    "create:name-reserved": "the name symlink exists, the container directory does not",
    "create:dir-made": "the directory exists, state.json does not",
    "create:state-saved": "state.json exists, config.json (the spec) does not",
    "start:cgroup-created": "the cgroup exists, no process yet",
    "start:spawned": "the monitor and the child exist, the child waits for GO",
    "start:running": "the container runs, the pid is recorded",
    "run:exited": "a foreground `run --rm` container exited, not yet removed",
    "stop:signalled": "the stop signal is sent, the container's exit not yet seen",
    "stop:killed": "the grace period is over and SIGKILL sent, the exit not yet seen",
    "rm:cgroup-destroyed": "the cgroup is gone, the directory and name are not",
    "rm:renamed": "the directory is renamed to .removing-ID, not yet deleted",
    # the image store (import, load, build and commit all go through it)
    "image:staged": "a staging directory exists in images/tmp, nothing is unpacked yet",
    "image:unpacking": "a layer is half unpacked in its staging directory",
    "image:unpacked": "a layer is whole in staging, not yet in the store",
    "image:layer-stored": "the layer is renamed into images/layers/, no image names it yet",
    "image:blob-stored": "the config blob is stored, the index does not name it yet",
    "image:indexed": "the image is visible, its staging directory is not yet removed",
    "output:written": "`image save -o` / `export -o`: the archive is complete, not yet named",
    "build:step-running": "a build's RUN step container runs (it belongs to the build)",
    # networks (a container's start, `network connect`)
    "net:leased": "create: the address is leased and journaled in network.json",
    "net:veth-made": "netd made the veth pair (the command and netd both die)",
    "net:rules-added": "netd added the container's DNAT rules, no reply sent yet",
    "connect:leased": "`network connect`: the new address is leased, no interface yet",
    "network-rm:record-removed": "`network rm`: the record is out of sight, bridge and rules exist",
    # the scheduler: a worker launching a task's container
    "worker:registered": "the worker process wrote its pid file and registered",
    "worker:container-created": "a task's container is created by the worker, not started",
    "worker:container-started": "a task's container runs, the worker has not reported it",
}

_FAULT = os.environ.get("MINIRUN_FAULT")


def armed() -> str | None:
    """The point this process is to die at (None: none), for requests to other processes."""
    return _FAULT


def point(name: str, armed_by: str | None = None, peer: int | None = None) -> None:
    """Die here if MINIRUN_FAULT (or `armed_by`, a name a request carried) names this point;
    `peer` (a pid: the command that sent the request) dies first."""
    fault = _FAULT if armed_by is None else armed_by
    if fault is not None and fault == name:
        if peer:
            os.kill(peer, SIGKILL)
        os.kill(os.getpid(), SIGKILL)
