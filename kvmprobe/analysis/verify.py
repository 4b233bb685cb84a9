"""What a real vCPU refused of KVM's own advertisement (the snapshot's ``verification``
facts, from kvmprobe.kvm.verify), and what that means for the VMMs that trust it. Pure.

KVM can advertise a value that a vCPU then refuses: on our AMD PVM hosts the system-fd
KVM_GET_MSRS reports IA32_ARCH_CAPABILITIES = 0x400000000c000069, yet KVM_SET_MSRS on a vCPU
accepts only 0. A VMM that copies the advertisement (QEMU's ``-cpu host``, libvirt's
host-model) stops at start-up. Every refusal here names the bits and who would set them.
"""

from __future__ import annotations

from kvmprobe.frozen import frozen
from kvmprobe.snapshot import Snapshot, Steps
from kvmprobe.verification_facts import SetAttempt
from kvmprobe.vocab import CpuidTable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.msr_layout import MsrBit

# The MSR layouts (kvmprobe.analysis.msr_layout, tables.msr_data) are imported where a
# refusal is named, not here: every JSON document carries a verification section, most
# without a refusal, and the import costs start-up time.

SET_MSRS = "KVM_SET_MSRS"
SET_CPUID2 = "KVM_SET_CPUID2"
SET_XCRS = "KVM_SET_XCRS"
SETUP_MCE = "KVM_X86_SETUP_MCE"


@frozen
class RefusedBit:
    """One bit of an advertised value that a vCPU refused on its own."""

    position: int
    row: MsrBit | None  # the layout row that names it, None when kvmprobe's tables do not

    @property
    def name(self) -> str:
        return self.row.name if self.row is not None else f"bit {self.position}"

    @property
    def qemu_name(self) -> str | None:
        return self.row.qemu_name if self.row is not None else None

    @property
    def libvirt_name(self) -> str | None:
        return self.row.libvirt_name if self.row is not None else None


@frozen
class Refusal:
    """One start-up call KVM refused, with the bits it refused when they could be named."""

    attempt: SetAttempt
    bits: tuple[RefusedBit, ...]

    @property
    def what(self) -> str:
        """``KVM_SET_MSRS(0x10a IA32_ARCH_CAPABILITIES)``-style description."""
        a = self.attempt
        if a.what == SET_MSRS and a.target is not None:
            from kvmprobe.analysis.msr_layout import msr_name

            return f"{a.what}({a.target:#x} {msr_name(a.target)[0]})"
        if a.what == SET_XCRS:
            return f"{a.what}(XCR0 = {a.value:#x})" if a.value is not None else a.what
        if a.what == SET_CPUID2 and a.table == CpuidTable.EFFECTIVE:
            return f"{a.what}(the {a.value} entries of the effective table, {a.irqchip} irqchip)"
        if a.what == SET_CPUID2:
            return f"{a.what}(the {a.value} entries of KVM_GET_SUPPORTED_CPUID)"
        if a.what == SETUP_MCE and a.value is not None:
            return f"{a.what}(MCG_CAP = {a.value:#x})"
        return a.what

    @property
    def value_text(self) -> str:
        return "?" if self.attempt.value is None else f"{self.attempt.value:#x}"


@frozen
class Verification:
    """The verdict on the snapshot's verification facts."""

    #: False when the snapshot holds none (older snapshot, or the probe never got that far)
    tried: bool
    refusals: tuple[Refusal, ...]
    #: attempts that could not be made (errno), and why the whole step failed if it did
    could_not_ask: tuple[str, ...]
    #: the attempts with KVM's own advertisement (the supported table and what follows it)
    attempts: tuple[SetAttempt, ...]
    #: the attempts with kvmprobe's effective table of an irqchip mode (``record`` and the live
    #: ``export`` make them; see kvmprobe.kvm.verify)
    effective: tuple[SetAttempt, ...] = ()

    def effective_table(self, irqchip: str) -> tuple[SetAttempt, ...]:
        """The attempts with the effective table of ``irqchip`` (its KVM_SET_CPUID2, then its
        XCR0); empty when it was not tried (or equals KVM's own table, tried already)."""
        return tuple(a for a in self.effective if a.irqchip == irqchip)

    def effective_refusal(self, irqchip: str) -> Refusal | None:
        """The first call a vCPU refused with the effective table of ``irqchip``, if any."""
        for a in self.effective_table(irqchip):
            if a.accepted is False:
                return Refusal(a, _named_bits(a))
        return None

    def refused_msr(self, index: int) -> Refusal | None:
        for r in self.refusals:
            if r.attempt.what == SET_MSRS and r.attempt.target == index:
                return r
        return None

    def refused_msr_bit(self, index: int, bit: int) -> bool | None:
        """Did a vCPU refuse this advertised MSR bit? None: not verified, or not advertised."""
        if not self.tried:
            return None
        for a in self.attempts:
            if a.what == SET_MSRS and a.target == index and a.value is not None:
                if not a.value >> bit & 1:
                    return None
                if a.accepted is None:
                    return None
                return bit in a.refused_bits or (a.accepted is False and not a.refused_bits)
        return None


def msr_attempt(v: Verification, index: int) -> SetAttempt | None:
    """The ``KVM_SET_MSRS`` attempt that tried MSR ``index``'s advertised value, or None."""
    for a in v.attempts:
        if a.what == SET_MSRS and a.target == index:
            return a
    return None


