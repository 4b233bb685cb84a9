"""The rich Console every coloured report writes to (the only place that creates one)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


PIPE_WIDTH = 120


def make_console(no_color: bool = False, width: int | None = None) -> Console:
    from rich.console import Console

    env_no_color = bool(os.environ.get("NO_COLOR"))
    plain = no_color or env_no_color
    if width is None and not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = PIPE_WIDTH  # rich would use 80, which crushes the explanation columns
    return Console(
        file=sys.stdout,
        no_color=plain,
        color_system=None if plain else "auto",
        highlight=False,
        markup=False,  # text from snapshots is data, never rich markup; styles come from Text
        emoji=False,
        width=width,
        soft_wrap=False,
    )
