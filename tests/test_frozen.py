"""kvmprobe.frozen against the standard library: every behaviour a value type relies on is
the same as ``@dataclass(frozen=True)``'s, for the same class body, and what @frozen does not
do is refused when the class is defined."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys
from typing import Any, ClassVar

import pytest

from kvmprobe.frozen import field, frozen


@frozen
class Kept:
    """A module-level class, so pickle can find it again."""

    x: int
    y: tuple[int, ...]


def _pair(body: str, **options: Any) -> tuple[Any, Any]:
    """The same class body made once by @frozen (with kvmprobe.frozen.field) and once by the
    standard decorator (with dataclasses.field)."""
    out = []
    for make, make_field in [
        (frozen(**options), field),
        (dataclasses.dataclass(frozen=True, **options), dataclasses.field),
    ]:
        ns: dict[str, Any] = {"field": make_field, "frozen": frozen}
        exec(f"from __future__ import annotations\nclass Point:\n{body}", ns)
        out.append(make(ns["Point"]))
    return out[0], out[1]


BODY = """
    x: int
    y: str = "a"
    tags: list[str] = field(default_factory=list)
    note: str = field(default="", compare=False)
    secret: int = field(default=0, repr=False)
"""


def test_construction_defaults_and_factories_match() -> None:
    ours, std = _pair(BODY)
    for args, kwargs in [((1,), {}), ((1, "b"), {"tags": ["t"]}), ((), {"x": 2, "note": "n"})]:
        a, b = ours(*args, **kwargs), std(*args, **kwargs)
        assert vars(a) == vars(b)
    assert ours(1).tags is not ours(1).tags  # a fresh list each time
    for bad_args, bad_kwargs in [((), {}), ((1, "b", [], "n", 0, 9), {}), ((1,), {"z": 1})]:
        with pytest.raises(TypeError):
            ours(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError):
            std(*bad_args, **bad_kwargs)


def test_equality_hash_and_repr_match() -> None:
    ours, std = _pair(BODY)
    a, b = ours(1, "b", note="one"), ours(1, "b", note="two")
    assert a == b and (a != b) is False  # note is not compared
    assert a != ours(2, "b") and a != std(1, "b")  # another class is never equal
    assert repr(ours(1, "b", ["t"])) == repr(std(1, "b", ["t"]))
    assert "secret" not in repr(ours(1))
    with pytest.raises(TypeError):  # the list field makes it unhashable, as in a dataclass
        hash(ours(1))
    h_ours, h_std = _pair("    x: int\n    y: tuple[int, ...] = ()\n")
    assert hash(h_ours(1, (2,))) == hash(h_ours(1, (2,))) == hash(h_std(1, (2,)))
    assert len({h_ours(1), h_ours(1), h_ours(2)}) == 2


def test_frozen_guard_matches() -> None:
    ours, std = _pair(BODY)
    for obj in (ours(1), std(1)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.x = 2
        with pytest.raises(dataclasses.FrozenInstanceError):
            del obj.x


def test_stdlib_functions_accept_it() -> None:
    ours, std = _pair(BODY)
    a, b = ours(1, "b", ["t"], "n", 7), std(1, "b", ["t"], "n", 7)
    assert dataclasses.is_dataclass(a) and dataclasses.is_dataclass(ours)
    assert [f.name for f in dataclasses.fields(a)] == [f.name for f in dataclasses.fields(b)]
    assert [(f.compare, f.repr, f.kw_only) for f in dataclasses.fields(ours)] == [
        (f.compare, f.repr, f.kw_only) for f in dataclasses.fields(std)
    ]
    assert dataclasses.asdict(a) == dataclasses.asdict(b)
    assert dataclasses.astuple(a) == dataclasses.astuple(b)
    changed = dataclasses.replace(a, y="c")
    assert type(changed) is ours and changed.y == "c" and changed.tags == ["t"]
    assert ours.__match_args__ == std.__match_args__
    assert copy.deepcopy(a) == a and copy.copy(a) == a
    kept = Kept(1, (2, 3))
    assert pickle.loads(pickle.dumps(kept)) == kept


def test_keyword_only_inheritance_and_post_init() -> None:
    seen: list[int] = []

    @frozen(kw_only=True)
    class Base:
        a: int
        b: int = 2

    @frozen
    class Child(Base):
        c: int = 3

        def __post_init__(self) -> None:
            seen.append(self.a + self.b + self.c)
            object.__setattr__(self, "cache", 1)  # how a value type fills a derived field

    with pytest.raises(TypeError):
        Base(1)  # type: ignore[call-arg]
    child = Child(4, a=1)
    assert (child.a, child.b, child.c, seen) == (1, 2, 4, [7])
    assert [f.name for f in dataclasses.fields(Child)] == ["a", "b", "c"]
    assert all(f.kw_only for f in dataclasses.fields(Base))
    assert repr(child).endswith("<locals>.Child(a=1, b=2, c=4)")


def test_methods_the_class_writes_are_kept() -> None:
    @frozen
    class Loose:
        x: int

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Loose)

        def __repr__(self) -> str:
            return "loose"

    assert Loose(1) == Loose(2) and repr(Loose(1)) == "loose"
    assert hash(Loose(1)) == hash(Loose(1))  # a hash is still made from the fields


def test_what_it_does_not_do_is_refused() -> None:
    with pytest.raises(TypeError, match="ClassVar"):

        @frozen
        class WithClassVar:
            x: ClassVar[int] = 1

    with pytest.raises(TypeError, match="init fields"):

        @frozen
        class NotInit:
            x: int = field(default=0, init=False)

    with pytest.raises(TypeError, match="follows a default"):

        @frozen
        class Order:
            x: int = 0
            y: int  # type: ignore[misc]

    with pytest.raises(ValueError, match="mutable default"):

        @frozen
        class Mutable:
            x: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="__slots__"):

        @frozen
        class Slotted:
            __slots__ = ("x",)
            x: int


# -- no dataclasses until something asks: field(), replace() and the lazy fields ----------------

FIELD_ATTRS = ("name", "type", "default", "default_factory", "init", "repr", "hash", "compare")
FIELD_ATTRS += ("metadata", "kw_only", "_field_type")

FULL_BODY = """
    x: int
    y: str = field(default="a", repr=False, hash=False, metadata={"unit": "bytes"})
    tags: tuple[str, ...] = field(default=(), compare=False)
    seen: list[int] = field(default_factory=list, compare=False, metadata={})
    z: int = field(default=0, kw_only=True)
