"""The text report of ``kvmprobe doctor``: one line per check, the fix under anything not
PASS, and a closing verdict line.

At 80 columns and more, the evidence sits beside the check's title and wraps under itself;
narrower, it goes under the title. Every string shown comes from the system or a snapshot
file, so it goes through ``safe`` (control characters and lone surrogates escaped); the
report is built on render.term, which never interprets markup.
"""

from __future__ import annotations

import re

from kvmprobe.render.term import STACK_BELOW, Line, Term, cell_len
from kvmprobe.render.text import safe
from kvmprobe.vocab import CheckStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.doctor import Check, DoctorReport
    from kvmprobe.snapshot import Snapshot

__all__ = ["GROUP_TITLES", "doctor_lines", "safe"]

STYLES = {
    CheckStatus.PASS: "bold green",
    CheckStatus.WARN: "bold yellow",
    CheckStatus.FAIL: "bold red",
    CheckStatus.SKIP: "dim",
}
GROUP_TITLES = {
    "device": "Device",
    "kernel": "Kernel",
    "api": "KVM API",
    "vmm": "VMM readiness",
    "nested": "Nested virtualization",
}
#: where the evidence starts when it is beside the title (" PASS  " is 7 cells)
STATUS_WIDTH = 7


def _header(report: DoctorReport, snap: Snapshot) -> Line:
    text = Line.of("kvmprobe doctor", "bold")
    where = f" - {safe(snap.device)}"
    if report.recorded:
        where += f" (recorded in {safe(snap.source)})"
    if snap.host.kernel_release:
        where += f", kernel {safe(snap.host.kernel_release)}"
    return text.add(where)


def _check_lines(check: Check, term: Term, title_width: int) -> list[Line]:
    dim = "dim" if check.status == CheckStatus.SKIP else ""
    head = Line.of(" ").add(f"{check.status:<4}", STYLES.get(check.status, "")).add("  ")
    evidence = Line.of(safe(check.evidence), dim)
    if term.width >= STACK_BELOW:
        title = safe(check.title)
        head.add(title + " " * (title_width - cell_len(title) + 2), dim)
        out = term.hanging(head, evidence)
        indent = head.width
    else:
        head.add(safe(check.title), dim)
        out = [*term.hanging(Line(), head, STATUS_WIDTH), *term.indented(evidence, STATUS_WIDTH)]
        indent = STATUS_WIDTH
    if check.hint and check.status != CheckStatus.PASS:
        out += _fix_lines(safe(check.hint), STYLES.get(check.status, ""), term, indent)
    for detail in check.details:
        out += term.hanging(Line.of(" " * indent), Line.of(f"- {safe(detail)}", "dim"), indent + 2)
    return out


#: an XML element with attributes (libvirt's <feature policy='disable' name='mds-no'/>): text
#: to copy, so it goes on a line of its own and is never broken
_ELEMENT = re.compile(r"<[A-Za-z][^<> ]* [^<>]*>")


def _fix_lines(hint: str, style: str, term: Term, indent: int) -> list[Line]:
    """The fix under a check: its words wrapped under "fix: ", each XML element in it on a
    line of its own, whole (wider than the terminal only when the element itself is)."""
    hang = indent + 5
    parts, elements = _ELEMENT.split(hint), _ELEMENT.findall(hint)
    out = term.hanging(Line.of(" " * indent), Line.of("fix: ", style).add(parts[0].strip()), hang)
    widest = max((cell_len(e) for e in elements), default=0)
    pad = " " * max(0, min(hang, term.width - widest))  # less indent before going too wide
    for element, after in zip(elements, parts[1:], strict=True):
        out.append(Line.of(pad + element))
        if after.strip():
            out += term.hanging(Line.of(" " * hang), Line.of(after.strip()), hang)
    return out


def _verdict_line(report: DoctorReport) -> Line:
    v = report.verdict
    style = "bold green" if v.exit_status == 0 else "bold red"
    text = Line.of("verdict: ", "bold").add(v.outcome.upper(), style)
    text.add(f" - {safe(v.message)}")
    c = report.counts
    text.add(
        f"  [{c[CheckStatus.PASS]} pass, {c[CheckStatus.WARN]} warn, "
        f"{c[CheckStatus.FAIL]} fail, {c[CheckStatus.SKIP]} skip; exit {v.exit_status}]",
        "dim",
    )
    return text


def doctor_lines(snap: Snapshot, report: DoctorReport, term: Term) -> list[Line]:
    """The report on ``snap`` (its device, where it came from, its kernel)."""
    out = term.hanging(Line(), _header(report, snap), 2)
    title_width = max((cell_len(safe(c.title)) for c in report.checks), default=0)
    groups: dict[str, list[Check]] = {}
    for check in report.checks:
        groups.setdefault(check.group, []).append(check)
    for group, checks in groups.items():
        out += term.para(Line.of(GROUP_TITLES.get(group, group), "bold cyan"))
        for check in checks:
            out += _check_lines(check, term, title_width)
    out += term.hanging(Line(), _verdict_line(report), 2)
    return out


def doctor_text(snap: Snapshot, report: DoctorReport, term: Term) -> str:
    """The whole report as text (ANSI colour when ``term.color``)."""
    return term.render(doctor_lines(snap, report, term))
