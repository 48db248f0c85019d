"""Plain record classes for the start-up path: a small stand-in for @dataclasses.dataclass.

`dataclasses` imports inspect (and with it ast, dis, tokenize...) and compiles an __init__ per
class: ~5 ms of every `minirun run` and `minirun-oci run`, more than the container's own set-up.
The classes on that path need only a keyword-or-positional __init__ from their annotations with
defaults, equality, a repr, and `fields`/`asdict`/`replace`, which this module gives.

    @record
    class Point:
        x: int
        y: int = 0
        tags: list[str] = field(default_factory=list)

Annotations are read as written (never evaluated), in order; a field without a default must
come before those with one, as with dataclasses.
"""

from __future__ import annotations

_MISSING = object()


class _Field:
    __slots__ = ("default", "factory", "repr")

    def __init__(self, default=_MISSING, factory=_MISSING, repr=True):  # noqa: A002
        self.default, self.factory, self.repr = default, factory, repr


def field(*, default=_MISSING, default_factory=_MISSING, repr=True):  # noqa: A002
    """A field's default (or a factory for mutable ones), as dataclasses.field."""
    return _Field(default, default_factory, repr)


def record(cls):
    """Give `cls` an __init__, __eq__ and __repr__ from its annotated fields."""
    specs: list[tuple[str, object, object]] = []        # (name, default, factory)
    hidden = set()
    for name in cls.__dict__.get("__annotations__", {}):
        value = cls.__dict__.get(name, _MISSING)
        default = factory = _MISSING
        if isinstance(value, _Field):
            default, factory = value.default, value.factory
            if not value.repr:
                hidden.add(name)
            if default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, default)
        else:
            default = value
        if default is _MISSING and factory is _MISSING and any(
                d is not _MISSING or f is not _MISSING for _, d, f in specs):
            raise TypeError(f"{cls.__name__}.{name}: a field without a default after one with")
        specs.append((name, default, factory))
    names = tuple(s[0] for s in specs)
    index = {name: i for i, name in enumerate(names)}

    def __init__(self, *args, **kwargs):
        if len(args) > len(specs):
            raise TypeError(f"{cls.__name__}() takes {len(specs)} arguments, {len(args)} given")
        for name in kwargs:
            if name not in index:
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")
            if index[name] < len(args):
                raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
        for i, (name, default, factory) in enumerate(specs):
            if i < len(args):
                value = args[i]
            elif name in kwargs:
                value = kwargs[name]
            elif factory is not _MISSING:
                value = factory()
            elif default is not _MISSING:
                value = default
            else:
                raise TypeError(f"{cls.__name__}() missing required argument {name!r}")
            object.__setattr__(self, name, value)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in names)

    def __repr__(self):
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in names if n not in hidden)
        return f"{cls.__qualname__}({shown})"

    cls.__init__, cls.__eq__, cls.__repr__ = __init__, __eq__, __repr__
    cls.__hash__ = None                 # mutable and compared by value: unhashable, as dataclasses
    cls.__record_fields__ = names
    cls.__match_args__ = names
    return cls


def fields(obj_or_cls) -> tuple[str, ...]:
    """The field names, in order."""
    return obj_or_cls.__record_fields__


def asdict(obj) -> dict:
    """The fields as a dict, records, lists and dicts inside copied (like dataclasses.asdict)."""
    return {name: _copy(getattr(obj, name)) for name in obj.__record_fields__}


def _copy(value):
    if hasattr(value, "__record_fields__") and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, tuple):
        return type(value)(_copy(v) for v in value) if not hasattr(value, "_fields") else \
            type(value)(*(_copy(v) for v in value))
    if isinstance(value, dict):
        return {_copy(k): _copy(v) for k, v in value.items()}
    return value


def replace(obj, **changes):
    """A new record like `obj` with some fields changed."""
    values = {name: getattr(obj, name) for name in obj.__record_fields__}
    values.update(changes)
    return obj.__class__(**values)
