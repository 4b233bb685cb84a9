"""Coloured table for ``kvmprobe caps``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from kvmprobe.render.text import safe
from kvmprobe.snapshot import Snapshot
from kvmprobe.vocab import Scope

if TYPE_CHECKING:
    from rich.console import Console

    from kvmprobe.analysis.caps import CapRow


def _value_cell(value: int | None, differs: bool) -> Text:
    if value is None:
        return Text("n/a", style="dim")
    shown = str(value) if value < 0x10000 else f"{value:#x}"
    if differs:
        return Text(shown, style="bold yellow")
    return Text(shown, style="green" if value else "dim")


def _meaning(row: CapRow) -> Text:
    text = Text()
    scopes = [s for s in Scope if s in row.decoded]
    if not scopes:
        return text
    first = row.decoded[scopes[0]]
    if row.differs:
        for scope in scopes:
            d = row.decoded[scope]
            text.append(f"{scope.label}: ", style="yellow")
            text.append(d.text or "0")
            text.append("\n")
    elif first.names or first.remainder or row.info.kind not in ("boolean",):
        text.append(first.text)
        text.append("\n")
    if row.info.description:
        text.append(row.info.description, style="dim")
    elif not row.info.known:
        text.append("not in kvmprobe's tables (newer than v7.2?)", style="magenta")
    text.rstrip()
    return text


def print_caps(console: Console, snap: Snapshot, rows: list[CapRow], include_zero: bool) -> None:
    title = f"KVM capabilities - {safe(snap.device)}"
    if snap.source != "live":
        title += f" (recorded in {safe(snap.source)})"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", style="cyan", no_wrap=True)
    table.add_column("capability", no_wrap=True)
    for scope in Scope:
        table.add_column(scope.label, justify="right", no_wrap=True)
    table.add_column("meaning", ratio=1, overflow="fold")
    for row in rows:
        info = row.info
        name = Text(info.name.removeprefix("KVM_CAP_"))
        if not info.known:
            name.stylize("magenta")
        elif not row.supported:
            name.stylize("dim")
        table.add_row(
            str(info.number),
            name,
            *(_value_cell(row.values.get(s), row.differs) for s in Scope),
            _meaning(row),
        )
    console.print(table)
    supported = sum(1 for r in rows if r.supported)
    differing = [r.info.name.removeprefix("KVM_CAP_") for r in rows if r.differs]
    unknown = sum(1 for r in rows if not r.info.known)
    summary = Text()
    summary.append(f"{supported} supported", style="green")
    if include_zero:
        summary.append(f", {len(rows) - supported} not supported", style="dim")
    if unknown:
        summary.append(f", {unknown} unknown to kvmprobe", style="magenta")
    if differing:
        summary.append(f"; differ between scopes: {', '.join(differing)}", style="yellow")
    api = snap.api_version if snap.api_version is not None else "?"
    kernel = safe(snap.host.kernel_release) or "?"
    summary.append(f"  (API version {api}, kernel {kernel})", style="dim")
    console.print(summary)
    if snap.caps.get(Scope.VM) is None:
        console.print(
            Text("VM-fd values unavailable: see 'errors' in 'kvmprobe record'.", style="yellow")
        )
