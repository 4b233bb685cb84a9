"""Coloured report for ``kvmprobe msr``: feature MSRs decoded, then the MSR index list.

Width-aware: columns wrap (never truncate), so the report reads at 80 columns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from kvmprobe.render.console import print_wrapped
from kvmprobe.render.text import safe
from kvmprobe.render.trim import trimmed
from kvmprobe.vocab import ControlSetting, MsrLayoutKind, MsrOrigin

if TYPE_CHECKING:
    from rich.console import Console

    from kvmprobe.analysis.msr import DecodedBit, DecodedMsr, MsrAnalysis, Selection
    from kvmprobe.analysis.verify import MsrTrial
    from kvmprobe.snapshot import ProbeError, Snapshot

__all__ = ["print_msr"]

SETTING_STYLE = {
    ControlSetting.REQUIRED: "cyan",
    ControlSetting.OPTIONAL: "green",
    ControlSetting.UNAVAILABLE: "dim",
    ControlSetting.INCONSISTENT: "bold red",
}
ORIGIN_LABEL = {MsrOrigin.KVM: "KVM PV", MsrOrigin.HYPERV: "Hyper-V"}


def _short(name: str) -> str:
    return name.removeprefix("MSR_")


def _names_cell(b: DecodedBit) -> Text:
    row = b.bit
    t = Text(row.name, style="bold" if b.is_set else "")
    others = []
    if row.qemu_name and row.qemu_name != row.name:
        others.append(row.qemu_name)
    if row.libvirt_name and row.libvirt_name != row.qemu_name:
        others.append(f"libvirt: {row.libvirt_name}")
    if row.cpuinfo_name:
        others.append(f"cpuinfo: {row.cpuinfo_name}")
    if others:
        t.append("\n" + ", ".join(others), style="dim")
    return t


def _value_cell(b: DecodedBit) -> Text:
    if b.setting is not None:
        return Text(str(b.setting), style=SETTING_STYLE[b.setting])
    if b.bit.is_field:
        shown = str(b.value) if b.value < 1024 else f"{b.value:#x}"
        if b.value_name:
            shown += f" ({b.value_name})"
        return Text(shown, style="green" if b.value else "dim")
    return Text("yes", style="green") if b.value else Text("no", style="dim")


def _header(d: DecodedMsr) -> Text:
    t = Text(f"{d.index:#x}  ", style="cyan")
    t.append(_short(d.name), style="bold" if d.known else "bold magenta")
    if d.aliases:
        t.append(f" ({', '.join(_short(a) for a in d.aliases)})", style="dim")
    t.append(f" = {d.hex}")
    if d.description:
        t.append(f"\n      {d.description}", style="dim")
    if not d.known:
        t.append("\n      not in kvmprobe's tables: shown as its raw value", style="magenta")
    elif d.kind is MsrLayoutKind.UNKNOWN:
        t.append("\n      no bit layout in kvmprobe's tables: raw value only", style="magenta")
    if d.reading:
        t.append(f"\n      {d.reading}")
    return t


def _trial_line(d: DecodedMsr, trial: MsrTrial | None) -> tuple[str, str] | None:
    """What a vCPU said to the advertised value (kvmprobe tries it on a vCPU as a VMM would),
    with its style."""
    if trial is None or d.value == 0:
        return None
    if trial.accepted:
        return "a vCPU takes this value (KVM_SET_MSRS)", "green"
    if trial.accepted is None:
        return f"unknown whether a vCPU takes this value: {trial.why}", "yellow"
    refused = ", ".join(b.name for b in trial.refused) or "every bit"
    return (
        f"a vCPU refuses this value (KVM_SET_MSRS); refused on their own: {refused}. "
        "A guest is told none of the refused bits.",
        "bold red",
    )


def _print_one(console: Console, d: DecodedMsr, trial: MsrTrial | None = None) -> None:
    console.print(_header(d))
    said = _trial_line(d, trial)
    if said is not None:
        text, style = said
        print_wrapped(console, "      " + text, style, 6)
    if d.bits:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1))
        table.add_column("bit", justify="right", style="cyan", no_wrap=True)
        # never split a name: the column is at least as wide as the longest one
        longest = max(
            len(n)
            for b in d.bits
            for n in (b.bit.name, b.bit.qemu_name, b.bit.libvirt_name, b.bit.cpuinfo_name)
            if n
        )
        table.add_column("name (QEMU, libvirt)", ratio=2, overflow="fold", min_width=longest)
        setting = d.kind in (MsrLayoutKind.CONTROLS, MsrLayoutKind.ALLOWED1)
        table.add_column("may be" if setting else "value", no_wrap=True)
        table.add_column("meaning", ratio=3, overflow="fold")
        refused = (
            {b.position for b in trial.refused}
            if trial is not None and trial.accepted is False
            else set()
        )
        for b in d.bits:
            value = _value_cell(b)
            if b.bit.lo == b.bit.hi and b.bit.lo in refused:
                value.append("\nrefused", style="bold red")
            table.add_row(b.bit.position, _names_cell(b), value, b.bit.description)
        console.print(table)
    tail = []
    if d.remainder:
        what = "may be 1" if d.kind is MsrLayoutKind.CONTROLS else "set"
        tail.append(f"unknown bits {what}: {d.remainder:#x}")
    if d.remainder_must1:
        tail.append(f"unknown bits that must be 1: {d.remainder_must1:#x}")
    if d.default1:
        tail.append(f"reserved default1 bits: {d.default1:#x}")
    for line in tail:
        console.print(Text(f"      {line}", style="magenta" if "unknown" in line else "dim"))
    if d.partial:
        console.print(Text("      (only the bits matching the filter)", style="dim"))
    console.print()


def _print_index_list(console: Console, sel: Selection, full: bool) -> None:
    entries = sel.index_list
    if entries is None:
        console.print(
            Text("MSR index list: not recorded (see 'errors' in 'kvmprobe record')", "yellow")
        )
        return
    if not entries:
        return
    head = Text("MSRs KVM saves and restores", style="bold")
    head.append(
        f" (KVM_GET_MSR_INDEX_LIST, {len(entries)} "
        + ("MSRs)" if full else "matching the filter)"),
        style="dim",
    )
    console.print(head)
    ordered = sorted(entries, key=lambda e: e.index)
    pairs = 2 if console.width >= 80 else 1
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    for _ in range(pairs):
        table.add_column(justify="right", style="cyan", no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
    rows = -(-len(ordered) // pairs)
    for r in range(rows):
        cells: list[Text | str] = []
        for c in range(pairs):
            i = r + c * rows
            if i >= len(ordered):
                cells += ["", ""]
                continue
            e = ordered[i]
            name = Text(_short(e.name), style="" if e.known else "magenta")
            label = ORIGIN_LABEL.get(e.origin)
            if label:
                name.append(f" ({label})", style="dim")
            cells += [f"{e.index:#x}", name]
        table.add_row(*cells)
    console.print(table)


def _print_msr(
    console: Console,
    snap: Snapshot,
    a: MsrAnalysis,
    sel: Selection,
    *,
    name_filter: str | None,
    mitigations: str | None,
    errors: tuple[ProbeError, ...],
) -> None:
    title = Text("Feature MSRs KVM reports", style="bold")
    title.append(
        f" - {safe(snap.device)}" + ("" if snap.source == "live" else f" ({safe(snap.source)})")
    )
    if a.feature_list is None:
        title.append(
            "\nKVM_GET_MSR_FEATURE_INDEX_LIST: not answered (KVM_CAP_GET_MSR_FEATURES absent, "
            "or the step failed; see below)",
            style="yellow",
        )
    else:
        title.append(
            f"\nKVM_GET_MSR_FEATURE_INDEX_LIST: {len(a.feature_list)} MSRs; values from "
            "KVM_GET_MSRS on /dev/kvm; host CPU vendor: "
            f"{a.vendor.display}",
            style="dim",
        )
    console.print(title)
    console.print()
    from kvmprobe.analysis.verify import msr_trial, verification

    v = verification(snap)
    for d in sel.features:
        _print_one(console, d, msr_trial(v, d.index))
    for index, why in a.unread:
        if name_filter and index not in {d.index for d in sel.features}:
            continue
        console.print(Text(f"{index:#x}  could not be read: {safe(why)}", style="yellow"))
    _print_index_list(console, sel, full=not name_filter)
    if sel.known_absent:
        from kvmprobe.analysis.msr import msr_name

        names = ", ".join(f"{_short(msr_name(i)[0])} ({i:#x})" for i in sel.known_absent)
        console.print(Text(f"Known to kvmprobe, not reported by KVM here: {names}", "yellow"))
    if mitigations and not name_filter:
        console.print(Text(mitigations))
    for e in errors:
        console.print(Text(f"probe step {safe(e.step)} failed: {safe(e.message)}", "yellow"))
    if not name_filter:
        legend = Text("Controls: ", style="bold")
        legend.append(
            "low 32 bits are the allowed-0 settings (must-be-1), high 32 the allowed-1 "
            "settings; 'optional' is what QEMU offers as a vmx-* property.",
            style="dim",
        )
        if any(d.kind is MsrLayoutKind.CONTROLS for d in sel.features):
            console.print(legend)


def print_msr(
    console: Console,
    snap: Snapshot,
    a: MsrAnalysis,
    sel: Selection,
    *,
    name_filter: str | None,
    mitigations: str | None,
    errors: tuple[ProbeError, ...],
) -> None:
    """The report, with no trailing blanks on any line."""
    with trimmed(console):
        _print_msr(
            console, snap, a, sel, name_filter=name_filter, mitigations=mitigations, errors=errors
        )