def refused_mask(v: Verification, index: int) -> int | None:
    """The advertised bits of MSR ``index`` a vCPU refused (0: it took the whole value);
    None when nobody knows: no verification in the snapshot, the MSR was not tried, or the
    attempt itself failed."""
    a = msr_attempt(v, index)
    if a is None or a.accepted is None or a.value is None:
        return None
    if a.accepted:
        return 0
    if not a.refused_bits:
        return a.value  # refused, and no single bit was found: count every bit refused
    mask = 0
    for b in a.refused_bits:
        mask |= 1 << b
    return mask


def attempt_text(a: SetAttempt) -> str:
    """One attempt in words: ``KVM_SET_MSRS(0x10a IA32_ARCH_CAPABILITIES = 0x69) on a vCPU
    (irqchip split): refused; bits refused alone: RDCL_NO, ...``."""
    value = "?" if a.value is None else f"{a.value:#x}"
    if a.what == SET_MSRS and a.target is not None:
        from kvmprobe.analysis.msr_layout import msr_name

        head = f"{a.what}({a.target:#x} {msr_name(a.target)[0]} = {value})"
    else:
        head = Refusal(a, ()).what
    if a.table == CpuidTable.SUPPORTED and a.what != SET_CPUID2:
        # KVM's own values are tried once, with a split irqchip: none of them depends on
        # where the IOAPIC and PIC live (kvmprobe.kvm.verify)
        head += f" on a vCPU (irqchip {a.irqchip}; KVM treats these values alike in every set-up)"
    else:
        head += f" on a vCPU (irqchip {a.irqchip})"
    if a.accepted is None:
        errno = "no errno" if a.errno is None else (a.errno_name or str(a.errno))
        return f"{head}: could not be tried ({errno})"
    if a.accepted:
        return f"{head}: accepted"
    tail = f" ({a.errno_name})" if a.errno is not None else ""
    bits = _named_bits(a)
    if bits:
        tail += "; bits refused alone: " + ", ".join(b.name for b in bits)
    return f"{head}: refused{tail}"


def _named_bits(attempt: SetAttempt) -> tuple[RefusedBit, ...]:
    rows: dict[int, MsrBit] = {}
    if attempt.what == SET_MSRS and attempt.target is not None:
        from kvmprobe.analysis.msr_layout import layout_rows
        from kvmprobe.tables import msr_data

        layout = msr_data.MSR_LAYOUT.get(attempt.target)
        if layout is not None:
            rows = {r.lo: r for r in layout_rows(layout) if r.lo == r.hi}
    return tuple(RefusedBit(b, rows.get(b)) for b in attempt.refused_bits)


def verification(snap: Snapshot) -> Verification:
    every = snap.verification or ()
    attempts = tuple(a for a in every if a.table != CpuidTable.EFFECTIVE)
    effective = tuple(a for a in every if a.table == CpuidTable.EFFECTIVE)
    refusals = tuple(Refusal(a, _named_bits(a)) for a in attempts if a.accepted is False)
    could_not: list[str] = []
    for a in attempts:
        if a.accepted is None:
            target = "" if a.target is None else f"({a.target:#x})"
            errno = "?" if a.errno is None else str(a.errno)
            could_not.append(f"{a.what}{target}: errno {errno}")
    failure = snap.failure(Steps.VERIFY)
    if failure is not None:
        could_not.append(f"{failure.step} failed ({failure.errno_name or 'no errno'})")
    return Verification(
        tried=snap.verification is not None,
        refusals=refusals,
        could_not_ask=tuple(could_not),
        attempts=attempts,
        effective=effective,
    )


def qemu_host_fix(v: Verification) -> str | None:
    """The ``-cpu`` argument that makes QEMU's host model start despite the refusals, when one
    QEMU property covers them; None when nothing is refused or no single switch helps."""
    from kvmprobe.tables import msr_data

    switches: list[str] = []
    for r in v.refusals:
        a = r.attempt
        if a.what == SET_MSRS and a.target == msr_data.MSR_IA32_ARCH_CAPABILITIES:
            switches.append("-arch-capabilities")
        elif a.what == SET_MSRS and a.target == msr_data.MSR_IA32_PERF_CAPABILITIES:
            switches.append("-pdcm")
        else:
            return None
    return "-cpu host," + ",".join(dict.fromkeys(switches)) if switches else None


@frozen
class MsrTrial:
    """What a vCPU said to one feature MSR's advertised value."""

    #: True: took the whole value; False: refused it; None: kvmprobe could not tell
    accepted: bool | None
    #: why it cannot tell (accepted None): no vCPU verification, or the call's errno
    why: str | None = None
    #: the set bits a vCPU refused on their own, with their names where kvmprobe's tables
    #: have them
    refused: tuple[RefusedBit, ...] = ()


def msr_trial(v: Verification, index: int) -> MsrTrial | None:
    """The vCPU's answer to feature MSR ``index``'s advertised value; None when the MSR was
    not part of the verification (a snapshot with it, but without this MSR)."""
    if not v.tried:
        return MsrTrial(None, "no vCPU verification in this snapshot (record it again)")
    a = msr_attempt(v, index)
    if a is None:
        return None
    if a.accepted is None:
        return MsrTrial(None, f"the vCPU call failed ({a.errno_name or 'no errno'})")
    return MsrTrial(a.accepted, None, _named_bits(a))
