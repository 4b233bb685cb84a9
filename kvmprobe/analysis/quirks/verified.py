"""Records whose evidence is kvmprobe's own: what a real vCPU refused of KVM's advertisement
(the snapshot's ``verification`` facts, ``kvmprobe.analysis.verify``).

KVM can advertise a feature MSR value that a vCPU then refuses. On our AMD hosts system-fd
KVM_GET_MSRS reports IA32_ARCH_CAPABILITIES = 0x400000000c000069, yet KVM_SET_MSRS on a vCPU
(after KVM_SET_CPUID2 with the whole supported table) takes only 0. A documented cause of the
same picture: on AMD, from 1eaafe91a0df (v4.17) KVM reported ARCH_CAPABILITIES for every host
while only its VMX code handled the MSR; 0cf9135b773b (v5.1) moved the handling to common code.
kvmprobe does not compare kernel versions: it tries the value and reads the answer.

A snapshot without verification (format 1) cannot tell, so what these records decide is
unknown there, with the missing step named (the engine's unknown machinery).
"""

from __future__ import annotations

from kvmprobe.analysis.cpuid import Loc, feature_loc
from kvmprobe.analysis.quirks import citations as cite
from kvmprobe.analysis.quirks.common import in_kgsc
from kvmprobe.analysis.quirks.engine import Ctx, Quirk
from kvmprobe.tables.msr_data import MSR_IA32_ARCH_CAPABILITIES
from kvmprobe.vocab import QuirkEffect

ARCH_CAPABILITIES = feature_loc("X86_FEATURE_ARCH_CAPABILITIES")


def arch_caps_all_refused(c: Ctx, loc: Loc) -> tuple[bool, str]:
    """KVM reports the CPUID bit and a non-zero ARCH_CAPABILITIES value, and a vCPU refused
    every bit of that value."""
    from kvmprobe.analysis.verify import attempt_text, msr_attempt, verification

    head = in_kgsc(c, loc)
    if not c.kvm(loc):
        return False, head
    index = int(MSR_IA32_ARCH_CAPABILITIES)
    value = c.feature_msr(index)
    if value is None:
        return False, f"{head}; MSR {index:#x} in KVM_GET_MSR_FEATURE_INDEX_LIST: no"
    if value == 0:
        return False, f"{head}; KVM advertises {index:#x} = 0: nothing a vCPU could refuse"
    refused = c.msr_refused(index)
    attempt = msr_attempt(verification(c.snap), index)
    evidence = f"{head}; advertised {index:#x} = {value:#x}"
    if attempt is not None:
        evidence += f"; {attempt_text(attempt)}"
    return refused & value == value, evidence


ARCH_CAPABILITIES_REFUSED = Quirk(
    id="arch-capabilities-refused",
    bits=(ARCH_CAPABILITIES,),
    effect=QuirkEffect.REMOVE,
    when=f"KVM advertises MSR {int(MSR_IA32_ARCH_CAPABILITIES):#x} with bits set, and "
    "KVM_SET_MSRS on a vCPU refused every one of them",
    reason="advertised in the feature MSR, refused by KVM_SET_MSRS on a vCPU: a VMM that sets "
    "the advertised value stops at start-up (QEMU -cpu host aborts) and the only value a vCPU "
    "takes, 0, tells a guest of no immunity; start without it (-cpu host,-arch-capabilities)",
    citation=(cite.VERIFY, cite.COMMIT_ARCH_CAP, cite.COMMIT_ARCH_CAP_ALWAYS),
    test=arch_caps_all_refused,
    catalogue="arch-capabilities-refused",
)

QUIRKS: tuple[Quirk, ...] = (ARCH_CAPABILITIES_REFUSED,)
