"""Counted nouns for user-facing text: "1 host", "2 hosts", never "2 host(s)".

Pure (no I/O): analysis, render and the CLI all use it."""

from __future__ import annotations


def plural(n: int, singular: str, many: str | None = None) -> str:
    """``singular`` when ``n`` is 1, else ``many`` (default: ``singular`` + "s")."""
    if n == 1:
        return singular
    return singular + "s" if many is None else many


def count(n: int, singular: str, many: str | None = None) -> str:
    """``n`` and the noun in agreement: ``count(1, "host")`` is "1 host", ``count(3, "host")``
    "3 hosts"; the noun may be several words ("probe step") and only its end changes."""
    return f"{n} {plural(n, singular, many)}"
