"""Start-up-cheap stand-ins for the stdlib helpers the per-container path uses.

`minirun-oci run` (and `minirun run`) are new processes for every container, so what they import
is paid every time: podman and containerd call minirun-oci once per container. Three stdlib
modules cost far more to import than what we use of them:

    json        imports re (and so enum, functools, collections): ~5 ms, although decoding and
                encoding are done by its C accelerator, _json, which imports nothing
    contextlib  imports collections and functools: ~2 ms, for suppress(), @contextmanager and
                ExitStack (the undo stack of a container start)

So the modules on that path use these instead. Each behaves as its stdlib original for what we
use (tests/unit/test_lean.py checks them against it); anything else should use the stdlib.
`python -X importtime` shows the difference (benchmarks/startup.py prints it).
"""

from __future__ import annotations

import _json

# The lean boundary, written once (docs/architecture.md, "The lean boundary"): the modules a
# container start imports every time, `minirun-oci run` for each container podman or containerd
# starts (the hook and id-map modules only for bundles that use them), and `minirun run`. Inside this list the
# code avoids the slow stdlib imports (pathlib, re, json, contextlib, enum, signal, threading,
# typing, dataclasses: tests/unit/test_lean_imports.py imports each module alone and fails if
# one comes back); outside it, plain stdlib is welcome.
PER_CONTAINER = (
    "minirun.oci.main", "minirun.oci.container", "minirun.oci.hooks",
    "minirun.runtime.plan", "minirun.runtime.spawn", "minirun.runtime.sync",
    "minirun.runtime.options", "minirun.runtime.state", "minirun.runtime.seccomp",
    "minirun.runtime.cgroup_warm", "minirun.runtime.cgroups",
    "minirun.runtime.userns", "minirun.runtime.idmaps", "minirun.runtime.rootless",
    "minirun.spec", "minirun.storage", "minirun.faults", "minirun.procfs", "minirun.paths",
    "minirun.errors", "minirun.records", "minirun.lean",
    # and `minirun run`'s own (tests/integration/test_startup_imports.py runs it): the run path
    # still has pathlib, through the image store and the Path-typed data root, but these modules
    # must not be what brings it, nor any other slow module
    "minirun.cli.main", "minirun.cli.fastrun", "minirun.cli.attach",
    "minirun.runtime.containers", "minirun.observe.events",
)

# -- json: the C scanner and encoder that json itself uses, without json's pure-Python fallbacks

_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_WHITESPACE = " \t\n\r"


