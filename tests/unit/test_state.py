"""Container state: names, id prefixes, atomic writes, and status derived from facts."""

from __future__ import annotations

import os
import subprocess

import pytest

from minirun.errors import AmbiguousId, ContainerNotFound, InvalidTransition, NameInUse, UsageError
from minirun.runtime import procfs
from minirun.runtime.state import StateStore, write_atomic


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
