"""Feature-MSR bits as features: ``mds-no``, ``rdctl-no``, ``vmx-ept`` and friends, asked for
by their Linux, QEMU, libvirt or /proc/cpuinfo names wherever kvmprobe takes a feature name.

A bit is effectively given to a guest when KVM lists its MSR in
KVM_GET_MSR_FEATURE_INDEX_LIST, reports it set (system-fd KVM_GET_MSRS), and a vCPU takes it
(kvmprobe's verification, ``analysis.verify``): a refused bit is never effective, and without
verification (a format-1 snapshot) the answer is unknown. The answer is
``compare.msr_bit_answer``'s, the one ``--require``, ``diff`` and ``baseline`` use; this module
adds the story ``cpuid --explain`` tells (the value, the attempt, the CPUID bit that
announces the MSR and the quirks that touched it) and the bits the exports speak of.

Pure: no I/O.
"""

from __future__ import annotations

from kvmprobe.analysis.answers import Answer
from kvmprobe.analysis.msr import BitRef, MsrBit, layout_rows, lookup_bit, msr_name
from kvmprobe.analysis.profile import MsrFacts, msr_facts
from kvmprobe.frozen import frozen
from kvmprobe.tables import msr_data as T
from kvmprobe.vocab import MsrLayoutKind, Offered

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.effective import CpuidAnalysis, FeatureResult
    from kvmprobe.snapshot import SetAttempt

#: the CPUID feature that tells a guest the MSR exists (Intel SDM vol. 4, the MSR's
#: "enumeration" column: IA32_ARCH_CAPABILITIES by CPUID.(EAX=7,ECX=0):EDX[29],
#: IA32_PERF_CAPABILITIES by CPUID.1:ECX[15] PDCM); a guest reads the MSR only when it is set
ANNOUNCED_BY: dict[int, str] = {
    int(T.MSR_IA32_ARCH_CAPABILITIES): "X86_FEATURE_ARCH_CAPABILITIES",
    int(T.MSR_IA32_PERF_CAPABILITIES): "X86_FEATURE_PDCM",
}


@frozen
class MsrBitResult:
    """One feature-MSR bit on one host: what KVM advertises, what a vCPU took, the answer."""

    ref: BitRef
    #: the MSR KVM lists that carries the bit (the first of ``ref.msrs``), None when none
    index: int | None
    #: KVM's value of that MSR (None: not listed, or not read)
    advertised: int | None
    answer: Answer
    why: str
    #: the verification's KVM_SET_MSRS attempt for the MSR, None when there was none
    attempt: SetAttempt | None = None
    #: the CPUID feature announcing the MSR, as the analysis has it (None: no such row)
    announced_by: FeatureResult | None = None
    #: KVM's feature-MSR list was read (so an MSR missing from it is a known "no")
    list_known: bool = False

    @property
    def bit(self) -> MsrBit:
        return self.ref.bit

    @property
    def set_in_advertised(self) -> bool | None:
        """Whether KVM's value has the bit set (None: the value is unknown; False too when KVM
        does not list the MSR at all)."""
        if self.advertised is None:
            return False if self.index is None and self.list_known else None
        return bool(self.advertised & self.ref.bit.mask)

    @property
    def effective(self) -> bool | None:
        """A guest is given it (None: unknown)."""
        if self.answer.offered is Offered.UNKNOWN:
            return None
        return self.answer.yes

    @property
    def msr_label(self) -> str:
        index = self.index if self.index is not None else (self.ref.msrs or (None,))[0]
        if index is None:
            return "a feature MSR"
        return f"{index:#x} {msr_name(index)[0]}"


def lookup(name: str) -> tuple[BitRef, ...]:
    """The feature-MSR bits ``name`` names (Linux, QEMU, libvirt or /proc/cpuinfo spelling)."""
    return lookup_bit(name)


def bit_result(a: CpuidAnalysis, ref: BitRef, facts: MsrFacts | None = None) -> MsrBitResult:
    """One bit's answer and story on the analysed host."""
    from kvmprobe.analysis.compare import msr_bit_answer
    from kvmprobe.analysis.cpuid import feature_loc
    from kvmprobe.analysis.verify import msr_attempt, verification

    snap = a.snap
    facts = facts or msr_facts(snap)
    answer, why = msr_bit_answer(ref, facts)
    listed = [i for i in ref.msrs if facts.feature_list is not None and i in facts.feature_list]
    index = listed[0] if listed else None
    advertised = None if index is None else facts.value(index)
    attempt = None if index is None else msr_attempt(verification(snap), index)
    announced = None
    for i in ref.msrs:
        kernel = ANNOUNCED_BY.get(i)
        if kernel is not None:
            loc = feature_loc(kernel)
            announced = next((r for r in a.features if r.feature.loc == loc), None)
            break
    return MsrBitResult(
        ref, index, advertised, answer, why, attempt, announced, facts.feature_list is not None
    )


def advertised_bits(a: CpuidAnalysis) -> tuple[MsrBitResult, ...]:
    """Every named single bit of a plain-bits feature MSR (ARCH_CAPABILITIES,
    PERF_CAPABILITIES...) that KVM reports set, with its answer: what a VMM copying KVM's
    advertisement would give a guest, and whether it really can."""
    facts = msr_facts(a.snap)
    return tuple(bit_result(a, ref, facts) for ref in advertised_refs(facts))


def advertised_refs(facts: MsrFacts) -> tuple[BitRef, ...]:
    """The bits ``advertised_bits`` answers: every named single bit of a plain-bits feature
    MSR that KVM lists and reports set, each with that one MSR."""
    out: list[BitRef] = []
    for index, value in facts.values:
        if facts.feature_list is None or index not in facts.feature_list:
            continue
        layout = T.MSR_LAYOUT.get(index)
        if layout is None or MsrLayoutKind(T.LAYOUT_KIND[layout]) is not MsrLayoutKind.BITS:
            continue
        for row in layout_rows(layout):
            if row.lo == row.hi and value >> row.lo & 1:
                out.append(BitRef(row, (index,)))
    return tuple(out)
