"""The text report of ``kvmprobe hyperv``: whether KVM emulates Hyper-V and the evidence, QEMU's
hv-* properties, then the decoded leaves.

Built on render.term (no rich), as the cpuid, caps and doctor reports: names and words are
never cut at any width; a property's or bit's meaning wraps beside its row, or under it, and
below ``STACK_BELOW`` columns each row becomes a short block. Every function returns lines; the
command renders and emits them."""

from __future__ import annotations

from kvmprobe.render.term import Column, Line, Table, Term, widest_word
from kvmprobe.render.text import safe
from kvmprobe.vocab import HvAvailability, HvRequirement

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.hyperv import HvLeaf, HvProperty, HyperVAnalysis
    from kvmprobe.snapshot import Snapshot

__all__ = ["hyperv_lines"]

NEEDS_TEXT = {
    HvRequirement.LAPIC: "in-kernel LAPIC (irqchip kernel or split)",
    HvRequirement.NESTED_VMX: "nested VMX (Intel)",
    HvRequirement.NESTED: "nested virtualization",
}
AVAILABILITY_TEXT = {
    HvAvailability.AVAILABLE: ("Hyper-V emulation: available", "bold green"),
    HvAvailability.NOT_BUILT: ("Hyper-V emulation: not in this KVM", "bold yellow"),
    HvAvailability.FAILED: ("Hyper-V emulation: could not ask", "bold red"),
    HvAvailability.UNKNOWN: ("Hyper-V emulation: unknown", "bold yellow"),
}
#: where a leaf's description and notes (and, in narrow terminals, meanings) start
INDENT = 6
#: the least room a meaning gets beside its row (or its longest word, if wider)
MIN_TEXT = 30


def _yn(value: bool | None) -> Line:
    if value is None:
        return Line.of("?", "dim")
    return Line.of("yes", "green") if value else Line.of("no", "dim")


def _meaning(p: HvProperty) -> Line:
    """What the property does, then what it needs: KVM's own requirements (an in-kernel
    LAPIC, nested VMX) and the other properties it comes with; then what is unmet."""
    text = Line.of(p.description)
    needs = Line()
    for req, _cite, via in p.requirements:
        if needs:
            needs.add(", ")
        needs.add(NEEDS_TEXT[req])
        if via:
            needs.add(f" (via {via})", "dim")
    if p.dependencies:
        if needs:
            needs.add(", ")
        needs.add(", ".join(p.dependencies))
    if needs:
        text.add("\n").add("needs ", "dim").extend(needs)
    if p.unmet:
        text.add("\n").add("unmet: " + ", ".join(p.unmet), "yellow")
    return text


def _properties_lines(a: HyperVAnalysis, term: Term) -> list[Line]:
    cols = [
        Column("property"),
        Column("KVM", label="KVM"),
        Column("passthrough", label="passthrough"),
    ]
    rows = []
    for p in a.properties:
        name = Line.of(p.name, "bold" if p.supported else "")
        if p.aliases:
            name.add(f" ({', '.join(p.aliases)})", "dim")
        passthrough = _yn(p.passthrough)
        if p.skip_passthrough and p.supported:
            passthrough = Line.of("skipped", "yellow")
        rows.append(([name, _yn(p.supported), passthrough], _meaning(p)))
    room = max(MIN_TEXT, widest_word(meaning for _, meaning in rows))
    table = Table(term, cols, text_header="meaning", lead=1, min_text=room, under=INDENT)
    table.measure(cells for cells, _ in rows)
    out = term.para(Line.of("QEMU hv-* properties", "bold"))
    out += table.header()
    for cells, meaning in rows:
        out += table.row(cells, meaning)
    return out


