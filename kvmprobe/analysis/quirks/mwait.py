"""MONITOR/MWAIT: never reported by KVM; given to a guest only when the VMM disables MWAIT
exits (KVM_CAP_X86_DISABLE_EXITS), and a NOP while they are intercepted."""

from __future__ import annotations

from kvmprobe.analysis.cpuid import Loc, feature_loc
from kvmprobe.analysis.quirks import citations as cite
from kvmprobe.analysis.quirks.common import yn
from kvmprobe.analysis.quirks.engine import Ctx, Quirk
from kvmprobe.tables.caps_data import (
    KVM_CAP_DISABLE_QUIRKS2,
    KVM_CAP_X86_DISABLE_EXITS,
    KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS,
)
from kvmprobe.vocab import DisableExit, QuirkEffect

MONITOR = feature_loc("X86_FEATURE_MWAIT")


def _mwait_evidence(c: Ctx) -> str:
    return (
        f"KVM_CAP_X86_DISABLE_EXITS={c.cap(KVM_CAP_X86_DISABLE_EXITS):#x} "
        f"(MWAIT allowed: {yn(c.exit_allowed(DisableExit.MWAIT))}); "
        f"set-up disables MWAIT exits: {yn(DisableExit.MWAIT in c.opts.disable_exits)}"
    )


def mwait_given(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return c.exit_disabled(DisableExit.MWAIT) and not c.kvm(loc), _mwait_evidence(c)


MONITOR_MWAIT_EXITS_DISABLED = Quirk(
    id="monitor-mwait-exits-disabled",
    bits=(MONITOR,),
    effect=QuirkEffect.ADD,
    when="the set-up disables MWAIT exits (--disable-exits mwait) and KVM allows it",
    reason="with MWAIT exits disabled the guest runs MONITOR/MWAIT natively; KVM never puts "
    "the bit in KVM_GET_SUPPORTED_CPUID, the VMM must set it",
    citation=(cite.API_4_46, cite.API_7_13, cite.QEMU_KVM_CPU),
    test=mwait_given,
    catalogue="monitor-mwait",
)


def mwait_available(c: Ctx, loc: Loc) -> tuple[bool, str]:
    ok = (
        c.exit_allowed(DisableExit.MWAIT)
        and DisableExit.MWAIT not in c.opts.disable_exits
        and not c.kvm(loc)
    )
    return ok, _mwait_evidence(c)


MONITOR_MWAIT_AVAILABLE = Quirk(
    id="monitor-mwait-available",
    bits=(MONITOR,),
    effect=QuirkEffect.OPT_IN,
    when="KVM_CAP_X86_DISABLE_EXITS offers MWAIT and the set-up does not use it",
    reason="available if the VMM disables MWAIT exits on the VM before creating vCPUs (QEMU: "
    "-overcommit cpu-pm=on)",
    citation=(cite.API_7_13, cite.QEMU_KVM_CPU),
    test=mwait_available,
    catalogue="monitor-mwait",
)


def mwait_unavailable(c: Ctx, loc: Loc) -> tuple[bool, str]:
    p = c.module_param("mitigate_smt_rsb", ("kvm",))
    extra = f"; kvm.mitigate_smt_rsb={p[1]}" if p else ""
    ok = not c.exit_allowed(DisableExit.MWAIT) and not c.kvm(loc)
    return ok, _mwait_evidence(c) + extra


MONITOR_MWAIT_UNAVAILABLE = Quirk(
    id="monitor-mwait-unavailable",
    bits=(MONITOR,),
    effect=QuirkEffect.NOTE,
    when="KVM_CAP_X86_DISABLE_EXITS does not offer MWAIT",
    reason="KVM will not let guests run MWAIT natively here (the host lacks usable MWAIT/ARAT, "
    "or kvm.mitigate_smt_rsb is on)",
    citation=(cite.API_7_13,),
    test=mwait_unavailable,
    catalogue="disable-exits-semantics",
)


def mwait_intercepted(c: Ctx, loc: Loc) -> tuple[bool, str]:
    q2 = c.cap(KVM_CAP_DISABLE_QUIRKS2)
    has = bool(q2 & KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS)
    return (
        not c.exit_disabled(DisableExit.MWAIT),
        f"KVM_CAP_DISABLE_QUIRKS2={q2:#x} (MWAIT_NEVER_UD_FAULTS can be disabled: {yn(has)})",
    )


MWAIT_INTERCEPTED_NOP = Quirk(
    id="mwait-intercepted-nop",
    bits=(MONITOR,),
    effect=QuirkEffect.NOTE,
    when="MWAIT exits are intercepted",
    reason="intercepted MONITOR/MWAIT run as NOPs even without the CPUID bit, unless the VMM "
    "disables KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS",
    citation=(cite.API_7_31,),
    test=mwait_intercepted,
    catalogue="mwait-runtime-quirks",
)

QUIRKS: tuple[Quirk, ...] = (
    MONITOR_MWAIT_EXITS_DISABLED,
    MONITOR_MWAIT_AVAILABLE,
    MONITOR_MWAIT_UNAVAILABLE,
    MWAIT_INTERCEPTED_NOP,
)
