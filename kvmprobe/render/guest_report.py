"""Text for the guest's x86-64 level, the consistency warnings and ``--require`` results.

``print_guest_decisions`` is what the ``cpuid`` report prints at its end; ``guest_lines`` and
``consistency_lines`` give the same text as plain strings (for other reports: doctor)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from kvmprobe.render.text import safe

if TYPE_CHECKING:
    from rich.console import Console

    from kvmprobe.analysis.deps import Finding
    from kvmprobe.analysis.effective import CpuidAnalysis
    from kvmprobe.analysis.guest import PsabiSummary
    from kvmprobe.analysis.levels import LevelReport
    from kvmprobe.analysis.require import RequireResult


def _next_missing(report: LevelReport) -> list[str]:
    nxt = report.next_level
    if nxt is None:
        return []
    lines = [f"  {nxt.level} needs:" + (" nothing more" if not nxt.missing else "")]
    for s in nxt.missing:
        lines.append(f"    {s.describe()}")
    return lines


def guest_lines(s: PsabiSummary) -> list[str]:
    """The level summary: the guest's level and the host's, then, for the next level up,
    each missing row with where it lives and why it is missing."""
    from kvmprobe.analysis.guest import HOST_FROM_CPUINFO

    if s.host is None:
        host = f"host CPU: unknown ({safe(s.host_cpuid_error or 'no CPUID, no flags')})"
    elif s.host_source == HOST_FROM_CPUINFO:
        host = (
            f"host CPU: {s.host.highest}, from /proc/cpuinfo flags "
            f"(host CPUID not read: {safe(s.host_cpuid_error or '?')})"
        )
    else:
        host = f"host CPU: {s.host.highest}"
    lines = [f"x86-64 level a guest can be given: {s.guest.highest} ({host})"]
    lines += _next_missing(s.guest)
    emulated = [q.feature for r in s.guest.levels for q in r.emulated]
    if emulated and not s.guest.count_emulated:
        lines.append(
            f"  emulated-only features do not count towards a level (each use traps): "
            f"{', '.join(emulated)}"
        )
    return lines


def consistency_lines(findings: tuple[Finding, ...]) -> list[str]:
    """One warning per contradiction inside KVM's own CPUID answer."""
    return [f"warning: KVM's CPUID answer contradicts itself ({f.check}): {f.evidence}"
            for f in findings]  # fmt: skip


def print_guest_decisions(console: Console, a: CpuidAnalysis) -> None:
    """The cpuid report's last lines: the x86-64 levels and the consistency warnings."""
    from kvmprobe.analysis.guest import cpuid_consistency, psabi_summary

    s = psabi_summary(a)
    lines = guest_lines(s)
    console.print(Text(lines[0], style="bold"))
    for line in lines[1:]:
        console.print(Text(line))
    for line in consistency_lines(cpuid_consistency(a.snap)):
        console.print(Text(line, style="yellow"))


def require_lines(results: list[RequireResult]) -> list[tuple[bool, str]]:
    """(met, line) per item and subject."""
    out: list[tuple[bool, str]] = []
    many = len(results) > 1
    for r in results:
        if many:
            out.append((r.met, f"{safe(r.subject)}:"))
        for o in r.outcomes:
            mark = "met    " if o.met else "MISSING"
            out.append((o.met, f"  {mark} {o.requirement.label}: {safe(o.why)}"))
    return out


def print_require(console: Console, results: list[RequireResult]) -> None:
    met = all(r.met for r in results)
    head = "Requirements: all met" if met else "Requirements: NOT met"
    console.print(Text(head, style="bold green" if met else "bold red"))
    for ok, line in require_lines(results):
        console.print(Text(line, style="" if ok else "red"))