def _leaf_lines(leaf: HvLeaf, term: Term) -> list[Line]:
    e = leaf.entry
    head = Line.of(f"{leaf.leaf:#x}  ", "cyan")
    head.add(leaf.name or "unknown leaf", "bold" if leaf.name else "bold magenta")
    head.add(f"  eax={e.eax:#x} ebx={e.ebx:#x} ecx={e.ecx:#x} edx={e.edx:#x}", "dim")
    out = term.hanging(Line(), head, INDENT)
    if leaf.description:
        out += term.indented(Line.of(leaf.description, "dim"), INDENT)
    pad = Line.of(" " * INDENT)
    for sig, text, desc in leaf.signatures:
        body = Line.of(f"{sig}: {safe(repr(text))}  ").add(desc, "dim")
        out += term.hanging(pad, body, INDENT + 2)
    for f in leaf.fields:
        shown = str(f.value) if f.value < 1 << 16 else f"{f.value:#x}"
        body = Line.of(f"{f.name}: {shown}  ").add(f.description, "dim")
        out += term.hanging(pad, body, INDENT + 2)
    bits = [(r, b) for r in leaf.registers for b in r.bits]
    if bits:
        cols = [Column("bit", right=True, style="cyan"), Column("name"), Column("set", label="set")]
        rows = []
        for r, b in bits:
            name = Line.of(b.name, "bold" if b.set else "")
            meaning = Line.of(b.description)
            if b.qemu_macro and b.qemu_macro != b.kernel_name:
                meaning.add("\n" if meaning else "").add(f"QEMU: {b.qemu_macro}", "dim")
            rows.append(([Line.of(f"{r.register}[{b.bit}]"), name, _yn(b.set)], meaning))
        room = max(MIN_TEXT, widest_word(meaning for _, meaning in rows))
        table = Table(term, cols, text_header="meaning", lead=3, min_text=room, under=INDENT)
        table.measure(cells for cells, _ in rows)
        out += table.header()
        for cells, meaning in rows:
            out += table.row(cells, meaning)
    for r in leaf.registers:
        if r.remainder:
            note = Line.of(f"{r.register}: unknown bits set: {r.remainder:#x}", "magenta")
            out += term.indented(note, INDENT)
    out.append(Line())
    return out


def hyperv_lines(snap: Snapshot, a: HyperVAnalysis, term: Term) -> list[Line]:
    """The whole report (the evidence lines carry any recorded error)."""
    title = Line.of("Hyper-V enlightenments KVM offers", "bold")
    title.add(
        f" - {safe(snap.device)}" + ("" if snap.source == "live" else f" ({safe(snap.source)})")
    )
    out = term.hanging(Line(), title, 2)
    text, style = AVAILABILITY_TEXT[a.availability]
    out += term.hanging(Line(), Line.of(text, style), 2)
    indent = Line.of("  ")
    for line in a.evidence:
        out += term.hanging(indent, Line.of(safe(line)), 4)
    caps = ", ".join(
        f"{name.removeprefix('KVM_CAP_')}={'?' if v is None else v}" for name, v in a.caps
    )
    out += term.hanging(indent, Line.of(f"capabilities on /dev/kvm: {caps}", "dim"), 4)
    out.append(Line())
    if a.availability is HvAvailability.AVAILABLE:
        sig = []
        if a.vendor is not None:
            sig.append(f"vendor {safe(repr(a.vendor))}")
        if a.interface is not None:
            sig.append(f"interface {safe(repr(a.interface))}")
        if sig:
            out += term.hanging(Line(), Line.of("KVM tells a Hyper-V guest: " + ", ".join(sig)), 2)
        passthrough = ", ".join(a.passthrough) or "nothing"
        turned_on = Line.of("hv-passthrough would turn on: ", "bold").add(passthrough)
        out += term.hanging(Line(), turned_on, 2)
        out.append(Line())
    out += _properties_lines(a, term)
    out.append(Line())
    for leaf in a.leaves:
        out += _leaf_lines(leaf, term)
    note = Line.of("Sources: ", "bold").add(
        "properties and their bits from QEMU kvm_hyperv_properties[]; 'needs' from Linux "
        "(api.rst 4.118, hyperv.c, x86.c); see 'kvmprobe hyperv --json' for citations.",
        "dim",
    )
    out += term.hanging(Line(), note, 2)
    return out
