"""Text report for ``kvmprobe baseline``: the hosts, the baseline guest's features by area,
its level, its fields, what was left out and why. Laid out with kvmprobe.render.term: long
lines wrap under their own text, never to column 0."""

from __future__ import annotations

from kvmprobe.render.cpuid_report import AREA_TITLES
from kvmprobe.render.term import Line
from kvmprobe.render.text import safe
from kvmprobe.vocab import CompareRule
from kvmprobe.words import count

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.baseline import Baseline
    from kvmprobe.analysis.cpuid import FieldDef
    from kvmprobe.analysis.levels import LevelReport
    from kvmprobe.render.term import Term

#: hosts named per left-out feature before "and N more"
SHOWN_HOSTS = 3


def _num(v: int | None, fd: FieldDef | None = None) -> str:
    """A value as the CPUID field table says it reads (a field it does not name: decimal
    below 1024, hex above)."""
    if fd is not None:
        return fd.text(v)
    return "?" if v is None else str(v) if v < 1024 else f"{v:#x}"


#: where a wrapped line continues
HANG = 4


def _rank(order: list[str], area: str) -> tuple[int, str]:
    return (order.index(area) if area in order else len(order), area)


def baseline_lines(
    term: Term, b: Baseline, level: LevelReport, skipped: list[tuple[str, str]]
) -> list[Line]:
    from kvmprobe.analysis.profile import feature_space, positions

    out: list[Line] = []

    def say(text: str, style: str = "", hang: int = HANG) -> None:
        out.extend(term.para(Line.of(text, style), hang))

    n = len(b.hosts)
    exits = ",".join(b.disable_exits) or "none"
    say(f"Baseline of {count(n, 'host')}", "bold")
    say(f"  set-up: irqchip={b.irqchip}, exits disabled: {exits}", "dim")
    for host in b.hosts[:SHOWN_HOSTS]:
        say(f"  {safe(host)}", "dim")
    if n > SHOWN_HOSTS:
        say(f"  ... and {n - SHOWN_HOSTS} more", "dim")
    for path, msg in skipped:
        say(f"  skipped {safe(path)}: {safe(msg)}", "yellow")
    if b.vendor is None:
        vendors = ", ".join(f"{safe(v)} ({c})" for v, c in b.vendors.items())
        say(f"vendor differs between hosts: {vendors}; no guest can move between them",
            "bold red")  # fmt: skip
    else:
        say(f"vendor: {safe(b.vendor)}")
    space = feature_space()
    by_area: dict[str, list[str]] = {}
    for pos in positions(b.features):
        f = space.feature(pos)
        by_area.setdefault(f.area, []).append(f.name)
    total = sum(len(v) for v in by_area.values())
    say(f"Features every host gives ({total}):", "bold")
    order = list(AREA_TITLES)  # the cpuid report's areas, titles and order
    for area, names in sorted(by_area.items(), key=lambda kv: _rank(order, kv[0])):
        title = AREA_TITLES.get(area, area)
        out.extend(term.hanging(Line.of(f"  {title}: ", "bold"), Line.of(" ".join(names)), 4))
    say(f"x86-64 level of the baseline guest: {level.highest}", "bold")
    nxt = level.next_level
    if nxt is not None and nxt.missing:
        for s in nxt.missing:
            where = space.by_name.get(s.requirement.feature)
            why = b.why_not(where) if where is not None else s.answer.label()
            say(f"  {nxt.level} needs {s.requirement.label}: {safe(why)}")
    say("Fields:", "bold")
    from kvmprobe.analysis.cpuid import fields as field_table

    defs = {fd.name: fd for fd in field_table()}
    for fv in b.fields:
        fd = defs.get(fv.name)
        if fv.lowest is None and not fv.unknown:
            continue
        if fv.unknown:
            text = f"unknown on {count(len(fv.unknown), 'host')} ({safe(fv.unknown[0])}...)"
        elif not fv.differs:
            text = _num(fv.value, fd)
        elif fv.rule is CompareRule.NOT_LESS:
            text = (
                f"{_num(fv.value, fd)} (the smallest; hosts range "
                f"{_num(fv.lowest, fd)}..{_num(fv.highest, fd)})"
            )
        else:
            span = f"{_num(fv.lowest, fd)}..{_num(fv.highest, fd)}"
            text = f"differs ({span}): the VMM's CPU definition chooses"
        say(f"  {fv.name} {fv.where}: {text}")
    xcr0 = "unknown" if b.xcr0 is None else f"{b.xcr0:#x}"
    comps = " ".join(f"{c.number}:{c.size}B@{c.offset}" for c in b.xsave_components)
    say(f"  XCR0 mask: {xcr0}; components (size@offset): {comps or 'none'}")
    unknown_caps = [c.name for c in b.caps if c.unknown]
    if unknown_caps:
        say(f"  capabilities unknown somewhere: {', '.join(unknown_caps)}", "yellow")
    if b.arch_caps_unknown:
        on = ", ".join(safe(h) for h in b.arch_caps_unknown[:SHOWN_HOSTS])
        extra = len(b.arch_caps_unknown) - SHOWN_HOSTS
        on += f" and {extra} more" if extra > 0 else ""
        say(f"  IA32_ARCH_CAPABILITIES every guest is told: unknown (on {on}); no immunity "
            "bit is in the baseline", "yellow")  # fmt: skip
    elif b.arch_capabilities is not None:
        from kvmprobe.analysis.msr import decode_msr
        from kvmprobe.tables.msr_data import MSR_IA32_ARCH_CAPABILITIES

        d = decode_msr(MSR_IA32_ARCH_CAPABILITIES, b.arch_capabilities)
        bits = ", ".join(x.bit.name for x in d.set_bits) or "no immunity bit"
        say(f"  IA32_ARCH_CAPABILITIES every guest is told: {b.arch_capabilities:#x} ({bits})")
    if b.msr_index_list is not None:
        say(f"  MSR index list common to all hosts: {len(b.msr_index_list)} MSRs")
    if b.inconsistent:
        say("Kept although a dependency is missing on every host:", "bold")
        for reason in b.inconsistent.values():
            say(f"  {safe(reason)}", "yellow")
    if b.left_out:
        say(f"Left out ({len(b.left_out)}):", "bold")
        for lo in b.left_out:
            line = Line.of(f"  {lo.name}", "bold").add(f"  {lo.feature.where}  ", "dim")
            if lo.dropped:
                line.add(safe(lo.dropped))
            else:
                k = len(lo.lacking)
                who = ", ".join(
                    f"{safe(x.host)} ({x.answer.label()})" for x in lo.lacking[:SHOWN_HOSTS]
                )
                more = f" and {k - SHOWN_HOSTS} more" if k > SHOWN_HOSTS else ""
                line.add(f"{k} of {count(n, 'host')} lack it: {who}{more}")
            out.extend(term.para(line, HANG))
    if b.errors:
        say(f"{count(len(b.errors), 'host')} had failed probe steps; what depends on them is "
            "unknown and left out", "yellow")  # fmt: skip
    return out
