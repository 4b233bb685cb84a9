"""The text report of ``kvmprobe cpuid``: the features a guest gets, by area, with the reason
for every change; the values that matter; notes on whole leaves; a one-line legend and a
summary that says what was left out and how to see it. Also ``--raw`` and ``--explain``.

Built on render.term (no rich): every function returns lines; the command renders and emits
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from kvmprobe.frozen import frozen
from kvmprobe.render.term import GLUE, Column, Line, Table, Term, join
from kvmprobe.render.text import safe
from kvmprobe.vocab import FeatureStatus, FieldEncoding, QuirkEffect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

    from kvmprobe.analysis.cpuid_query import CpuidFilter, Selection
    from kvmprobe.analysis.effective import (
        CpuidAnalysis,
        FeatureResult,
        FieldResult,
        LeafNote,
        Tally,
    )
    from kvmprobe.analysis.explanation import Explanation, FieldExplanation
    from kvmprobe.analysis.msr_features import MsrBitResult
    from kvmprobe.vocab import DisableExit

STATUS_STYLE: dict[FeatureStatus, tuple[str, str]] = {
    FeatureStatus.SUPPORTED: ("green", "+"),
    FeatureStatus.ADDED_BY_QUIRK: ("bold green", "A"),
    FeatureStatus.REMOVED_BY_QUIRK: ("bold red", "R"),
    FeatureStatus.OPT_IN: ("cyan", "O"),
    FeatureStatus.RUNTIME: ("blue", "~"),
    FeatureStatus.EMULATED: ("yellow", "E"),
    FeatureStatus.HOST_ONLY: ("magenta", "H"),
    FeatureStatus.UNSUPPORTED: ("dim", "-"),
    FeatureStatus.UNKNOWN: ("bold yellow", "?"),
}
#: the legend's words for each status a row may show (supported and unsupported say
#: themselves); only the statuses on screen are explained
LEGEND: dict[FeatureStatus, str] = {
    FeatureStatus.ADDED_BY_QUIRK: "a quirk adds it",
    FeatureStatus.REMOVED_BY_QUIRK: "a quirk takes it away",
    FeatureStatus.OPT_IN: "the VMM must ask",
    FeatureStatus.RUNTIME: "set as the guest runs",
    FeatureStatus.EMULATED: "trapped, slow",
    FeatureStatus.HOST_ONLY: "KVM does not pass it on",
    FeatureStatus.UNKNOWN: "a probe step failed or is missing",
}
#: the summary's words for the features a guest can be given, by status, in this order
GIVEN_WORDS: tuple[tuple[FeatureStatus, str], ...] = (
    (FeatureStatus.SUPPORTED, "supported"),
    (FeatureStatus.ADDED_BY_QUIRK, "added by quirks"),
    (FeatureStatus.OPT_IN, "opt-in"),
    (FeatureStatus.RUNTIME, "runtime"),
    (FeatureStatus.EMULATED, "emulated"),
)
#: ... and for those it cannot be given ("{s}": the plural's s). A runtime bit a guest is not
#: given is one KVM sets from the guest's own state as it runs (OSXSAVE, OSPKE: its CR4)
NOT_GIVEN_WORDS: tuple[tuple[FeatureStatus, str], ...] = (
    (FeatureStatus.REMOVED_BY_QUIRK, "removed by quirks"),
    (FeatureStatus.RUNTIME, "runtime bit{s} the guest's kernel sets"),
    (FeatureStatus.HOST_ONLY, "host-only"),
    (FeatureStatus.UNSUPPORTED, "unsupported"),
)


def count_phrases(
    counts: Mapping[FeatureStatus, int], words: Sequence[tuple[FeatureStatus, str]]
) -> list[tuple[str, FeatureStatus]]:
    """``["94 supported", "2 added by quirks", ...]`` (each with its status, for its colour):
    every status with a count, in the order of ``words``; a status ``words`` does not name
    comes last under its own name, so the phrases always add up to the counts."""
    named = dict(words)
    order = [s for s, _ in words] + [s for s in FeatureStatus if s not in named]
    out = []
    for s in order:
        n = counts.get(s, 0)
        if n:
            word = named.get(s, str(s)).replace("{s}", "" if n == 1 else "s")
            out.append((f"{n} {word}", s))
    return out


def tally_line(t: Tally, host_only: str = "host-only", skip: Iterable[FeatureStatus] = ()) -> Line:
    """The summary's counts: ``: 94 supported, 2 added by quirks, ...`` (the kinds a guest is
    given, adding up to ``t.given_total``), then ``; 1 unknown`` and ``; not given: 1 removed
    by quirks, 2 runtime bits the guest's kernel sets, ...``. ``skip``: statuses the not-given
    part leaves out; ``host_only``: its words for host-only features."""
    out = Line()
    given = count_phrases(t.given, GIVEN_WORDS)
    if given:
        out.add(": ")
        out.extend(join([Line.of(p, STATUS_STYLE[s][0]) for p, s in given], ", "))
    if t.unknown_total:
        out.add("; ").add(f"{t.unknown_total} unknown", STATUS_STYLE[FeatureStatus.UNKNOWN][0])
    words = [(s, host_only if s is FeatureStatus.HOST_ONLY else w) for s, w in NOT_GIVEN_WORDS]
    skipped = set(skip)
    counts = {s: n for s, n in t.not_given.items() if s not in skipped}
    not_given = count_phrases(counts, words)
    if not_given:
        out.add("; not given: ")
        out.extend(join([Line.of(p, STATUS_STYLE[s][0]) for p, s in not_given], ", "))
    return out


AREA_TITLES = {
    "base": "Base ISA",
    "simd": "SIMD and vector",
    "security": "Security and speculation",
    "virtualization": "Virtualization",
    "timers-apic": "Timers and APIC",
    "kvm-pv": "KVM paravirtual (0x40000001)",
    "memory": "Memory and paging",
    "power": "Power management",
    "perf-debug": "Performance monitoring and debug",
    "xsave": "XSAVE state",
    "cache-topology": "Cache and topology",
    "qos": "Resource monitoring and allocation",
    "other": "Other",
}
_AREA_ORDER = {area: i for i, area in enumerate(AREA_TITLES)}
#: how far a reason under its row (or a block's later lines) is indented
HANG = 5


@frozen
class View:
    """What the report shows: the selection, the filter, which statuses it hides, the exits
    the set-up asked for that KVM refuses (``exits_known``: whether KVM's answer about them is
    known at all), and the feature-MSR bits the filter names (``msr_bits``)."""

    selection: Selection
    flt: CpuidFilter | None
    show_host: bool
    show_all: bool
    refused: tuple[DisableExit, ...] = ()
    exits_known: bool = True
    msr_bits: tuple[MsrBitResult, ...] = ()

    @property
    def hidden(self) -> frozenset[FeatureStatus]:
        """The statuses left out: none with --all or a location filter (``0x7.1``,
        ``0x1.0.ecx``: the user asked for those very bits, whatever they are)."""
        if self.show_all or (self.flt is not None and self.flt.location is not None):
            return frozenset()
        if self.show_host:
            return frozenset({FeatureStatus.UNSUPPORTED})
        return frozenset({FeatureStatus.UNSUPPORTED, FeatureStatus.HOST_ONLY})

    def shown(self) -> list[FeatureResult]:
        exact = self.flt.exact if self.flt is not None else None
        hidden = self.hidden
        return [
            r
            for r in self.selection.features
            if r.verdict.status not in hidden or (exact is not None and r.feature.loc == exact.loc)
        ]


def _yn(b: bool | None, style_true: str = "green") -> Line:
    if b is None:
        return Line.of("?", "dim")
    return Line.of("yes", style_true) if b else Line.of("no", "dim")


def status_line(status: FeatureStatus) -> Line:
    style, mark = STATUS_STYLE[status]
    return Line.of(f"{mark} {status}", style)


def ordered_reasons(r: FeatureResult) -> list[tuple[str, str]]:
    """(quirk id, reason) of every applied quirk, the one that decided the status first (a
    removed feature leads with why it is removed; notes follow)."""
    v = r.verdict
    pairs = list(zip(v.quirks, v.reasons, strict=False))
    deciding = None
    for step in v.steps:
        if step.applied and step.effect is not QuirkEffect.NOTE:
            deciding = step.quirk
    for i, (qid, _) in enumerate(pairs):
        if qid == deciding:
            pairs.insert(0, pairs.pop(i))
            break
    return pairs


def _why(r: FeatureResult, show_all: bool, typed: bool) -> Line:
    v = r.verdict
    why = Line()
    pairs = ordered_reasons(r)
    if pairs:
        why.add("; ".join(reason for _, reason in pairs))
        why.add(f"  [{', '.join(qid for qid, _ in pairs)}]", "dim")
    elif v.status is FeatureStatus.UNKNOWN:
        why.add(v.reason, "yellow")
    elif typed and v.status in (FeatureStatus.HOST_ONLY, FeatureStatus.UNSUPPORTED):
        why.add(v.reason, STATUS_STYLE[v.status][0])
        why.add(f" ({r.feature.description})", "dim")
    elif show_all or not r.feature.known or typed:
        why.add(r.feature.description, "dim")
    return why


def _name(r: FeatureResult) -> Line:
    style = "bold" if r.changed else ""
    if not r.feature.known:
        style = "magenta"
    return Line.of(r.feature.name, style)


def feature_table(term: Term, show_host: bool) -> Table:
    cols = [
        Column("feature"),
        Column("where", style="dim"),
        Column("KVM", label="KVM"),
    ]
    if show_host:
        cols.append(Column("host", label="host"))
    cols += [Column("guest", label="guest"), Column("status")]
    # stacked: name and status first, then where / KVM / host / guest
    return Table(term, cols, text_header="why", under=HANG)


def _feature_cells(r: FeatureResult, show_host: bool) -> list[Line]:
    v = r.verdict
    cells = [_name(r), Line.of(r.feature.where), _yn(v.kvm)]
    if show_host:
        cells.append(_yn(v.host, "cyan"))
    cells += [_yn(v.effective, "bold green"), status_line(v.status)]
    return cells


def _stack_order(cells: Sequence[T]) -> list[T]:
    """Stacked rows lead with the name and the status, then the rest."""
    return [cells[0], cells[-1], *cells[1:-1]]


def header(a: CpuidAnalysis, view: View, term: Term) -> list[Line]:
    snap = a.snap
    title = Line.of("Effective guest CPUID", "bold")
    title.add(f" - {safe(snap.device)}")
    if snap.source != "live":
        title.add(f" ({safe(snap.source)})")
    asked = sorted(a.options.disable_exits)
    refused = set(view.refused)
    granted = [x for x in asked if x not in refused]
    setup = Line.of(f"set-up: irqchip={a.options.irqchip}, exits disabled: ", "dim")
    setup.add(",".join(granted) or "none", "dim")
    if refused:
        why = "KVM does not allow it here" if view.exits_known else "KVM's answer is unknown"
        setup.add(f" ({','.join(refused)} asked for: {why})", "bold yellow")
    signature = a.strings.get("signature") or ""
    for word in ("family", "model", "stepping"):  # "model 2" never breaks between its words
        signature = signature.replace(f"{word} ", f"{word}{GLUE}")
    setup.add(
        f"; kernel {safe(snap.host.kernel_release) or '?'}; "
        f"{safe(a.strings.get('vendor') or '?')} {signature}".rstrip(),
        "dim",
    )
    out = [*term.hanging(Line(), title, 2), *term.hanging(Line(), setup, 2)]
    if view.flt is not None and view.flt.alias_of is not None:
        out.append(
            Line.of(f"{safe(view.flt.text)} is called {view.flt.alias_of} by Linux and here", "dim")
        )
    if view.show_host and a.host_cpuid_error is not None:
        out += term.hanging(
            Line(), Line.of(f"host CPUID unavailable: {safe(a.host_cpuid_error)}", "yellow"), 2
        )
    return out


def features_section(a: CpuidAnalysis, view: View, term: Term) -> list[Line]:
    shown = view.shown()
    if not shown:
        return []
    exact = view.flt.exact if view.flt is not None else None
    table = feature_table(term, view.show_host)
    rows: list[tuple[str, list[Line], Line]] = []
    for r in shown:
        typed = exact is not None and r.feature.loc == exact.loc
        cells = _feature_cells(r, view.show_host)
        rows.append((r.feature.area, cells, _why(r, view.show_all, typed)))
    table.measure(cells for _, cells, _ in rows)
    stacked = table.mode == "stacked"
    if stacked:
        table = Table(term, _stack_order(table.columns), lead=2, under=HANG)
        table.measure(_stack_order(cells) for _, cells, _ in rows)
    by_area: dict[str, list[tuple[list[Line], Line]]] = {}
    for area, cells, why in rows:
        by_area.setdefault(area, []).append((cells, why))
    out: list[Line] = []
    for area in sorted(by_area, key=lambda x: _AREA_ORDER.get(x, 99)):
        if out:
            out.append(Line())
        out += term.para(Line.of(AREA_TITLES.get(area, area), "bold"))
        out += table.header()
        for cells, why in by_area[area]:
            out += table.row(_stack_order(cells) if stacked else cells, why)
    return out


def _fmt(fr: FieldResult, x: int | None, raw: bool = False) -> str:
    """A field's value as the field table says it reads (decimal, hex, or a minus-one field's
    number); ``raw`` adds the stored value beside a decoded one."""
    text = fr.field.text(x)
    if raw and x is not None and fr.field.encoding is FieldEncoding.MINUS_ONE:
        text += f" (raw {x})"
    return text


def values_section(a: CpuidAnalysis, view: View, term: Term) -> tuple[list[Line], int]:
    """The multi-bit values: with a filter or --all every selected one in a table with its
    meaning; otherwise the non-zero ones, compactly, by leaf. Also how many were left out."""
    answered = [
        fr
        for fr in view.selection.fields
        if fr.kvm is not None or (view.show_host and fr.host is not None) or view.flt is not None
    ]  # a filter shows every value it names, those of leaves KVM does not report too
    full = view.show_all or view.flt is not None
    rows = answered if full else [fr for fr in answered if fr.kvm or (view.show_host and fr.host)]
    left_out = len(answered) - len(rows)
    if not rows:
        return [], left_out
    if full:
        return _values_table(rows, view.show_host, term), left_out
    title = Line.of("Values", "bold").add(" (non-zero multi-bit fields)", "dim")
    out = [title]
    groups: dict[str, list[FieldResult]] = {}
    for fr in rows:
        key = f"{fr.field.leaf:#x}.{fr.field.subleaf}"
        groups.setdefault(key, []).append(fr)
    head_w = max(len(k) for k in groups) + 3
    for key, frs in groups.items():
        pairs = []
        for fr in frs:
            pair = Line.of(fr.field.name, "").add("=", "dim").add(_fmt(fr, fr.kvm), "bold")
            if view.show_host and fr.host != fr.kvm:
                pair.add(f" (host {_fmt(fr, fr.host)})", "cyan")
            pairs.append(pair)
        head = Line.of(" ").add(key, "cyan").add(" " * (head_w - len(key) - 1))
        out += term.hanging(head, join(pairs), head_w if head_w <= term.width // 3 else HANG)
    return out, left_out


def _values_table(rows: Sequence[FieldResult], show_host: bool, term: Term) -> list[Line]:
    cols = [Column("field"), Column("where", style="dim"), Column("KVM", right=True, label="KVM")]
    if show_host:
        cols.append(Column("host", right=True, label="host"))
    table = Table(term, cols, text_header="meaning", lead=1, under=HANG)
    cells_of = []
    for fr in rows:
        kvm = (
            Line.of("absent", "dim")
            if fr.kvm is None
            else Line.of(_fmt(fr, fr.kvm, raw=True), "bold")
        )
        cells = [Line.of(fr.field.name), Line.of(fr.field.where), kvm]
        if show_host:
            cells.append(Line.of(_fmt(fr, fr.host, raw=True)))
        cells_of.append((cells, Line.of(fr.field.description, "dim")))
    table.measure(c for c, _ in cells_of)
    out = [*term.para(Line.of("Values (multi-bit fields)", "bold")), *table.header()]
    for cells, meaning in cells_of:
        out += table.row(cells, meaning)
    return out


def xsave_lines(a: CpuidAnalysis, term: Term) -> list[Line]:
    out: list[Line] = []
    xcr0, supp = a.strings.get("xcr0_mask"), a.strings.get("xcomp_guest_supp")
    if xcr0 is not None:
        line = Line.of(f"XCR0 mask in 0xD.0: {xcr0}", "dim")
        if supp is not None:
            line.add(f"; KVM_X86_XCOMP_GUEST_SUPP: {supp}", "dim")
        if a.xsave_components:
            parts = [
                f"{x.number}:{x.size}B@{x.offset}" + ("(S)" if x.supervisor else "")
                for x in a.xsave_components
            ]
            line.add("; components (size@offset): " + " ".join(parts), "dim")
        out += term.hanging(Line(), line, 2)
    sig = a.strings.get("kvm_signature")
    if sig is not None:
        out += term.para(Line.of(f"KVM signature at 0x40000000: {safe(repr(sig))}", "dim"))
    return out


def notes_section(notes: Iterable[LeafNote], term: Term) -> list[Line]:
    shown = [n for n in notes if n.shown]
    if not shown:
        return []
    out = term.para(Line.of("Leaves the VMM must build or treat with care", "bold"))
    for n in shown:
        leaves = ", ".join(f"{x:#x}" for x in n.quirk.leaves)
        body = Line.of(f"{leaves}: ", "cyan").add(n.quirk.reason)
        if n.evidence:
            body.add(f" ({safe(n.evidence)})", "dim")
        body.add(f"  [{n.quirk.id}]", "dim")
        out += term.hanging(Line.of(" "), body, HANG)
    return out


def legend_line(shown: Iterable[FeatureResult], term: Term) -> list[Line]:
    """One line: the words for the statuses on screen that do not say themselves."""
    present = {r.verdict.status for r in shown}
    parts = [
        Line.of(str(s), STATUS_STYLE[s][0]).add(f" = {text}", "dim")
        for s, text in LEGEND.items()
        if s in present
    ]
    if not parts:
        return []
    return term.hanging(Line.of("Legend: ", "bold"), join(parts, "; ", "dim"), 2)


def level_line(a: CpuidAnalysis, term: Term) -> list[Line]:
    """The x86-64 psABI level a guest in this set-up reaches, the host's own, what the next
    level lacks and why, and the contradictions in KVM's own answer. (The hook for the level
    line: one function, one place; the text is render.guest_report's.)"""
    from kvmprobe.render.guest_report import decision_lines

    return decision_lines(a, term)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _match_head(view: View) -> Line:
    """``Summary: 30 features match '0x7.1', 1 of them a guest can be given`` (and the fields
    and feature-MSR bits the filter matches), or ``Summary: 103 features a guest can be
    given`` without a filter."""
    sel = view.selection
    t = sel.tally()
    head = Line.of("Summary: ", "bold")
    if view.flt is None:
        return head.add(f"{_plural(t.given_total, 'feature')} a guest can be given")
    nf, nv, nm = len(sel.features), len(sel.fields), len(view.msr_bits)
    items = [_plural(n, w) for n, w in ((nf, "feature"), (nv, "field"), (nm, "feature-MSR bit"))
             if n]  # fmt: skip
    if not items:
        items = ["0 features"]
    what = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    verb = "matches" if len(items) == 1 and nf + nv + nm == 1 else "match"
    head.add(f"{what} {verb} {safe(view.flt.text)!r}")
    if nf:
        them = "them" if not nv and not nm else "the features"
        head.add(f", {t.given_total} of {them} a guest can be given")
    elif nm:
        them = "them" if not nv else "the feature-MSR bits"
        head.extend(_msr_given(view, f", {_msr_count(view, True)} of {them} a guest can be given"))
    return head


