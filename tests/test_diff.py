"""kvmprobe diff's analysis: a migration that must fail (B lacks one feature and one field),
the recorded hosts both ways, XSAVE layouts, capabilities, the MSR list, ARCH_CAPABILITIES bits,
and unknown evidence that is never taken as equal."""

from __future__ import annotations

from dataclasses import replace

from conftest import FIXTURES
from support import hosts

from kvmprobe.analysis import profile as P
from kvmprobe.analysis.diff import DiffResult, diff
from kvmprobe.analysis.quirks import Options
from kvmprobe.snapshot import ProbeError, SetAttempt, Snapshot, load
from kvmprobe.vocab import Change

PVM = str(FIXTURES / "amd-epyc-pvm-6.18.json")
ZEN4 = str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")


def _prof(snap: Snapshot, **kw: object) -> P.HostProfile:
    return P.build(snap, Options(**kw))  # type: ignore[arg-type]


def _skylake(*, clear: tuple[str, ...] = (), phys_bits: int = 46) -> Snapshot:
    c = hosts.cpuid(hosts.SKYLAKE_SERVER)
    for name in clear:
        f = next(
            hosts.resolve(w, name) for w, names in hosts.SKYLAKE_SERVER.words.items()
            if name in names
        )  # fmt: skip
        c.clear(f.leaf, f.subleaf, f.register, f.bit)
    c.put(0x80000008, 0, eax=phys_bits | 48 << 8)
    return hosts.host_snapshot(hosts.SKYLAKE_SERVER, c)


def _names(d: DiffResult, change: Change) -> set[str]:
    return {i.name for i in d.group(change)}


def test_migration_fails_when_b_lacks_one_feature_and_one_field() -> None:
    a = _prof(_skylake())
    b = _prof(_skylake(clear=("clwb",), phys_bits=43))
    d = diff(a, b)
    assert not d.can_take
    assert _names(d, Change.LOST) == {"clwb"}
    lost = d.group(Change.LOST)[0]
    assert lost.blocks and not lost.blocks_reverse
    assert lost.where == "0x7.0.ebx[24]"
    assert lost.b == "not offered (host-only)"  # the host CPU has it; KVM does not pass it
    field = next(i for i in d.group(Change.DIFFERS) if i.name == "phys_addr_bits")
    assert (field.a, field.b) == ("46", "43")
    assert field.blocks and not field.blocks_reverse
    assert "MAXPHYADDR" in field.reason
    # the other way round nothing is lost: B's guests run on A
    assert d.reverse
    assert diff(b, a).can_take


def test_same_host_can_take_its_own_guests() -> None:
    p = _prof(load(ZEN4)[0])
    d = diff(p, p)
    assert d.can_take and d.reverse and d.items == ()


def test_an_unverified_snapshot_is_unknown_even_against_itself() -> None:
    """A format-1 snapshot has no vCPU verification: whether a vCPU takes the advertised
    ARCH_CAPABILITIES is unknown, so is the CPUID bit, and unknown is never equal."""
    p = _prof(load(PVM)[0])
    d = diff(p, p)
    feature, msr = d.items
    assert (feature.name, feature.change, feature.a, feature.b) == (
        "arch_capabilities", Change.UNKNOWN, "unknown", "unknown",
    )  # fmt: skip
    assert "no vCPU verification" in feature.reason and feature.blocks and feature.blocks_reverse
    # and the ARCH_CAPABILITIES value a guest is effectively told
    assert (msr.kind, msr.name, msr.change) == ("msr-bit", "IA32_ARCH_CAPABILITIES", Change.UNKNOWN)
    assert "A: no vCPU verification" in msr.reason and "B: no vCPU verification" in msr.reason


