"""Styled text for the terminal reports, without rich: lines of (text, style) spans, word
wrapping with hanging indents that keep their colour, and tables whose names and values are
never cut.

Why not rich here: ``cpuid``, ``caps`` and ``doctor`` are run to answer one question quickly.
Importing rich's console costs more than the whole rest of a report, and its table layout
(measuring every cell) dominated the ``cpuid`` report. Tables here know their columns: every
column but the last is as wide as its widest cell and never wraps; the last one (the reason,
the meaning) wraps in the room left, or under its row with a hanging indent when that room is
too small, and below ``STACK_BELOW`` columns a row becomes a short block instead.

Nothing here writes: a report is built as a list of ``Line`` and rendered to one string
(with ANSI colour when ``Term.color``), which the command emits. No line ends in blanks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

__all__ = [
    "GLUE",
    "STACK_BELOW",
    "Column",
    "Line",
    "Table",
    "Term",
    "cell_len",
    "join",
    "terminal",
    "widest_word",
    "wrap",
]

#: below this many columns a table row becomes a block (its cells on two lines, the reason
#: under them)
STACK_BELOW = 80
#: the width used when no terminal says otherwise (output piped nowhere near a terminal)
DEFAULT_WIDTH = 80
#: the narrowest layout kvmprobe tries; anything narrower wraps as if it were this wide
MIN_WIDTH = 20
#: a space a line never breaks at, written as a plain space: "given:" + GLUE + "no" keeps a
#: label with its value
GLUE = "\u00a0"

_SGR = {
    "bold": "1",
    "dim": "2",
    "italic": "3",
    "underline": "4",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}
_SGR_CACHE: dict[str, str] = {}


def _sgr(style: str) -> str:
    code = _SGR_CACHE.get(style)
    if code is None:
        parts = [_SGR[w] for w in style.split() if w in _SGR]
        code = f"\x1b[{';'.join(parts)}m" if parts else ""
        _SGR_CACHE[style] = code
    return code


def cell_len(text: str) -> int:
    """How many terminal cells ``text`` takes (wide East Asian characters take two,
    combining marks none). Text reaching here has been through ``render.text.safe``."""
    if text.isascii():
        return len(text)
    import unicodedata  # here: most reports are ASCII, and it is a shared library to load

    n = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        n += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return n


Span = tuple[str, str]


class Line:
    """One line of styled text: a list of (text, style) spans."""

    __slots__ = ("spans",)

    def __init__(self, spans: list[Span] | None = None) -> None:
        self.spans: list[Span] = [] if spans is None else spans

    def __repr__(self) -> str:
        return f"Line({self.spans!r})"

    @classmethod
    def of(cls, text: str = "", style: str = "") -> Line:
        return cls([(text, style)] if text else [])

    def add(self, text: str, style: str = "") -> Line:
        if text:
            self.spans.append((text, style))
        return self

    def extend(self, other: Line) -> Line:
        self.spans.extend(other.spans)
        return self

    @property
    def plain(self) -> str:
        return "".join(t for t, _ in self.spans)

    @property
    def width(self) -> int:
        n = 0
        for t, _ in self.spans:  # a loop, not sum(): measured for every cell of every row
            n += len(t) if t.isascii() else cell_len(t)
        return n

    def __bool__(self) -> bool:
        return any(t for t, _ in self.spans)


def join(parts: Iterable[Line], sep: str = "  ", sep_style: str = "") -> Line:
    """Lines joined into one, ``sep`` between the non-empty ones."""
    out = Line()
    for part in parts:
        if not part:
            continue
        if out.spans:
            out.add(sep, sep_style)
        out.extend(part)
    return out


_TOKEN = re.compile(r"\n| +|[^ \n]+")


def _words(line: Line) -> list[tuple[str, list[Span] | Span | None]]:
    """("word", spans) / ("space", span) / ("break", None): a word runs across style
    changes, so "[quirk-id]," in two styles never breaks between its parts."""
    items: list[tuple[str, list[Span] | Span | None]] = []
    word: list[Span] | None = None
    for text, style in line.spans:
        for m in _TOKEN.finditer(text):
            tok = m.group()
            if tok == "\n":
                word = None
                items.append(("break", None))
            elif tok[0] == " ":
                word = None
                items.append(("space", (tok, style)))
            elif word is None:
                word = [(tok, style)]
                items.append(("word", word))
            else:
                word.append((tok, style))
    return items


def _fold(spans: list[Span], first: int, width: int) -> list[list[Span]]:
    """A word wider than the room left, cut into pieces: ``first`` cells, then ``width``
    each (nothing is dropped; a character wider than a line goes alone)."""
    pieces: list[list[Span]] = [[]]
    room = max(1, first)
    fresh = True  # nothing on the current piece yet
    for text, style in spans:
        start = 0
        n = len(text)
        while start < n:
            end, used = start, 0
            while end < n:
                w = cell_len(text[end])
                if used + w > room:
                    break
                used += w
                end += 1
            if end == start:
                if not fresh:
                    pieces.append([])
                    room, fresh = width, True
                    continue
                end, used = start + 1, cell_len(text[start])
            pieces[-1].append((text[start:end], style))
            room -= used
            fresh = False
            start = end
            if start < n:
                pieces.append([])
                room, fresh = width, True
    return [p for p in pieces if p]


def wrap(line: Line, width: int, first: int | None = None) -> list[Line]:
    """``line`` word-wrapped: the first line holds ``first`` cells (default ``width``), the
    others ``width``. Spaces where a line breaks are dropped; a word wider than a line is
    folded, never cut short; a newline in the text forces a break."""
    width = max(1, width)
    room = width if first is None else max(1, first)
    if line.width <= room and not any("\n" in t for t, _ in line.spans):
        return [Line(list(line.spans))]  # fits as it is: most lines do
    out: list[Line] = [Line()]
    used = 0
    pending: Span | None = None
    at_start = True  # blanks before the first word are kept (an indent the caller chose)
    words_on_line = 0
    for kind, item in _words(line):
        if kind == "break":
            out.append(Line())
            used, pending, room, words_on_line = 0, None, width, 0
            at_start = False
            continue
        if kind == "space":
            assert isinstance(item, tuple)
            if at_start:
                out[-1].spans.append(item)
                used += cell_len(item[0])
            else:
                pending = item if used else None
            continue
        at_start = False
        assert isinstance(item, list)
        w = sum(cell_len(t) for t, _ in item)
        gap = cell_len(pending[0]) if pending is not None else 0
        if words_on_line and used + gap + w > room:
            out.append(Line())
            used, gap, room, words_on_line = 0, 0, width, 0
        if gap and pending is not None:
            out[-1].spans.append(pending)
            used += gap
        pending = None
        if w > room - used:
            pieces = _fold(item, room - used, width)
            for i, piece in enumerate(pieces):
                if i:
                    out.append(Line())
                    room, used = width, 0
                out[-1].spans.extend(piece)
                used += sum(cell_len(t) for t, _ in piece)
            words_on_line = 1
            continue
        out[-1].spans.extend(item)
        used += w
        words_on_line += 1
    return out


class Term:
    """Where a report goes: its width, and whether it may use colour."""

    __slots__ = ("color", "width")

    def __init__(self, width: int = DEFAULT_WIDTH, color: bool = False) -> None:
        self.width = width
        self.color = color

    def __repr__(self) -> str:
        return f"Term(width={self.width}, color={self.color})"

    def render(self, lines: Iterable[Line]) -> str:
        """The report as one string; every line ends without blanks (colour kept)."""
        out: list[str] = []
        color = self.color
        for line in lines:
            spans = _rstrip(line.spans)
            if color:
                parts = []
                run_style, run = "", list[str]()  # spans of one style go out under one code
                for text, style in [*spans, ("", "\0")]:
                    if style != run_style and run:
                        code = _sgr(run_style) if run_style else ""
                        joined = "".join(run)
                        parts.append(f"{code}{joined}\x1b[0m" if code else joined)
                        run = []
                    run_style = style
                    run.append(text)
                out.append("".join(parts))
            else:
                out.append("".join(t for t, _ in spans))
        text = "\n".join(out) + "\n" if out else ""
        return text.replace(GLUE, " ") if GLUE in text else text

    def hanging(self, head: Line, body: Line, indent: int | None = None) -> list[Line]:
        """``head`` then ``body`` wrapped so that its later lines start ``indent`` cells in
        (default: under the body's first character)."""
        hw = head.width
        hang = hw if indent is None else indent
        if hw >= self.width - 10:  # no room beside the head: the body goes under it
            return [head, *self.indented(body, hang)]
        lines = wrap(body, self.width - hang, first=self.width - hw)
        out = [Line(list(head.spans)).extend(lines[0])]
        pad = " " * hang
        out += [Line([(pad, ""), *ln.spans]) for ln in lines[1:]]
        return out

    def para(self, line: Line, hang: int = 2) -> list[Line]:
        """``line`` wrapped to the width, later lines ``hang`` cells in."""
        if line.width <= self.width:
            return [line]
        return self.hanging(Line(), line, hang)

    def flow(self, units: Sequence[Line], indent: int, sep: str = "  ") -> list[Line]:
        """Units (each kept whole unless wider than a line) laid out ``sep`` apart, as many
        to a line as fit, every line ``indent`` cells in."""
        indent = min(indent, max(0, self.width - MIN_WIDTH))
        room = self.width - indent
        pad = " " * indent
        out: list[Line] = []
        line: Line | None = None
        used = 0
        for unit in units:
            w = unit.width
            if line is not None and used + len(sep) + w <= room:
                line.add(sep).extend(unit)
                used += len(sep) + w
                continue
            if w > room:  # too wide for any line: wrap it on its own
                out += self.indented(unit, indent)
                line, used = None, 0
                continue
            line = Line([(pad, ""), *unit.spans])
            out.append(line)
            used = w
        return out

    def indented(self, body: Line, indent: int) -> list[Line]:
        """``body`` wrapped to the width, every line ``indent`` cells in."""
        indent = min(indent, max(0, self.width - MIN_WIDTH))
        pad = " " * indent
        return [Line([(pad, ""), *ln.spans]) for ln in wrap(body, self.width - indent)]


def _rstrip(spans: list[Span]) -> list[Span]:
    spans = list(spans)
    while spans:
        text, style = spans[-1]
        stripped = text.rstrip(" ")
        if stripped:
            spans[-1] = (stripped, style)
            break
        spans.pop()
    return spans


def terminal(no_color: bool = False) -> Term:
    """The Term for standard output: COLUMNS, else the terminal's width (standard output's,
    else standard error's, so ``kvmprobe cpuid | less`` fits the screen), else 80. Colour
    only on a terminal (FORCE_COLOR forces it), never with NO_COLOR, --no-color or
    TERM=dumb."""
    import sys

    env = os.environ
    width = 0
    cols = env.get("COLUMNS", "")
    if cols.isdecimal() and cols.isascii():
        width = int(cols)
    tty = False
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno() if stream is not None else -1
        except (OSError, ValueError, AttributeError):
            continue
        if fd < 0 or not os.isatty(fd):
            continue
        if stream is sys.stdout:
            tty = True
        if not width:
            try:
                width = os.get_terminal_size(fd).columns
            except OSError:
                continue
        break
    if width <= 0:
        width = DEFAULT_WIDTH
    plain = no_color or bool(env.get("NO_COLOR")) or env.get("TERM") == "dumb"
    color = not plain and (tty or bool(env.get("FORCE_COLOR")))
    return Term(width=max(width, MIN_WIDTH), color=color)


class Column:
    """One column of a Table: its header, how it is aligned, the label its cell gets in the
    stacked layout ("" for none: the cell speaks for itself), and its cells' default style."""

    __slots__ = ("header", "label", "right", "style")

    def __init__(self, header: str, right: bool = False, label: str = "", style: str = ""):
        self.header = header
        self.right = right
        self.label = label
        self.style = style


class Table:
    """Rows of fixed cells (never wrapped, never cut) plus an optional last text that
    wraps: beside the row when at least ``min_text`` cells are left for it, else under the
    row (indented ``under``). The ``shrink`` column may give up room so that a better layout
    fits: a cell wider than its column then keeps its whole text on a line of its own and
    the row goes on under it. Below ``STACK_BELOW`` columns, or when the cells cannot fit
    at all, each row becomes a block: its ``lead`` cells, then the others with their
    labels, then the text, indented ``under``.

    Measure every row first (``measure``), so that tables printed in sections line up."""

    def __init__(
        self,
        term: Term,
        columns: Sequence[Column],
        *,
        text_header: str = "",
        lead: int = 1,
        margin: int = 1,
        gap: int = 2,
        min_text: int = 40,
        under: int = 5,
        shrink: int | None = 0,
        min_shrunk: int = 16,
    ) -> None:
        self.term = term
        self.columns = tuple(columns)
        self.text_header = text_header
        self.lead = lead
        self.margin = margin
        self.gap = gap
        self.min_text = min_text
        self.under = under
        self.shrink = shrink
        self.min_shrunk = min_shrunk
        self.natural = [cell_len(c.header) for c in self.columns]
        self._fitted: tuple[str, list[int]] | None = None

    def measure(self, rows: Iterable[Sequence[Line]]) -> None:
        widths = self.natural
        for cells in rows:
            for i, cell in enumerate(cells):
                w = cell.width
                if w > widths[i]:
                    widths[i] = w
        self._fitted = None

    def _fixed(self, widths: Sequence[int]) -> int:
        return self.margin + sum(widths) + self.gap * (len(widths) - 1)

    def _fit(self) -> tuple[str, list[int]]:
        if self._fitted is not None:
            return self._fitted
        width = self.term.width
        widths = list(self.natural)
        fitted: tuple[str, list[int]] = ("stacked", widths)
        if width >= STACK_BELOW:
            for mode, extra in (("wide", self.gap + self.min_text), ("under", 0)):
                over = self._fixed(widths) + extra - width
                if over <= 0:
                    fitted = (mode, widths)
                    break
                k = self.shrink
                if k is not None:
                    floor = max(self.min_shrunk, cell_len(self.columns[k].header))
                    if widths[k] - over >= floor:
                        shrunk = list(widths)
                        shrunk[k] -= over
                        fitted = (mode, shrunk)
                        break
        self._fitted = fitted
        return fitted

    @property
    def widths(self) -> list[int]:
        return self._fit()[1]

    @property
    def fixed_width(self) -> int:
        return self._fixed(self.widths)

    @property
    def mode(self) -> str:
        """ "wide" (text beside the row), "under" (text under it) or "stacked"."""
        return self._fit()[0]

    def header(self, style: str = "dim") -> list[Line]:
        if self.mode == "stacked":
            return []
        lines = self._cells([Line.of(c.header, style) for c in self.columns])
        if self.text_header and self.mode == "wide":
            lines[-1].add(" " * (self.fixed_width + self.gap - lines[-1].width))
            lines[-1].add(self.text_header, style)
        return lines

    def _cells(self, cells: Sequence[Line]) -> list[Line]:
        """The fixed cells on one line; two when the shrunk column's cell is wider than it
        (the cell alone first, the row going on under it)."""
        widths = self.widths
        out = [Line.of(" " * self.margin)]
        line = out[0]
        last = len(cells) - 1
        for i, (cell, col) in enumerate(zip(cells, self.columns, strict=True)):
            w = widths[i]
            cw = cell.width
            if cw > w and i < last:
                line.extend(_styled(cell, col.style))
                line = Line.of(" " * (self.margin + sum(widths[: i + 1]) + self.gap * (i + 1)))
                out.append(line)
                continue
            pad = w - cw
            if col.right and pad > 0:
                line.add(" " * pad)
            line.extend(_styled(cell, col.style))
            if i < last:
                if not col.right and pad > 0:
                    line.add(" " * pad)
                line.add(" " * self.gap)
        return out

    def row(self, cells: Sequence[Line], text: Line | None = None) -> list[Line]:
        """The lines of one row (``text``: the wrapping last column, if any)."""
        mode = self.mode
        if mode == "stacked":
            return self._stacked(cells, text)
        lines = self._cells(cells)
        if not text:
            return lines
        if mode == "under":
            return [*lines, *self.term.indented(text, self.under)]
        start = self.fixed_width + self.gap
        last = lines.pop()
        last.add(" " * (start - last.width))
        return [*lines, *self.term.hanging(last, text, start)]

    def _stacked(self, cells: Sequence[Line], text: Line | None) -> list[Line]:
        term = self.term
        cols = self.columns
        first = join(
            _styled(cell, c.style) for cell, c in zip(cells[: self.lead], cols, strict=False)
        )
        rest = [
            Line.of(f"{c.label} ", "dim").extend(cell) if c.label else _styled(cell, c.style)
            for cell, c in zip(cells[self.lead :], cols[self.lead :], strict=True)
            if cell
        ]
        out = term.hanging(Line.of(" " * self.margin), first, self.margin + 2)
        out += term.flow(rest, self.under)
        if text:
            out += term.indented(text, self.under)
        return out


def _styled(cell: Line, style: str) -> Line:
    """``cell`` with ``style`` for its spans that have none."""
    if not style:
        return cell
    return Line([(t, s or style) for t, s in cell.spans])


def widest_word(lines: Iterable[Line]) -> int:
    """The cells the longest word of ``lines`` takes: a Table's ``min_text`` at least this
    wide puts a text beside its row only when every word fits there whole (else under it)."""
    return max((cell_len(w) for line in lines for w in line.plain.split()), default=0)