"""


def _field_view(cls: type) -> list[tuple[Any, ...]]:
    return [tuple(getattr(f, a) for a in FIELD_ATTRS) for f in dataclasses.fields(cls)]


def test_the_fields_built_on_first_read_are_the_standard_ones() -> None:
    ours, std = _pair(FULL_BODY)
    assert type(ours.__dict__["__dataclass_fields__"]).__name__ == "_LazyFields"
    assert _field_view(ours) == _field_view(std)
    built = ours.__dict__["__dataclass_fields__"]
    assert isinstance(built, dict)  # stored on the class in the descriptor's place
    assert dataclasses.fields(ours)[0] is built["x"] and ours(1).__dataclass_fields__ is built
    assert [f.name for f in dataclasses.fields(ours(1))] == ["x", "y", "tags", "seen", "z"]
    a, b = ours(1, "b", ("t",), [2], z=3), std(1, "b", ("t",), [2], z=3)
    assert dataclasses.asdict(a) == dataclasses.asdict(b)
    assert hash(a) == hash(ours(1, "b", ("u",), [], z=3))  # tags and seen are not compared
    with pytest.raises(ValueError, match="both default and default_factory"):
        field(default=1, default_factory=list)


def test_an_inherited_field_is_the_base_classes_own_as_in_the_standard_decorator() -> None:
    @frozen
    class Base:
        a: int
        b: int = field(default=2, compare=False)

    @frozen
    class Child(Base):
        c: int = 3

    # read the child first: the base's fields are built on the way
    child_fields = dataclasses.fields(Child)
    assert child_fields[:2] == dataclasses.fields(Base)
    assert all(x is y for x, y in zip(child_fields, dataclasses.fields(Base), strict=False))
    assert [(f.name, f.compare) for f in child_fields] == [("a", True), ("b", False), ("c", True)]
    assert dataclasses.is_dataclass(Child(1)) and not dataclasses.is_dataclass(object())


def test_replace_matches_the_standard_replace() -> None:
    from kvmprobe.frozen import replace

    seen: list[int] = []

    @frozen(kw_only=True)
    class Base:
        a: int
        b: tuple[int, ...] = ()

    @frozen
    class Child(Base):
        c: int = 3

        def __post_init__(self) -> None:
            seen.append(self.c)

    ours, std = _pair(FULL_BODY)
    for cls in (ours, std):
        obj = cls(1, "b", ("t",), [2], z=3)
        for changes in [{}, {"x": 5}, {"y": "c", "z": 9}, {"seen": [7]}]:
            mine, theirs = replace(obj, **changes), dataclasses.replace(obj, **changes)
            assert type(mine) is cls and vars(mine) == vars(theirs)
        with pytest.raises(TypeError):
            replace(obj, nosuch=1)
        with pytest.raises(TypeError):
            dataclasses.replace(obj, nosuch=1)
    child = Child(4, a=1)
    again = replace(child, b=(2,))
    assert again == dataclasses.replace(child, b=(2,)) == Child(4, a=1, b=(2,))
    assert again is not child and seen == [4, 4, 4, 4]  # __post_init__ ran every time
    with pytest.raises(TypeError):
        replace(object())  # neither @frozen nor a dataclass: the standard function's error


def test_a_standard_dataclass_as_a_base_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Std:
        a: int

    with pytest.raises(TypeError, match="standard dataclass"):

        @frozen
        class Child(Std):
            b: int


def test_value_types_cost_no_dataclasses_or_typing_until_asked() -> None:
    # a fresh interpreter: defining, building, comparing, replacing and printing value types
    # imports neither; the first read of the fields (or a refused assignment) imports dataclasses
    code = """
import sys
from kvmprobe.frozen import field, frozen, replace

@frozen
class Point:
    x: int
    tags: tuple[str, ...] = field(default=())
    seen: list[int] = field(default_factory=list, compare=False)

p = replace(Point(1), x=2)
assert p == Point(2) and hash(p) == hash(Point(2)) and repr(p).startswith("Point(x=2")
print(sorted(m for m in ("dataclasses", "typing", "inspect") if m in sys.modules))
try:
    p.x = 3
except Exception as e:
    print(type(e).__module__, type(e).__name__)
import dataclasses
print([f.name for f in dataclasses.fields(Point)])
"""
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.stdout.splitlines() == [
        "[]",
        "dataclasses FrozenInstanceError",
        "['x', 'tags', 'seen']",
    ], r.stderr
