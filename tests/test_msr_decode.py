"""Feature-MSR decoding on the recorded host and on synthetic values with unknown bits."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import FIXTURES
from hypothesis import given
from hypothesis import strategies as st
from support.synth_msr import VMX_DUMP, intel_nested_vmx

from kvmprobe.analysis import msr as m
from kvmprobe.snapshot import ProbeError, Snapshot, load
from kvmprobe.tables import msr_data as M
from kvmprobe.vocab import ControlSetting, MsrLayoutKind, MsrOrigin, Vendor

FIXTURE_ARCH_CAPS = 0x400000000C000069


@pytest.fixture(scope="module")
def amd() -> Snapshot:
    snap, _ = load(str(FIXTURES / "amd-epyc-pvm-6.18.json"))
    return snap


def _set(d: m.DecodedMsr) -> list[str]:
    return [b.bit.name for b in d.set_bits]


def test_recorded_arch_capabilities(amd: Snapshot) -> None:
    value = amd.feature_msrs[M.MSR_IA32_ARCH_CAPABILITIES]
    assert value == FIXTURE_ARCH_CAPS
    d = m.decode_msr(M.MSR_IA32_ARCH_CAPABILITIES, value)
    assert _set(d) == [
        "RDCL_NO", "SKIP_VMENTRY_L1DFLUSH", "MDS_NO", "PSCHANGE_MC_NO", "GDS_NO", "RFDS_NO",
        "ITS_NO",
    ]  # fmt: skip
    assert d.remainder == 0 and d.hex == "0x400000000c000069"
    assert [b.bit.libvirt_name for b in d.set_bits if b.bit.libvirt_name] == [
        "rdctl-no", "skip-l1dfl-vmentry", "mds-no", "pschange-mc-no",
    ]  # fmt: skip


def test_unknown_bits_are_kept() -> None:
    value = FIXTURE_ARCH_CAPS | 1 << 40 | 1 << 10 | 1 << 63
    d = m.decode_msr(M.MSR_IA32_ARCH_CAPABILITIES, value)
    assert d.remainder == 1 << 40 | 1 << 10 | 1 << 63
    assert d.value == value
    assert "ITS_NO" in _set(d)


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_bits_layout_never_loses_a_bit(value: int) -> None:
    for index in (M.MSR_IA32_ARCH_CAPABILITIES, M.MSR_IA32_PERF_CAPABILITIES):
        d = m.decode_msr(index, value)
        rebuilt = d.remainder
        for b in d.bits:
            rebuilt |= b.value << b.bit.lo
        assert rebuilt == value


def test_recorded_host_other_feature_msrs(amd: Snapshot) -> None:
    a = m.analyse(amd)
    assert a.vendor is Vendor.AMD
    assert [d.index for d in a.features] == [0x8B, 0x10A, 0x345, 0xCE]
    ucode = a.feature(0x8B)
    assert ucode is not None and ucode.kind is MsrLayoutKind.VALUE
    assert ucode.name == "MSR_IA32_UCODE_REV" and ucode.aliases == ("MSR_AMD64_PATCH_LEVEL",)
    assert ucode.reading == "patch level 0x1000065 (bits 31:0)" and ucode.bits == ()
    pinfo = a.feature(0xCE)
    assert pinfo is not None and _set(pinfo) == ["CPUID_FAULT"]
    perf = a.feature(0x345)
    assert perf is not None and _set(perf) == [] and perf.remainder == 0
    assert a.unread == () and a.errors == ()


def test_perf_capabilities_fields() -> None:
    value = 0x5 | 1 << 6 | 4 << 8 | 1 << 13 | 1 << 12  # bit 12: no row (SMM freeze, unnamed)
    d = m.decode_msr(M.MSR_IA32_PERF_CAPABILITIES, value)
    by = {b.bit.name: b for b in d.bits}
    assert by["LBR_FMT"].value == 5 and by["PEBS_FORMAT"].value == 4
    assert by["FW_WRITES"].is_set and by["FW_WRITES"].bit.qemu_name == "full-width-write"
    assert d.remainder == 1 << 12


def test_amd_de_cfg_and_core_caps() -> None:
    d = m.decode_msr(M.MSR_AMD64_DE_CFG, 1 << 1 | 1 << 7)
    assert _set(d) == ["LFENCE_SERIALIZE"] and d.remainder == 1 << 7
    assert d.description.startswith("AMD decode configuration")
    d = m.decode_msr(M.MSR_IA32_CORE_CAPS, 1 << 5)
    (b,) = d.set_bits
    assert b.bit.name == "SPLIT_LOCK_DETECT" and b.bit.qemu_name == "split-lock-detect"
    assert b.bit.libvirt_name == "split-lock-detect"


def test_index_list_names(amd: Snapshot) -> None:
    a = m.analyse(amd)
    assert a.index_list is not None and len(a.index_list) == 40
    by = {e.index: e for e in a.index_list}
    assert by[0x4B564D05].name == "MSR_KVM_POLL_CONTROL" and by[0x4B564D05].origin is MsrOrigin.KVM
    assert by[0xC0010117].name == "MSR_VM_HSAVE_PA"
    assert all(e.known for e in a.index_list)


def test_unknown_and_family_names() -> None:
    assert m.msr_name(0x40D)[0] == "MSR_IA32_MCx_STATUS(3)"
    assert m.msr_name(0x281)[0] == "MSR_IA32_MCx_CTL2(1)"
    assert m.msr_name(0x40000090)[0] == "HV_X64_MSR_SINT0"
    name, aliases, known = m.msr_name(0x12345678)
    assert (name, aliases, known) == ("MSR_0x12345678", (), False)
    d = m.decode_msr(0x12345678, (1 << 64) - 1)
    assert d.kind is MsrLayoutKind.UNKNOWN and d.value == (1 << 64) - 1 and not d.known
    assert d.origin is MsrOrigin.UNKNOWN


def test_rejects_values_beyond_64_bits() -> None:
    with pytest.raises(ValueError):
        m.decode_msr(0x10A, 1 << 64)


# -- VMX ----------------------------------------------------------------------------------------


def test_vmx_basic_fields() -> None:
    d = m.decode_msr(M.MSR_IA32_VMX_BASIC, VMX_DUMP[M.MSR_IA32_VMX_BASIC])
    by = {b.bit.name: b for b in d.bits}
    assert by["vmcs_revision_id"].value == 4
    assert by["vmcs_size"].value == 1024
    assert by["vmcs_mem_type"].value == 6 and by["vmcs_mem_type"].value_name == "X86_MEMTYPE_WB"
    assert by["TRUE_CTLS"].is_set and by["INOUT"].is_set and by["DUAL_MONITOR_TREATMENT"].is_set
    assert not by["32BIT_PHYS_ADDR_ONLY"].is_set and not by["vmx-any-errcode"].is_set
    assert d.remainder == 0


def test_vmx_misc_fields() -> None:
    d = m.decode_msr(M.MSR_IA32_VMX_MISC, VMX_DUMP[M.MSR_IA32_VMX_MISC])
    by = {b.bit.name: b for b in d.bits}
    assert by["preemption_timer_rate"].value == 7 and by["cr3_count"].value == 4
    assert by["max_msr"].value == 0 and by["mseg_revid"].value == 0
    for name in ("SAVE_EFER_LMA", "ACTIVITY_HLT", "ACTIVITY_SHUTDOWN", "ACTIVITY_WAIT_SIPI",
                 "INTEL_PT", "RDMSR_IN_SMM", "VMXOFF_BLOCK_SMI", "VMWRITE_SHADOW_RO_FIELDS",
                 "ZERO_LEN_INS"):  # fmt: skip
        assert by[name].is_set, name
    assert d.remainder == 0


def _settings(d: m.DecodedMsr) -> dict[str, ControlSetting | None]:
    return {b.bit.name: b.setting for b in d.bits}


def test_true_and_legacy_procbased_controls() -> None:
    legacy = m.decode_msr(0x482, VMX_DUMP[0x482])
    true = m.decode_msr(0x48E, VMX_DUMP[0x48E])
    assert legacy.kind is MsrLayoutKind.CONTROLS
    # CR3 exiting is in the default1 class: forced to 1 by the legacy MSR, free in TRUE_
    assert _settings(legacy)["CR3_LOAD_EXITING"] is ControlSetting.REQUIRED
    assert _settings(true)["CR3_LOAD_EXITING"] is ControlSetting.OPTIONAL
    assert _settings(true)["HLT_EXITING"] is ControlSetting.OPTIONAL
    assert _settings(true)["TERTIARY_CONTROLS"] is ControlSetting.UNAVAILABLE
    assert _settings(true)["SEC_CONTROLS"] is ControlSetting.OPTIONAL
    assert true.remainder == 0 and true.remainder_must1 == 0
    assert true.default1 == 0x04006172  # bits 1,4-6,8,13,14,26 reported, none unknown
    qemu = {b.bit.qemu_name for b in true.bits if b.setting is ControlSetting.OPTIONAL}
    assert {"vmx-hlt-exit", "vmx-cr3-load-noexit", "vmx-secondary-ctls"} <= qemu


def test_secondary_controls_match_the_dump() -> None:
    d = m.decode_msr(0x48B, VMX_DUMP[0x48B])
    s = _settings(d)
    for name in ("EPT", "VPID", "UNRESTRICTED_GUEST", "PAGE_MOD_LOGGING", "MODE_BASED_EPT_EXEC"):
        assert s[name] is ControlSetting.OPTIONAL, name
    for name in ("APIC_REGISTER_VIRT", "VIRT_INTR_DELIVERY", "SHADOW_VMCS", "TSC_SCALING"):
        assert s[name] is ControlSetting.UNAVAILABLE, name
    assert d.remainder == 0


def test_control_unknown_bits_and_inconsistency() -> None:
    # bit 18 of the primary controls has no row; bit 0 neither; HLT (7) must be 1 yet may
    # not be 1: a value no CPU reports.
    value = (1 << 18 | 1 << 7 | 1 << 3) << 32 | 1 << 0 | 1 << 9
    d = m.decode_msr(0x48E, value)
    s = _settings(d)
    assert s["INVLPG_EXITING"] is ControlSetting.INCONSISTENT
    assert s["HLT_EXITING"] is ControlSetting.OPTIONAL
    assert d.remainder == 1 << 18 and d.remainder_must1 == 1 << 0


def test_tertiary_controls_are_64_bit_allowed1() -> None:
    d = m.decode_msr(M.MSR_IA32_VMX_PROCBASED_CTLS3, 1 << 4 | 1 << 40)
    assert d.kind is MsrLayoutKind.ALLOWED1
    s = _settings(d)
    assert s["IPI_VIRT"] is ControlSetting.OPTIONAL
    assert s["SPEC_CTRL_SHADOW"] is ControlSetting.UNAVAILABLE
    assert d.remainder == 1 << 40


def test_ept_vpid_caps() -> None:
    d = m.decode_msr(0x48C, VMX_DUMP[0x48C])
    names = set(_set(d))
    assert {"EPT_EXECUTE_ONLY", "EPT_PAGE_WALK_4", "EPT_2MB_PAGE", "EPT_1GB_PAGE", "EPT_AD",
            "vmx-ept-advanced-exitinfo", "VPID_INVVPID",
            "VPID_EXTENT_SINGLE_NON_GLOBAL"} <= names  # fmt: skip
    assert "EPT_PAGE_WALK_5" not in names and d.remainder == 0


def test_intel_snapshot_analysis() -> None:
    snap = intel_nested_vmx()
    a = m.analyse(snap)
    assert a.vendor is Vendor.INTEL
    assert len(a.features) == 22
    ucode = a.feature(0x8B)
    assert ucode is not None and ucode.reading == "revision 0xf8 (bits 63:32)"


def test_unread_feature_msr_is_reported() -> None:
    snap = intel_nested_vmx()
    values = dict(snap.feature_msrs)
    del values[M.MSR_IA32_VMX_VMFUNC]
    err = ProbeError("KVM_GET_MSRS(0x491)", 5, "Input/output error")
    a = m.analyse(replace(snap, feature_msrs=values, errors=(err,)))
    assert a.unread == ((0x491, "Input/output error"),)
    assert a.errors == (err,)


# -- names and filters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bit"),
    [("mds-no", 5), ("rdctl-no", 0), ("pschange-mc-no", 6), ("skip-l1dfl-vmentry", 3),
     ("MDS_NO", 5), ("arch_cap_mds_no", 5), ("ITS_NO", 62)],
)  # fmt: skip
def test_libvirt_and_kernel_names_resolve(name: str, bit: int) -> None:
    refs = m.lookup_bit(name)
    assert len(refs) == 1
    assert refs[0].bit.layout == "arch_capabilities" and refs[0].bit.lo == bit
    assert refs[0].msrs == (M.MSR_IA32_ARCH_CAPABILITIES,)


def test_vmx_names_resolve_to_every_msr_of_their_layout() -> None:
    (ref,) = m.lookup_bit("vmx-hlt-exit")
    assert ref.msrs == (0x482, 0x48E)
    (ref,) = m.lookup_bit("ept")  # the cpuinfo name
    assert ref.bit.qemu_name == "vmx-ept"


def test_select(amd: Snapshot) -> None:
    a = m.analyse(amd)
    assert [d.index for d in m.select(a, "0x10a").features] == [0x10A]
    assert [d.index for d in m.select(a, "266").features] == [0x10A]
    assert [d.index for d in m.select(a, "arch_cap").features] == [0x10A]
    sel = m.select(a, "mds-no")
    assert [b.bit.name for d in sel.features for b in d.bits] == ["MDS_NO"]
    assert sel.features[0].partial and sel.features[0].remainder == 0
    sel = m.select(a, "vmx-ept")
    assert sel.empty and sel.known_absent == (M.MSR_IA32_VMX_PROCBASED_CTLS2,)
    sel = m.select(a, "IA32_VMX_BASIC")
    assert sel.empty and sel.known_absent == (M.MSR_IA32_VMX_BASIC,)
    sel = m.select(a, "pv_eoi")
    assert sel.index_list is not None and [e.name for e in sel.index_list] == ["MSR_KVM_PV_EOI_EN"]
    sel = m.select(a, "no-such-thing")
    assert sel.empty and not sel.known_absent
    sel = m.select(a, None)
    assert len(sel.features) == 4


def test_select_substring_of_bit_names() -> None:
    a = m.analyse(intel_nested_vmx())
    sel = m.select(a, "preemption")
    shown = {(d.index, b.bit.name) for d in sel.features for b in d.bits}
    assert (0x48D, "PREEMPTION_TIMER") in shown
    assert (0x485, "preemption_timer_rate") in shown


# -- the one-line vulnerability picture ----------------------------------------------------------


def test_mitigation_summary_recorded(amd: Snapshot) -> None:
    """The recorded host predates the vCPU check: what a guest is told is unknown; with a
    vCPU that takes the value, the immunities it names are the guest's."""
    from kvmprobe.snapshot import SetAttempt

    picture = m.mitigation_picture(amd)
    assert picture is not None and not picture.known
    assert picture.text.startswith("unknown: KVM advertises RDCL_NO, SKIP_VMENTRY_L1DFLUSH")
    value = amd.feature_msrs[0x10A]
    taken = replace(amd, verification=(SetAttempt("KVM_SET_MSRS", "split", 0x10A, value, True),))
    assert m.mitigation_summary(taken) == (
        "a guest may skip mitigations for: Meltdown/L1TF, L1D flush on VM entry, MDS, "
        "iTLB multihit, GDS, RFDS, ITS (ARCH_CAPABILITIES 0x400000000c000069)"
    )


def test_mitigation_summary_unknown_and_absent(amd: Snapshot) -> None:
    assert m.mitigation_summary(replace(amd, msr_feature_index_list=None)) is None
    no_msr = replace(amd, msr_feature_index_list=(0x8B,), feature_msrs={0x8B: 1})
    assert "no ARCH_CAPABILITIES" in (m.mitigation_summary(no_msr) or "")
    unread = replace(amd, feature_msrs={})
    assert m.mitigation_summary(unread) is None
    zero = replace(amd, feature_msrs={M.MSR_IA32_ARCH_CAPABILITIES: 1 << 44})
    line = m.mitigation_summary(zero) or ""
    assert "told of no immunity" in line and "unknown bits 0x100000000000" in line
