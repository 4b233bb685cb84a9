"""kvmprobe.frozen against the standard library: every behaviour a value type relies on is
the same as ``@dataclass(frozen=True)``'s, for the same class body, and what @frozen does not
do is refused when the class is defined."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any, ClassVar

import pytest

from kvmprobe.frozen import field, frozen


@frozen
class Kept:
    """A module-level class, so pickle can find it again."""

    x: int
    y: tuple[int, ...]


def _pair(body: str, **options: Any) -> tuple[Any, Any]:
    """The same class body made once by @frozen and once by the standard decorator."""
    out = []
    for make in (frozen(**options), dataclasses.dataclass(frozen=True, **options)):
        ns: dict[str, Any] = {"field": field, "frozen": frozen}
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
