"""``kvmprobe doctor``: an ordered list of checks over one Snapshot, and a verdict.

Pure: a Snapshot goes in (its device-access facts, the probe's answers and the host facts),
frozen dataclasses come out. No I/O, nothing from kvmprobe.kvm or kvmprobe.errors.

Every check ends PASS, WARN, FAIL or SKIP (``vocab.CheckStatus``) with one line of evidence,
and a hint (the fix) when it is not PASS. The verdict's outcome is the one carried by the
first FAIL in order (device, kernel, API, VMMs, nesting), so the root cause decides it: KVM
not available, permission denied, or KVM works but a VMM would refuse to start. Each outcome
has one fixed exit status (``vocab.DoctorOutcome.exit_status``). CPU flags are information
only: KVM can work without vmx/svm (PVM) and fail with them, so they never decide the verdict.

A snapshot without device-access facts (recorded before kvmprobe kept them) cannot answer
the device checks; each of them is SKIP with ``NO_ACCESS_FACTS`` as its evidence.

One module per check group: device, kernel, api, vmm, nested; the report types in report.
"""

from __future__ import annotations

from kvmprobe.analysis.doctor.api import api_checks, usable
from kvmprobe.analysis.doctor.device import cgroup_allows, device_checks, in_container
from kvmprobe.analysis.doctor.kernel import kernel_checks, kvm_present
from kvmprobe.analysis.doctor.nested import hypervisor_signatures, nested_checks
from kvmprobe.analysis.doctor.report import Check, DoctorReport, Verdict
from kvmprobe.analysis.doctor.vmm import missing_caps, short_citation, vmm_checks
from kvmprobe.frozen import frozen
from kvmprobe.knowledge.vmm_requirements import VMMS
from kvmprobe.snapshot import Snapshot
from kvmprobe.vocab import CheckStatus, DoctorOutcome

__all__ = [
    "NO_ACCESS_FACTS",
    "Check",
    "DoctorOptions",
    "DoctorReport",
    "Verdict",
    "cgroup_allows",
    "diagnose",
    "hypervisor_signatures",
    "in_container",
    "missing_caps",
    "short_citation",
    "usable",
    "verdict",
]

NO_ACCESS_FACTS = "not in this snapshot: it was recorded without device-access facts"


@frozen
class DoctorOptions:
    vmms: tuple[str, ...] = tuple(p.id for p in VMMS)


def verdict(checks: list[Check]) -> Verdict:
    fails = [c for c in checks if c.status == CheckStatus.FAIL]
    warns = sum(1 for c in checks if c.status == CheckStatus.WARN)
    if not fails:
        extra = f" ({warns} warning{'s' if warns != 1 else ''})" if warns else ""
        return Verdict(DoctorOutcome.USABLE, f"KVM is usable here{extra}", None)
    first = fails[0]
    outcome = first.outcome or DoctorOutcome.UNAVAILABLE
    if outcome == DoctorOutcome.NOT_READY:
        names = [c.title.removesuffix(" start-up") for c in fails if c.group == "vmm"]
        message = f"KVM works, but {', '.join(names)} would refuse to start"
        return Verdict(outcome, message, first.id)
    if outcome == DoctorOutcome.PERMISSION:
        return Verdict(outcome, f"permission denied: {first.evidence}", first.id)
    return Verdict(outcome, f"KVM is not available: {first.evidence}", first.id)


def diagnose(snap: Snapshot, options: DoctorOptions | None = None) -> DoctorReport:
    """Run every check in order and reach a verdict."""
    options = options or DoctorOptions()
    api_ok = usable(snap)
    present = kvm_present(snap.host, snap.access, api_ok)
    checks: list[Check] = []
    checks += device_checks(snap.access, snap.host.modules, api_ok, NO_ACCESS_FACTS)
    checks += kernel_checks(snap.host, api_ok, present)
    checks += api_checks(snap)
    checks += vmm_checks(snap, options.vmms)
    checks += nested_checks(snap, present)
    return DoctorReport(
        checks=tuple(checks), verdict=verdict(checks), recorded=snap.source != "live"
    )
