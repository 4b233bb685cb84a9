"""Coloured report for ``kvmprobe doctor``: one line per check, the fix under anything not
PASS, and a closing verdict line.

Every string shown comes from the system or a snapshot file, so it is printed as plain
``Text`` (never parsed as rich markup) after control characters and lone surrogates are
escaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from kvmprobe.render.text import safe
from kvmprobe.vocab import CheckStatus

if TYPE_CHECKING:
    from rich.console import Console

    from kvmprobe.analysis.doctor import Check, DoctorReport
    from kvmprobe.snapshot import Snapshot

__all__ = ["GROUP_TITLES", "print_doctor", "safe"]

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
TITLE_WIDTH = 25


def _header(report: DoctorReport, snap: Snapshot) -> Text:
    text = Text("kvmprobe doctor", style="bold")
    where = f" - {safe(snap.device)}"
    if report.recorded:
        where += f" (recorded in {safe(snap.source)})"
    if snap.host.kernel_release:
        where += f", kernel {safe(snap.host.kernel_release)}"
    text.append(where)
    return text


def _print_hanging(console: Console, head: Text, body: Text) -> None:
    """``head`` then ``body``, wrapped so that continuation lines line up under the body."""
    indent = head.cell_len
    width = max(20, console.width - indent)
    for i, line in enumerate(body.wrap(console, width, overflow="fold")):
        line.rstrip()
        out = head.copy() if i == 0 else Text(" " * indent)
        out.append_text(line)
        console.print(out, soft_wrap=True)


def _print_check(console: Console, check: Check) -> None:
    dim = "dim" if check.status == CheckStatus.SKIP else ""
    head = Text(" ")
    head.append(f"{check.status:<4}", style=STYLES.get(check.status, ""))
    head.append(f"  {safe(check.title):<{TITLE_WIDTH}}  ", style=dim)
    _print_hanging(console, head, Text(safe(check.evidence), style=dim))
    pad = Text(" " * head.cell_len)
    if check.hint and check.status != CheckStatus.PASS:
        fix = Text("fix: ", style=STYLES.get(check.status, ""))
        fix.append(safe(check.hint))
        _print_hanging(console, pad, fix)
    for detail in check.details:
        _print_hanging(console, pad, Text(f"- {safe(detail)}", style="dim"))


def _verdict_line(report: DoctorReport) -> Text:
    v = report.verdict
    style = "bold green" if v.exit_status == 0 else "bold red"
    text = Text("verdict: ", style="bold")
    text.append(v.outcome.upper(), style=style)
    text.append(f" - {safe(v.message)}")
    c = report.counts
    text.append(
        f"  [{c[CheckStatus.PASS]} pass, {c[CheckStatus.WARN]} warn, "
        f"{c[CheckStatus.FAIL]} fail, {c[CheckStatus.SKIP]} skip; exit {v.exit_status}]",
        style="dim",
    )
    return text


def print_doctor(console: Console, snap: Snapshot, report: DoctorReport) -> None:
    """The report on ``snap`` (its device, where it came from, its kernel)."""
    _print_hanging(console, Text(), _header(report, snap))
    groups: dict[str, list[Check]] = {}
    for check in report.checks:
        groups.setdefault(check.group, []).append(check)
    for group, checks in groups.items():
        console.print(Text(GROUP_TITLES.get(group, group), style="bold cyan"))
        for check in checks:
            _print_check(console, check)
    _print_hanging(console, Text(), _verdict_line(report))