def _msr_count(view: View, answer: bool | None) -> int:
    return sum(1 for r in view.msr_bits if r.effective is answer)


def _msr_given(view: View, text: str) -> Line:
    out = Line.of(text)
    unknown = _msr_count(view, None)
    if unknown:
        out.add(f"; {unknown} unknown", STATUS_STYLE[FeatureStatus.UNKNOWN][0])
    return out


def summary_lines(a: CpuidAnalysis, view: View, term: Term, values_left_out: int) -> list[Line]:
    sel = view.selection
    out: list[Line] = []
    out += legend_line(view.shown(), term)
    head = _match_head(view)
    if view.flt is None or sel.features:
        head.extend(tally_line(sel.tally()))
    out += term.hanging(Line(), head, 2)
    if view.msr_bits and sel.features:
        given = f"Feature-MSR bits a guest can be given: {_msr_count(view, True)} of "
        out += term.hanging(Line(), _msr_given(view, given + str(len(view.msr_bits))), 2)
    if view.flt is None:
        out += level_line(a, term)
    left: list[str] = []
    shown_set = {id(r) for r in view.shown()}
    hidden = [r for r in sel.features if id(r) not in shown_set]
    n_uns = sum(1 for r in hidden if r.verdict.status is FeatureStatus.UNSUPPORTED)
    n_host = sum(1 for r in hidden if r.verdict.status is FeatureStatus.HOST_ONLY)
    if n_uns or n_host:
        kinds = " and ".join(
            x for x in (f"{n_uns} unsupported" if n_uns else "", f"{n_host} host-only" if n_host
                        else "") if x
        )  # fmt: skip
        flags = ", ".join(x for x in ("--host" if n_host else "", "--all" if n_uns else "") if x)
        left.append(f"{kinds} feature{'s' if n_uns + n_host > 1 else ''} ({flags})")
    if values_left_out:
        left.append(f"{values_left_out} zero values and what each value means (--all)")
    if left:
        out += term.hanging(Line(), Line.of("Not shown: " + "; ".join(left), "dim"), 2)
    if sel.features or not (sel.fields or view.msr_bits):
        what = "a feature"
    elif sel.fields and view.msr_bits:
        what = "a value or a bit"
    else:
        what = "a value" if sel.fields else "a bit"
    out += term.para(Line.of(f"Why {what} is what it is: kvmprobe cpuid --explain NAME", "dim"))
    return out


