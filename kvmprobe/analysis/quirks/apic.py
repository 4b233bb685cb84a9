"""The local APIC and its timers: what only KVM's in-kernel LAPIC can give a guest."""

from __future__ import annotations

from kvmprobe.analysis.cpuid import Loc, feature_loc
from kvmprobe.analysis.quirks import citations as cite
from kvmprobe.analysis.quirks.common import (
    in_kgsc,
    irq,
    not_reported,
    reported,
    userspace_lapic,
    yn,
)
from kvmprobe.analysis.quirks.engine import Ctx, Quirk
from kvmprobe.tables.caps_data import KVM_CAP_TSC_DEADLINE_TIMER
from kvmprobe.vocab import Irqchip, QuirkEffect

X2APIC = feature_loc("X86_FEATURE_X2APIC")
TSC_DEADLINE = feature_loc("X86_FEATURE_TSC_DEADLINE_TIMER")
ARAT = feature_loc("X86_FEATURE_ARAT")


X2APIC_NEEDS_LAPIC = Quirk(
    id="x2apic-needs-lapic",
    bits=(X2APIC,),
    effect=QuirkEffect.REMOVE,
    when="the LAPIC is emulated in userspace",
    reason="x2APIC needs KVM's in-kernel LAPIC (full or split irqchip): KVM cannot hand x2APIC "
    "MSR accesses to a userspace LAPIC",
    citation=(cite.API_PROBLEMS, cite.API_4_46, cite.QEMU_KVM),
    test=userspace_lapic,
    catalogue="x2apic-needs-lapic",
)


def kvm_has_host_lacks(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return (
        c.kvm(loc) and c.host_has(loc) is False,
        f"{in_kgsc(c, loc)}; host CPUID has it: {yn(c.host_has(loc))}",
    )


X2APIC_EMULATED = Quirk(
    id="x2apic-emulated",
    bits=(X2APIC,),
    effect=QuirkEffect.NOTE,
    when="KVM reports x2APIC and the host CPU lacks it",
    reason="KVM reports x2APIC whatever the host has, because its in-kernel LAPIC emulates it",
    citation=(cite.API_4_46,),
    test=kvm_has_host_lacks,
    catalogue="x2apic-needs-lapic",
)


def tsc_legacy_add(c: Ctx, loc: Loc) -> tuple[bool, str]:
    cap = c.cap(KVM_CAP_TSC_DEADLINE_TIMER)
    ok = not c.kvm(loc) and cap > 0 and c.lapic_in_kernel
    return ok, f"{in_kgsc(c, loc)}; KVM_CAP_TSC_DEADLINE_TIMER={cap}; {irq(c)}"


TSC_DEADLINE_LEGACY_CAP = Quirk(
    id="tsc-deadline-legacy-cap",
    bits=(TSC_DEADLINE,),
    effect=QuirkEffect.ADD,
    when="not in KVM_GET_SUPPORTED_CPUID, KVM_CAP_TSC_DEADLINE_TIMER present, LAPIC in kernel",
    reason="kernels before 6.14 never put TSC_DEADLINE in KVM_GET_SUPPORTED_CPUID; the "
    "capability says the in-kernel LAPIC timer can emulate it",
    citation=(cite.API_PROBLEMS, cite.API_4_46, cite.COMMIT_TSC, cite.QEMU_KVM),
    test=tsc_legacy_add,
    catalogue="tsc-deadline",
)


def tsc_legacy_missing(c: Ctx, loc: Loc) -> tuple[bool, str]:
    cap = c.cap(KVM_CAP_TSC_DEADLINE_TIMER)
    return (not c.kvm(loc) and cap == 0), f"{in_kgsc(c, loc)}; KVM_CAP_TSC_DEADLINE_TIMER={cap}"


TSC_DEADLINE_LEGACY_NO_CAP = Quirk(
    id="tsc-deadline-legacy-no-cap",
    bits=(TSC_DEADLINE,),
    effect=QuirkEffect.NOTE,
    when="not in KVM_GET_SUPPORTED_CPUID and KVM_CAP_TSC_DEADLINE_TIMER absent",
    reason="this KVM offers no TSC deadline timer emulation",
    citation=(cite.API_PROBLEMS,),
    test=tsc_legacy_missing,
    catalogue="tsc-deadline",
)

TSC_DEADLINE_REPORTED = Quirk(
    id="tsc-deadline-reported",
    bits=(TSC_DEADLINE,),
    effect=QuirkEffect.NOTE,
    when="TSC_DEADLINE is in KVM_GET_SUPPORTED_CPUID",
    reason="reported by KVM_GET_SUPPORTED_CPUID since Linux 6.14, emulated by the in-kernel "
    "LAPIC timer whatever the host has; older kernels signal it only with "
    "KVM_CAP_TSC_DEADLINE_TIMER",
    citation=(cite.COMMIT_TSC, cite.API_PROBLEMS),
    test=reported,
    catalogue="tsc-deadline",
)


def tsc_userspace_lapic(c: Ctx, loc: Loc) -> tuple[bool, str]:
    cap = c.cap(KVM_CAP_TSC_DEADLINE_TIMER)
    return (
        c.opts.irqchip is Irqchip.USERSPACE and (c.kvm(loc) or cap > 0),
        f"{irq(c)}; {in_kgsc(c, loc)}; KVM_CAP_TSC_DEADLINE_TIMER={cap}",
    )


TSC_DEADLINE_NEEDS_LAPIC = Quirk(
    id="tsc-deadline-needs-lapic",
    bits=(TSC_DEADLINE,),
    effect=QuirkEffect.REMOVE,
    when="the LAPIC is emulated in userspace",
    reason="the TSC deadline timer is a mode of the LAPIC timer that KVM emulates only in its "
    "in-kernel LAPIC; a userspace LAPIC would have to emulate it itself",
    citation=(cite.API_PROBLEMS, cite.QEMU_KVM),
    test=tsc_userspace_lapic,
    catalogue="tsc-deadline",
)

ARAT_EMULATED = Quirk(
    id="arat-emulated",
    bits=(ARAT,),
    effect=QuirkEffect.ADD,
    when="not in KVM_GET_SUPPORTED_CPUID",
    reason="the emulated APIC timer never stops in deep C-states, so ARAT is always true for a "
    "guest; older kernels do not report it",
    citation=(cite.QEMU_KVM,),
    test=not_reported,
    catalogue="arat",
)

QUIRKS: tuple[Quirk, ...] = (
    X2APIC_NEEDS_LAPIC,
    X2APIC_EMULATED,
    TSC_DEADLINE_LEGACY_CAP,
    TSC_DEADLINE_LEGACY_NO_CAP,
    TSC_DEADLINE_REPORTED,
    TSC_DEADLINE_NEEDS_LAPIC,
    ARAT_EMULATED,
)