def test_recorded_hosts_both_ways() -> None:
    pvm, zen4 = _prof(load(PVM)[0]), _prof(load(ZEN4)[0])
    d = diff(pvm, zen4)
    # everything the older-kernel PVM guest is known to see is on the Zen 4 host; but the PVM
    # snapshot (format 1) has no vCPU verification, so whether its guests get
    # arch_capabilities is unknown, while the Zen 4 host's vCPU refused the MSR: that blocks
    unknown, msr = d.group(Change.UNKNOWN)
    assert (unknown.name, unknown.a, unknown.b) == (
        "arch_capabilities", "unknown", "not offered (removed-by-quirk)",
    )  # fmt: skip
    assert unknown.blocks and not unknown.blocks_reverse
    assert "A: no vCPU verification" in unknown.reason
    # the Zen 4 host's vCPU refused every advertised bit: its guests are told 0
    assert (msr.name, msr.a, msr.b) == ("IA32_ARCH_CAPABILITIES", "unknown", "0x0")
    assert not d.can_take and [i for i in d.items if i.blocks] == [unknown, msr]
    assert not d.reverse
    assert _names(d, Change.ADDED) == {"fp_256"}
    assert {i.name for i in d.group(Change.NOTE)} <= {
        "family", "ext_family", "model", "ext_model", "stepping",
    }  # fmt: skip
    back = diff(zen4, pvm)
    assert not back.can_take and _names(back, Change.LOST) == {"fp_256"}
    # B's unknown could be a gain, never a loss of what a Zen 4 guest has
    assert [i.name for i in back.items if i.change is Change.UNKNOWN] == [
        "arch_capabilities", "IA32_ARCH_CAPABILITIES",
    ]  # fmt: skip
    assert not next(i for i in back.items if i.name == "arch_capabilities").blocks


def test_vendor_must_match() -> None:
    d = diff(_prof(hosts.host_snapshot(hosts.EPYC_MILAN)), _prof(_skylake()))
    vendor = next(i for i in d.items if i.kind == "vendor")
    assert (vendor.a, vendor.b) == ("AuthenticAMD", "GenuineIntel")
    assert vendor.blocks and vendor.blocks_reverse
    assert not d.can_take and not d.reverse


def test_xsave_component_size_must_match() -> None:
    a = _prof(_skylake())
    comps = tuple(
        replace(c, offset=c.offset + 64) if c.number == 5 else c for c in a.xsave_components
    )
    b = replace(a, xsave_components=comps)
    d = diff(a, b)
    item = next(i for i in d.items if i.kind == "xsave-component")
    assert item.name == "XSAVE component 5" and item.change is Change.DIFFERS
    assert item.blocks and item.blocks_reverse
    lost = replace(a, xsave_components=tuple(c for c in a.xsave_components if c.number != 9))
    d2 = diff(a, lost)
    item2 = next(i for i in d2.items if i.kind == "xsave-component")
    assert item2.change is Change.LOST and item2.b == "absent"


def test_capabilities_and_msr_list() -> None:
    a = _prof(load(ZEN4)[0])
    caps = dict(a.caps)
    caps["KVM_CAP_GET_TSC_KHZ"] = 0
    msrs = frozenset(sorted(a.msr_index_list or ())[:-1])
    b = replace(a, caps=caps, msr_index_list=msrs)
    d = diff(a, b)
    tsc = next(i for i in d.items if i.name == "KVM_CAP_GET_TSC_KHZ")
    assert tsc.change is Change.DIFFERS and tsc.blocks and not tsc.blocks_reverse
    assert "used by qemu, firecracker, cloud-hypervisor" in tsc.reason
    lost_msr = [i for i in d.items if i.kind == "msr-list"]
    assert len(lost_msr) == 1 and lost_msr[0].change is Change.LOST
    assert not d.can_take and d.reverse


def test_split_irqchip_capability_only_in_the_split_set_up() -> None:
    snap = load(PVM)[0]
    for irqchip, expect in (("kernel", False), ("split", True)):
        a = _prof(snap, irqchip=irqchip)
        caps = dict(a.caps)
        caps["KVM_CAP_SPLIT_IRQCHIP"] = 0
        d = diff(a, replace(a, caps=caps))
        assert any(i.name == "KVM_CAP_SPLIT_IRQCHIP" for i in d.items) is expect


def test_arch_capabilities_bits_are_compared() -> None:
    index = 0x10A
    snap = load(PVM)[0]
    value = snap.feature_msrs[index]
    assert value >> 5 & 1  # MDS_NO on the recorded host
    took = SetAttempt("KVM_SET_MSRS", "split", index, value, True)
    a = _prof(replace(snap, verification=(took,)))  # a vCPU took the whole value
    b = replace(a, feature_msrs={**a.feature_msrs, index: value & ~(1 << 5)})
    d = diff(a, b)
    item = next(i for i in d.items if i.kind == "msr-bit")
    assert item.name == "mds-no" and item.change is Change.LOST and item.blocks
    gone = replace(a, msr_feature_list=frozenset())  # KVM offers no ARCH_CAPABILITIES
    assert {i.name for i in diff(a, gone).items if i.kind == "msr-bit"} >= {"mds-no"}
    # a bit a vCPU refuses is not told to a guest: the same loss, seen by verification
    refused = SetAttempt("KVM_SET_MSRS", "split", index, value, False, None, (5,))
    c = _prof(replace(snap, verification=(refused,)))
    item = next(i for i in diff(a, c).items if i.kind == "msr-bit")
    assert item.name == "mds-no" and item.change is Change.LOST and item.blocks


