"""The bare ``kvmprobe`` summary: usable or not, API version, capability and feature counts,
and where to look next. Laid out with kvmprobe.render.term (no rich): long lines wrap under
their own text at the terminal's width; every value from the system is made safe."""

from __future__ import annotations

from kvmprobe.render.term import Line, Term
from kvmprobe.render.text import safe
from kvmprobe.vocab import FeatureStatus, Scope
from kvmprobe.words import count

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.effective import CpuidAnalysis
    from kvmprobe.snapshot import Snapshot

NEXT_STEPS = (
    ("caps", "every capability, decoded, per fd scope"),
    ("cpuid", "effective guest CPUID, quirks explained (--explain NAME)"),
    ("msr", "feature MSRs a guest is given (immunities, PMU, nested VMX)"),
    ("hyperv", "Hyper-V enlightenments KVM offers"),
    ("doctor", "why KVM does or does not work here"),
    ("record", "save a snapshot for --from FILE or a bug report"),
    ("diff", "can a guest started on one host run on another"),
    ("baseline", "the largest guest definition every host of a fleet can give"),
    ("export", "the guest CPU for QEMU, libvirt, Firecracker, KVM_SET_CPUID2"),
)
#: where a wrapped summary line continues
HANG = 4


def summary_text(snap: Snapshot, analysis: CpuidAnalysis | None, term: Term | None = None) -> str:
    """The summary of a live probe of ``snap.device``; ``analysis`` is the in-kernel irqchip
    CPUID analysis (None when KVM_GET_SUPPORTED_CPUID gave no answer); laid out for ``term``
    (default: 80 columns, no colour)."""
    term = term or Term()
    nonzero = len(snap.caps.get(Scope.SYSTEM) or {})
    lines = [
        f"KVM is usable at {safe(snap.device)}: API version {snap.api_version}, "
        f"kernel {safe(snap.host.kernel_release)}",
        f"  capabilities: {nonzero} answered non-zero on /dev/kvm "
        f"(VM created: {safe(snap.creation.get('vm', '?'))}, "
        f"vCPU: {safe(snap.creation.get('vcpu', '?'))})",
    ]
    if analysis is not None:
        from kvmprobe.render.cpuid_report import tally_line

        t = analysis.tally()
        counts = tally_line(t, "host features KVM does not pass on", (FeatureStatus.UNSUPPORTED,))
        lines.append(
            f"  guest CPUID (in-kernel irqchip): {t.given_total} "
            f"feature{'' if t.given_total == 1 else 's'} can be given{counts.plain}"
        )
    from kvmprobe.analysis.msr import mitigation_summary

    mitigations = mitigation_summary(snap)
    if mitigations:
        lines.append(f"  guest speculation picture: {safe(mitigations)}")
    if snap.errors:
        lines.append(f"  {count(len(snap.errors), 'probe step')} failed: see 'kvmprobe record'")
    out: list[Line] = []
    for text in lines:
        out += term.para(Line.of(text), HANG)
    out.append(Line())
    steps = [Line.of(f"  kvmprobe {name:<10}").add(what) for name, what in NEXT_STEPS]
    for step in steps:
        out += term.hanging(Line(step.spans[:1]), Line(step.spans[1:]))
    return term.render(out).rstrip("\n")
