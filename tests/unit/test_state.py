"""Container state: names, id prefixes, atomic writes, and status derived from facts."""

from __future__ import annotations

import os
import subprocess

import pytest

from minirun import procfs
from minirun.errors import AmbiguousId, ContainerNotFound, InvalidTransition, NameInUse, UsageError
from minirun.runtime.state import StateStore
from minirun.storage import write_atomic


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path)


def test_names_are_reserved_atomically(store):
    a = store.new("web")
    with pytest.raises(NameInUse):
        store.new("web")
    assert store.get("web").id == a.id


@pytest.mark.parametrize("bad", ["-lead", "has space", "slash/y", "ünï"])
def test_bad_names_are_refused(store, bad):
    with pytest.raises(UsageError):
        store.new(bad)


def test_lookup_by_prefix_like_docker(store, monkeypatch):
    ids = iter(["abc1" + "0" * 60, "abc2" + "0" * 60])
    monkeypatch.setattr("os.urandom", lambda n: bytes.fromhex(next(ids)))
    a, b = store.new(None), store.new(None)
    assert store.get(a.id).id == a.id
    assert store.get("abc1").id == a.id
    assert store.get(b.name).id == b.id
    with pytest.raises(AmbiguousId, match="matches 2 containers"):
        store.get("abc")
    with pytest.raises(ContainerNotFound, match="no such container: fff"):
        store.get("fff")


def test_status_comes_from_facts_not_flags(store):
    r = store.new("s")
    assert r.status() == "created"
    proc = subprocess.Popen(["sleep", "30"])
    try:
        r.state.pid, r.state.pid_start = proc.pid, procfs.start_time(proc.pid)
        assert r.status() == "running"
        r.state.pid_start += 1                      # same pid, another process: not ours
        assert r.status() == "exited"
    finally:
        proc.kill()
        proc.wait()
    r.state.pid_start = procfs.start_time(proc.pid)
    assert r.status() == "exited"


def test_transitions_are_checked(store):
    r = store.new("t")
    with pytest.raises(InvalidTransition, match="cannot stop container t: it is created"):
        r.require("stop")
    assert r.require("start") == "created"


def test_atomic_write_leaves_no_temp_file(tmp_path):
    target = tmp_path / "f.json"
    write_atomic(target, "one")
    write_atomic(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(tmp_path) == ["f.json"]


def test_forget_releases_name_and_directory(store):
    r = store.new("gone")
    store.forget(r)
    with pytest.raises(ContainerNotFound):
        store.get("gone")
    assert not r.dir.exists()
    store.new("gone")                                # the name is free again


def test_an_owned_container_is_orphaned_only_when_its_owner_died(store):
    from minirun.runtime.state import owner

    mine = store.new("mine", owner=owner("test"))
    assert not mine.state.orphaned()                      # we are alive
    dead = subprocess.Popen(["true"])
    dead.wait()
    theirs = store.new("theirs", owner={"what": "build", "pid": dead.pid, "start": 1})
    assert theirs.state.orphaned()
    recycled = store.new("recycled", owner={"what": "build", "pid": os.getpid(), "start": 1})
    assert recycled.state.orphaned(), "a recycled pid (another start time) is not the owner"
    assert not store.new("free").state.orphaned()         # nobody owns it: never an orphan
    assert store.get("theirs").state.owner["what"] == "build"   # it is saved with the state


def test_a_removed_containers_tree_goes_and_nothing_a_symlink_points_to(tmp_path):
    """state.remove_tree deletes an upper dir written by the container (any names, modes, links)
    without following a symlink out of it."""
    from minirun.runtime.state import remove_tree

    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "keep").write_text("host file")
    doomed = tmp_path / "c"
    deep = doomed / "upper" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    (deep / "locked").write_text("y")
    (deep / "locked").chmod(0)
    (doomed / "upper" / "to-host").symlink_to(outside)
    (doomed / "upper" / "a" / "dangling").symlink_to("/nonexistent")
    os.mkfifo(doomed / "upper" / "fifo")
    (doomed / "state.json").write_text("{}")
    remove_tree(doomed)
    assert not doomed.exists()
    assert (outside / "keep").read_text() == "host file"


def test_deferred_deletion_finishes_on_drain_and_is_synchronous_in_a_forked_child(tmp_path):
    from minirun.runtime.state import ContainerState, StateStore

    store = StateStore(tmp_path)
    store.defer_deletion()
    rec = store.new(None, image="busybox")
    (rec.dir / "upper" / "x").mkdir(parents=True)
    store.forget(rec)
    store.drain()
    assert list((tmp_path / "containers").iterdir()) == []
    rec2 = store.new(None, image="busybox")
    pid = os.fork()
    if pid == 0:                     # the parent's deleter thread does not exist here
        try:
            store.forget(rec2)
            store.drain()
            os._exit(0 if not rec2.dir.exists() and list((tmp_path / "containers").iterdir()) == [] else 1)
        finally:
            os._exit(2)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert isinstance(rec2.state, ContainerState)
