"""minirun.lean's stand-ins behave as the stdlib they replace; the start-up path imports none of
the modules they replace (the reason they exist)."""

from __future__ import annotations

import contextlib
import json
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minirun import lean
from minirun.oci.container import semver_1, valid_id

# -- json ----------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(json_values)
def test_dumps_is_compact_json_dumps(value):
    assert lean.dumps(value) == json.dumps(value, separators=(",", ":"))
    assert lean.dumps(value, sort_keys=True) == json.dumps(value, separators=(",", ":"),
                                                           sort_keys=True)


@given(json_values, st.sampled_from([0, 2, 4]), st.booleans())
def test_dumps_with_indent_is_json_dumps(value, indent, sort_keys):
    assert lean.dumps(value, sort_keys=sort_keys, indent=indent) == json.dumps(
        value, indent=indent, sort_keys=sort_keys)


@given(json_values, st.sampled_from(["", " ", "\n", " \t\r\n"]))
def test_loads_reads_what_json_writes(value, space):
    for text in (json.dumps(value), json.dumps(value, indent=2)):
        assert lean.loads(space + text + space) == json.loads(text)


@given(st.text(max_size=30))
def test_loads_accepts_and_refuses_what_json_does(text):
    try:
        expected = json.loads(text)
    except ValueError as e:
        with pytest.raises(json.JSONDecodeError) as got:
            lean.loads(text)
        assert str(got.value) == str(e)
    else:
        got = lean.loads(text)
        assert got == expected or (isinstance(got, float) and math.isnan(got))


def test_loads_constants_bytes_and_errors():
    assert lean.loads(b'{"a": [Infinity, -Infinity]}') == {"a": [math.inf, -math.inf]}
    assert math.isnan(lean.loads("NaN"))
    with pytest.raises(ValueError, match="Extra data"):
        lean.loads('{"a": 1} {"b": 2}')
    with pytest.raises(ValueError, match="Expecting value"):
        lean.loads("   ")


def test_dumps_refuses_what_json_refuses():
    with pytest.raises(TypeError, match="not JSON serializable"):
        lean.dumps({"a": object()})


def test_load_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"id": "c1", "pid": 42}\n')
    assert lean.load_file(str(path)) == {"id": "c1", "pid": 42}


# -- contextlib ----------------------------------------------------------------------------------
def test_suppress():
    with lean.suppress(KeyError, FileNotFoundError):
        raise FileNotFoundError("x")
    with pytest.raises(ValueError), lean.suppress(KeyError):
        raise ValueError("not suppressed")
    with lean.suppress():
        pass


def _both(body):
    """The same generator under contextlib's decorator and ours."""
    return contextlib.contextmanager(body), lean.contextmanager(body)


def test_contextmanager_runs_setup_and_teardown_in_order():
    log = []

    def body(x):
        log.append(f"enter {x}")
        try:
            yield x * 2
        finally:
            log.append("exit")

    for cm in _both(body):
        log.clear()
        with cm(21) as value:
            log.append(f"body {value}")
        assert log == ["enter 21", "body 42", "exit"]
        log.clear()
        with pytest.raises(KeyError), cm(1):
            raise KeyError("k")
        assert log == ["enter 1", "exit"]


def test_contextmanager_may_handle_or_translate_the_block_s_exception():
    def handles():
        try:
            yield
        except KeyError:
            pass

    def translates():
        try:
            yield
        except OSError as e:
            raise RuntimeError(f"translated {e.errno}") from None

    for cm in _both(handles):
        with cm():
            raise KeyError("swallowed")
    for cm in _both(translates):
        with pytest.raises(RuntimeError, match="translated 28"), cm():
            raise OSError(28, "No space left on device")
        with pytest.raises(ValueError), cm():
            raise ValueError("passes through")


def test_contextmanager_refuses_a_generator_that_does_not_yield_once():
    def never():
        return
        yield  # pragma: no cover

    def twice():
        yield
        yield

    for cm in _both(never):
        with pytest.raises(RuntimeError, match="didn't yield"), cm():
            pass
    for cm in _both(twice):
        with pytest.raises(RuntimeError, match="didn't stop"), cm():
            pass


# -- the regexes minirun-oci no longer compiles ----------------------------------------------------
ID_RE = re.compile(r"^[\w+-][\w+.-]*\Z")
SEMVER_RE = re.compile(r"^1\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?\Z")
version_parts = st.sampled_from(["1", "0", "01", "10", "2", "", "x", "1.0", "+", "-", ".", "rc.1",
                                 "a-b", "é", "1+2"])


@given(st.text(alphabet="ab1_+-.é\n /", max_size=8))
def test_valid_id_is_runc_s_rule(cid):
    assert valid_id(cid) == bool(ID_RE.match(cid))


@given(st.lists(version_parts, min_size=1, max_size=6), st.lists(st.sampled_from(".-+"), max_size=6))
def test_semver_1_is_the_regex(parts, seps):
    version = "".join(p + s for p, s in zip(parts, [*seps, *[""] * len(parts)], strict=False))
    assert semver_1(version) == bool(SEMVER_RE.match(version)), version


@pytest.mark.parametrize("version", ["1.0.0", "1.2.1", "1.0.2-dev", "1.1.0-rc.1+build.5",
                                     "1.10.0"])
def test_semver_1_accepts(version):
    assert semver_1(version)


@pytest.mark.parametrize("version", ["1.0", "2.0.0", "1.01.0", "1.0.0-", "1.0.0+", "1.0.0+a+b",
                                     "1.0.0\n", "v1.0.0", "1.0.0-é"])
def test_semver_1_refuses(version):
    assert not semver_1(version)


@pytest.mark.parametrize("stack", [lean.ExitStack, contextlib.ExitStack])
def test_exit_stack_undoes_last_made_first_unless_popped(stack):
    undone = []
    with pytest.raises(ValueError, match="block"), stack() as undo:
        undo.callback(undone.append, "cgroup")
        undo.callback(undone.append, "child")
        raise ValueError("block")
    assert undone == ["child", "cgroup"]
    undone.clear()
    with stack() as undo:
        undo.callback(undone.append, "cgroup")
        kept = undo.pop_all()
    assert undone == []
    kept.close()
    assert undone == ["cgroup"]


@pytest.mark.parametrize("stack", [lean.ExitStack, contextlib.ExitStack])
def test_exit_stack_runs_every_callback_and_raises_the_last_failure(stack):
    undone = []

    def fail(what):
        raise OSError(what)

    with pytest.raises(OSError, match="second") as raised, stack() as undo:
        undo.callback(undone.append, "first")
        undo.callback(fail, "second")
        undo.callback(fail, "third")
        raise ValueError("block")
    assert undone == ["first"]
    assert str(raised.value.__context__) == "third"
    assert isinstance(raised.value.__context__.__context__, ValueError)
