"""The text report of ``kvmprobe msr``: feature MSRs decoded bit by bit, then the MSR index
list, the guest's speculation picture and a legend.

Built on render.term (no rich), as the cpuid, caps and doctor reports: names, values and words
are never cut at any width; a bit's meaning wraps beside its row, or under it, and below
``STACK_BELOW`` columns each row becomes a short block. Every function returns lines; the
command renders and emits them."""

from __future__ import annotations

from kvmprobe.render.term import STACK_BELOW, Column, Line, Table, Term, widest_word
from kvmprobe.render.text import safe
from kvmprobe.vocab import ControlSetting, MsrLayoutKind, MsrOrigin

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.msr import DecodedBit, DecodedMsr, MsrAnalysis, Selection
    from kvmprobe.analysis.verify import MsrTrial
    from kvmprobe.snapshot import ProbeError, Snapshot

__all__ = ["msr_lines"]

SETTING_STYLE = {
    ControlSetting.REQUIRED: "cyan",
    ControlSetting.OPTIONAL: "green",
    ControlSetting.UNAVAILABLE: "dim",
    ControlSetting.INCONSISTENT: "bold red",
}
ORIGIN_LABEL = {MsrOrigin.KVM: "KVM PV", MsrOrigin.HYPERV: "Hyper-V"}
#: where an MSR's description, notes and (in narrow terminals) its bits' meanings start
INDENT = 6
#: the least room a bit's meaning gets beside its row (or its longest word, if wider)
MIN_TEXT = 30


def _short(name: str) -> str:
    return name.removeprefix("MSR_")


def _other_names(b: DecodedBit) -> str:
    """The bit's other spellings: QEMU's, libvirt's (one label when they agree), and
    /proc/cpuinfo's."""
    row = b.bit
    others = []
    if row.qemu_name and row.qemu_name != row.name:
        same = row.libvirt_name == row.qemu_name
        others.append(f"{'QEMU, libvirt' if same else 'QEMU'}: {row.qemu_name}")
    if row.libvirt_name and row.libvirt_name != row.qemu_name:
        others.append(f"libvirt: {row.libvirt_name}")
    if row.cpuinfo_name:
        others.append(f"cpuinfo: {row.cpuinfo_name}")
    return ", ".join(others)


def _value_cell(b: DecodedBit, refused: bool) -> Line:
    if b.setting is not None:
        cell = Line.of(str(b.setting), SETTING_STYLE[b.setting])
    elif b.bit.is_field:
        shown = str(b.value) if b.value < 1024 else f"{b.value:#x}"
        if b.value_name:
            shown += f" ({b.value_name})"
        cell = Line.of(shown, "green" if b.value else "dim")
    else:
        cell = Line.of("yes", "green") if b.value else Line.of("no", "dim")
    if refused:
        cell.add(", ").add("refused", "bold red")
    return cell


def _meaning(b: DecodedBit) -> Line:
    text = Line.of(b.bit.description)
    others = _other_names(b)
    if others:
        text.add("\n" if text else "").add(others, "dim")
    return text


def _header(d: DecodedMsr, term: Term) -> list[Line]:
    head = Line.of(f"{d.index:#x}  ", "cyan")
    head.add(_short(d.name), "bold" if d.known else "bold magenta")
    if d.aliases:
        head.add(f" ({', '.join(_short(a) for a in d.aliases)})", "dim")
    head.add(f" = {d.hex}")
    out = term.hanging(Line(), head, INDENT)
    if d.description:
        out += term.indented(Line.of(d.description, "dim"), INDENT)
    if not d.known:
        note = "not in kvmprobe's tables: shown as its raw value"
        out += term.indented(Line.of(note, "magenta"), INDENT)
    elif d.kind is MsrLayoutKind.UNKNOWN:
        note = "no bit layout in kvmprobe's tables: raw value only"
        out += term.indented(Line.of(note, "magenta"), INDENT)
    if d.reading:
        out += term.indented(Line.of(d.reading), INDENT)
    return out


