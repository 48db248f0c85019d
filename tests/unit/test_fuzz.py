"""Properties over arbitrary input (hypothesis): whatever a user or a file feeds minirun, the
answer is a result or a clear error of minirun's own (MinirunError: one line, a documented exit
status), never a traceback — and a hostile archive never writes outside its directory."""

from __future__ import annotations

import copy
import io
import os
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minirun import spec as oci
from minirun.errors import MinirunError

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)


def pointers(value, prefix=()):
    """Every path into a JSON document (not the root), for replacing one place at a time."""
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from pointers(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from pointers(v, (*prefix, i))


DEFAULT = oci.default_spec()
DEFAULT["root"] = {"path": "rootfs"}
DEFAULT["process"]["args"] = ["sh"]
POINTERS = list(pointers(DEFAULT))


@FAST
@given(json_values)
def test_any_json_document_is_a_spec_or_a_spec_error(doc):
    try:
        oci.validate(doc)
    except MinirunError:
        pass


@FAST
@given(st.sampled_from(POINTERS), json_values)
def test_one_field_of_a_good_spec_replaced_by_anything(pointer, value):
    spec = copy.deepcopy(DEFAULT)
    target = spec
    for key in pointer[:-1]:
        target = target[key]
    target[pointer[-1]] = value
    try:
        oci.validate(spec)
    except MinirunError as e:
        assert str(e) and "\n" not in str(e)


@FAST
@given(st.text(max_size=30) | st.integers(-10, 2**62))
def test_sizes_parse_or_are_refused(text):
    from minirun.units import parse_bytes

    try:
        assert parse_bytes(text) >= 0
    except MinirunError:
        pass


@FAST
@given(st.text(max_size=60))
def test_archive_names_never_climb_out(name):
    from minirun.images.tarsafe import clean_name

    try:
        parts = clean_name(name)
    except MinirunError:
        return
    assert all(p not in ("", ".", "..") and "/" not in p for p in parts)


@FAST
@given(json_values)
def test_oci_update_resources_are_checked_not_crashed_on(doc):
    from minirun.oci.container import _check_resources

    try:
        _check_resources(doc)
    except MinirunError:
        pass


# -- tar entries ------------------------------------------------------------------------------
names = st.lists(st.sampled_from(["a", "b", "..", ".", "", "etc", "x y", "/", "c\u00e9"]),
                 min_size=1, max_size=4).map("/".join)
entries = st.tuples(
    st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                     tarfile.CHRTYPE, tarfile.FIFOTYPE]),
    names,
    names | st.sampled_from(["/etc/passwd", "../../outside", "/", "a/../../.."]),
    st.binary(max_size=64),
    st.integers(0, 0o7777),
)


def _archive(items) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, target, data, mode in items:
            ti = tarfile.TarInfo(name or ".")
            ti.type, ti.mode = kind, mode
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                ti.linkname = target
            if kind == tarfile.REGTYPE:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
    return buf.getvalue()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries, min_size=1, max_size=8))
def test_a_hostile_archive_never_writes_outside_its_directory(items):
    from minirun.images.tarsafe import extract_layer

    if os.geteuid() != 0:
        pytest.skip("extraction keeps owners and makes device nodes: needs root")
    with tempfile.TemporaryDirectory() as jail:
        dest = Path(jail) / "layer"
        dest.mkdir()
        (Path(jail) / "sentinel").write_text("untouched")
        try:
            extract_layer(io.BytesIO(_archive(items)), dest)
        except MinirunError as e:
            assert str(e) and "\n" not in str(e)
        outside = sorted(p.name for p in Path(jail).iterdir())
        assert outside == ["layer", "sentinel"], f"something was written beside the layer: {outside}"
        assert (Path(jail) / "sentinel").read_text() == "untouched"
        for path in dest.rglob("*"):
            if path.is_symlink():
                continue                 # a symlink may point anywhere; it is never followed
            assert Path(os.path.realpath(path)).is_relative_to(dest.resolve())
