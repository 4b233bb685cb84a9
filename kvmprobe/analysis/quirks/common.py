"""Evidence wording and the few conditions several record modules share.

A condition used by one record lives beside that record; only these generic ones live here.
"""

from __future__ import annotations

from kvmprobe.analysis.cpuid import Loc, fmt_loc
from kvmprobe.analysis.quirks.engine import Ctx
from kvmprobe.vocab import Irqchip


def yn(b: bool | None) -> str:
    return "unknown" if b is None else ("yes" if b else "no")


def in_kgsc(c: Ctx, loc: Loc) -> str:
    return f"{fmt_loc(*loc)} in KVM_GET_SUPPORTED_CPUID: {yn(c.kvm(loc))}"


def irq(c: Ctx) -> str:
    return f"irqchip={c.opts.irqchip}"


def hex_or_unknown(value: int | None) -> str:
    return "unknown" if value is None else hex(value)


def always(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return True, "always"


def reported(c: Ctx, loc: Loc) -> tuple[bool, str]:
    """KVM_GET_SUPPORTED_CPUID has the bit."""
    return c.kvm(loc), in_kgsc(c, loc)


def not_reported(c: Ctx, loc: Loc) -> tuple[bool, str]:
    """KVM_GET_SUPPORTED_CPUID lacks the bit."""
    return not c.kvm(loc), in_kgsc(c, loc)


def userspace_lapic(c: Ctx, loc: Loc) -> tuple[bool, str]:
    """The set-up emulates the LAPIC in userspace and KVM reports the bit."""
    return (
        c.opts.irqchip is Irqchip.USERSPACE and c.kvm(loc),
        f"{irq(c)} (LAPIC in kernel: {yn(c.lapic_in_kernel)}); {in_kgsc(c, loc)}",
    )
