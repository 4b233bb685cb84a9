"""The vCPU verification's raw facts: the start-up calls a VMM makes with values KVM advertised,
tried on a fresh vCPU (kvmprobe.kvm.verify), saved in a snapshot's ``verification``.

Kept out of kvmprobe.snapshot (which loads them and re-exports SetAttempt) so that the
commands that never verify (``caps``, and a load of a snapshot without a verification) do not
pay for creating the class at start-up.
"""

from __future__ import annotations

from kvmprobe.errors import errno_name
from kvmprobe.frozen import frozen
from kvmprobe.snapshot import _u64_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@frozen
class SetAttempt:
    """One start-up call a VMM makes with a value KVM advertised, tried on a fresh vCPU
    (kvmprobe.kvm.verify): what was asked and what KVM answered. Raw facts, no conclusions."""

    what: str  # the ioctl: KVM_SET_CPUID2, KVM_SET_MSRS, KVM_SET_XCRS, KVM_X86_SETUP_MCE, ...
    irqchip: str  # the irqchip set-up of the VM it ran in (an Irqchip value)
    target: int | None  # MSR index, XCR number; None for CPUID and MCE
    value: int | None  # the value asked for (for KVM_SET_CPUID2: the number of entries)
    accepted: bool | None  # None: the attempt itself failed (see errno)
    errno: int | None = None
    #: bits refused when tried one at a time (MSR bits; XCR0 state components)
    refused_bits: tuple[int, ...] = ()
    #: the CPUID table the vCPU was given (a CpuidTable value): KVM's supported table, or
    #: kvmprobe's effective table for ``irqchip``; this call follows (or is) that KVM_SET_CPUID2
    table: str = "supported"

    @property
    def errno_name(self) -> str | None:
        return None if self.errno is None else errno_name(self.errno)

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "irqchip": self.irqchip,
            "target": self.target,
            "value": _u64_json(self.value),
            "accepted": self.accepted,
            "errno": self.errno,
            "refused_bits": list(self.refused_bits),
            "table": self.table,
        }
