"""Catalogue rows about whole leaves or fields (shown as notes), and rows that concern MSRs or
capability semantics rather than CPUID (kept, marked not-applicable, so the catalogue stays
complete)."""

from __future__ import annotations

from kvmprobe.analysis.cpuid import feature_loc
from kvmprobe.analysis.quirks import citations as cite
from kvmprobe.analysis.quirks.common import yn
from kvmprobe.analysis.quirks.engine import Ctx, LeafQuirk
from kvmprobe.analysis.quirks.xsave import XTILECFG, XTILEDATA
from kvmprobe.tables.caps_data import KVM_CAP_PMU_CAPABILITY
from kvmprobe.vocab import QuirkEffect

AVX10 = feature_loc("X86_FEATURE_AVX10")


def topology_state(c: Ctx) -> tuple[bool, str]:
    e = c.kgsc.entry(0xB, 0)
    if e is None:
        return True, "leaf 0xB not in KVM_GET_SUPPORTED_CPUID"
    zero = e.eax == 0 and e.ebx == 0 and e.ecx == 0
    return True, (
        "KVM's 0xB.0 EAX/EBX/ECX are zero: the kernel hides the host topology"
        if zero
        else "KVM's 0xB.0 carries the host's topology (an old kernel): do not pass it through"
    )


TOPOLOGY_LEAVES = LeafQuirk(
    id="topology-leaves",
    leaves=(0xB, 0x1F, 0x8000001E),
    effect=QuirkEffect.VMM_BUILDS,
    reason="KVM returns no usable topology: the VMM must fill in x2APIC IDs and core/thread "
    "counts per vCPU",
    citation=(cite.API_PROBLEMS, cite.COMMIT_TOPOLOGY, cite.FC_NORMALIZE, cite.CH_ARCH),
    test=topology_state,
    catalogue="topology-leaves",
)

CACHE_LEAVES = LeafQuirk(
    id="cache-leaves",
    leaves=(0x80000005, 0x80000006),
    effect=QuirkEffect.NOTE,
    reason="passed from the host; some VMMs copy host values when KVM returns zeros",
    citation=(cite.FC_NORMALIZE, cite.CH_ARCH),
    catalogue="cache-leaves",
)

LAPIC_TIMER_FREQ = LeafQuirk(
    id="lapic-timer-freq",
    leaves=(0x40000010,),
    effect=QuirkEffect.VMM_BUILDS,
    reason="the timing leaf (TSC and APIC bus kHz) is not produced by KVM; a VMM may build it "
    "(KVM's APIC bus runs at 1 GHz unless KVM_CAP_X86_APIC_BUS_CYCLES_NS changes it)",
    citation=(cite.CH_ARCH,),
    catalogue="lapic-timer-freq",
)


def avx10_state(c: Ctx) -> tuple[bool, str]:
    k = (c.kgsc.reg(0x24, 0, "ebx") or 0) & 0xFF
    h = None if c.host is None else (c.host.reg(0x24, 0, "ebx") or 0) & 0xFF
    return c.kvm(AVX10), f"AVX10 version: KVM {k}, host {h if h is not None else '?'}"


AVX10_VERSION = LeafQuirk(
    id="avx10-version",
    leaves=(0x24,),
    effect=QuirkEffect.NOTE,
    reason="take the AVX10 version from KVM, not the host: KVM caps it at what it supports",
    citation=(cite.QEMU_KVM,),
    test=avx10_state,
    catalogue="avx10",
)


def pmu_state(c: Ctx) -> tuple[bool, str]:
    eax = c.kgsc.reg(0xA, 0, "eax") or 0
    cap = c.cap(KVM_CAP_PMU_CAPABILITY)
    return True, f"KVM's 0xA.0.eax={eax:#x}, PMU version {eax & 0xFF}; KVM_CAP_PMU_CAPABILITY={cap}"


PMU_LEAF = LeafQuirk(
    id="pmu-leaf",
    leaves=(0xA,),
    effect=QuirkEffect.NOTE,
    reason="synthesised from KVM's vPMU; all zero when kvm.enable_pmu is off; a VM can also "
    "turn it off with KVM_CAP_PMU_CAPABILITY",
    citation=(cite.FC_NORMALIZE,),
    test=pmu_state,
    catalogue="pmu",
)


