"""The rich Console every coloured report writes to (the only place that creates one)."""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from kvmprobe.render.output import standard_output

if TYPE_CHECKING:
    from rich.console import Console


PIPE_WIDTH = 120


def _console_class() -> type[Console]:
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # rich would exit 1 here itself; let the reader's going away travel up to the one
            # place that ends every command the same way (kvmprobe.entry).
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, "the reader closed the pipe")

    return _Console


def make_console(no_color: bool = False, width: int | None = None) -> Console:
    out = standard_output()

    env_no_color = bool(os.environ.get("NO_COLOR"))
    plain = no_color or env_no_color
    if width is None and not out.isatty() and not os.environ.get("COLUMNS"):
        width = PIPE_WIDTH  # rich would use 80, which crushes the explanation columns
    return _console_class()(
        file=out,
        no_color=plain,
        color_system=None if plain else "auto",
        highlight=False,
        markup=False,  # text from snapshots is data, never rich markup; styles come from Text
        emoji=False,
        width=width,
        soft_wrap=False,
    )


def print_wrapped(console: Console, text: str, style: str = "", hang: int = 4) -> None:
    """``text`` (with its own leading blanks) wrapped to the console's width, later lines
    ``hang`` cells in: the hanging indent of kvmprobe.render.term, for the reports still
    drawn with rich tables."""
    from rich.text import Text

    from kvmprobe.render.term import Line, Term

    for line in Term(console.width).para(Line.of(text), hang):
        console.print(Text(line.plain, style=style))