def _trial_line(d: DecodedMsr, trial: MsrTrial | None) -> Line | None:
    """What a vCPU said to the advertised value (kvmprobe tries it on a vCPU as a VMM would)."""
    if trial is None or d.value == 0:
        return None
    if trial.accepted:
        return Line.of("a vCPU takes this value (KVM_SET_MSRS)", "green")
    if trial.accepted is None:
        return Line.of(f"unknown whether a vCPU takes this value: {trial.why}", "yellow")
    refused = ", ".join(b.name for b in trial.refused) or "every bit"
    return Line.of(
        f"a vCPU refuses this value (KVM_SET_MSRS); refused on their own: {refused}. "
        "A guest is told none of the refused bits.",
        "bold red",
    )


def _bits_lines(d: DecodedMsr, trial: MsrTrial | None, term: Term) -> list[Line]:
    """The MSR's layout rows as a table: bit, name, value; the meaning (and the bit's QEMU,
    libvirt and cpuinfo names) beside the row, under it, or (narrow) in a block."""
    setting = d.kind in (MsrLayoutKind.CONTROLS, MsrLayoutKind.ALLOWED1)
    cols = [
        Column("bit", right=True, style="cyan"),
        Column("name"),
        Column("may be" if setting else "value", label="may be" if setting else "value"),
    ]
    refused = (
        {b.position for b in trial.refused}
        if trial is not None and trial.accepted is False
        else set()
    )
    rows = []
    for b in d.bits:
        is_refused = b.bit.lo == b.bit.hi and b.bit.lo in refused
        name = Line.of(b.bit.name, "bold" if b.is_set else "")
        cells = [Line.of(b.bit.position), name, _value_cell(b, is_refused)]
        rows.append((cells, _meaning(b)))
    room = max(MIN_TEXT, widest_word(meaning for _, meaning in rows))
    table = Table(term, cols, text_header="meaning", lead=3, min_text=room, under=INDENT, shrink=1)
    table.measure(cells for cells, _ in rows)
    out = table.header()
    for cells, meaning in rows:
        out += table.row(cells, meaning)
    return out


def _msr_lines(d: DecodedMsr, trial: MsrTrial | None, term: Term) -> list[Line]:
    out = _header(d, term)
    said = _trial_line(d, trial)
    if said is not None:
        out += term.indented(said, INDENT)
    if d.bits:
        out += _bits_lines(d, trial, term)
    if d.remainder:
        what = "may be 1" if d.kind is MsrLayoutKind.CONTROLS else "set"
        out += term.indented(Line.of(f"unknown bits {what}: {d.remainder:#x}", "magenta"), INDENT)
    if d.remainder_must1:
        note = f"unknown bits that must be 1: {d.remainder_must1:#x}"
        out += term.indented(Line.of(note, "magenta"), INDENT)
    if d.default1:
        out += term.indented(Line.of(f"reserved default1 bits: {d.default1:#x}", "dim"), INDENT)
    if d.partial:
        out += term.indented(Line.of("(only the bits matching the filter)", "dim"), INDENT)
    out.append(Line())
    return out


