"""Feature-MSR bits in ``kvmprobe cpuid``: the lines ``cpuid mds-no`` and
``cpuid --explain mds-no`` print (the analysis is ``kvmprobe.analysis.msr_features``)."""

from __future__ import annotations

from collections.abc import Sequence

from kvmprobe.analysis.msr_features import MsrBitResult
from kvmprobe.render.term import GLUE, Line, Term
from kvmprobe.render.text import safe


def _answer(r: MsrBitResult) -> Line:
    eff = r.effective
    if eff is None:
        return Line.of("unknown", "bold yellow")
    return Line.of("yes", "bold green") if eff else Line.of("no", "bold red")


def _names(r: MsrBitResult) -> str:
    b = r.bit
    parts = []
    for label, n in (
        ("Linux", b.kernel_name),
        ("QEMU", b.qemu_name),
        ("libvirt", b.libvirt_name),
        ("cpuinfo", b.cpuinfo_name),
    ):
        if n:
            parts.append(f"{label} {n}")
    return ", ".join(parts) or "no other name"


def _value(v: int | None) -> str:
    return "not read" if v is None else f"{v:#x}"


def explain_lines(r: MsrBitResult, term: Term, typed: str | None = None) -> list[Line]:
    """One feature-MSR bit's story: the answer and why, KVM's value, what a vCPU did with
    it, and the CPUID bit that announces the MSR with the quirks that touched it."""
    b = r.bit
    title = Line.of(b.name, "bold").add(f"  ({_names(r)})", "dim")
    out = term.hanging(Line(), title, 2)
    if b.description:
        out += term.indented(Line.of(b.description), 2)
    where = f"MSR {r.msr_label} bit {b.position}"
    out += term.hanging(Line.of("  where: "), Line.of(where))
    verdict = Line.of("  result: ", "bold").add(f"a guest in this set-up is given{GLUE}it:{GLUE}")
    out += term.hanging(Line(), verdict.extend(_answer(r)), 10)
    out += term.hanging(Line.of("  because: "), Line.of(safe(r.why)), 11)
    listed = "no" if r.index is None else "yes"
    out += term.para(Line.of(f"  KVM_GET_MSR_FEATURE_INDEX_LIST has the MSR: {listed}"), 4)
    if r.index is not None:
        bit = r.set_in_advertised
        state = "unknown" if bit is None else ("set" if bit else "clear")
        out += term.para(
            Line.of(f"  KVM_GET_MSRS (advertised): {_value(r.advertised)}, bit {state}"), 4
        )
    if r.attempt is not None:
        from kvmprobe.analysis.verify import attempt_text

        out += term.hanging(Line.of("  vCPU:     "), Line.of(safe(attempt_text(r.attempt))), 12)
    elif r.index is not None:
        out += term.para(Line.of("  vCPU:     not tried (no verification recorded)", "dim"), 4)
    ann = r.announced_by
    if ann is not None:
        v = ann.verdict
        eff = "unknown" if v.effective is None else ("yes" if v.effective else "no")
        head = Line.of(
            f"  announced by CPUID {ann.feature.name} ({ann.feature.where}): "
            f"{v.status}, given:{GLUE}{eff}"
        )
        out += term.para(head, 4)
        for s in v.steps:
            if s.applied is False:
                continue
            mark = "applied" if s.applied else "unknown"
            out += term.hanging(
                Line.of(f"    {mark} ", "bold yellow"),
                Line.of(f"{s.quirk} ({s.effect}): ").add(safe(s.evidence), "dim"),
                6,
            )
            if s.applied:
                out += term.hanging(
                    Line.of("      source: ", "dim"), Line.of("; ".join(s.record.citation), "dim")
                )
    if typed:
        out += term.para(Line.of(f"  (asked for as {typed})", "dim"), 4)
    return out


def table_lines(results: Sequence[MsrBitResult], term: Term) -> list[Line]:
    """The feature-MSR bits a ``cpuid`` filter names, one line each: a section of the
    ``cpuid`` report (whose summary counts them and says where to ask why)."""
    out = term.para(Line.of("Feature MSR bits", "bold"))
    for r in results:
        kvm = r.set_in_advertised
        head = Line.of(" ").add(r.bit.feature_name, "bold")
        head.add(f"  MSR {r.msr_label} bit {r.bit.position}  KVM: ")
        if kvm is False and r.index is None:
            head.add("no such MSR")
        else:
            head.add("?" if kvm is None else ("set" if kvm else "clear"))
        head.add("  guest: ").extend(_answer(r))
        out += term.para(head, 5)
        out += term.hanging(Line.of("     "), Line.of(safe(r.why), "dim"), 5)
    return out
