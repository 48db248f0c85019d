"""`minirun gc`: release what a crashed or killed minirun left behind, and nothing else.

Every host resource a container gets is findable from its directory under ROOT/containers/
(named by its id): the name link in ROOT/names/, the cgroup `minirun/<id>` in each hierarchy,
the monitor process (recorded pid + start time); mounts live in the container's own mount
namespace and vanish with its last process. So the directories are the journal, and gc walks them:

* a name link whose container directory is gone (create crashed right after reserving it);
* a directory without state.json or without config.json (create crashed half way);
* a directory renamed `.removing-<id>` (rm crashed while deleting it);
* a `--rm` container that exited but was not removed (its remover was killed);
* the cgroup of a container that is not running (a start crashed before its process ran, or an
  rm crashed after stopping it): no process is in it, and a stale group would block the next start;
* a container whose owner died: a build's RUN step, a scheduler worker's task (state.owner:
  the owner's pid and start time, recorded when the container is created);
* what a container that no longer exists still holds on a network: its address lease, port
  claims, nft rules and veth (minirun/net/container.py `gc`, after the sweeps above);
* what an owner above the runtime registered a cleaner for (`register`): the scheduler's
  (sched/gc.py) releases the pid file of a worker that died and the scratch volumes of its
  tasks;
* the image store's leftovers: staging directories of dead processes (named after their pid and
  start time), layers and config blobs no image names (minirun/images/store.py `gc`).

Something younger than GRACE seconds may belong to a command still at work (a create between
its name and its directory takes microseconds), so it is left for the next gc. Running it twice
changes nothing the second time. Concurrent commands hold each container's lock; gc takes it too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from minirun.errors import ContainerNotFound, InvalidTransition
from minirun.runtime.state import REMOVING, ContainerRecord

GRACE = 10.0

# What owners above the runtime leave under the data root is theirs to find: each registers a
# cleaner, called with the root, that returns one line per thing released. The runtime knows
# no cluster; the scheduler registers its own (sched/gc.py) and the `gc` verb imports it.
CLEANERS: list[Callable[[Path], list[str]]] = []


def register(cleaner: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
    """Have `collect` call cleaner(root) after its own sweeps (a decorator)."""
    if cleaner not in CLEANERS:
        CLEANERS.append(cleaner)
    return cleaner


def collect(rt, grace: float = GRACE) -> list[str]:
    """Release the leftovers under rt's data root; one line per thing released."""
    store = rt.store
    released: list[str] = []
    now = time.time()

    def old(path: Path) -> bool:
        try:
            return now - path.lstat().st_mtime >= grace
        except FileNotFoundError:
            return False

    for link in entries(store.names):
        if link.is_symlink() and not (store.containers / os.readlink(link)).is_dir() and old(link):
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            released.append(f"name {link.name} (no container)")

    for directory in entries(store.containers):
        name = directory.name
        if name.startswith(REMOVING):
            if old(directory):
                _destroy_cgroup(rt, name[len(REMOVING):])
                shutil.rmtree(directory, ignore_errors=True)
                released.append(f"container {name[len(REMOVING):][:12]} (half removed)")
            continue
        if name.startswith(".") or not directory.is_dir():
            continue
        incomplete = not (directory / "state.json").exists() or not (directory / "config.json").exists()
        if incomplete:
            if old(directory):
                _destroy_cgroup(rt, name)
                _unlink_names_of(store.names, name)
                shutil.rmtree(directory, ignore_errors=True)
                released.append(f"container {name[:12]} (half created)")
            continue
        with contextlib.suppress(ContainerNotFound):
            released += _settle(rt, store.get(name), grace)
    if (rt.root / "networks").is_dir():
        from minirun.net.container import gc as network_gc

        swept = network_gc(rt.root)
        released += [f"address lease {ip} (no container)" for ip in swept["leases"]]
        released += [f"published ports of {cid} (no container)" for cid in swept["ports"]]
        released += [f"nft rules of {cid} (no container)" for cid in swept["rules"]]
        released += [f"veth {name} (no container)" for name in swept["links"]]
        released += [f"network {name} (its removal died half way)" for name in swept["networks"]]
    if (rt.root / "images").is_dir():
        released += rt.images.gc()
    for cleaner in CLEANERS:
        released += cleaner(rt.root)
    return released


def _settle(rt, record: ContainerRecord, grace: float) -> list[str]:
    """One complete container: remove an orphan, finish an interrupted --rm, drop a stale
    cgroup, release the network of a start that died half way."""
    if record.state.orphaned():
        owner = record.state.owner
        try:
            rt.remove(record, force=True)
        except (InvalidTransition, ContainerNotFound):
            return []
        return [f"container {record.name} (its owner, {owner.get('what')} pid {owner.get('pid')}, is gone)"]
    if record.state.auto_remove and record.state.started_at is not None and not record.is_running():
        exit_file = record.dir / "exit.json"
        if exit_file.exists() and time.time() - exit_file.stat().st_mtime < grace:
            return []                    # its own remover (the CLI, the monitor) is at work
        try:
            rt.remove(record)            # refuses (and we skip) if it was started meanwhile
        except InvalidTransition:
            return []
        return [f"container {record.name} (exited, --rm)"]
    released = []
    with record.locked():
        running = record.is_running()
        if (record.dir / "network.json").exists():
            from minirun.net.container import settle

            released += settle(rt.root, record, running)
        if running:
            return released
        group = rt.cgroups.open(f"minirun/{record.id}")
        if group.paths:
            group.destroy()
            released.append(f"cgroup minirun/{record.id[:12]} ({record.name} is not running)")
    return released


def _destroy_cgroup(rt, cid: str) -> None:
    if len(cid) == 64 and all(c in "0123456789abcdef" for c in cid):
        rt.cgroups.open(f"minirun/{cid}").destroy()


def _unlink_names_of(names: Path, cid: str) -> None:
    for link in entries(names):
        with contextlib.suppress(OSError):
            if os.readlink(link) == cid:
                link.unlink()


def entries(directory: Path) -> list[Path]:
    """A directory's entries, sorted; none when it does not exist (yet)."""
    try:
        return sorted(directory.iterdir())
    except FileNotFoundError:
        return []
