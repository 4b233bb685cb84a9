"""kvmprobe's value types: ``@frozen`` makes a class a frozen dataclass, built cheaply.

Every fact and result kvmprobe passes between layers is an immutable value (DESIGN.md: ints in,
dataclasses out). ``@frozen`` gives a class what ``@dataclass(frozen=True)`` gives it: an
``__init__`` taking the annotated fields (defaults, ``field(default_factory=...)``, keyword-only
fields), ``__post_init__``, value equality and hashing over the compared fields, a
``Name(a=1, b=2)`` repr, and assignment refused with ``dataclasses.FrozenInstanceError``. The
class carries ordinary ``dataclasses.Field`` objects, so ``dataclasses.fields``, ``replace``,
``asdict`` and ``is_dataclass`` accept it, and type checkers read it as a frozen dataclass
(PEP 681, ``dataclass_transform``).

Why not the standard decorator: on Python 3.11 it compiles six methods for every class, about
half a millisecond each class, and the hundred-odd value types cost a fifth of a report's
start-up (issue "in a blink"). Here one method per class is compiled (``__init__``, the one
called per instance); repr, equality, hashing and the frozen guard are shared functions that
read the class's field names.

What the standard decorator offers beyond that (``InitVar``, ``ClassVar``, ``init=False``
fields, ``slots``, ordering) is refused with a TypeError when the class is defined, so a value
type can never silently behave unlike a dataclass. tests/test_frozen.py compares the two.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

__all__ = ["field", "frozen"]

field = dataclasses.field

_T = TypeVar("_T")
_MISSING: Any = dataclasses.MISSING
# The marker dataclasses.fields() uses to tell a real field from a ClassVar or InitVar
# pseudo-field; a Field made by field() carries none until its class is processed.
_FIELD: Any = getattr(dataclasses, "_FIELD", None)


class _Factory:
    """The default of a field with a default_factory, as __init__'s signature shows it."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def _key(self: Any) -> tuple[Any, ...]:
    return type(self).__frozen_key__(self)  # type: ignore[no-any-return]


def _eq(self: Any, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _key(self) == _key(other)


def _hash(self: Any) -> int:
    return hash(_key(self))


def _repr(self: Any) -> str:
    cls = type(self)
    body = ", ".join(f"{name}={getattr(self, name)!r}" for name in cls.__frozen_repr__)
    return f"{cls.__qualname__}({body})"


def _refuse_set(self: Any, name: str, value: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_del(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)


def _own_fields(cls: type, kw_only: bool) -> list[dataclasses.Field[Any]]:
    out: list[dataclasses.Field[Any]] = []
    for name, annotation in inspect.get_annotations(cls).items():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if "ClassVar" in text or "InitVar" in text:
            raise TypeError(f"{cls.__qualname__}.{name}: @frozen takes no ClassVar or InitVar")
        value = cls.__dict__.get(name, _MISSING)
        f: dataclasses.Field[Any] = (
            value if isinstance(value, dataclasses.Field) else field(default=value)
        )
        if not f.init:
            raise TypeError(f"{cls.__qualname__}.{name}: @frozen fields are all init fields")
        if f.default is not _MISSING and type(f.default).__hash__ is None:
            raise ValueError(
                f"{cls.__qualname__}.{name}: mutable default {type(f.default).__name__}; "
                "use field(default_factory=...)"
            )
        f.name = name
        f.type = annotation
        f._field_type = _FIELD  # type: ignore[attr-defined]
        if f.kw_only is _MISSING:
            f.kw_only = kw_only
        if isinstance(value, dataclasses.Field):
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        out.append(f)
    return out


def _init_source(cls: type, fields: list[dataclasses.Field[Any]], env: dict[str, Any]) -> str:
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    seen_default = False
    for f in fields:
        name = f.name
        if f.default is not _MISSING:
            env[f"_d_{name}"] = f.default
            param = f"{name}=_d_{name}"
        elif f.default_factory is not _MISSING:
            env[f"_f_{name}"] = f.default_factory
            param = f"{name}=_FACTORY"
            body.append(f"    if {name} is _FACTORY:\n        {name} = _f_{name}()")
        else:
            param = name
        if f.kw_only:
            keyword.append(param)
        else:
            has_default = param != name
            if seen_default and not has_default:
                raise TypeError(
                    f"{cls.__qualname__}: non-default field {name!r} follows a default field"
                )
            seen_default = seen_default or has_default
            positional.append(param)
        body.append(f"    _d[{name!r}] = {name}")
    params = ["self", *positional, *(["*", *keyword] if keyword else [])]
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    return f"def __init__({', '.join(params)}):\n    _d = self.__dict__\n" + "\n".join(body)


def _build(cls: type[_T], kw_only: bool) -> type[_T]:
    if "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__qualname__}: @frozen classes keep a __dict__ (no __slots__)")
    fields: dict[str, dataclasses.Field[Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        if "__dataclass_fields__" in base.__dict__:
            fields.update(base.__dict__["__dataclass_fields__"])
    for f in _own_fields(cls, kw_only):
        fields[f.name] = f
    ordered = list(fields.values())
    env: dict[str, Any] = {"_FACTORY": _FACTORY}
    exec(_init_source(cls, ordered, env), env)  # one small function: __init__ itself
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    compared = tuple(f.name for f in ordered if f.compare)
    attrs: dict[str, Any] = {
        "__dataclass_fields__": fields,
        "__init__": init,
        "__match_args__": tuple(f.name for f in ordered if not f.kw_only),
        "__frozen_key__": staticmethod(_tuple_getter(compared)),
        "__frozen_repr__": tuple(f.name for f in ordered if f.repr),
        "__setattr__": _refuse_set,
        "__delattr__": _refuse_del,
    }
    # As the standard decorator does, methods the class writes itself are kept (a class that
    # writes __eq__ alone gets __hash__ = None from Python, which is not a hash of its own).
    own = cls.__dict__
    if "__eq__" not in own:
        attrs["__eq__"] = _eq
    if own.get("__hash__") is None:
        attrs["__hash__"] = _hash
    if "__repr__" not in own:
        attrs["__repr__"] = _repr
    for name, value in attrs.items():
        setattr(cls, name, value)
    return cls


@overload
def frozen(cls: type[_T], /) -> type[_T]: ...


@overload
def frozen(*, kw_only: bool = False) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen(
    cls: type[_T] | None = None, /, *, kw_only: bool = False
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """Make ``cls`` a frozen dataclass (see the module's docstring); ``@frozen`` or
    ``@frozen(kw_only=True)``."""
    if _FIELD is None:  # a Python whose dataclasses keep no field marker: use them as they are
        if cls is None:
            return dataclasses.dataclass(frozen=True, kw_only=kw_only)
        return dataclasses.dataclass(frozen=True)(cls)
    if cls is None:
        return lambda c: _build(c, kw_only)
    return _build(cls, kw_only)
