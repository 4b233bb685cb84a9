"""What ``diff`` and ``baseline`` compare besides feature bits, and how (shared rules).

* ``FIELD_RULES``: the CPUID fields a guest reads and a migration must keep, each with its
  ``CompareRule`` and why (our words): leaf maxima and address widths must not shrink (a guest
  that read a larger value may use it); family/model/stepping are informational (the VMM sets
  them in the CPU definition; they matter for host-passthrough guests); the vendor must match
  (compared apart, as a string).
* ``arch_cap_rows()``: the single-bit rows of IA32_ARCH_CAPABILITIES, compared like features
  (a guest told it is immune, e.g. MDS_NO, skips a mitigation it would need on a host without it).
* ``msr_bit_answer``: whether one feature-MSR bit is effectively offered, from the recorded
  feature MSRs and what a vCPU took of them (``MsrFacts``; a refused bit is never offered).
* ``reason_masks``: a profile's "no" answers as one mask per reason.

Pure: no I/O.
"""

from __future__ import annotations

from functools import cache

from kvmprobe.analysis.answers import UNKNOWN, YES, Answer, no
from kvmprobe.analysis.msr import BitRef, MsrBit, decode_msr, layout_rows, msr_name
from kvmprobe.analysis.profile import HostProfile, MsrFacts, feature_space, field_def
from kvmprobe.frozen import frozen
from kvmprobe.vocab import CompareRule, NotOfferedReason


@frozen
class FieldRule:
    name: str  # a field of the CPUID table
    rule: CompareRule
    why: str


#: why the CPU signature fields never block a move
_SIGNATURE_WHY = (
    "family/model/stepping: the VMM's CPU definition sets them; they matter for "
    "host-passthrough guests and errata workarounds"
)

FIELD_RULES: tuple[FieldRule, ...] = (
    FieldRule("max_basic_leaf", CompareRule.NOT_LESS,
              "a guest may read every basic leaf up to the maximum it was shown"),
    FieldRule("max_ext_leaf", CompareRule.NOT_LESS,
              "a guest may read every extended leaf up to the maximum it was shown"),
    FieldRule("max_leaf7_subleaf", CompareRule.NOT_LESS,
              "a guest may read every subleaf of leaf 7 up to the maximum it was shown"),
    FieldRule("phys_addr_bits", CompareRule.NOT_LESS,
              "MAXPHYADDR: a guest may have placed memory or MMIO above a smaller width"),
    FieldRule("guest_phys_addr_bits", CompareRule.NOT_LESS,
              "GuestPhysBits (0 means MAXPHYADDR): the guest-physical width the hypervisor maps"),
    FieldRule("virt_addr_bits", CompareRule.NOT_LESS,
              "linear address width: a guest using 5-level paging needs 57 bits"),
    FieldRule("pmu_version", CompareRule.NOT_LESS,
              "architectural PMU version: a guest programs the counters its version has"),
    FieldRule("pmu_gp_counters", CompareRule.NOT_LESS,
              "general-purpose PMU counters: a guest may use every counter it was shown"),
    FieldRule("pmu_fixed_counters", CompareRule.NOT_LESS,
              "fixed-function PMU counters: a guest may use every counter it was shown"),
    *(
        FieldRule(name, CompareRule.INFO, _SIGNATURE_WHY)
        for name in ("family", "ext_family", "model", "ext_model", "stepping")
    ),
)  # fmt: skip

VENDOR_WHY = (
    "a guest's kernel picks vendor-specific code (errata, mitigations, virtualization "
    "extensions) at boot; QEMU and libvirt refuse to migrate across vendors"
)
XSAVE_WHY = (
    "KVM_GET_XSAVE saves state in the standard (non-compacted) format: each component the "
    "source enumerates must exist on the destination at the same size and offset"
)


def field_value(p: HostProfile, name: str) -> int | None:
    """A field as compared: None when KVM's CPUID is unknown; 0 when KVM reports no entry for
    its leaf (a guest reads zeros there); GuestPhysBits 0 stands for MAXPHYADDR (what the
    guest may map)."""
    if not p.cpuid_known:
        return None
    v = p.field(name) or 0
    if name == "guest_phys_addr_bits" and v == 0:
        return p.field("phys_addr_bits") or 0
    return v


def field_where(name: str) -> str:
    return field_def(name).where


# --------------------------------------------------------------------------------------------
# Feature MSR bits


@cache
def arch_cap_rows() -> tuple[MsrBit, ...]:
    """The single-bit rows of IA32_ARCH_CAPABILITIES, in bit order."""
    from kvmprobe.tables import msr_data as T

    layout = T.MSR_LAYOUT[T.MSR_IA32_ARCH_CAPABILITIES]
    return tuple(r for r in layout_rows(layout) if r.lo == r.hi)


def arch_caps_index() -> int:
    from kvmprobe.tables import msr_data as T

    return int(T.MSR_IA32_ARCH_CAPABILITIES)


