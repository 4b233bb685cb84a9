"""kvmprobe's value types: ``@frozen`` makes a class a frozen dataclass, built cheaply.

Every fact and result kvmprobe passes between layers is an immutable value (DESIGN.md: ints in,
dataclasses out). ``@frozen`` gives a class what ``@dataclass(frozen=True)`` gives it: an
``__init__`` taking the annotated fields (defaults, ``field(default_factory=...)``, keyword-only
fields), ``__post_init__``, value equality and hashing over the compared fields, a
``Name(a=1, b=2)`` repr, and assignment refused with ``dataclasses.FrozenInstanceError``.
``replace(obj, **changes)`` is ``dataclasses.replace`` for these classes. The class carries a
``__dataclass_fields__`` of ordinary ``dataclasses.Field`` objects, so ``dataclasses.fields``,
``replace``, ``asdict`` and ``is_dataclass`` accept it, and type checkers read it as a frozen
dataclass (PEP 681, ``dataclass_transform``, with ``field`` as its field specifier).

Why not the standard decorator: on Python 3.11 it compiles six methods for every class, about
half a millisecond each class, and the hundred-odd value types cost a fifth of a report's
start-up (issue "in a blink"). Here one method per class is compiled (``__init__``, the one
called per instance); repr, equality, hashing and the frozen guard are shared functions that
read the class's field names.

Why not even import the standard module: ``import dataclasses`` brings ``inspect`` (and with
it ``ast``, ``dis``, ``tokenize``, ``linecache``) and ``copy``, about as much time again as a
bare interpreter's start-up, for a ``--json`` command that needs none of it. So this module
imports neither ``dataclasses`` nor ``typing`` when it is loaded: ``field()`` makes a small
field record of its own, and a class's ``__dataclass_fields__`` is a descriptor that builds the
real ``dataclasses.Field`` objects (importing dataclasses) the first time anything reads it,
then stores them on the class in its place. Only the error path (``FrozenInstanceError``) and
the standard library's own functions pay for the import. For type checkers ``field`` and
``replace`` are the standard ones (same keywords, same checks).

What the standard decorator offers beyond that (``InitVar``, ``ClassVar``, ``init=False``
fields, ``slots``, ordering, standard dataclasses as bases) is refused with a TypeError when the
class is defined, so a value type can never silently behave unlike a dataclass.
tests/test_frozen.py compares the two.
"""

from __future__ import annotations

from operator import attrgetter

# typing costs as much to import as dataclasses; type checkers take this name as typing's
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar, dataclass_transform, overload

    _T = TypeVar("_T")
else:

    def overload(function):  # type checkers only
        return function

    def dataclass_transform(**_hints):  # type checkers only (PEP 681)
        return overload


__all__ = ["field", "frozen", "replace"]


class _Missing:
    """No default (dataclasses.MISSING, which this module does not import)."""

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class _Factory:
    """The default of a field with a default_factory, as __init__'s signature shows it."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


class _Field:
    """What ``field()`` records, until a class's ``dataclasses.Field`` objects are built."""

    __slots__ = (
        "compare",
        "default",
        "default_factory",
        "hash",
        "init",
        "kw_only",
        "metadata",
        "name",
        "repr",
        "type",
    )

    def __init__(
        self,
        default: Any,
        default_factory: Any,
        init: bool,
        repr: bool,
        hash: bool | None,
        compare: bool,
        metadata: Mapping[Any, Any] | None,
        kw_only: Any,
    ) -> None:
        self.name: str = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.hash = hash
        self.compare = compare
        self.metadata = metadata
        self.kw_only = kw_only

    def __repr__(self) -> str:
        return f"field({self.name!r}, default={self.default!r})"


