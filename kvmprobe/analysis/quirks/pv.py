"""KVM's paravirtual leaf 0x40000001: features tied to the in-kernel LAPIC, to exits the VMM
disables, and bits only the VMM can decide."""

from __future__ import annotations

from kvmprobe.analysis.cpuid import Loc, feature_loc
from kvmprobe.analysis.quirks import citations as cite
from kvmprobe.analysis.quirks.common import always, in_kgsc, irq, userspace_lapic, yn
from kvmprobe.analysis.quirks.engine import Ctx, Quirk
from kvmprobe.tables.caps_data import (
    KVM_CAP_EXIT_HYPERCALL,
    KVM_CAP_X86_DISABLE_EXITS,
    KVM_HC_MAP_GPA_RANGE,
)
from kvmprobe.vocab import DisableExit, Irqchip, QuirkEffect

PV_UNHALT = feature_loc("KVM_FEATURE_PV_UNHALT")
ASYNC_PF = feature_loc("KVM_FEATURE_ASYNC_PF")
ASYNC_PF_VMEXIT = feature_loc("KVM_FEATURE_ASYNC_PF_VMEXIT")
ASYNC_PF_INT = feature_loc("KVM_FEATURE_ASYNC_PF_INT")
STEAL_TIME = feature_loc("KVM_FEATURE_STEAL_TIME")
MSI_EXT_DEST_ID = feature_loc("KVM_FEATURE_MSI_EXT_DEST_ID")
HC_MAP_GPA_RANGE = feature_loc("KVM_FEATURE_HC_MAP_GPA_RANGE")
MIGRATION_CONTROL = feature_loc("KVM_FEATURE_MIGRATION_CONTROL")
HINTS_REALTIME = feature_loc("KVM_HINTS_REALTIME")


PV_UNHALT_NEEDS_LAPIC = Quirk(
    id="pv-unhalt-needs-lapic",
    bits=(PV_UNHALT,),
    effect=QuirkEffect.REMOVE,
    when="the LAPIC is emulated in userspace",
    reason="PV spinlock kicks (PV_UNHALT) are delivered by KVM's in-kernel LAPIC, which a "
    "userspace irqchip does not have",
    citation=(cite.API_PROBLEMS, cite.QEMU_KVM),
    test=userspace_lapic,
    catalogue="pv-unhalt-needs-lapic",
)

ASYNC_PF_NEEDS_LAPIC = Quirk(
    id="async-pf-needs-lapic",
    bits=(ASYNC_PF, ASYNC_PF_VMEXIT, ASYNC_PF_INT),
    effect=QuirkEffect.REMOVE,
    when="the LAPIC is emulated in userspace",
    reason="KVM refuses to enable asynchronous page faults (MSR_KVM_ASYNC_PF_EN, _INT) without "
    "its in-kernel LAPIC; a guest that tries fails (QEMU 7.2 still offers it and its "
    "userspace-irqchip VMs abort writing MSR 0x4b564d06)",
    citation=(cite.LINUX_ASYNC_PF,),
    test=userspace_lapic,
    catalogue="(new) async-pf-needs-lapic",
)


def hlt_exits_disabled(c: Ctx, loc: Loc) -> tuple[bool, str]:
    asked = DisableExit.HLT in c.opts.disable_exits
    allowed = c.exit_allowed(DisableExit.HLT)
    return (
        asked and allowed and c.kvm(loc),
        f"HLT exits disabled by the set-up: {yn(asked)}; KVM_CAP_X86_DISABLE_EXITS="
        f"{c.cap(KVM_CAP_X86_DISABLE_EXITS):#x} (HLT allowed: {yn(allowed)})",
    )


PV_UNHALT_VS_HLT_EXITS = Quirk(
    id="pv-unhalt-vs-hlt-exits",
    bits=(PV_UNHALT,),
    effect=QuirkEffect.REMOVE,
    when="the set-up disables HLT exits (--disable-exits hlt) and KVM allows it",
    reason="with HLT exits disabled a halted vCPU is never woken by a PV kick, so PV_UNHALT "
    "must not be offered (KVM also clears it when such CPUID is set, since v6.14)",
    citation=(cite.API_7_13,),
    test=hlt_exits_disabled,
    catalogue="pv-unhalt-vs-hlt-exits",
)


