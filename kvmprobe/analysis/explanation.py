"""One feature's whole story for ``cpuid --explain``, kept out of kvmprobe.analysis.effective
(which re-exports it) so that the other reports do not create its class at start-up."""

from __future__ import annotations

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis import quirks as qk
from kvmprobe.analysis.effective import CpuidAnalysis, FeatureResult
from kvmprobe.frozen import frozen


@frozen
class Explanation:
    """One feature's whole story, for ``cpuid --explain``: the result with every quirk step
    (each step carries its record: condition in words, vendor scope, reason, citation) and
    KVM's raw register."""

    result: FeatureResult
    kvm_register: int | None  # KVM's whole register holding the bit; None: leaf absent

    @property
    def steps(self) -> tuple[qk.Step, ...]:
        return tuple(self.result.verdict.steps)


def explain(a: CpuidAnalysis, feature: cp.FeatureDef) -> Explanation | None:
    """The story of one feature of the analysis, or None when the analysis lacks it."""
    r = a.find(feature)
    if r is None:
        return None
    f = r.feature
    return Explanation(
        result=r,
        kvm_register=cp.CpuidView(a.snap.supported_cpuid).reg(f.leaf, f.subleaf, f.register),
    )
