"""Coloured report for ``kvmprobe hyperv``: QEMU's hv-* properties, then the decoded leaves.

Width-aware: columns wrap (never truncate), so the report reads at 80 columns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from kvmprobe.render.console import print_wrapped
from kvmprobe.render.text import safe
from kvmprobe.render.trim import trimmed
from kvmprobe.vocab import HvAvailability, HvRequirement

if TYPE_CHECKING:
    from rich.console import Console

    from kvmprobe.analysis.hyperv import HvLeaf, HvProperty, HyperVAnalysis
    from kvmprobe.snapshot import Snapshot

__all__ = ["print_hyperv"]

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


def _yn(value: bool | None) -> Text:
    if value is None:
        return Text("?", style="dim")
    return Text("yes", style="green") if value else Text("no", style="dim")


def _needs(p: HvProperty) -> Text:
    t = Text()
    for req, _cite, via in p.requirements:
        if t:
            t.append("\n")
        t.append(NEEDS_TEXT[req])
        if via:
            t.append(f" (via {via})", style="dim")
    if p.dependencies:
        if t:
            t.append("\n")
        t.append("with " + ", ".join(p.dependencies), style="dim")
    if p.unmet:
        t.append("\nunmet: " + ", ".join(p.unmet), style="yellow")
    return t


def _print_properties(console: Console, a: HyperVAnalysis) -> None:
    table = Table(
        title="QEMU hv-* properties", title_justify="left", title_style="bold",
        box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1),
    )  # fmt: skip
    table.add_column("property", no_wrap=True)
    table.add_column("KVM", no_wrap=True)
    table.add_column("pass-\nthrough", no_wrap=True)
    table.add_column("needs", ratio=2, overflow="fold")
    table.add_column("meaning", ratio=3, overflow="fold")
    for p in a.properties:
        name = Text(p.name, style="bold" if p.supported else "")
        if p.aliases:
            name.append("\n" + ", ".join(p.aliases), style="dim")
        passthrough = _yn(p.passthrough)
        if p.skip_passthrough and p.supported:
            passthrough = Text("skipped", style="yellow")
        table.add_row(name, _yn(p.supported), passthrough, _needs(p), p.description)
    console.print(table)


def _print_leaf(console: Console, leaf: HvLeaf) -> None:
    e = leaf.entry
    head = Text(f"{leaf.leaf:#x}  ", style="cyan")
    head.append(leaf.name or "unknown leaf", style="bold" if leaf.name else "bold magenta")
    head.append(f"  eax={e.eax:#x} ebx={e.ebx:#x} ecx={e.ecx:#x} edx={e.edx:#x}", style="dim")
    if leaf.description:
        head.append(f"\n      {leaf.description}", style="dim")
    console.print(head)
    for sig, text, desc in leaf.signatures:
        console.print(Text(f"      {sig}: {safe(repr(text))}  ").append(desc, "dim"))
    for f in leaf.fields:
        shown = str(f.value) if f.value < 1 << 16 else f"{f.value:#x}"
        line = Text(f"      {f.name}: {shown}  ")
        line.append(f.description, style="dim")
        console.print(line)
    bits = [(r, b) for r in leaf.registers for b in r.bits]
    if bits:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1))
        table.add_column("bit", justify="right", style="cyan", no_wrap=True)
        longest = max(len(n) for _r, b in bits for n in (b.name, f"QEMU: {b.qemu_macro}"))
        table.add_column("name", ratio=2, overflow="fold", min_width=longest)
        table.add_column("set", no_wrap=True)
        table.add_column("meaning", ratio=2, overflow="fold")
        for r, b in bits:
            name = Text(b.name, style="bold" if b.set else "")
            if b.qemu_macro and b.qemu_macro != b.kernel_name:
                name.append(f"\nQEMU: {b.qemu_macro}", style="dim")
            table.add_row(f"{r.register}[{b.bit}]", name, _yn(b.set), b.description)
        console.print(table)
    for r in leaf.registers:
        if r.remainder:
            console.print(
                Text(f"      {r.register}: unknown bits set: {r.remainder:#x}", style="magenta")
            )
    console.print()


def _print_hyperv(console: Console, snap: Snapshot, a: HyperVAnalysis) -> None:
    title = Text("Hyper-V enlightenments KVM offers", style="bold")
    title.append(
        f" - {safe(snap.device)}" + ("" if snap.source == "live" else f" ({safe(snap.source)})")
    )
    console.print(title)
    text, style = AVAILABILITY_TEXT[a.availability]
    console.print(Text(text, style=style))
    for line in a.evidence:
        print_wrapped(console, f"  {safe(line)}")
    caps = ", ".join(
        f"{name.removeprefix('KVM_CAP_')}={'?' if v is None else v}" for name, v in a.caps
    )
    print_wrapped(console, f"  capabilities on /dev/kvm: {caps}", "dim")
    console.print()
    if a.availability is HvAvailability.AVAILABLE:
        sig = []
        if a.vendor is not None:
            sig.append(f"vendor {safe(repr(a.vendor))}")
        if a.interface is not None:
            sig.append(f"interface {safe(repr(a.interface))}")
        if sig:
            console.print(Text("KVM tells a Hyper-V guest: " + ", ".join(sig)))
        passthrough = ", ".join(a.passthrough) or "nothing"
        console.print(Text("hv-passthrough would turn on: ", style="bold").append(passthrough))
        console.print()
    _print_properties(console, a)
    console.print()
    for leaf in a.leaves:
        _print_leaf(console, leaf)
    note = Text("Sources: ", style="bold")
    note.append(
        "properties and their bits from QEMU kvm_hyperv_properties[]; 'needs' from Linux "
        "(api.rst 4.118, hyperv.c, x86.c); see 'kvmprobe hyperv --json' for citations.",
        style="dim",
    )
    console.print(note)


def print_hyperv(console: Console, snap: Snapshot, a: HyperVAnalysis) -> None:
    """The report (the evidence lines carry any recorded error), with no trailing blanks."""
    with trimmed(console):
        _print_hyperv(console, snap, a)
