"""Doctor's report types: one Check per question, the Verdict, the DoctorReport.

Pure data. Statuses are ``vocab.CheckStatus``; what a FAIL means for the host is a
``vocab.DoctorOutcome``, which also knows the fixed exit status it ends the command with.
"""

from __future__ import annotations

from kvmprobe.frozen import frozen
from kvmprobe.vocab import CheckStatus, DoctorOutcome


@frozen
class Check:
    id: str  # "device.access": group, dot, name
    title: str
    status: CheckStatus
    evidence: str  # one line: what was seen
    hint: str = ""  # the fix, for anything not PASS
    details: tuple[str, ...] = ()  # extra lines (parameter meanings, missing caps' uses)
    citation: str | None = None  # where a requirement comes from
    outcome: DoctorOutcome | None = None  # what a FAIL here means for the host

    @property
    def group(self) -> str:
        return self.id.partition(".")[0]

    @property
    def exit_status(self) -> int:
        """The exit status a FAIL here stands for (0 when it stands for none)."""
        return 0 if self.outcome is None else self.outcome.exit_status


@frozen
class Verdict:
    outcome: DoctorOutcome
    message: str
    first_failure: str | None  # id of the check that decided it

    @property
    def status(self) -> DoctorOutcome:
        return self.outcome

    @property
    def exit_status(self) -> int:
        return self.outcome.exit_status


@frozen
class DoctorReport:
    checks: tuple[Check, ...]
    verdict: Verdict
    recorded: bool = False  # diagnosed from a snapshot file, not the live host

    @property
    def counts(self) -> dict[CheckStatus, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in CheckStatus}


Details = tuple[str, ...]


def passed(
    cid: str, title: str, evidence: str, *, details: Details = (), citation: str | None = None
) -> Check:
    return Check(cid, title, CheckStatus.PASS, evidence, details=details, citation=citation)


def warned(cid: str, title: str, evidence: str, hint: str, *, details: Details = ()) -> Check:
    return Check(cid, title, CheckStatus.WARN, evidence, hint, details=details)


def failed(
    cid: str,
    title: str,
    evidence: str,
    hint: str,
    outcome: DoctorOutcome,
    *,
    details: Details = (),
    citation: str | None = None,
) -> Check:
    return Check(cid, title, CheckStatus.FAIL, evidence, hint, details, citation, outcome=outcome)


def skipped(cid: str, title: str, evidence: str, *, citation: str | None = None) -> Check:
    return Check(cid, title, CheckStatus.SKIP, evidence, citation=citation)
