"""Text report for ``kvmprobe baseline``: the hosts, the baseline guest's features by area,
its level, its fields, what was left out and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from kvmprobe.render.text import safe
from kvmprobe.vocab import CompareRule

if TYPE_CHECKING:
    from rich.console import Console

    from kvmprobe.analysis.baseline import Baseline
    from kvmprobe.analysis.levels import LevelReport

#: hosts named per left-out feature before "and N more"
SHOWN_HOSTS = 3


def _num(v: int | None) -> str:
    return "?" if v is None else str(v) if v < 1024 else f"{v:#x}"


def _wrap(console: Console, head: str, words: list[str]) -> None:
    t = Text(head, style="bold")
    t.append(" ".join(words))
    console.print(t)


def print_baseline(
    console: Console, b: Baseline, level: LevelReport, skipped: list[tuple[str, str]]
) -> None:
    from kvmprobe.analysis.profile import feature_space, positions

    n = len(b.hosts)
    exits = ",".join(b.disable_exits) or "none"
    console.print(Text(f"Baseline of {n} host(s)", style="bold"))
    console.print(Text(f"  set-up: irqchip={b.irqchip}, exits disabled: {exits}", style="dim"))
    for host in b.hosts[:SHOWN_HOSTS]:
        console.print(Text(f"  {safe(host)}", style="dim"))
    if n > SHOWN_HOSTS:
        console.print(Text(f"  ... and {n - SHOWN_HOSTS} more", style="dim"))
    for path, msg in skipped:
        console.print(Text(f"  skipped {safe(path)}: {safe(msg)}", style="yellow"))
    if b.vendor is None:
        vendors = ", ".join(f"{safe(v)} ({c})" for v, c in b.vendors.items())
        console.print(Text(f"vendor differs between hosts: {vendors}; no guest can move "
                           "between them", style="bold red"))  # fmt: skip
    else:
        console.print(Text(f"vendor: {safe(b.vendor)}"))
    space = feature_space()
    by_area: dict[str, list[str]] = {}
    for pos in positions(b.features):
        f = space.feature(pos)
        by_area.setdefault(f.area, []).append(f.name)
    count = sum(len(v) for v in by_area.values())
    console.print(Text(f"Features every host gives ({count}):", style="bold"))
    for area, names in sorted(by_area.items()):
        _wrap(console, f"  {area}: ", names)
    console.print(Text(f"x86-64 level of the baseline guest: {level.highest}", style="bold"))
    nxt = level.next_level
    if nxt is not None and nxt.missing:
        for s in nxt.missing:
            where = space.by_name.get(s.requirement.feature)
            why = b.why_not(where) if where is not None else s.answer.label()
            console.print(Text(f"  {nxt.level} needs {s.requirement.label}: {safe(why)}"))
    console.print(Text("Fields:", style="bold"))
    for fv in b.fields:
        if fv.lowest is None and not fv.unknown:
            continue
        if fv.unknown:
            text = f"unknown on {len(fv.unknown)} host(s) ({safe(fv.unknown[0])}...)"
        elif not fv.differs:
            text = _num(fv.value)
        elif fv.rule is CompareRule.NOT_LESS:
            text = (
                f"{_num(fv.value)} (the smallest; hosts range "
                f"{_num(fv.lowest)}..{_num(fv.highest)})"
            )
        else:
            text = f"differs ({fv.lowest}..{fv.highest}): the VMM's CPU definition chooses"
        console.print(Text(f"  {fv.name} {fv.where}: {text}"))
    xcr0 = "unknown" if b.xcr0 is None else f"{b.xcr0:#x}"
    comps = " ".join(f"{c.number}:{c.size}B@{c.offset}" for c in b.xsave_components)
    console.print(Text(f"  XCR0 mask: {xcr0}; components (size@offset): {comps or 'none'}"))
    unknown_caps = [c.name for c in b.caps if c.unknown]
    if unknown_caps:
        console.print(Text(f"  capabilities unknown somewhere: {', '.join(unknown_caps)}",
                           style="yellow"))  # fmt: skip
    if b.msr_index_list is not None:
        console.print(Text(f"  MSR index list common to all hosts: {len(b.msr_index_list)} MSRs"))
    if b.inconsistent:
        console.print(Text("Kept although a dependency is missing on every host:", style="bold"))
        for reason in b.inconsistent.values():
            console.print(Text(f"  {safe(reason)}", style="yellow"))
    if b.left_out:
        console.print(Text(f"Left out ({len(b.left_out)}):", style="bold"))
        for lo in b.left_out:
            line = Text(f"  {lo.name}", style="bold")
            line.append(f"  {lo.feature.where}  ", style="dim")
            if lo.dropped:
                line.append(safe(lo.dropped))
            else:
                k = len(lo.lacking)
                who = ", ".join(
                    f"{safe(x.host)} ({x.answer.label()})" for x in lo.lacking[:SHOWN_HOSTS]
                )
                more = f" and {k - SHOWN_HOSTS} more" if k > SHOWN_HOSTS else ""
                line.append(f"{k} of {n} host(s) lack it: {who}{more}")
            console.print(line)
    if b.errors:
        console.print(Text(f"{len(b.errors)} host(s) had failed probe steps; what depends on "
                           "them is unknown and left out", style="yellow"))  # fmt: skip
