"""`minirun gc` asks the owners above the runtime for their leftovers through a registry
(runtime/gc.py `register`): the runtime knows no cluster, the scheduler brings its cleaner."""

from __future__ import annotations

from minirun.runtime import gc


def test_the_scheduler_registers_its_cleaner(tmp_path):
    from minirun.sched import gc as cluster_gc

    assert cluster_gc.dead_workers in gc.CLEANERS
    workers = tmp_path / "cluster" / "workers"
    workers.mkdir(parents=True)
    (workers / "w9.pid").write_text("999999 1\n")      # start time 1: never a live process
    assert cluster_gc.dead_workers(tmp_path) == ["worker w9 pid file (its process is gone)"]
    assert not (workers / "w9.pid").exists()
    assert cluster_gc.dead_workers(tmp_path) == []     # twice changes nothing


def test_a_cleaner_is_registered_once():
    def cleaner(root):
        return []

    try:
        assert gc.register(cleaner) is cleaner and gc.register(cleaner) is cleaner
        assert gc.CLEANERS.count(cleaner) == 1
    finally:
        gc.CLEANERS.remove(cleaner)