def _index_list_lines(sel: Selection, full: bool, term: Term) -> list[Line]:
    entries = sel.index_list
    if entries is None:
        note = "MSR index list: not recorded (see 'errors' in 'kvmprobe record')"
        return term.hanging(Line(), Line.of(note, "yellow"), 2)
    if not entries:
        return []
    head = Line.of("MSRs KVM saves and restores", "bold")
    head.add(
        f" (KVM_GET_MSR_INDEX_LIST, {len(entries)} "
        + ("MSRs)" if full else "matching the filter)"),
        "dim",
    )
    out = term.hanging(Line(), head, 2)
    cells = []
    for e in sorted(entries, key=lambda e: e.index):
        name = Line.of(_short(e.name), "" if e.known else "magenta")
        label = ORIGIN_LABEL.get(e.origin)
        if label:
            name.add(f" ({label})", "dim")
        cells.append((Line.of(f"{e.index:#x}", "cyan"), name))
    # two columns of MSRs when they fit side by side, else one
    if term.width >= STACK_BELOW:
        cols = [Column("", right=True), Column(""), Column("", right=True), Column("")]
        table = Table(term, cols, min_text=0, shrink=None)
        rows = -(-len(cells) // 2)
        pairs = [[*cells[r], *(cells[r + rows] if r + rows < len(cells) else (Line(), Line()))]
                 for r in range(rows)]  # fmt: skip
        table.measure(pairs)
        if table.mode != "stacked":
            for pair in pairs:
                out += table.row(pair)
            return out
    wide = max(index.width for index, _ in cells)
    for index, name in cells:
        head = Line.of(" " * (1 + wide - index.width)).extend(index).add("  ")
        out += term.hanging(head, name)
    return out


def msr_lines(
    snap: Snapshot,
    a: MsrAnalysis,
    sel: Selection,
    term: Term,
    *,
    name_filter: str | None,
    mitigations: str | None,
    errors: tuple[ProbeError, ...],
) -> list[Line]:
    """The whole report."""
    title = Line.of("Feature MSRs KVM reports", "bold")
    title.add(
        f" - {safe(snap.device)}" + ("" if snap.source == "live" else f" ({safe(snap.source)})")
    )
    out = term.hanging(Line(), title, 2)
    if a.feature_list is None:
        listed = Line.of(
            "KVM_GET_MSR_FEATURE_INDEX_LIST: not answered (KVM_CAP_GET_MSR_FEATURES absent, "
            "or the step failed; see below)",
            "yellow",
        )
    else:
        listed = Line.of(
            f"KVM_GET_MSR_FEATURE_INDEX_LIST: {len(a.feature_list)} MSRs; values from "
            f"KVM_GET_MSRS on /dev/kvm; host CPU vendor: {a.vendor.display}",
            "dim",
        )
    out += term.hanging(Line(), listed, 2)
    out.append(Line())
    from kvmprobe.analysis.verify import msr_trial, verification

    v = verification(snap)
    for d in sel.features:
        out += _msr_lines(d, msr_trial(v, d.index), term)
    shown = {d.index for d in sel.features}
    for index, why in a.unread:
        if name_filter and index not in shown:
            continue
        unread = Line.of(f"{index:#x}  could not be read: {safe(why)}", "yellow")
        out += term.hanging(Line(), unread, 2)
    out += _index_list_lines(sel, not name_filter, term)
    if out[-1]:
        out.append(Line())  # the closing sentences stand apart from the index list
    if sel.known_absent:
        from kvmprobe.analysis.msr import msr_name

        names = ", ".join(f"{_short(msr_name(i)[0])} ({i:#x})" for i in sel.known_absent)
        absent = Line.of(f"Known to kvmprobe, not reported by KVM here: {names}", "yellow")
        out += term.hanging(Line(), absent, 2)
    if mitigations and not name_filter:
        out += term.hanging(Line(), Line.of(mitigations), 2)
    for e in errors:
        failed = Line.of(f"probe step {safe(e.step)} failed: {safe(e.message)}", "yellow")
        out += term.hanging(Line(), failed, 2)
    if not name_filter and any(d.kind is MsrLayoutKind.CONTROLS for d in sel.features):
        legend = Line.of("Controls: ", "bold").add(
            "low 32 bits are the allowed-0 settings (must-be-1), high 32 the allowed-1 "
            "settings; 'optional' is what QEMU offers as a vmx-* property.",
            "dim",
        )
        out += term.hanging(Line(), legend, 2)
    while out and not out[-1]:
        out.pop()
    return out
