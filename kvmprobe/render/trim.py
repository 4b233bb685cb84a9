"""Print a rich report without the trailing blanks rich pads table cells with.

rich fills every table row to the table's width; piped into a file or another program those
blanks are noise (and break line-oriented diffs). ``trimmed`` captures what a report prints
and writes it out again with each line's trailing blanks removed (also the blanks just before
a trailing colour reset, when colour is on)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["strip_trailing", "trimmed"]

_TRAILING = re.compile(r"[ \t]+((?:\x1b\[[0-9;]*m)*)$")


def strip_trailing(text: str) -> str:
    """``text`` with every line's trailing blanks removed (colour codes kept)."""
    return "\n".join(_TRAILING.sub(r"\1", line) for line in text.split("\n"))


@contextmanager
def trimmed(console: Console) -> Iterator[Console]:
    """Run a report against ``console``; its output reaches the console's file trimmed."""
    with console.capture() as capture:
        yield console
    out = strip_trailing(capture.get())
    if out:
        console.file.write(out)
        console.file.flush()
