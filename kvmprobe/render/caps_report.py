"""The text report of ``kvmprobe caps``: one row per capability with its value in each fd
scope, the meaning beside it (or under it when the terminal is narrow), a summary, and what
was left out. Built on render.term (no rich)."""

from __future__ import annotations

from kvmprobe.analysis.caps import known_caps
from kvmprobe.render.term import Column, Line, Table, Term
from kvmprobe.render.text import safe
from kvmprobe.vocab import CapArch, Scope

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.caps import CapRow
    from kvmprobe.snapshot import Snapshot


def arch_shown(row: CapRow, arch: CapArch | None) -> bool:
    """Is a row shown when the report is limited to ``arch`` (None: every architecture)?
    A capability answered non-zero, or unknown to the tables, is always shown."""
    info = row.info
    return (
        arch is None
        or row.supported
        or not info.known
        or info.arch in (CapArch.GENERIC, arch, "unknown")
    )


def _count(n: int, noun: str) -> str:
    """The count with its noun: 1 known capability, 3 known capabilities."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun.removesuffix('y')}ies"


def _value_cell(value: int | None, differs: bool) -> Line:
    if value is None:
        return Line.of("n/a", "dim")
    shown = str(value) if value < 0x10000 else f"{value:#x}"
    if differs:
        return Line.of(shown, "bold yellow")
    return Line.of(shown, "green" if value else "dim")


def _meaning(row: CapRow) -> Line:
    text = Line()
    scopes = [s for s in Scope if s in row.decoded]
    if scopes:
        first = row.decoded[scopes[0]]
        if row.differs:
            for scope in scopes:
                d = row.decoded[scope]
                text.add(f"{scope.label}: ", "yellow").add(d.text or "0").add("\n")
        elif first.value and (first.names or first.remainder or row.info.kind != "boolean"):
            text.add(first.text).add("\n")  # a 0 is in the value columns already
    if row.info.description:
        text.add(row.info.description, "dim")
    elif not row.info.known:
        text.add("not in kvmprobe's tables (newer than v7.2?)", "magenta")
    if text.spans and text.spans[-1][0] == "\n":
        text.spans.pop()
    return text


def caps_lines(
    snap: Snapshot,
    rows: list[CapRow],
    term: Term,
    *,
    include_zero: bool,
    arch: str | None,
    filtered: bool = False,
) -> list[Line]:
    """The report on ``rows``. ``arch``: "all", one CapArch, or None for the host's own
    architecture (the one the snapshot names); capabilities answered 0 that belong to other
    architectures are left out and counted, and so, without ``include_zero`` and a filter,
    are the known ones answered 0. A filter (``filtered``) that matches only other
    architectures' capabilities shows them when ``arch`` is None: they are what was asked."""
    shown_arch = None if arch == "all" else CapArch(arch) if arch else None
    if arch is None:
        shown_arch = CapArch.of_machine(snap.host.machine)
    shown = [r for r in rows if arch_shown(r, shown_arch)]
    if filtered and arch is None and not shown:
        shown_arch, shown = None, rows
    left: list[str] = []
    if not include_zero and not filtered:
        answered = {r.info.number for r in rows}
        zeros = sum(
            1
            for c in known_caps()
            if c.number not in answered
            and (shown_arch is None or c.arch in ("generic", shown_arch))
        )
        if zeros:
            left.append(f"{_count(zeros, 'known capability')} answered 0 (--all)")
    if len(shown) < len(rows):
        left.append(
            f"{_count(len(rows) - len(shown), 'capability')} of other architectures than "
            f"{shown_arch} " + ("(--arch all)" if filtered else "(--all --arch all)")
        )
    rows = shown
    title = Line.of("KVM capabilities", "bold").add(f" - {safe(snap.device)}")
    if snap.source != "live":
        title.add(f" (recorded in {safe(snap.source)})")
    out = term.hanging(Line(), title, 2)
    cols = [
        Column("#", right=True, style="cyan"),
        Column("capability"),
        *(Column(scope.label, right=True, label=scope.label) for scope in Scope),
    ]
    table = Table(term, cols, text_header="meaning", lead=2, shrink=1, min_text=36, under=6)
    cells_of = []
    for row in rows:
        info = row.info
        name_style = "magenta" if not info.known else ("" if row.supported else "dim")
        cells = [
            Line.of(str(info.number)),
            Line.of(safe(info.name.removeprefix("KVM_CAP_")), name_style),
            *(_value_cell(row.values.get(s), row.differs) for s in Scope),
        ]
        cells_of.append((cells, _meaning(row)))
    table.measure(c for c, _ in cells_of)
    out += table.header()
    for cells, meaning in cells_of:
        out += table.row(cells, meaning)
    out.append(Line())
    supported = sum(1 for r in rows if r.supported)
    not_asked = sum(1 for r in rows if r.info.number >= snap.cap_limit)
    differing = [r.info.name.removeprefix("KVM_CAP_") for r in rows if r.differs]
    unknown = sum(1 for r in rows if not r.info.known)
    summary = Line.of("Summary: ", "bold").add(f"{supported} supported", "green")
    if include_zero and len(rows) > supported + not_asked:
        summary.add(f", {len(rows) - supported - not_asked} not supported", "dim")
    if not_asked:
        summary.add(f", {not_asked} not asked: numbers {snap.cap_limit} and up", "dim")
    if unknown:
        summary.add(f", {unknown} unknown to kvmprobe", "magenta")
    if differing:
        summary.add(f"; differ between scopes: {', '.join(differing)}", "yellow")
    api = snap.api_version if snap.api_version is not None else "?"
    kernel = safe(snap.host.kernel_release) or "?"
    summary.add(f" (API version {api}, kernel {kernel})", "dim")
    out += term.hanging(Line(), summary, 2)
    if left:
        out += term.hanging(Line(), Line.of("Not shown: " + "; ".join(left), "dim"), 2)
    if snap.caps.get(Scope.VM) is None:
        out += term.para(
            Line.of("VM-fd values unavailable: see 'errors' in 'kvmprobe record'.", "yellow")
        )
    return out
