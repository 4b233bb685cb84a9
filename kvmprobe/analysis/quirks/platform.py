"""Bits the VMM decides or the host platform shapes: the hypervisor bit, legacy leaf-1 bits,
topology and machine-check bits, nested virtualization, emulated instructions, vendor aliases
and the vPMU."""

from __future__ import annotations

from kvmprobe.analysis.cpuid import REGISTERS, Loc, feature_loc, fmt_loc
from kvmprobe.analysis.quirks import citations as cite
from kvmprobe.analysis.quirks.common import always, in_kgsc, not_reported, reported, yn
from kvmprobe.analysis.quirks.engine import Ctx, Quirk
from kvmprobe.vocab import QuirkEffect, Vendor

HYPERVISOR = feature_loc("X86_FEATURE_HYPERVISOR")
TOPOEXT = feature_loc("X86_FEATURE_TOPOEXT")
OVERFLOW_RECOV = feature_loc("X86_FEATURE_OVERFLOW_RECOV")
SUCCOR = feature_loc("X86_FEATURE_SUCCOR")
MOVBE = feature_loc("X86_FEATURE_MOVBE")
RDPID = feature_loc("X86_FEATURE_RDPID")
VMX = feature_loc("X86_FEATURE_VMX")
SVM = feature_loc("X86_FEATURE_SVM")
WAITPKG = feature_loc("X86_FEATURE_WAITPKG")
MCE = feature_loc("X86_FEATURE_MCE")
MTRR = feature_loc("X86_FEATURE_MTRR")
MCA = feature_loc("X86_FEATURE_MCA")
PAT = feature_loc("X86_FEATURE_PAT")
HTT = feature_loc("X86_FEATURE_HT")
PDCM = feature_loc("X86_FEATURE_PDCM")

#: The 0x80000001.EDX bits AMD defines as copies of the same bits of leaf 1 EDX: QEMU's
#: CPUID_EXT2_AMD_ALIASES (target/i386/cpu.h), a QEMU fact kept here once.
AMD_ALIAS_MASK = 0x0183F3FF
_LEAF1_EDX = (0x1, 0, "edx")
_EXT1_EDX = (0x80000001, 0, "edx")  # where AMD repeats them


HYPERVISOR_BIT_LEGACY = Quirk(
    id="hypervisor-bit-legacy",
    bits=(HYPERVISOR,),
    effect=QuirkEffect.ADD,
    when="not in KVM_GET_SUPPORTED_CPUID",
    reason="kernels before 6.14 leave HYPERVISOR out; every VMM sets it, and it is always safe",
    citation=(cite.COMMIT_HYPERVISOR, cite.QEMU_KVM, cite.FC_NORMALIZE, cite.CH_ARCH),
    test=not_reported,
    catalogue="hypervisor-bit",
)

TOPOEXT_VMM_BUILDS = Quirk(
    id="topoext-vmm-builds",
    bits=(TOPOEXT,),
    effect=QuirkEffect.OPT_IN,
    when="AMD host and not in KVM_GET_SUPPORTED_CPUID",
    reason="safe for the VMM to set, provided it builds leaves 0x8000001D/0x8000001E itself "
    "(QEMU always sets it)",
    citation=(cite.QEMU_KVM, cite.CH_ARCH),
    test=not_reported,
    vendor=Vendor.AMD,
    catalogue="topoext",
)

OVERFLOW_RECOV_SUCCOR = Quirk(
    id="overflow-recov-succor",
    bits=(OVERFLOW_RECOV, SUCCOR),
    effect=QuirkEffect.OPT_IN,
    when="not in KVM_GET_SUPPORTED_CPUID",
    reason="machine-check recovery bits a VMM can offer because it injects MCEs itself (QEMU "
    "sets both); KVM zeroes the leaf",
    citation=(cite.QEMU_KVM,),
    test=not_reported,
    vendor=Vendor.AMD,
    catalogue="overflow-recov-succor",
)


def emulated_only(c: Ctx, loc: Loc) -> tuple[bool, str]:
    probed = c.snap.emulated_cpuid is not None
    e = c.emulated(loc)
    shown = yn(e) if probed else ("unknown" if c.emulated_unknown else "not probed")
    return e and not c.kvm(loc), f"KVM_GET_EMULATED_CPUID has it: {shown}; {in_kgsc(c, loc)}"


def emulated_targets(c: Ctx) -> tuple[Loc, ...]:
    """Every bit KVM_GET_EMULATED_CPUID sets, beyond the named MOVBE and RDPID."""
    out: list[Loc] = []
    for e in c.kgec.entries:
        if e.function in (0x0, 0x80000000):  # max-leaf words, not feature bits
            continue
        for reg in REGISTERS:
            v = e.reg(reg)
            out += [(e.function, e.index, reg, b) for b in range(32) if v >> b & 1]
    return tuple(out)


EMULATED_CPUID = Quirk(
    id="emulated-cpuid",
    bits=(MOVBE, RDPID),
    effect=QuirkEffect.EMULATED,
    when="in KVM_GET_EMULATED_CPUID and not in KVM_GET_SUPPORTED_CPUID",
    reason="KVM can emulate the instruction by trapping it: it works, but slowly, so it is "
    "kept out of the supported list",
    citation=(cite.API_4_88,),
    test=emulated_only,
    catalogue="emulated-cpuid",
    targets=emulated_targets,
)


def _nested_param(c: Ctx) -> str:
    p = c.module_param("nested", ("kvm_intel", "kvm_amd", "kvm_pvm"))
    return f"{p[0]}.nested={p[1]}" if p else "no 'nested' module parameter seen"