def cpuid_lines(a: CpuidAnalysis, view: View, term: Term) -> list[Line]:
    """The whole report."""
    out = header(a, view, term)
    sections: list[list[Line]] = [features_section(a, view, term)]
    values, values_left_out = values_section(a, view, term)
    sections.append(values)
    if view.flt is None:
        sections.append(xsave_lines(a, term))
    sections.append(notes_section(view.selection.notes, term))
    if view.msr_bits:
        from kvmprobe.render.msr_bits_report import table_lines

        sections.append(table_lines(view.msr_bits, term))
    for section in sections:
        if section:
            out.append(Line())
            out += section
    out.append(Line())
    out += summary_lines(a, view, term, values_left_out)
    return out


def raw_lines(selection: Selection, term: Term, title: str) -> list[Line]:
    cols = [
        Column("function", right=True),
        Column("index", right=True, label="index"),
        Column("flags", right=True, label="flags"),
        *(Column(r, right=True, label=r) for r in ("eax", "ebx", "ecx", "edx")),
    ]
    table = Table(term, cols, lead=1)
    rows = [
        [
            Line.of(f"{e.function:#010x}", "cyan"),
            Line.of(str(e.index)),
            Line.of(str(e.flags)),
            *(Line.of(f"{x:#010x}") for x in (e.eax, e.ebx, e.ecx, e.edx)),
        ]
        for e in selection.entries
    ]
    table.measure(rows)
    out = [*term.para(Line.of(title, "bold")), *table.header()]
    for cells in rows:
        out += table.row(cells)
    if not rows:
        out.append(Line.of(" no entry", "dim"))
    return out