def guest_phys_bits(c: Ctx) -> tuple[bool, str]:
    eax = c.kgsc.reg(0x80000008, 0, "eax")
    if eax is None:
        return False, "leaf 0x80000008 not in KVM_GET_SUPPORTED_CPUID"
    return True, f"PhysAddrSize={eax & 0xFF}, GuestPhysBits={(eax >> 16) & 0xFF}"


GUEST_PHYS_BITS = LeafQuirk(
    id="guest-phys-bits",
    leaves=(0x80000008,),
    effect=QuirkEffect.NOTE,
    reason="EAX[23:16] is the largest guest-physical address KVM can map, which may be smaller "
    "than the physical address width in EAX[7:0]",
    citation=(cite.QEMU_KVM_CPU,),
    test=guest_phys_bits,
    catalogue="guest-phys-bits",
)

LEAF_LIMITS = LeafQuirk(
    id="leaf-limits",
    leaves=(0x0, 0x80000000),
    effect=QuirkEffect.NOTE,
    reason="KVM caps the maximum basic and extended leaves at what it knows",
    citation=(cite.API_4_46, cite.QEMU_KVM),
    catalogue="leaf-limits",
)


def xtilecfg_alone(c: Ctx) -> tuple[bool, str]:
    cfg = c.kgsc.bit(0xD, 0, "eax", XTILECFG)
    data = c.kgsc.bit(0xD, 0, "eax", XTILEDATA)
    return cfg and not data, f"0xD.0.eax XTILECFG={yn(cfg)} XTILEDATA={yn(data)}"


AMX_HALF_ENABLED = LeafQuirk(
    id="amx-half-enabled",
    leaves=(0xD,),
    effect=QuirkEffect.NOTE,
    reason="XTILECFG without XTILEDATA (kernels before 6.4 without permission) makes XSETBV "
    "fault; clear XTILECFG if XTILEDATA is absent",
    citation=(cite.FC_XSTATE,),
    test=xtilecfg_alone,
    catalogue="amx-half-enabled",
)

XSAVE_SIZES_RUNTIME = LeafQuirk(
    id="xsave-sizes-runtime",
    leaves=(0xD,),
    effect=QuirkEffect.NOTE,
    reason="0xD.0 EBX and 0xD.1 EBX (XSAVE area sizes) are recomputed by KVM from the guest's "
    "XCR0/XSS at run time",
    citation=(cite.API_4_46,),
    catalogue="xsave-runtime",
)

ARCH_CAP_FB_CLEAR = LeafQuirk(
    id="arch-cap-fb-clear",
    leaves=(),
    effect=QuirkEffect.NOT_APPLICABLE,
    reason="concerns the IA32_ARCH_CAPABILITIES MSR value (FB_CLEAR), not a CPUID bit; the raw "
    "feature-MSR value is kept in the snapshot",
    citation=(cite.QEMU_KVM,),
    catalogue="arch-cap-fb-clear",
)

VMX_CTLS2_MISSING = LeafQuirk(
    id="vmx-ctls2-missing",
    leaves=(),
    effect=QuirkEffect.NOT_APPLICABLE,
    reason="concerns the VMX control MSRs of nested guests, not a CPUID bit",
    citation=(cite.QEMU_KVM,),
    catalogue="vmx-ctls2-missing",
)

DISABLE_QUIRKS_VS_2 = LeafQuirk(
    id="disable-quirks-vs-2",
    leaves=(),
    effect=QuirkEffect.NOT_APPLICABLE,
    reason="concerns capability semantics (KVM_CAP_DISABLE_QUIRKS2 returns a mask); shown by "
    "'kvmprobe caps disable_quirks'",
    citation=(cite.API_7_31,),
    catalogue="disable-quirks-vs-2",
)

LEAF_QUIRKS: tuple[LeafQuirk, ...] = (
    TOPOLOGY_LEAVES,
    CACHE_LEAVES,
    LAPIC_TIMER_FREQ,
    AVX10_VERSION,
    PMU_LEAF,
    GUEST_PHYS_BITS,
    LEAF_LIMITS,
    AMX_HALF_ENABLED,
    XSAVE_SIZES_RUNTIME,
    ARCH_CAP_FB_CLEAR,
    VMX_CTLS2_MISSING,
    DISABLE_QUIRKS_VS_2,
)