def arch_caps_value(p: HostProfile) -> int | None:
    """ARCH_CAPABILITIES as a guest can effectively be told: the value KVM reports less the
    bits a vCPU refused (kvmprobe's verification), 0 when KVM lists no such MSR (the guest
    claims no immunity), None when unknown (``arch_caps_unknown_why`` says why)."""
    return _arch_caps(p)[0]


def arch_caps_unknown_why(p: HostProfile) -> str:
    return _arch_caps(p)[1]


def _arch_caps(p: HostProfile) -> tuple[int | None, str]:
    index = arch_caps_index()
    if p.msr_feature_list is None:
        return None, "KVM_GET_MSR_FEATURE_INDEX_LIST was not answered"
    if index not in p.msr_feature_list:
        return 0, ""
    value = p.feature_msrs.get(index)
    if value is None:
        return None, f"KVM_GET_MSRS({index:#x}) was not read"
    if value == 0:
        return 0, ""
    facts = p.msr
    if facts.unverified is not None:
        return None, facts.unverified
    refused = facts.refused_mask(index)
    if refused is None:
        return None, f"KVM_SET_MSRS({index:#x}) was not tried on a vCPU"
    return value & ~refused, ""


#: the id under which a refused MSR bit is reported (like a quirk record's id)
MSR_BIT_REFUSED = "msr-bit-refused"


def _row_positions(ref: BitRef, index: int) -> int:
    """The raw bits of MSR ``index`` that carry ``ref`` (for a VMX control: both halves)."""
    from kvmprobe.tables import msr_data as T
    from kvmprobe.vocab import MsrLayoutKind

    layout = T.MSR_LAYOUT.get(index)
    mask = ref.bit.mask
    if layout and MsrLayoutKind(T.LAYOUT_KIND[layout]) is MsrLayoutKind.CONTROLS:
        mask |= mask << 32
    return mask


def msr_bit_answer(ref: BitRef, facts: MsrFacts) -> tuple[Answer, str]:
    """Whether a feature-MSR bit is effectively offered (for a VMX control: whether it may be
    1), and why: KVM must list the MSR with the bit set, and a vCPU must take it (kvmprobe's
    verification); unknown when the verification is missing or could not try the MSR."""
    if facts.feature_list is None:
        return UNKNOWN, "KVM_GET_MSR_FEATURE_INDEX_LIST was not answered"
    listed = [i for i in ref.msrs if i in facts.feature_list]
    if not listed:
        names = " / ".join(msr_name(i)[0] for i in ref.msrs) or "its MSR"
        return no(NotOfferedReason.UNSUPPORTED), f"KVM reports no {names}"
    for index in listed:
        value = facts.value(index)
        if value is None:
            return UNKNOWN, f"the value of {msr_name(index)[0]} was not read"
        d = decode_msr(index, value, facts.vendor)
        for b in d.bits:
            if b.bit == ref.bit and b.value:
                where = f"set in {d.name} = {d.hex}"
                if facts.unverified is not None:
                    return UNKNOWN, f"{where}; whether a vCPU takes it: {facts.unverified}"
                refused = facts.refused_mask(index)
                if refused is None:
                    return UNKNOWN, f"{where}; KVM_SET_MSRS({index:#x}) was not tried on a vCPU"
                if refused & _row_positions(ref, index):
                    return (
                        no(NotOfferedReason.REMOVED_BY_QUIRK),
                        f"{where}, refused by KVM_SET_MSRS on a vCPU [{MSR_BIT_REFUSED}]",
                    )
                return YES, f"{where}; a vCPU takes it"
    index = listed[0]
    return (
        no(NotOfferedReason.UNSUPPORTED),
        f"clear in {msr_name(index)[0]} = {facts.value(index) or 0:#x}",
    )


# --------------------------------------------------------------------------------------------
# Reasons as masks


def reason_masks(p: HostProfile) -> dict[NotOfferedReason, int]:
    """Every "no" answer of a profile as one mask per reason (``HostProfile.answer`` for all
    positions at once). Unknown answers are ``p.unknown``; yes answers ``p.effective``."""
    space = feature_space()
    full = (1 << (len(space.slots) * 32)) - 1
    ov = 0
    for pos in p.overrides:
        ov |= 1 << pos
    no_mask = full & ~p.effective & ~p.unknown
    base_no = no_mask & ~ov
    out: dict[NotOfferedReason, int] = {}
    emu = base_no & p.emulated
    host_only = base_no & p.host & ~p.emulated
    out[NotOfferedReason.EMULATED] = emu
    out[NotOfferedReason.HOST_ONLY] = host_only
    out[NotOfferedReason.UNSUPPORTED] = base_no & ~emu & ~host_only
    for pos in p.overrides:
        if not no_mask >> pos & 1:
            continue
        a = p.answer(pos)
        r = a.why or NotOfferedReason.UNKNOWN
        out[r] = out.get(r, 0) | 1 << pos
    return {r: m for r, m in out.items() if m}