def explain_lines(
    a: CpuidAnalysis, ex: Explanation, term: Term, typed: str | None = None
) -> list[Line]:
    """One feature's whole story: the verdict and why first, then KVM's answers and every
    quirk considered. ``typed``: the spelling the user gave, when it is none of the
    feature's own names (``sse3`` for ``pni``)."""
    r = ex.result
    f, v = r.feature, r.verdict
    title = Line.of(f.name, "bold")
    alias = [x for x in (f.qemu_name, f.kernel_name) if x and x != f.name]
    if typed:
        alias.append(f"also called {typed}")
    if alias:
        title.add(f"  ({', '.join(alias)})", "dim")
    out = term.hanging(Line(), title, 2)
    out += term.indented(Line.of(f.description), 2)
    raw_s = "leaf absent" if ex.kvm_register is None else f"{ex.kvm_register:#010x}"
    out += term.hanging(
        Line.of("  where: "), Line.of(f"CPUID {f.where}  (KVM's {f.register.upper()} = {raw_s})")
    )
    verdict = Line.of("  result: ", "bold").extend(status_line(v.status))
    if v.effective is None:
        verdict.add("; whether a guest in this set-up can be given it is ")
        verdict.add("unknown", "bold yellow")
    else:
        verdict.add("; a guest in this set-up ")
        verdict.add("can" if v.effective else "cannot", "bold green" if v.effective else "bold red")
        verdict.add(" be given it")
    out += term.hanging(Line(), verdict, 10)
    reasons = ordered_reasons(r)
    because = "; ".join(reason for _, reason in reasons) if reasons else v.reason
    if because:
        out += term.hanging(Line.of("  because: "), Line.of(because), 11)
    out += term.para(Line.of("  KVM_GET_SUPPORTED_CPUID: ").extend(_yn(v.kvm)), 4)
    if a.emulated_probed:
        out += term.para(Line.of("  KVM_GET_EMULATED_CPUID:  ").extend(_yn(v.emulated)), 4)
    host = (
        _yn(v.host)
        if a.host_cpuid_error is None
        else Line.of(f"unknown ({safe(a.host_cpuid_error)})", "dim")
    )
    out += term.hanging(Line.of("  host CPUID:              "), host, 27)
    exits = ",".join(sorted(a.options.disable_exits)) or "none"
    out += term.para(Line.of(f"  set-up: irqchip={a.options.irqchip}, exits disabled: {exits}"), 4)
    if not ex.steps:
        out += term.para(Line.of("  no documented quirk concerns this feature", "dim"), 4)
    for s in ex.steps:
        q = s.record
        if s.applied is None:
            mark = Line.of("  unknown  ", "bold yellow")
        else:
            mark = (
                Line.of("  applied  ", "bold yellow")
                if s.applied
                else Line.of("  skipped  ", "dim")
            )
        out += term.para(mark.add(s.quirk, "bold").add(f" ({s.effect})"), 11)
        scope = "" if q.vendor is None else f"  ({q.vendor.display} hosts only)"
        out += term.hanging(Line.of("      when:     ", "dim"), Line.of(q.when + scope, "dim"))
        out += term.hanging(Line.of("      here:     "), Line.of(safe(s.evidence)))
        if s.applied:
            out += term.hanging(Line.of("      so:       "), Line.of(q.reason))
        out += term.hanging(
            Line.of("      source:   ", "dim"), Line.of("; ".join(q.citation), "dim")
        )
    return out


