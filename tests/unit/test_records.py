"""minirun.records, the lean stand-in for dataclasses on the start-up path, behaves as the
dataclasses the runtime used before: defaults, factories, equality, asdict, replace."""

from __future__ import annotations

import pytest

from minirun.records import asdict, field, fields, record, replace


@record
class Inner:
    n: int = 0


@record
class Thing:
    name: str
    pid: int | None = None
    tags: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    secret: dict = field(default_factory=dict, repr=False)


def test_init_positional_keyword_and_defaults():
    t = Thing("a", 3)
    assert (t.name, t.pid, t.tags, t.inner) == ("a", 3, [], Inner(0))
    assert Thing(name="a") == Thing("a", None)
    assert Thing("a").tags is not Thing("a").tags          # a factory per instance


@pytest.mark.parametrize("call", [lambda: Thing(), lambda: Thing("a", nope=1),
                                  lambda: Thing("a", name="b"), lambda: Thing(*range(6))])
def test_bad_arguments_are_type_errors(call):
    with pytest.raises(TypeError):
        call()


def test_fields_asdict_replace_repr():
    t = Thing("a", tags=["x"], inner=Inner(2), secret={"k": [1]})
    assert fields(Thing) == ("name", "pid", "tags", "inner", "secret")
    d = asdict(t)
    assert d == {"name": "a", "pid": None, "tags": ["x"], "inner": {"n": 2}, "secret": {"k": [1]}}
    d["tags"].append("y")
    d["secret"]["k"].append(2)
    assert t.tags == ["x"] and t.secret == {"k": [1]}      # a copy, not the record's own lists
    r = replace(t, pid=9)
    assert r.pid == 9 and r.name == "a" and t.pid is None
    assert repr(t) == "Thing(name='a', pid=None, tags=['x'], inner=Inner(n=2))"
    assert t != r and t == replace(r, pid=None)
    with pytest.raises(TypeError):
        hash(t)


def test_a_required_field_after_a_default_is_refused():
    with pytest.raises(TypeError):
        @record
        class Bad:
            a: int = 1
            b: int