def _field(
    *,
    default: Any = _MISSING,
    default_factory: Any = _MISSING,
    init: bool = True,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
    metadata: Mapping[Any, Any] | None = None,
    kw_only: Any = _MISSING,
) -> Any:
    """``dataclasses.field``, for ``@frozen`` classes (the same keywords)."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory, init, repr, hash, compare, metadata, kw_only)


def _replace(obj: Any, /, **changes: Any) -> Any:
    """``dataclasses.replace``: a copy of ``obj`` with ``changes``, made by its ``__init__``
    (so ``__post_init__`` runs again)."""
    names: tuple[str, ...] | None = getattr(type(obj), "__frozen_init__", None)
    if names is None:  # not a @frozen instance: the standard function says what it is
        import dataclasses

        return dataclasses.replace(obj, **changes)
    values = {name: getattr(obj, name) for name in names}
    values.update(changes)
    return type(obj)(**values)


if TYPE_CHECKING:
    from dataclasses import field as field
    from dataclasses import replace as replace
else:
    field = _field
    replace = _replace


def _dataclass_fields(cls: type) -> dict[str, Any]:
    """``cls.__dataclass_fields__`` as the standard decorator would have made it."""
    import dataclasses

    marker = getattr(dataclasses, "_FIELD", None)
    if marker is None:  # what dataclasses.fields() tells a real field by; raise, never hide
        raise RuntimeError("this Python's dataclasses module has no _FIELD marker")
    inherited: dict[str, Any] = {}
    for base in reversed(cls.__mro__[1:]):
        if "__dataclass_fields__" in base.__dict__:
            inherited.update(getattr(base, "__dataclass_fields__"))  # noqa: B009 (descriptor)
    own: frozenset[str] = cls.__dict__["__frozen_own__"]
    out: dict[str, Any] = {}
    for spec in cls.__dict__["__frozen_fields__"]:
        if spec.name not in own:
            out[spec.name] = inherited[spec.name]
            continue
        kwargs: dict[str, Any] = {
            "init": spec.init,
            "repr": spec.repr,
            "hash": spec.hash,
            "compare": spec.compare,
            "metadata": spec.metadata,
            "kw_only": spec.kw_only,
        }
        if spec.default is not _MISSING:
            kwargs["default"] = spec.default
        if spec.default_factory is not _MISSING:
            kwargs["default_factory"] = spec.default_factory
        f = dataclasses.field(**kwargs)
        f.name = spec.name
        f.type = spec.type
        f._field_type = marker
        out[spec.name] = f
    return out


class _LazyFields:
    """A class's ``__dataclass_fields__`` until something reads it: then the real fields,
    built once and stored on the class in this descriptor's place."""

    __slots__ = ("_owner",)

    def __init__(self, owner: type) -> None:
        self._owner = owner

    def __get__(self, obj: object, objtype: type | None = None) -> dict[str, Any]:
        fields = _dataclass_fields(self._owner)
        setattr(self._owner, "__dataclass_fields__", fields)  # noqa: B010 (on the class)
        return fields


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
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_del(self: Any, name: str) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)


def _own_fields(cls: type, kw_only: bool) -> list[_Field]:
    out: list[_Field] = []
    # what inspect.get_annotations(cls) gives (the class's own, not evaluated), without inspect
    annotations: dict[str, Any] = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    for name, annotation in annotations.items():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if "ClassVar" in text or "InitVar" in text:
            raise TypeError(f"{cls.__qualname__}.{name}: @frozen takes no ClassVar or InitVar")
        value = cls.__dict__.get(name, _MISSING)
        given = isinstance(value, _Field)
        f = value if given else _field(default=value)
        if not f.init:
            raise TypeError(f"{cls.__qualname__}.{name}: @frozen fields are all init fields")
        if f.default is not _MISSING and type(f.default).__hash__ is None:
            raise ValueError(
                f"{cls.__qualname__}.{name}: mutable default {type(f.default).__name__}; "
                "use field(default_factory=...)"
            )
        f.name = name
        f.type = annotation
        if f.kw_only is _MISSING:
            f.kw_only = kw_only
        if given:
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        out.append(f)
    return out


def _init_source(cls: type, fields: list[_Field], env: dict[str, Any]) -> str:
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
    fields: dict[str, _Field] = {}
    for base in reversed(cls.__mro__[1:]):
        if "__frozen_fields__" in base.__dict__:
            fields.update((f.name, f) for f in base.__dict__["__frozen_fields__"])
        elif "__dataclass_fields__" in base.__dict__:
            raise TypeError(
                f"{cls.__qualname__}: base {base.__qualname__} is a standard dataclass; "
                "make it @frozen too"
            )
    own = _own_fields(cls, kw_only)
    for f in own:
        fields[f.name] = f
    ordered = list(fields.values())
    env: dict[str, Any] = {"_FACTORY": _FACTORY}
    exec(_init_source(cls, ordered, env), env)  # one small function: __init__ itself
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    compared = tuple(f.name for f in ordered if f.compare)
    attrs: dict[str, Any] = {
        "__frozen_fields__": tuple(ordered),
        "__frozen_own__": frozenset(f.name for f in own),
        "__frozen_init__": tuple(fields),
        "__dataclass_fields__": _LazyFields(cls),
        "__init__": init,
        "__match_args__": tuple(f.name for f in ordered if not f.kw_only),
        "__frozen_key__": staticmethod(_tuple_getter(compared)),
        "__frozen_repr__": tuple(f.name for f in ordered if f.repr),
        "__setattr__": _refuse_set,
        "__delattr__": _refuse_del,
    }
    # As the standard decorator does, methods the class writes itself are kept (a class that
    # writes __eq__ alone gets __hash__ = None from Python, which is not a hash of its own).
    own_attrs = cls.__dict__
    if "__eq__" not in own_attrs:
        attrs["__eq__"] = _eq
    if own_attrs.get("__hash__") is None:
        attrs["__hash__"] = _hash
    if "__repr__" not in own_attrs:
        attrs["__repr__"] = _repr
    for name, value in attrs.items():
        setattr(cls, name, value)
    return cls


@overload
def frozen(cls: type[_T], /) -> type[_T]: ...


# (ruff takes the run-time stand-in for typing.overload above for a plain decorator)
@overload
def frozen(*, kw_only: bool = False) -> Callable[[type[_T]], type[_T]]: ...  # noqa: F811


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(  # noqa: F811
    cls: type[_T] | None = None, /, *, kw_only: bool = False
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """Make ``cls`` a frozen dataclass (see the module's docstring); ``@frozen`` or
    ``@frozen(kw_only=True)``."""
    if cls is None:
        return lambda c: _build(c, kw_only)
    return _build(cls, kw_only)
