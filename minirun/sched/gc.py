"""What `minirun gc` releases of a cluster: the pid files of workers that died and the scratch
volumes of their tasks. The runtime knows no cluster: this module registers its cleaner with
runtime/gc.py (imported by the `gc` verb, cli/system.py), as any owner above the runtime would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from minirun.runtime.gc import entries, register
from minirun.runtime.state import owner_gone
from minirun.sched.paths import ClusterPaths
from minirun.storage import read_json


@register
def dead_workers(root: Path) -> list[str]:
    """Pid files of scheduler workers that died (killed; their containers went above, as
    orphans): `cluster status` still lists the worker until the manager declares it lost."""
    paths = ClusterPaths(root)
    released = []
    for pidfile in entries(paths.workers):
        if pidfile.suffix == ".pid" and paths.read_pid(pidfile) is None:
            pidfile.unlink(missing_ok=True)
            released.append(f"worker {pidfile.stem} pid file (its process is gone)")
    for volumes in entries(paths.volumes):      # a task's scratch volumes, journaled by owner
        owner = read_json(volumes / ".owner", None)
        if owner_gone(owner):
            shutil.rmtree(volumes, ignore_errors=True)
            released.append(f"scratch volumes of task {volumes.name} (its {owner.get('what')} is gone)")
    return released