# ---- unknown evidence -------------------------------------------------------------------------


def test_unknown_feature_answers_block_and_are_listed() -> None:
    a = _prof(load(ZEN4)[0])
    space = P.feature_space()
    avx2 = space.by_name["avx2"]  # not offered on the recorded host
    cx16 = space.by_name["cx16"]  # offered
    # B: cx16 unknown (as the engine reports when a step it depends on failed)
    b = replace(a, effective=a.effective & ~(1 << cx16), unknown=1 << cx16)
    d = diff(a, b)
    item = next(i for i in d.items if i.name == "cx16")
    assert item.change is Change.UNKNOWN and item.b == "unknown"
    assert item.blocks and not item.blocks_reverse  # B may have it: A cannot lose it back
    assert not d.can_take and d.reverse
    # A unknown, B no: a guest from A may have it, so it blocks A -> B
    c = replace(a, unknown=1 << avx2)
    d2 = diff(c, a)
    item2 = next(i for i in d2.items if i.name == "avx2")
    assert item2.change is Change.UNKNOWN and item2.blocks and not item2.blocks_reverse
    # unknown on both sides is never equal
    d3 = diff(c, c)
    assert not d3.can_take and not d3.reverse


def test_failed_supported_cpuid_blocks_everything() -> None:
    snap = load(PVM)[0]
    failed = replace(
        snap,
        supported_cpuid=None,
        errors=(ProbeError("KVM_GET_SUPPORTED_CPUID", 5, "Input/output error"),),
    )
    d = diff(_prof(snap), _prof(failed))
    assert not d.can_take
    unknown = d.group(Change.UNKNOWN)
    assert any(i.name == "cx16" for i in unknown)
    assert any("KVM_GET_SUPPORTED_CPUID failed" in i.reason for i in unknown)
    assert any(i.kind == "field" and i.name == "phys_addr_bits" for i in unknown)


def test_failed_capability_check_is_unknown_and_blocks() -> None:
    snap = load(PVM)[0]
    caps = {**snap.caps, "system": {k: v for k, v in (snap.caps["system"] or {}).items()
                                    if k != 61}}  # fmt: skip
    failed = replace(
        snap, caps=caps,
        errors=(ProbeError("KVM_CHECK_EXTENSION(61) on system", 5, "Input/output error"),),
    )  # fmt: skip
    d = diff(_prof(snap), _prof(failed))
    item = next(i for i in d.items if i.name == "KVM_CAP_GET_TSC_KHZ")
    assert item.change is Change.UNKNOWN and item.blocks and item.b == "unknown"
    assert not d.can_take


def test_unknown_msr_values_block() -> None:
    a = _prof(load(PVM)[0])
    b = replace(a, msr_feature_list=None, msr_index_list=None)
    d = diff(a, b)
    kinds = {i.kind for i in d.group(Change.UNKNOWN)}
    assert {"msr-list", "msr-bit"} <= kinds
    assert not d.can_take


def test_failed_emulated_cpuid_makes_answers_unknown_with_the_step() -> None:
    """A copy of the recorded host whose KVM_GET_EMULATED_CPUID failed: every feature KVM does
    not support outright is unknown (it might be emulated), named with the failed step, and
    blocks the move."""
    snap = load(PVM)[0]
    failed = replace(
        snap,
        emulated_cpuid=None,
        errors=(ProbeError("KVM_GET_EMULATED_CPUID", 5, "Input/output error"),),
    )
    p = _prof(failed)
    movbe = P.feature_space().by_name["movbe"]  # emulated-only on the recorded host
    assert p.unknown >> movbe & 1
    assert "KVM_GET_EMULATED_CPUID" in p.unknown_why(movbe)
    d = diff(_prof(snap), p)
    item = next(i for i in d.items if i.name == "movbe")
    assert item.change is Change.UNKNOWN and item.blocks
    assert "B: " in item.reason and "KVM_GET_EMULATED_CPUID" in item.reason
    assert not d.can_take
