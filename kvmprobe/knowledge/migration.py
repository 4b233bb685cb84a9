"""What a VMM needs of the destination KVM to move a guest there, beyond its CPUID.

Hand-curated. Each row is a capability that a VMM uses to save, restore or keep a guest's state
the same across hosts; ``used_by`` names the VMM profiles of ``knowledge.vmm_requirements``,
which cite the VMM source lines (repository, commit, file, symbol) where the capability is
checked or used. ``why`` is our own words. The rule says how ``kvmprobe diff`` compares the
source host's value with the destination's (``CompareRule``):

* ``must-not-shrink``: the destination's value is at least the source's. For yes/no
  capabilities this means "what A has, B has"; for sizes (KVM_CAP_XSAVE2) and counts
  (KVM_CAP_MAX_VCPUS) a larger destination is fine.
* ``must-keep-all``: bit flags; the destination offers every flag the source offers.
* ``informational``: shown when it differs, never blocks (the VMM decides per guest).

Stdlib only; plain data.
"""

from __future__ import annotations

from kvmprobe.frozen import frozen
from kvmprobe.vocab import CompareRule

__all__ = ["CAPS", "MSR_LIST_USED_BY", "MSR_LIST_WHY", "MigrationCap"]


@frozen
class MigrationCap:
    name: str  # exact KVM_CAP_* name
    number: int
    scope: str  # the fd a VMM asks on: "system" or "vm"
    rule: CompareRule
    why: str  # our words
    used_by: tuple[str, ...]  # knowledge.vmm_requirements profile ids
    irqchip: str | None = None  # compared only in this irqchip set-up (None: always)


def _cap(name: str) -> int:
    from kvmprobe.tables import caps_data

    return int(getattr(caps_data, name))


def _row(
    name: str, scope: str, rule: CompareRule, why: str, *used_by: str, irqchip: str | None = None
) -> MigrationCap:
    return MigrationCap(name, _cap(name), scope, rule, why, used_by, irqchip)


NOT_LESS, KEEP_ALL, INFO = CompareRule.NOT_LESS, CompareRule.SUPERSET, CompareRule.INFO

CAPS: tuple[MigrationCap, ...] = (
    _row(
        "KVM_CAP_TSC_CONTROL", "system", NOT_LESS,
        "Sets the guest's TSC frequency (KVM_SET_TSC_KHZ): a guest whose TSC ran at A's rate "
        "keeps that rate on B only if B can scale it.",
        "qemu", "firecracker",
    ),
    _row(
        "KVM_CAP_GET_TSC_KHZ", "system", NOT_LESS,
        "Reads the vCPU's TSC frequency so it can be saved with the guest and set again "
        "on the destination.",
        "qemu", "firecracker", "cloud-hypervisor",
    ),
    _row(
        "KVM_CAP_X2APIC_API", "system", KEEP_ALL,
        "32-bit x2APIC ids: a guest with APIC ids above 254 started with these flags needs "
        "them on the destination (cloud-hypervisor aborts when enabling fails).",
        "qemu", "cloud-hypervisor",
    ),
    _row(
        "KVM_CAP_XSAVE", "system", NOT_LESS,
        "Saves and restores the extended FPU/vector state (KVM_GET/SET_XSAVE).",
        "firecracker", "cloud-hypervisor",
    ),
    _row(
        "KVM_CAP_XCRS", "system", NOT_LESS,
        "Saves and restores XCR0, which says which XSAVE state the guest enabled.",
        "firecracker", "cloud-hypervisor",
    ),
    _row(
        "KVM_CAP_XSAVE2", "vm", NOT_LESS,
        "Size of the KVM_GET_XSAVE2 buffer (above 4 KiB with AMX): the destination must hold "
        "the state the source saved.",
        "qemu", "firecracker", "cloud-hypervisor",
    ),
    _row(
        "KVM_CAP_VCPU_EVENTS", "system", NOT_LESS,
        "Saves and restores pending exceptions, interrupts and NMIs.",
        "firecracker", "cloud-hypervisor",
    ),
    _row(
        "KVM_CAP_MP_STATE", "system", NOT_LESS,
        "Saves and restores each vCPU's run state (running, halted, waiting for SIPI).",
        "firecracker", "cloud-hypervisor",
    ),
    _row(
        "KVM_CAP_DEBUGREGS", "system", NOT_LESS,
        "Saves and restores the debug registers.",
        "firecracker",
    ),
    _row(
        "KVM_CAP_ADJUST_CLOCK", "system", NOT_LESS,
        "Saves and restores kvmclock, so guest time continues where it stopped.",
        "firecracker", "cloud-hypervisor",
    ),
    _row(
        "KVM_CAP_PIT_STATE2", "system", NOT_LESS,
        "Saves and restores the in-kernel PIT.",
        "firecracker",
    ),
    _row(
        "KVM_CAP_TSC_DEADLINE_TIMER", "system", NOT_LESS,
        "A guest whose LAPIC timer runs in TSC-deadline mode needs it on the destination.",
        "qemu", "cloud-hypervisor",
    ),
    _row(
        "KVM_CAP_SPLIT_IRQCHIP", "vm", NOT_LESS,
        "A guest started with a split irqchip (LAPIC in the kernel, IOAPIC in the VMM) needs "
        "the same split on the destination.",
        "cloud-hypervisor", irqchip="split",
    ),
    _row(
        "KVM_CAP_X86_SMM", "vm", NOT_LESS,
        "System Management Mode for firmware (OVMF secure boot): its state moves with the "
        "guest.",
        "qemu",
    ),
    _row(
        "KVM_CAP_X86_DISABLE_EXITS", "system", KEEP_ALL,
        "Exits a guest runs without (HLT, MWAIT, PAUSE, C-states); QEMU with cpu-pm=on stops "
        "when the destination refuses one.",
        "qemu",
    ),
    _row(
        "KVM_CAP_MAX_VCPUS", "system", INFO,
        "A guest with more vCPUs than the destination's maximum cannot start there; smaller "
        "guests are unaffected.",
        "qemu",
    ),
)  # fmt: skip

MSR_LIST_WHY = (
    "MSRs KVM saves and restores (KVM_GET_MSR_INDEX_LIST): the VMM reads the list when it "
    "creates the VM and saves those MSRs with the guest, so each one the source lists must be "
    "accepted by the destination."
)
MSR_LIST_USED_BY: tuple[str, ...] = ("qemu", "firecracker", "cloud-hypervisor")