def nested_offered(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return c.kvm(loc), f"{in_kgsc(c, loc)}; {_nested_param(c)}"


NESTED_VIRT_OFFERED = Quirk(
    id="nested-virt-offered",
    bits=(VMX, SVM),
    effect=QuirkEffect.NOTE,
    when="reported in KVM_GET_SUPPORTED_CPUID",
    reason="offered because the vendor module's 'nested' parameter is on; exposing it commits "
    "the VMM to saving and restoring nested state",
    citation=(cite.API_4_46, cite.CH_ARCH),
    test=nested_offered,
    catalogue="nested-virt-bits",
)


def nested_missing(c: Ctx, loc: Loc) -> tuple[bool, str]:
    vendor_bit = (loc == VMX and c.vendor is Vendor.INTEL) or (
        loc == SVM and c.vendor is Vendor.AMD
    )
    return (not c.kvm(loc) and vendor_bit), (
        f"{in_kgsc(c, loc)}; vendor {c.vendor.display}; {_nested_param(c)}"
    )


NESTED_VIRT_MISSING = Quirk(
    id="nested-virt-missing",
    bits=(VMX, SVM),
    effect=QuirkEffect.NOTE,
    when="the host vendor's bit is not reported",
    reason="guests get no nested virtualization: enable the vendor module's 'nested' parameter",
    citation=(cite.API_4_46,),
    test=nested_missing,
    catalogue="nested-virt-bits",
)

WAITPKG_OPT_IN = Quirk(
    id="waitpkg-opt-in",
    bits=(WAITPKG,),
    effect=QuirkEffect.OPT_IN,
    when="reported in KVM_GET_SUPPORTED_CPUID",
    reason="UMWAIT/TPAUSE let the guest park the physical CPU; offer it only when vCPUs own "
    "their CPUs (QEMU adds it only with -overcommit cpu-pm=on, Firecracker never)",
    citation=(cite.QEMU_KVM_CPU, cite.FC_INTEL),
    test=reported,
    vendor=Vendor.INTEL,
    catalogue="waitpkg",
)

LEGACY_1EDX = Quirk(
    id="legacy-1edx",
    bits=(MCE, MTRR, MCA, PAT),
    effect=QuirkEffect.ADD,
    when="not in KVM_GET_SUPPORTED_CPUID",
    reason="kernels before 2.6.30 under-reported these; VMMs set them regardless",
    citation=(cite.QEMU_KVM,),
    test=not_reported,
    catalogue="legacy-1edx",
)

HTT_VMM_DECIDES = Quirk(
    id="htt-vmm-decides",
    bits=(HTT,),
    effect=QuirkEffect.OPT_IN,
    when="always",
    reason="KVM never reports HTT; the VMM sets it when the guest has more than one vCPU",
    citation=(cite.QEMU_KVM, cite.FC_NORMALIZE),
    test=always,
    catalogue="legacy-1edx",
)


def amd_alias_missing(c: Ctx, loc: Loc) -> tuple[bool, str]:
    base: Loc = (*_LEAF1_EDX, loc[3])
    ok = c.vendor is Vendor.INTEL and not c.kvm(loc) and c.kvm(base)
    return ok, f"vendor {c.vendor.display}; {in_kgsc(c, loc)}; {fmt_loc(*base)}: {yn(c.kvm(base))}"


AMD_ALIASES = Quirk(
    id="amd-aliases",
    bits=tuple((*_EXT1_EDX, b) for b in range(32) if AMD_ALIAS_MASK >> b & 1),
    effect=QuirkEffect.NOTE,
    when="Intel host, bit absent here but present in 1.EDX",
    reason="AMD repeats these 1.EDX bits here; a VMM presenting an AMD-style CPUID on an Intel "
    "host copies them from 1.EDX",
    citation=(cite.QEMU_KVM, cite.QEMU_CPU_H),
    test=amd_alias_missing,
    vendor=Vendor.INTEL,
    catalogue="amd-aliases",
)


def pmu_off(c: Ctx, loc: Loc) -> tuple[bool, str]:
    version = (c.kgsc.reg(0xA, 0, "eax") or 0) & 0xFF
    p = c.module_param("enable_pmu", ("kvm",))
    ps = f"; kvm.enable_pmu={p[1]}" if p else ""
    return c.vendor is Vendor.INTEL and version == 0 and c.kvm(loc), (
        f"vendor {c.vendor.display}; PMU version in KVM's 0xA.0.eax={version}{ps}"
    )


PMU_OFF = Quirk(
    id="pmu-off",
    bits=(PDCM,),
    effect=QuirkEffect.NOTE,
    when="Intel host whose leaf 0xA in KVM_GET_SUPPORTED_CPUID reports no PMU",
    reason="no vPMU for guests (kvm.enable_pmu=N or no architectural PMU on the host): PDCM "
    "points at an MSR the guest cannot use",
    citation=(cite.FC_NORMALIZE,),
    test=pmu_off,
    vendor=Vendor.INTEL,
    catalogue="pmu",
)

QUIRKS: tuple[Quirk, ...] = (
    HYPERVISOR_BIT_LEGACY,
    TOPOEXT_VMM_BUILDS,
    OVERFLOW_RECOV_SUCCOR,
    EMULATED_CPUID,
    NESTED_VIRT_OFFERED,
    NESTED_VIRT_MISSING,
    WAITPKG_OPT_IN,
    LEGACY_1EDX,
    HTT_VMM_DECIDES,
    AMD_ALIASES,
    PMU_OFF,
)
