"""Host CPU errata and hints: inverted bits, performance hints KVM filters, broken TSX, and an
old kernel's false ARCH_CAPABILITIES."""

from __future__ import annotations

from kvmprobe.analysis.cpuid import Loc, family_model_stepping, feature_loc
from kvmprobe.analysis.quirks import citations as cite
from kvmprobe.analysis.quirks.common import always, in_kgsc, yn
from kvmprobe.analysis.quirks.engine import Ctx, Quirk
from kvmprobe.vocab import QuirkEffect, Vendor

FDP_EXCPTN_ONLY = feature_loc("X86_FEATURE_FDP_EXCPTN_ONLY")
ZERO_FCS_FDS = feature_loc("X86_FEATURE_ZERO_FCS_FDS")
ERMS = feature_loc("X86_FEATURE_ERMS")
FSRM = feature_loc("X86_FEATURE_FSRM")
FZRM = feature_loc("X86_FEATURE_FZRM")
FSRS = feature_loc("X86_FEATURE_FSRS")
FSRC = feature_loc("X86_FEATURE_FSRC")
MCDT_NO = feature_loc("X86_FEATURE_MCDT_NO")
HLE = feature_loc("X86_FEATURE_HLE")
RTM = feature_loc("X86_FEATURE_RTM")
ARCH_CAPABILITIES = feature_loc("X86_FEATURE_ARCH_CAPABILITIES")

#: The IA32_ARCH_CAPABILITIES MSR index (Intel SDM vol. 4; Linux msr-index.h). Kept here, its
#: one home, until kvmprobe has a generated MSR table.
MSR_IA32_ARCH_CAPABILITIES = 0x10A


X87_INVERTED = Quirk(
    id="x87-inverted",
    bits=(FDP_EXCPTN_ONLY, ZERO_FCS_FDS),
    effect=QuirkEffect.NOTE,
    when="always",
    reason="inverted bits: set means the legacy x87 behaviour is gone; clearing them in guest "
    "CPUID cannot bring it back, so VMMs should pass them set",
    citation=(cite.ERRATA_RST, cite.FC_INTEL),
    test=always,
    vendor=Vendor.INTEL,
    catalogue="x87-inverted",
)


def host_has_kvm_lacks(c: Ctx, loc: Loc) -> tuple[bool, str]:
    h = c.host_has(loc)
    return (
        bool(h) and not c.kvm(loc),
        f"{in_kgsc(c, loc)}; host CPUID has it: {yn(h)}",
    )


FAST_STRING_PASSTHROUGH = Quirk(
    id="fast-string-passthrough",
    bits=(ERMS, FSRM, FZRM, FSRS, FSRC, MCDT_NO),
    effect=QuirkEffect.ADD,
    when="the host CPU has it and KVM_GET_SUPPORTED_CPUID does not",
    reason="a performance hint, not a new instruction: safe to pass through from the host "
    "(older kernels filter it; FZRM/FSRS/FSRC are reported since 6.3)",
    citation=(cite.QEMU_KVM,),
    test=host_has_kvm_lacks,
    catalogue="fast-string-passthrough",
)


def tsx_broken(c: Ctx, loc: Loc) -> tuple[bool, str]:
    fms = family_model_stepping(c.kgsc)
    if fms is None or c.vendor is not Vendor.INTEL:
        return False, f"vendor {c.vendor.display}; family/model in KVM's leaf 1: {fms}"
    fam, model, step = fms
    broken = fam == 6 and (model in (60, 69, 70) or (model == 63 and step < 4))
    return broken and c.kvm(loc), f"Intel family {fam} model {model} stepping {step}"


TSX_BROKEN = Quirk(
    id="tsx-broken",
    bits=(HLE, RTM),
    effect=QuirkEffect.REMOVE,
    when="Intel Haswell with broken TSX (family 6 model 60/69/70, or 63 stepping < 4)",
    reason="TSX is unreliable on these parts; QEMU hides HLE/RTM from guests there",
    citation=(cite.QEMU_TSX,),
    test=tsx_broken,
    vendor=Vendor.INTEL,
    catalogue="tsx-broken",
)


def arch_cap_msr_missing(c: Ctx, loc: Loc) -> tuple[bool, str]:
    known = c.msr_lists()
    in_lists = any(MSR_IA32_ARCH_CAPABILITIES in x for x in known)
    return (
        c.kvm(loc) and bool(known) and not in_lists,
        f"{in_kgsc(c, loc)}; MSR {MSR_IA32_ARCH_CAPABILITIES:#x} in KVM's MSR lists: "
        f"{yn(in_lists if known else None)}",
    )


ARCH_CAPABILITIES_SVM = Quirk(
    id="arch-capabilities-svm",
    bits=(ARCH_CAPABILITIES,),
    effect=QuirkEffect.REMOVE,
    when="reported in KVM_GET_SUPPORTED_CPUID but MSR "
    f"{MSR_IA32_ARCH_CAPABILITIES:#x} is in neither of KVM's MSR lists",
    reason="Linux 4.17-4.20 reported ARCH_CAPABILITIES on AMD without emulating the MSR",
    citation=(cite.COMMIT_ARCH_CAP, cite.QEMU_KVM),
    test=arch_cap_msr_missing,
    vendor=Vendor.AMD,
    catalogue="arch-capabilities-svm",
)

QUIRKS: tuple[Quirk, ...] = (
    X87_INVERTED,
    FAST_STRING_PASSTHROUGH,
    TSX_BROKEN,
    ARCH_CAPABILITIES_SVM,
)