def split_irqchip(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return c.opts.irqchip is Irqchip.SPLIT, irq(c)


MSI_EXT_DEST_ID_SPLIT = Quirk(
    id="msi-ext-dest-id-split",
    bits=(MSI_EXT_DEST_ID,),
    effect=QuirkEffect.OPT_IN,
    when="split irqchip",
    reason="the VMM's own IOAPIC and MSI routing can take 15-bit destination IDs; the VMM "
    "decides, KVM never reports it (QEMU: kvm-msi-ext-dest-id)",
    citation=(cite.CPUID_RST, cite.QEMU_KVM, cite.CH_ARCH),
    test=split_irqchip,
    catalogue="msi-ext-dest-id",
)


def not_split_irqchip(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return c.opts.irqchip is not Irqchip.SPLIT, irq(c)


MSI_EXT_DEST_ID_NOT_SPLIT = Quirk(
    id="msi-ext-dest-id-not-split",
    bits=(MSI_EXT_DEST_ID,),
    effect=QuirkEffect.NOTE,
    when="irqchip is not split",
    reason="only meaningful when the VMM emulates the IOAPIC (split irqchip); KVM's in-kernel "
    "IOAPIC does not support it",
    citation=(cite.QEMU_KVM,),
    test=not_split_irqchip,
    catalogue="msi-ext-dest-id",
)

KVM_HINTS_REALTIME = Quirk(
    id="kvm-hints-realtime",
    bits=(HINTS_REALTIME,),
    effect=QuirkEffect.OPT_IN,
    when="always",
    reason="a promise the VMM makes (vCPUs pinned to dedicated physical CPUs, never "
    "preempted); KVM leaves 0x40000001.EDX empty (QEMU: kvm-hint-dedicated)",
    citation=(cite.CPUID_RST, cite.QEMU_KVM),
    test=always,
    catalogue="kvm-hints-realtime",
)


def exit_hypercall_forwards_map_gpa(c: Ctx, loc: Loc) -> tuple[bool, str]:
    v = c.cap(KVM_CAP_EXIT_HYPERCALL)
    ok = bool(v >> KVM_HC_MAP_GPA_RANGE & 1) and not c.kvm(loc)
    return ok, f"KVM_CAP_EXIT_HYPERCALL={v:#x} (KVM_HC_MAP_GPA_RANGE forwardable: {yn(ok)})"


KVM_HC_MAP_GPA_RANGE_OPT_IN = Quirk(
    id="kvm-hc-map-gpa-range",
    bits=(HC_MAP_GPA_RANGE,),
    effect=QuirkEffect.OPT_IN,
    when="KVM_CAP_EXIT_HYPERCALL can forward KVM_HC_MAP_GPA_RANGE",
    reason="the VMM must enable KVM_CAP_EXIT_HYPERCALL and handle the hypercall itself; KVM "
    "never reports the bit",
    citation=(cite.API_EXIT_HC, cite.CPUID_RST),
    test=exit_hypercall_forwards_map_gpa,
    catalogue="kvm-pv-leaf-contents",
)

KVM_MIGRATION_CONTROL = Quirk(
    id="kvm-migration-control",
    bits=(MIGRATION_CONTROL,),
    effect=QuirkEffect.NOTE,
    when="always",
    reason="a VMM-provided MSR for encrypted-guest live migration; KVM never reports the bit",
    citation=(cite.CPUID_RST,),
    test=always,
    catalogue="kvm-pv-leaf-contents",
)


def steal_time_missing(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return not c.kvm(loc), (
        f"{in_kgsc(c, loc)} (KVM reports it only when the host keeps scheduler statistics)"
    )


KVM_STEAL_TIME_MISSING = Quirk(
    id="kvm-steal-time-missing",
    bits=(STEAL_TIME,),
    effect=QuirkEffect.NOTE,
    when="not in KVM_GET_SUPPORTED_CPUID",
    reason="KVM offers steal time only when the host kernel keeps scheduler run-delay statistics",
    citation=(cite.CPUID_RST,),
    test=steal_time_missing,
    catalogue="kvm-pv-leaf-contents",
)

QUIRKS: tuple[Quirk, ...] = (
    PV_UNHALT_NEEDS_LAPIC,
    ASYNC_PF_NEEDS_LAPIC,
    PV_UNHALT_VS_HLT_EXITS,
    MSI_EXT_DEST_ID_SPLIT,
    MSI_EXT_DEST_ID_NOT_SPLIT,
    KVM_HINTS_REALTIME,
    KVM_HC_MAP_GPA_RANGE_OPT_IN,
    KVM_MIGRATION_CONTROL,
    KVM_STEAL_TIME_MISSING,
)
