"""XSAVE state: AMX, which a VMM must ask permission for, and the bits KVM computes at run
time from the guest's own control registers (OSXSAVE, OSPKE, APIC)."""

from __future__ import annotations

from kvmprobe.analysis.cpuid import Loc, feature_loc, xcr0_component, xcr0_mask
from kvmprobe.analysis.quirks import citations as cite
from kvmprobe.analysis.quirks.common import always, hex_or_unknown, in_kgsc
from kvmprobe.analysis.quirks.engine import Ctx, Quirk
from kvmprobe.tables.caps_data import KVM_X86_GRP_SYSTEM, KVM_X86_XCOMP_GUEST_SUPP
from kvmprobe.vocab import QuirkEffect, Vendor

AMX_TILE = feature_loc("X86_FEATURE_AMX_TILE")
AMX_BF16 = feature_loc("X86_FEATURE_AMX_BF16")
AMX_INT8 = feature_loc("X86_FEATURE_AMX_INT8")
OSXSAVE = feature_loc("X86_FEATURE_OSXSAVE")
OSPKE = feature_loc("X86_FEATURE_OSPKE")
APIC = feature_loc("X86_FEATURE_APIC")

#: XSAVE state components of AMX, from the XCR0 rows of the generated table (leaf 0xD.0).
XTILECFG = xcr0_component("xcr0_tileconfig")
XTILEDATA = xcr0_component("xcr0_tiledata")


def xcomp_guest_supp(c: Ctx) -> int | None:
    """KVM_GET_DEVICE_ATTR(KVM_X86_GRP_SYSTEM, KVM_X86_XCOMP_GUEST_SUPP) on /dev/kvm: the
    XSAVE components a guest may have, whatever this process was permitted."""
    return c.attr(KVM_X86_GRP_SYSTEM, KVM_X86_XCOMP_GUEST_SUPP)


def amx_not_permitted(c: Ctx, loc: Loc) -> tuple[bool, str]:
    supp, kg = xcomp_guest_supp(c), xcr0_mask(c.kgsc)
    amx = (1 << XTILECFG) | (1 << XTILEDATA)
    ok = supp is not None and bool(supp & amx) and not c.kvm(loc)
    perm = c.snap.xcomp.get("guest_perm_after")
    return ok, (
        f"KVM_X86_XCOMP_GUEST_SUPP={hex_or_unknown(supp)}; "
        f"XCR0 mask in KVM's 0xD.0={hex_or_unknown(kg)}; "
        f"guest permission of the probing process={hex_or_unknown(perm)}"
    )


AMX_NEEDS_PERMISSION = Quirk(
    id="amx-needs-permission",
    bits=(AMX_TILE, AMX_BF16, AMX_INT8),
    effect=QuirkEffect.OPT_IN,
    when="KVM_X86_XCOMP_GUEST_SUPP has AMX but KVM_GET_SUPPORTED_CPUID for this process does not",
    reason="AMX state is dynamically enabled: the VMM must call arch_prctl(ARCH_REQ_XCOMP_"
    "GUEST_PERM) before creating vCPUs, or KVM hides it",
    citation=(cite.API_4_46, cite.FC_XSTATE),
    test=amx_not_permitted,
    vendor=Vendor.INTEL,
    catalogue="xsave-dynamic",
)


def amx_permitted(c: Ctx, loc: Loc) -> tuple[bool, str]:
    supp = xcomp_guest_supp(c)
    return c.kvm(loc), f"{in_kgsc(c, loc)}; KVM_X86_XCOMP_GUEST_SUPP={hex_or_unknown(supp)}"


AMX_PERMISSION_REQUESTED = Quirk(
    id="amx-permission-requested",
    bits=(AMX_TILE, AMX_BF16, AMX_INT8),
    effect=QuirkEffect.NOTE,
    when="reported in KVM_GET_SUPPORTED_CPUID",
    reason="reported because kvmprobe asked for guest AMX permission first, as a VMM must",
    citation=(cite.API_4_46,),
    test=amx_permitted,
    vendor=Vendor.INTEL,
    catalogue="xsave-dynamic",
)

XSAVE_RUNTIME_OSXSAVE = Quirk(
    id="xsave-runtime-osxsave",
    bits=(OSXSAVE, OSPKE),
    effect=QuirkEffect.RUNTIME,
    when="always",
    reason="KVM sets it at run time from the guest's own CR4 (OSXSAVE, PKE); a VMM does not "
    "offer it",
    citation=(cite.API_4_46,),
    test=always,
    effective=False,
    catalogue="xsave-runtime",
)

APIC_RUNTIME = Quirk(
    id="apic-runtime",
    bits=(APIC,),
    effect=QuirkEffect.RUNTIME,
    when="always",
    reason="KVM clears it at run time while the guest has its APIC disabled in APIC_BASE",
    citation=(cite.API_4_46,),
    test=always,
    catalogue="xsave-runtime",
)

QUIRKS: tuple[Quirk, ...] = (
    AMX_NEEDS_PERMISSION,
    AMX_PERMISSION_REQUESTED,
    XSAVE_RUNTIME_OSXSAVE,
    APIC_RUNTIME,
)
