"""One feature's whole story for ``cpuid --explain``, kept out of kvmprobe.analysis.effective
(which re-exports it) so that the other reports do not create its class at start-up."""

from __future__ import annotations

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis import quirks as qk
from kvmprobe.analysis.effective import CpuidAnalysis, FeatureResult, FieldResult, LeafNote
from kvmprobe.frozen import frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.compare import FieldRule


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


@frozen
class FieldExplanation:
    """One multi-bit field's (a value's) whole story, for ``cpuid --explain phys_addr_bits``:
    KVM's value and the host's, with their whole registers; what a guest is given (the value
    in the table kvmprobe's exports give a guest, which is what a VMM passing KVM's answer on
    gives) or why that is unknown; whether the VMM writes each vCPU's own value there; the
    leaf notes on its leaf; and how ``diff`` and ``baseline`` compare it between hosts."""

    field: FieldResult
    kvm_register: int | None  # None: KVM reports no such leaf
    host_register: int | None  # None: the host's CPUID is unknown or lacks the leaf
    guest: int | None
    guest_unknown: str  # why ``guest`` is None ("" when it is known or the leaf is absent)
    per_vcpu: bool
    notes: tuple[LeafNote, ...]
    compare: FieldRule | None


def explain_field(a: CpuidAnalysis, fd: cp.FieldDef) -> FieldExplanation | None:
    """The story of one field of the analysis, or None when the analysis lacks it."""
    from kvmprobe.analysis.compare import FIELD_RULES
    from kvmprobe.analysis.guest_cpuid import PER_VCPU_FIELDS, guest_cpu_from_analysis
    from kvmprobe.errors import KvmprobeError

    fr = next((x for x in a.fields if x.field == fd), None)
    if fr is None:
        return None
    kvm_reg = cp.CpuidView(a.snap.supported_cpuid).reg(fd.leaf, fd.subleaf, fd.register)
    host_view = cp.CpuidView(a.snap.host.cpuid) if a.snap.host.cpuid else None
    host_reg = None if host_view is None else host_view.reg(fd.leaf, fd.subleaf, fd.register)
    guest: int | None = None
    unknown = ""
    try:
        table = cp.CpuidView(guest_cpu_from_analysis(a).entries)
        reg = table.reg(fd.leaf, fd.subleaf, fd.register)
        guest = None if reg is None else fd.extract(reg)
    except KvmprobeError as e:
        unknown = e.message
    notes = tuple(n for n in a.leaf_notes if n.shown and fd.leaf in n.quirk.leaves)
    return FieldExplanation(
        field=fr,
        kvm_register=kvm_reg,
        host_register=host_reg,
        guest=guest,
        guest_unknown=unknown,
        per_vcpu=fd.name in PER_VCPU_FIELDS,
        notes=notes,
        compare=next((r for r in FIELD_RULES if r.name == fd.name), None),
    )
