"""Text for the guest's x86-64 level, the consistency warnings and ``--require`` results.

Built on render.term (no rich). ``decision_lines`` is what the ``cpuid`` report shows at its
end (its ``level_line`` hook calls it); ``guest_lines`` and ``consistency_lines`` give the same
text as plain strings, for other reports (doctor) and tests."""

from __future__ import annotations

from kvmprobe.render.term import Line
from kvmprobe.render.text import safe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.deps import Finding
    from kvmprobe.analysis.effective import CpuidAnalysis
    from kvmprobe.analysis.guest import PsabiSummary
    from kvmprobe.analysis.levels import LevelReport
    from kvmprobe.analysis.require import RequireResult
    from kvmprobe.render.term import Term


def _host_text(s: PsabiSummary) -> str:
    from kvmprobe.vocab import LevelSource

    if s.host is None:
        return f"host CPU: unknown ({safe(s.host_cpuid_error or 'no CPUID, no flags')})"
    if s.host_source is LevelSource.CPUINFO:
        return (
            f"host CPU: {s.host.highest}, from /proc/cpuinfo flags "
            f"(host CPUID not read: {safe(s.host_cpuid_error or '?')})"
        )
    return f"host CPU: {s.host.highest}"


def _next_missing(report: LevelReport) -> list[str]:
    nxt = report.next_level
    if nxt is None:
        return []
    lines = [f"  {nxt.level} needs:" + (" nothing more" if not nxt.missing else "")]
    lines += [f"    {s.describe()}" for s in nxt.missing]
    return lines


def _emulated_note(s: PsabiSummary) -> str | None:
    emulated = [q.feature for r in s.guest.levels for q in r.emulated]
    if not emulated or s.guest.count_emulated:
        return None
    return "  emulated-only features do not count towards a level (each use traps): " + ", ".join(
        emulated
    )


def guest_lines(s: PsabiSummary) -> list[str]:
    """The level summary: the guest's level and the host's, then, for the next level up,
    each missing row with where it lives and why it is missing."""
    lines = [f"x86-64 level a guest can be given: {s.guest.highest} ({_host_text(s)})"]
    lines += _next_missing(s.guest)
    note = _emulated_note(s)
    if note:
        lines.append(note)
    return lines


def consistency_lines(findings: tuple[Finding, ...]) -> list[str]:
    """One warning per contradiction inside KVM's own CPUID answer."""
    return [f"warning: KVM's CPUID answer contradicts itself ({f.check}): {f.evidence}"
            for f in findings]  # fmt: skip


def decision_lines(a: CpuidAnalysis, term: Term) -> list[Line]:
    """The cpuid report's last lines: the x86-64 levels and the consistency warnings."""
    from kvmprobe.analysis.guest import cpuid_consistency, psabi_summary

    s = psabi_summary(a)
    out: list[Line] = []
    head = Line.of("x86-64 level: ", "bold").add(str(s.guest.highest), "bold")
    head.add(f" a guest can be given ({_host_text(s)})")
    out += term.para(head)
    nxt = s.guest.next_level
    if nxt is not None:
        out += term.para(Line.of(f"  {nxt.level} needs:" + ("" if nxt.missing else " nothing")))
        for sh in nxt.missing:
            out += term.hanging(Line.of("    "), Line.of(sh.describe(), "dim"), 6)
    note = _emulated_note(s)
    if note:
        out += term.hanging(Line(), Line.of(note, "dim"), 4)
    for text in consistency_lines(cpuid_consistency(a.snap)):
        out += term.hanging(Line(), Line.of(text, "yellow"), 2)
    return out


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


def require_report(results: list[RequireResult], term: Term) -> list[Line]:
    """The --require section of a report."""
    met = all(r.met for r in results)
    out = [Line.of("Requirements: all met" if met else "Requirements: NOT met",
                   "bold green" if met else "bold red")]  # fmt: skip
    for ok, text in require_lines(results):
        out += term.hanging(Line(), Line.of(text, "" if ok else "red"), 10)
    return out
