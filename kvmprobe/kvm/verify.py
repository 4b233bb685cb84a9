"""Trust, but verify: apply what KVM advertised to a real vCPU, the way a VMM does at start-up,
and record what KVM accepts and what it refuses.

A vCPU of the probe's split-irqchip VM (the LAPIC in the kernel, as in QEMU's default and in
cloud-hypervisor's set-up) is created and given, in the order QEMU uses at start-up:

1. ``KVM_SET_CPUID2`` with the table ``KVM_GET_SUPPORTED_CPUID`` returned;
2. ``KVM_SET_MSRS`` with each feature MSR's advertised value (``KVM_GET_MSRS`` on /dev/kvm);
   when KVM refuses a value, each of its set bits is tried on its own, to name the refused bits;
3. ``KVM_SET_XCRS`` with the XCR0 mask leaf 0xD.0 enumerates; when refused, each state
   component is added on its own to name the refused ones;
4. ``KVM_X86_SETUP_MCE`` with ``KVM_X86_GET_MCE_CAP_SUPPORTED``'s answer plus a bank count
   (KVM reports the bank limit as the value of KVM_CAP_MCE; QEMU asks for at most 10 banks,
   MCE_BANKS_DEF in target/i386/cpu.h).

One set-up is enough for KVM's own advertisement: none of these answers depends on where the
IOAPIC and PIC live, and destroying a VM with a full in-kernel irqchip costs about 14 ms on our
hosts, more than the rest of the probe together.

kvmprobe's *effective* table for an irqchip set-up (what ``kvmprobe export`` hands to a VMM)
differs from KVM's answer where a quirk applies. ``try_effective_tables`` gives each such table
to a vCPU of a VM set up for its irqchip mode (``KVM_CREATE_IRQCHIP``, the split irqchip, or
none), with the XCR0 mask that table enumerates. ``kvmprobe record`` and the live ``kvmprobe
export`` do this; the everyday commands do not, to stay quick (their tables are subsets of
KVM's, which is tried above).

Why these: each takes a value KVM itself advertised, and a VMM that gets a refusal at start-up
stops (QEMU asserts when KVM_SET_MSRS sets fewer MSRs than asked). Every attempt becomes a raw
fact (SetAttempt) in the snapshot; nothing here draws a conclusion. Every fd is closed on every
path.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from kvmprobe.kvm import abi
from kvmprobe.kvm.device import KvmDevice
from kvmprobe.snapshot import CpuidEntry
from kvmprobe.verification_facts import SetAttempt
from kvmprobe.vocab import CpuidTable, Irqchip

#: the XCR number of XCR0 (the only XCR KVM_SET_XCRS takes today)
_XCR0 = 0
#: XCR0 bit 0 (x87 state) must always be set
_XCR0_X87 = 1


def xcr0_of(supported: tuple[CpuidEntry, ...]) -> int | None:
    """The XCR0 mask leaf 0xD.0 enumerates (EDX:EAX), as a VMM would load it; None without
    the leaf."""
    for e in supported:
        if e.function == 0xD and e.index == 0:
            return e.eax | e.edx << 32
    return None


def _bits(value: int) -> list[int]:
    return [b for b in range(64) if value >> b & 1]


@contextmanager
def _vcpu(dev: KvmDevice, vm_fd: int) -> Iterator[int]:
    """A vCPU of ``vm_fd``, closed when the block ends."""
    vcpu_fd = int(dev.ioctl(vm_fd, abi.KVM_CREATE_VCPU, 0))
    try:
        yield vcpu_fd
    finally:
        os.close(vcpu_fd)


def _set_msr(dev: KvmDevice, vcpu_fd: int, index: int, value: int) -> bool:
    """KVM_SET_MSRS answers how many entries it set: 1 accepted, 0 refused."""
    buf = abi.kvm_msrs_with(1)()
    buf.nmsrs = 1
    buf.entries[0].index = index
    buf.entries[0].data = value
    return int(dev.ioctl(vcpu_fd, abi.KVM_SET_MSRS, buf)) == 1


def _set_xcr0(dev: KvmDevice, vcpu_fd: int, mask: int) -> None:
    req = abi.kvm_xcrs()
    req.nr_xcrs = 1
    req.xcrs[0].xcr = _XCR0
    req.xcrs[0].value = mask
    dev.ioctl(vcpu_fd, abi.KVM_SET_XCRS, req)


def _attempt(
    what: str,
    irqchip: Irqchip,
    target: int | None,
    value: int | None,
    *,
    accepted: bool | None,
    code: int | None = None,
    refused: tuple[int, ...] = (),
    table: CpuidTable = CpuidTable.SUPPORTED,
) -> SetAttempt:
    return SetAttempt(
        table=table.value,
        what=what,
        irqchip=str(irqchip),
        target=target,
        value=value,
        accepted=accepted,
        errno=code,
        refused_bits=refused,
    )


def _msr_attempts(
    dev: KvmDevice, vcpu_fd: int, irqchip: Irqchip, feature_msrs: dict[int, int]
) -> list[SetAttempt]:
    out: list[SetAttempt] = []
    for index, value in sorted(feature_msrs.items()):
        try:
            if _set_msr(dev, vcpu_fd, index, value):
                out.append(_attempt("KVM_SET_MSRS", irqchip, index, value, accepted=True))
                continue
            refused = tuple(b for b in _bits(value) if not _set_msr(dev, vcpu_fd, index, 1 << b))
            out.append(
                _attempt("KVM_SET_MSRS", irqchip, index, value, accepted=False, refused=refused)
            )
        except OSError as e:
            out.append(_attempt("KVM_SET_MSRS", irqchip, index, value, accepted=None, code=e.errno))
    return out


def _xcr0_attempt(
    dev: KvmDevice,
    vcpu_fd: int,
    irqchip: Irqchip,
    mask: int,
    table: CpuidTable = CpuidTable.SUPPORTED,
) -> SetAttempt:
    try:
        _set_xcr0(dev, vcpu_fd, mask)
        return _attempt("KVM_SET_XCRS", irqchip, _XCR0, mask, accepted=True, table=table)
    except OSError as e:
        if e.errno != errno.EINVAL:
            return _attempt(
                "KVM_SET_XCRS", irqchip, _XCR0, mask, accepted=None, code=e.errno, table=table
            )
        first = e.errno
    # Refused: grow a mask component by component from x87 and keep what KVM takes.
    taken = _XCR0_X87
    refused: list[int] = []
    for bit in _bits(mask & ~_XCR0_X87):
        try:
            _set_xcr0(dev, vcpu_fd, taken | 1 << bit)
            taken |= 1 << bit
        except OSError:
            refused.append(bit)
    return _attempt(
        "KVM_SET_XCRS",
        irqchip,
        _XCR0,
        mask,
        accepted=False,
        code=first,
        refused=tuple(refused),
        table=table,
    )


#: errnos with which KVM says "no" to a value (the value is refused); any other errno is a
#: fault of the call itself, recorded as "could not ask"
REFUSALS = frozenset({errno.EINVAL, errno.E2BIG, errno.ENXIO})


def _outcome(e: OSError) -> bool | None:
    return False if e.errno in REFUSALS else None


#: QEMU's default number of MCE banks (MCE_BANKS_DEF, target/i386/cpu.h)
QEMU_MCE_BANKS = 10


def verify(
    dev: KvmDevice,
    vm_fd: int,
    supported: tuple[CpuidEntry, ...] | None,
    feature_msrs: dict[int, int],
    xcr0_mask: int | None,
    mce_cap: int | None,
    mce_banks: int = 0,
    irqchip: Irqchip = Irqchip.SPLIT,
) -> tuple[SetAttempt, ...]:
    """Every set-up attempt on one new vCPU of ``vm_fd`` (a VM set up for ``irqchip``). A
    failure to create the vCPU is an attempt too (``what`` names the step, ``accepted`` None,
    ``errno`` set)."""
    if mce_cap is not None and mce_banks:
        mce_cap |= min(mce_banks, QEMU_MCE_BANKS)
    try:
        with _vcpu(dev, vm_fd) as vcpu_fd:
            return tuple(
                _on_vcpu(dev, vcpu_fd, irqchip, supported, feature_msrs, xcr0_mask, mce_cap)
            )
    except OSError as e:
        return (_attempt("vCPU set-up", irqchip, None, None, accepted=None, code=e.errno),)


def _on_vcpu(
    dev: KvmDevice,
    vcpu_fd: int,
    irqchip: Irqchip,
    supported: tuple[CpuidEntry, ...] | None,
    feature_msrs: dict[int, int],
    xcr0_mask: int | None,
    mce_cap: int | None,
) -> list[SetAttempt]:
    out: list[SetAttempt] = []
    if supported is None:
        return out
    first = _cpuid2_attempt(dev, vcpu_fd, irqchip, supported, CpuidTable.SUPPORTED)
    out.append(first)
    if not first.accepted:
        return out  # without a CPUID table the rest says nothing a VMM would meet
    out += _msr_attempts(dev, vcpu_fd, irqchip, feature_msrs)
    if xcr0_mask:
        out.append(_xcr0_attempt(dev, vcpu_fd, irqchip, xcr0_mask))
    if mce_cap is not None:
        try:
            dev.setup_mce(vcpu_fd, mce_cap)
            out.append(_attempt("KVM_X86_SETUP_MCE", irqchip, None, mce_cap, accepted=True))
        except OSError as e:
            out.append(
                _attempt(
                    "KVM_X86_SETUP_MCE", irqchip, None, mce_cap, accepted=_outcome(e), code=e.errno
                )
            )
    return out


def _cpuid2_attempt(
    dev: KvmDevice,
    vcpu_fd: int,
    irqchip: Irqchip,
    table: tuple[CpuidEntry, ...],
    kind: CpuidTable,
) -> SetAttempt:
    try:
        dev.set_cpuid2(vcpu_fd, table)
    except OSError as e:
        return _attempt(
            "KVM_SET_CPUID2",
            irqchip,
            None,
            len(table),
            accepted=_outcome(e),
            code=e.errno,
            table=kind,
        )
    return _attempt("KVM_SET_CPUID2", irqchip, None, len(table), accepted=True, table=kind)


@contextmanager
def _vm_for(dev: KvmDevice, irqchip: Irqchip) -> Iterator[int]:
    """A VM set up the way a VMM sets it up for ``irqchip``, closed when the block ends."""
    with dev.vm() as vm_fd:
        if irqchip is Irqchip.KERNEL:
            dev.create_irqchip(vm_fd)
        elif irqchip is Irqchip.SPLIT:
            dev.enable_cap(vm_fd, abi.KVM_CAP_SPLIT_IRQCHIP, abi.SPLIT_IRQCHIP_IOAPIC_PINS)
        yield vm_fd


def try_effective_tables(
    dev: KvmDevice, tables: dict[Irqchip, tuple[CpuidEntry, ...]]
) -> tuple[SetAttempt, ...]:
    """Give each irqchip mode's effective table to a vCPU of a VM set up for that mode, then
    its XCR0 mask (when the table enumerates one and the table was accepted). A VM or vCPU
    that cannot be made is an attempt whose ``accepted`` is None, with the errno."""
    out: list[SetAttempt] = []
    for irqchip, table in tables.items():
        try:
            with _vm_for(dev, irqchip) as vm_fd, _vcpu(dev, vm_fd) as vcpu_fd:
                got = _cpuid2_attempt(dev, vcpu_fd, irqchip, table, CpuidTable.EFFECTIVE)
                out.append(got)
                mask = xcr0_of(table)
                if got.accepted and mask:
                    out.append(_xcr0_attempt(dev, vcpu_fd, irqchip, mask, CpuidTable.EFFECTIVE))
        except OSError as e:
            out.append(
                _attempt(
                    "KVM_SET_CPUID2",
                    irqchip,
                    None,
                    len(table),
                    accepted=None,
                    code=e.errno,
                    table=CpuidTable.EFFECTIVE,
                )
            )
    return tuple(out)
