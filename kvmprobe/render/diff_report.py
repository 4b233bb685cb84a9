"""Text report for ``kvmprobe diff``: the verdict, then what a guest from A loses on B, what
must match and differs, what is unknown, what B adds, and notes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from kvmprobe.render.text import safe
from kvmprobe.vocab import Change

if TYPE_CHECKING:
    from rich.console import Console

    from kvmprobe.analysis.diff import DiffItem, DiffResult
    from kvmprobe.analysis.profile import HostProfile

GROUPS: tuple[tuple[Change, str, str], ...] = (
    (Change.LOST, "A guest from A loses on B", "red"),
    (Change.DIFFERS, "Must match (or must not shrink) and differs", "red"),
    (Change.UNKNOWN, "Unknown evidence (never taken as equal)", "yellow"),
    (Change.ADDED, "B adds (a guest from B would lose these on A)", "cyan"),
    (Change.NOTE, "Notes (do not block)", "dim"),
)


def _host(p: HostProfile) -> str:
    sig = "" if p.signature is None else " family {} model {} stepping {}".format(*p.signature)
    return f"{safe(p.name)} (kernel {safe(p.kernel_release) or '?'}; {safe(p.vendor or '?')}{sig})"


def _line(i: DiffItem) -> Text:
    t = Text(f"  {safe(i.name)}", style="bold")
    t.append(f"  {i.where}", style="dim")
    if i.kind == "feature":
        t.append(f"  A: {i.a}; B: {i.b}")
    else:
        t.append(f"  A: {safe(i.a)}, B: {safe(i.b)} ({i.rule})")
    if i.change is Change.UNKNOWN or i.kind != "feature":
        t.append(f"  - {safe(i.reason)}", style="dim")
    return t


#: unknown features named per failed step before "and N more" (JSON lists them all)
SHOWN_UNKNOWN = 12


def _print_unknown(console: Console, items: tuple[DiffItem, ...]) -> None:
    """Unknown features grouped by the failed step behind them (a failed step can make
    hundreds unknown); other unknown items one per line."""
    by_reason: dict[str, list[str]] = {}
    for i in items:
        if i.kind == "feature":
            by_reason.setdefault(i.reason, []).append(i.name)
        else:
            console.print(_line(i))
    for reason, names in by_reason.items():
        shown = ", ".join(safe(n) for n in names[:SHOWN_UNKNOWN])
        more = f" and {len(names) - SHOWN_UNKNOWN} more" if len(names) > SHOWN_UNKNOWN else ""
        line = Text(f"  {len(names)} feature(s): ", style="bold")
        line.append(f"{shown}{more}")
        line.append(f"  - {safe(reason)}", style="dim")
        console.print(line)


def print_diff(console: Console, d: DiffResult) -> None:
    verdict = Text("Can a guest started on A run on B? ", style="bold")
    verdict.append("yes" if d.can_take else "NO", style="bold green" if d.can_take else "bold red")
    console.print(verdict)
    console.print(Text(f"  A: {_host(d.a)}", style="dim"))
    console.print(Text(f"  B: {_host(d.b)}", style="dim"))
    exits = ",".join(d.a.disable_exits) or "none"
    console.print(Text(f"  set-up: irqchip={d.a.irqchip}, exits disabled: {exits}", style="dim"))
    for change, title, style in GROUPS:
        items = d.group(change)
        if not items:
            continue
        console.print(Text(f"{title} ({len(items)}):", style=f"bold {style}"))
        if change is Change.UNKNOWN:
            _print_unknown(console, items)
            continue
        for i in items:
            console.print(_line(i))
    blocking = [i for i in d.items if i.blocks]
    if d.can_take:
        console.print(Text("Nothing a guest from A sees or needs is missing on B.", style="green"))
    else:
        console.print(Text(f"{len(blocking)} item(s) stop a guest from A on B.", style="red"))
    rev = "can" if d.reverse else "cannot"
    console.print(Text(f"The reverse: a guest started on B {rev} run on A.", style="dim"))
