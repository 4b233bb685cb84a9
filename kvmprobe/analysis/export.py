"""What each export says, decided from a GuestCpu (kvmprobe.analysis.guest_cpuid). Pure.

QEMU, ``--qemu-base host``: QEMU's host model starts from what KVM offers
(KVM_GET_SUPPORTED_CPUID). The export removes, by QEMU's own property name, every feature KVM
offers that the effective guest lacks (``-x2apic`` without an in-kernel LAPIC,
``-arch-capabilities`` when a vCPU refused the MSR value). Effective features KVM does not
offer (added by a quirk, opt-in) cannot be requested with ``enforce`` (QEMU checks each
requested feature against KVM's list) and are named in a comment; so are features QEMU has
no name for.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.guest_cpuid import GuestCpu

#: where the QEMU property names of kvmprobe.tables.cpuid_data come from (its provenance
#: header says the same; a test keeps the two equal). Older QEMUs lack some of these names
#: (QEMU 7.2 has no kvm-asyncpf-vmexit, for example) and stop with "Property ... not found".
QEMU_NAMES_FROM = "qemu/qemu @ 0048035a870312f2fd0f3dd28115398d26e419bb"


@dataclass(frozen=True)
class QemuCpu:
    """A QEMU ``-cpu`` value and what it could not say."""

    base: str  # "host", or a QEMU model name
    plus: tuple[str, ...]  # QEMU feature names added to the base
    minus: tuple[str, ...]  # QEMU feature names removed from the base
    #: effective features QEMU (with enforce) would refuse to add: not in KVM's offer
    not_addable: tuple[str, ...]
    #: differences from the base that QEMU has no property name for (Linux names / locations)
    unnamed: tuple[str, ...]

    @property
    def value(self) -> str:
        parts = [self.base] + [f"+{n}" for n in self.plus] + [f"-{n}" for n in self.minus]
        return ",".join([*parts, "enforce"])


def _name(f: cp.FeatureDef) -> str:
    return f.name if f.known else f.where


def qemu_host(g: GuestCpu) -> QemuCpu:
    """``-cpu host`` with explicit removals (see the module text)."""
    offered = cp.CpuidView(g.offered)
    minus: list[str] = []
    not_addable: list[str] = []
    unnamed: list[str] = []
    table = cp.by_loc()
    locs = sorted(set(table) | g.features)
    for loc in locs:
        f = table.get(loc)
        kvm_has = offered.has_loc(loc)
        want = loc in g.features
        if kvm_has == want:
            continue
        label = _name(f) if f is not None else cp.fmt_loc(*loc)
        if f is None or not f.qemu_name:
            unnamed.append(("-" if kvm_has else "+") + label)
        elif kvm_has:
            minus.append(f.qemu_name)
        else:
            not_addable.append(f.qemu_name)
    return QemuCpu("host", (), tuple(minus), tuple(not_addable), tuple(unnamed))
