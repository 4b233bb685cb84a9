"""VMM readiness: would QEMU, Firecracker and Cloud Hypervisor start on this KVM?

Each VMM is held to the capabilities its own start-up code insists on (knowledge/
vmm_requirements.py, cited), asked on the /dev/kvm fd as the VMM asks them. Pure.
"""

from __future__ import annotations

from kvmprobe.analysis.caps import cap_by_name
from kvmprobe.analysis.doctor.api import usable
from kvmprobe.analysis.doctor.report import Check, failed, passed, skipped
from kvmprobe.knowledge.vmm_requirements import VMMS, VmmProfile
from kvmprobe.snapshot import Snapshot
from kvmprobe.tables.caps_data import KVM_CAP_SPLIT_IRQCHIP
from kvmprobe.vocab import DoctorOutcome, Scope


def missing_caps(snap: Snapshot, profile: VmmProfile) -> list[str]:
    """Required capabilities of ``profile`` that answered 0 on the /dev/kvm fd."""
    missing = []
    for req in profile.requirements:
        if not req.required:
            continue
        info = cap_by_name(req.cap)
        if info is None or not snap.cap(info.number, Scope.SYSTEM):
            missing.append(req.cap)
    return missing


def short_citation(source: str) -> str:
    """'owner/repo @ 0123456789ab' from a profile's source text."""
    repo, _, rest = source.partition(" @ ")
    return f"{repo.split()[-1] if repo else '?'} @ {rest[:12]}" if rest else source[:40]


def _needs_split_irqchip(profile: VmmProfile) -> bool:
    for req in profile.requirements:
        info = cap_by_name(req.cap)
        if req.required and info is not None and info.number == KVM_CAP_SPLIT_IRQCHIP:
            return True
    return False


def _vmm_check(snap: Snapshot, profile: VmmProfile) -> Check:
    cid, title = f"vmm.{profile.id}", f"{profile.name} start-up"
    required = [r for r in profile.requirements if r.required]
    if not usable(snap):
        return skipped(cid, title, "KVM is not usable here (see above)", citation=profile.source)
    if snap.caps.get(Scope.SYSTEM) is None:
        return skipped(cid, title, "no capability values", citation=profile.source)
    missing = missing_caps(snap, profile)
    problems = list(missing)
    split = snap.creation.get("split_irqchip")
    if _needs_split_irqchip(profile) and split not in (None, "ok"):
        problems.append(f"KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP) failed with {split}")
    cited = f"(as of {short_citation(profile.source)})"
    if not problems:
        evidence = f"all {len(required)} capabilities it requires at start-up are present {cited}"
        return passed(cid, title, evidence, citation=profile.source)
    notes = {r.cap: r.note for r in required}
    details = tuple(f"{name}: {notes[name]}" for name in missing if name in notes)
    evidence = f"missing: {', '.join(problems)} {cited}"
    hint = (
        f"{profile.name} checks these on /dev/kvm and refuses to start without them; they "
        "come with a newer or differently configured host kernel"
    )
    return failed(
        cid, title, evidence, hint, DoctorOutcome.NOT_READY, details=details,
        citation=profile.source,
    )  # fmt: skip


def vmm_checks(snap: Snapshot, vmms: tuple[str, ...]) -> list[Check]:
    return [_vmm_check(snap, p) for p in VMMS if p.id in vmms]