class _DecoderSettings:
    """What _json.make_scanner reads from a json.JSONDecoder: the defaults of json.loads."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = _json.make_scanner(_DecoderSettings())


def _decode_error(message: str, text: str, pos: int) -> ValueError:
    from json import JSONDecodeError  # only on error: json imports re

    return JSONDecodeError(message, text, pos)


def loads(text: str | bytes) -> object:
    """json.loads(text): raises json.JSONDecodeError (a ValueError) on invalid JSON."""
    if isinstance(text, bytes | bytearray):
        text = text.decode()
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as e:
        raise _decode_error("Expecting value", text, e.value) from None
    rest = len(text) - len(text[end:].lstrip(_WHITESPACE))
    if rest != len(text):
        raise _decode_error("Extra data", text, rest)
    return value


def load_file(path: str) -> object:
    with open(path, "rb") as f:
        return loads(f.read())


def _not_serializable(o: object) -> object:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _encoder(sort_keys: bool):
    return _json.make_encoder(None, _not_serializable, _json.encode_basestring_ascii, None,
                              ":", ",", sort_keys, False, True)


_encode, _encode_sorted = _encoder(False), _encoder(True)


def dumps(value: object, sort_keys: bool = False, indent: int | None = None) -> str:
    """json.dumps(value, separators=(",", ":"), sort_keys=sort_keys), compact, or with `indent`
    json.dumps(value, indent=indent, sort_keys=sort_keys): ASCII, no circular-reference check
    (our records are trees)."""
    if indent is not None:
        return _indented(value, sort_keys, " " * indent, "\n")
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    return "".join((_encode_sorted if sort_keys else _encode)(value, 0))


def _indented(value: object, sort_keys: bool, step: str, newline: str) -> str:
    """What json's pure-Python encoder makes with an indent: one member per line, `": "`
    between key and value, empty containers as {} and []. Keys are strings here."""
    inner = newline + step
    if isinstance(value, dict) and value:
        items = sorted(value.items()) if sort_keys else value.items()
        body = ("," + inner).join(f"{_json.encode_basestring_ascii(str(k))}: "
                                  f"{_indented(v, sort_keys, step, inner)}" for k, v in items)
        return "{" + inner + body + newline + "}"
    if isinstance(value, list | tuple) and value:
        body = ("," + inner).join(_indented(v, sort_keys, step, inner) for v in value)
        return "[" + inner + body + newline + "]"
    return dumps(value, sort_keys)


# -- contextlib ------------------------------------------------------------------------------------

class suppress:
    """contextlib.suppress: a `with` block in which these exceptions end the block silently."""

    def __init__(self, *exceptions: type[BaseException]):
        self._exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, traceback) -> bool:
        return kind is not None and issubclass(kind, self._exceptions)


class _GeneratorContext:
    """The context manager @contextmanager returns: the generator runs up to its `yield` on
    entry, and on exit either runs on (no exception) or gets the block's exception thrown in
    at the `yield`, which it may handle (the block's exception is then suppressed) or let go."""

    def __init__(self, generator):
        self._gen = generator

    def __enter__(self):
        try:
            return next(self._gen)
        except StopIteration:
            raise RuntimeError("generator didn't yield") from None

    def __exit__(self, kind, value, traceback) -> bool:
        if kind is None:
            try:
                next(self._gen)
            except StopIteration:
                return False
            raise RuntimeError("generator didn't stop")
        if value is None:
            value = kind()
        try:
            self._gen.throw(value)
        except StopIteration as stop:
            return stop is not value          # handled inside the generator: suppressed
        except BaseException as raised:
            if raised is value:
                return False                  # not handled: the block's own exception goes on
            raise
        raise RuntimeError("generator didn't stop after throw()")


def contextmanager(function):
    """contextlib.contextmanager, for generator functions that yield once."""

    def make(*args, **kwargs):
        return _GeneratorContext(function(*args, **kwargs))

    make.__name__, make.__doc__, make.__wrapped__ = function.__name__, function.__doc__, function
    return make


class ExitStack:
    """contextlib.ExitStack, for its undo use: as each resource is made, `callback(release,
    *args)`; when the block ends they run last-made first, even if one of them raises (the last
    failure goes on, the block's exception as its context). On success `pop_all()` moves them
    to a new stack, so nothing is released here: whoever made a resource says how to undo it,
    and a start that went through keeps them all."""

    def __init__(self):
        self._callbacks: list[tuple] = []

    def callback(self, release, *args) -> None:
        self._callbacks.append((release, args))

    def pop_all(self) -> ExitStack:
        stack = ExitStack()
        stack._callbacks, self._callbacks = self._callbacks, []
        return stack

    def close(self) -> None:
        self.__exit__(None, None, None)

    def __enter__(self) -> ExitStack:
        return self

    def __exit__(self, kind, value, traceback) -> bool:
        callbacks, self._callbacks = self._callbacks, []
        failure = None
        for release, args in reversed(callbacks):
            try:
                release(*args)
            except BaseException as e:
                if failure is not None:
                    e.__context__ = failure       # the earlier failure, as contextlib chains it
                failure = e
        if failure is not None:
            context = failure.__context__
            try:
                raise failure       # a bare raise here would make the block's exception its context
            except BaseException:
                failure.__context__ = context
                raise
        return False