def field_explain_lines(
    a: CpuidAnalysis, ex: FieldExplanation, term: Term, typed: str | None = None
) -> list[Line]:
    """One value's (multi-bit field's) whole story, in the frame of ``explain_lines``: what a
    guest is given and why first, then KVM's and the host's answers, the notes on its leaf
    and how hosts are compared on it. ``typed``: the location the user gave, when it is not
    the field's own."""
    fd, fr = ex.field.field, ex.field
    bits = f"bits {fd.hi}:{fd.lo}" if fd.hi != fd.lo else f"bit {fd.lo}"
    title = Line.of(fd.name, "bold").add(f"  (a value: {bits} of {fd.leaf:#x}.{fd.subleaf}."
                                         f"{fd.register})", "dim")  # fmt: skip
    out = term.hanging(Line(), title, 2)
    out += term.indented(Line.of(fd.description), 2)
    reg = fd.register.upper()
    raw_s = "leaf absent" if ex.kvm_register is None else f"{ex.kvm_register:#010x}"
    out += term.hanging(Line.of("  where: "), Line.of(f"CPUID {fd.where}  (KVM's {reg} = {raw_s})"))
    builds = [n for n in ex.notes if n.quirk.effect is QuirkEffect.VMM_BUILDS]
    result = Line.of("  result: ", "bold")
    because: str
    if fr.kvm is None:
        result.add(f"KVM_GET_SUPPORTED_CPUID has no leaf {fd.leaf:#x}.{fd.subleaf}: a guest "
                   "in this set-up is given no value here")  # fmt: skip
        because = "there is nothing of KVM's to pass on; only a VMM that builds the leaf gives one"
    elif ex.guest is None:
        result.add("what a guest in this set-up is given is ").add("unknown", "bold yellow")
        because = safe(ex.guest_unknown) or "kvmprobe cannot build the guest's table here"
    elif ex.per_vcpu:
        result.add("each vCPU is given its own value; KVM reports ")
        result.add(_fmt(fr, fr.kvm), "bold")
        because = "; ".join([
            "it describes the CPU that runs CPUID, so a VMM writes each vCPU's own value "
            "there; KVM's is that of the CPU kvmprobe ran on",
            *(n.quirk.reason for n in builds),
        ])  # fmt: skip
    elif builds:
        result.add("a guest in this set-up is given what the VMM builds; KVM reports ")
        result.add(_fmt(fr, fr.kvm), "bold")
        because = "; ".join(n.quirk.reason for n in builds)
    else:
        result.add("a guest in this set-up is given ").add(_fmt(fr, ex.guest), "bold green")
        because = (
            "a VMM passes KVM's value on as it is, as kvmprobe's exports do"
            if ex.guest == fr.kvm
            else f"kvmprobe's export gives {_fmt(fr, ex.guest)} "
            f"where KVM reports {_fmt(fr, fr.kvm)}"
        )
    out += term.hanging(Line(), result, 10)
    out += term.hanging(Line.of("  because: "), Line.of(because), 11)
    kvm = Line.of("no such leaf", "dim") if fr.kvm is None else Line.of(_fmt(fr, fr.kvm), "bold")
    out += term.para(Line.of("  KVM_GET_SUPPORTED_CPUID: ").extend(kvm), 4)
    if a.host_cpuid_error is not None:
        host = Line.of(f"unknown ({safe(a.host_cpuid_error)})", "dim")
    else:
        host = Line.of(_fmt(fr, fr.host))
        if ex.host_register is not None:
            host.add(f"  (its {reg} = {ex.host_register:#010x})", "dim")
    out += term.hanging(Line.of("  host CPUID:              "), host, 27)
    exits = ",".join(sorted(a.options.disable_exits)) or "none"
    out += term.para(Line.of(f"  set-up: irqchip={a.options.irqchip}, exits disabled: {exits}"), 4)
    for n in ex.notes:
        if n in builds:
            continue
        body = Line.of(n.quirk.reason)
        if n.evidence:
            body.add(f" ({safe(n.evidence)})", "dim")
        out += term.para(Line.of("  note     ", "bold yellow").add(n.quirk.id, "bold"), 11)
        out += term.hanging(Line.of("      so:       "), body)
        out += term.hanging(
            Line.of("      source:   ", "dim"), Line.of("; ".join(n.quirk.citation), "dim")
        )
    for n in builds:
        out += term.hanging(
            Line.of("  source:  ", "dim"), Line.of("; ".join(n.quirk.citation), "dim"), 11
        )
    if ex.compare is not None:
        rule = Line.of(f"{ex.compare.rule.replace('-', ' ')}: ", "bold").add(ex.compare.why)
        out += term.hanging(Line.of("  between hosts (diff, baseline): "), rule, 4)
    if typed:
        out += term.para(Line.of(f"  (asked for as {typed}, which lies in this value)", "dim"), 4)
    return out
