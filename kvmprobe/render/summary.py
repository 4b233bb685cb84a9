"""The bare ``kvmprobe`` summary: usable or not, API version, capability and feature counts,
and where to look next. Plain text (no rich): every value from the system is made safe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmprobe.render.text import safe
from kvmprobe.vocab import FeatureStatus, Scope

if TYPE_CHECKING:
    from kvmprobe.analysis.effective import CpuidAnalysis
    from kvmprobe.snapshot import Snapshot

NEXT_STEPS = (
    "  kvmprobe caps      every capability, decoded, per fd scope",
    "  kvmprobe cpuid     effective guest CPUID with quirks explained (--explain NAME)",
    "  kvmprobe doctor    why KVM does or does not work here",
    "  kvmprobe record    save a snapshot for --from FILE or a bug report",
)


def guest_mitigations(snap: Snapshot) -> str | None:
    """The one-line speculation picture a guest is given, with what the vCPU check found."""
    from kvmprobe.analysis.msr import mitigation_summary
    from kvmprobe.analysis.verify import verification
    from kvmprobe.tables.msr_data import MSR_IA32_ARCH_CAPABILITIES

    text = mitigation_summary(snap)
    if text and verification(snap).refused_msr(MSR_IA32_ARCH_CAPABILITIES) is not None:
        text += "; but a vCPU refuses these bits, so a guest can be told none of it"
    return text


def summary_text(snap: Snapshot, analysis: CpuidAnalysis | None) -> str:
    """The summary of a live probe of ``snap.device``; ``analysis`` is the in-kernel irqchip
    CPUID analysis (None when KVM_GET_SUPPORTED_CPUID gave no answer)."""
    nonzero = len(snap.caps.get(Scope.SYSTEM) or {})
    lines = [
        f"KVM is usable at {safe(snap.device)}: API version {snap.api_version}, "
        f"kernel {safe(snap.host.kernel_release)}",
        f"  capabilities: {nonzero} answered non-zero on /dev/kvm "
        f"(VM created: {safe(snap.creation.get('vm', '?'))}, "
        f"vCPU: {safe(snap.creation.get('vcpu', '?'))})",
    ]
    if analysis is not None:
        counts = analysis.counts()
        effective = sum(1 for f in analysis.features if f.verdict.effective)
        lines.append(
            f"  guest CPUID (in-kernel irqchip): {effective} features can be given "
            f"({counts[FeatureStatus.SUPPORTED]} supported, "
            f"{counts[FeatureStatus.ADDED_BY_QUIRK]} added and "
            f"{counts[FeatureStatus.REMOVED_BY_QUIRK]} removed by quirks, "
            f"{counts[FeatureStatus.OPT_IN]} opt-in, {counts[FeatureStatus.EMULATED]} emulated, "
            f"{counts[FeatureStatus.RUNTIME]} runtime); "
            f"{counts[FeatureStatus.HOST_ONLY]} host features not passed on"
        )
    mitigations = guest_mitigations(snap)
    if mitigations:
        lines.append(f"  guest speculation picture: {safe(mitigations)}")
    if snap.errors:
        lines.append(f"  {len(snap.errors)} probe step(s) failed: see 'kvmprobe record'")
    return "\n".join([*lines, "", *NEXT_STEPS])
