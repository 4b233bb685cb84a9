"""Hyper-V leaves and QEMU hv-* properties: a synthetic KVM with Hyper-V emulation (the leaves
Linux's kvm_get_hv_cpuid() builds, see tests/support/synth_msr.py), the recorded host without
it, and the answers in between."""

from __future__ import annotations

import errno
from dataclasses import replace

from conftest import FIXTURES
from support.synth_msr import hyperv_entries, hyperv_host, no_hyperv_host

from kvmprobe.analysis import hyperv as h
from kvmprobe.snapshot import CpuidEntry, ProbeError, load
from kvmprobe.tables import caps_data
from kvmprobe.vocab import HvAvailability, HvRequirement


def _props(a: h.HyperVAnalysis) -> dict[str, h.HvProperty]:
    return {p.name: p for p in a.properties}


def test_synthetic_hyperv_host() -> None:
    a = h.analyse(hyperv_host())
    assert a.availability is HvAvailability.AVAILABLE
    assert a.vendor == "Linux KVM Hv" and a.interface == "Hv#1"
    props = _props(a)
    unsupported = {n for n, p in props.items() if not p.supported}
    assert unsupported == {"hv-evmcs"}  # no eVMCS version on this (AMD-like) host
    assert props["hv-syndbg"].supported and props["hv-syndbg"].passthrough is False
    assert set(a.passthrough) == set(props) - {"hv-evmcs", "hv-syndbg"}
    assert all(p.unmet == () for p in a.properties if p.name != "hv-evmcs")


def test_leaves_decode() -> None:
    a = h.analyse(hyperv_host())
    by = {leaf.leaf: leaf for leaf in a.leaves}
    assert list(by) == [0x40000000, 0x40000001, 0x40000002, 0x40000003, 0x40000004,
                        0x40000005, 0x40000080, 0x40000081, 0x40000082, 0x4000000A]  # fmt: skip
    version = {f.name: f.value for f in by[0x40000002].fields}
    assert version["build_number"] == 14393 and version["major_version"] == 10
    assert {f.name: f.value for f in by[0x40000004].fields} == {"spinlock_retries": 0xFFF}
    feats = {r.register: r for r in by[0x40000003].registers}
    set_eax = {b.kernel_name for b in feats["eax"].bits if b.set}
    assert "HV_MSR_SYNIC_AVAILABLE" in set_eax and "HV_MSR_GUEST_IDLE_AVAILABLE" not in set_eax
    assert all(r.remainder == 0 for leaf in a.leaves for r in leaf.registers)
    assert {s[0]: s[1] for s in by[0x40000081].signatures} == {"syndbg_interface": "VS#1"}


def test_evmcs_version_makes_hv_evmcs_supported() -> None:
    a = h.analyse(hyperv_host(hyperv_entries(evmcs_version=0x0101)))
    assert _props(a)["hv-evmcs"].supported
    nested = next(leaf for leaf in a.leaves if leaf.leaf == 0x4000000A)
    assert {f.name: f.value for f in nested.fields} == {"evmcs_version_min": 1,
                                                        "evmcs_version_max": 1}  # fmt: skip


def test_partial_bits_and_unmet_dependencies() -> None:
    entries = tuple(
        replace(e, eax=e.eax & ~(1 << 9)) if e.function == 0x40000003 else e
        for e in hyperv_entries()
    )
    props = _props(h.analyse(hyperv_host(entries)))
    time = props["hv-time"]
    assert time.supported is False and time.missing == ((0x40000003, "eax", 1 << 9),)
    assert props["hv-stimer"].supported and props["hv-stimer"].unmet == ("hv-time",)


def test_unknown_bits_and_leaves_are_kept() -> None:
    entries = (*hyperv_entries(), CpuidEntry(0x40000006, 0, 0, 0x7, 0, 0, 0))
    entries = tuple(replace(e, ecx=1 << 3) if e.function == 0x40000003 else e for e in entries)
    a = h.analyse(hyperv_host(entries))
    feats = next(leaf for leaf in a.leaves if leaf.leaf == 0x40000003)
    ecx = next(r for r in feats.registers if r.register == "ecx")
    assert ecx.remainder == 1 << 3 and ecx.bits == ()
    extra = next(leaf for leaf in a.leaves if leaf.leaf == 0x40000006)
    assert extra.name is None and extra.registers[0].remainder == 0x7


def test_requirements_are_cited() -> None:
    props = _props(h.analyse(hyperv_host()))
    (req, cite, via) = props["hv-synic"].requirements[0]
    assert req is HvRequirement.LAPIC and via is None and "kvm_vcpu_ioctl_enable_cap" in cite
    assert "@ 6f4be59696f64b5818b32ab88354d1b78dd68141" in cite
    stimer = props["hv-stimer"].requirements
    assert [(r, v) for r, _c, v in stimer] == [(HvRequirement.LAPIC, "hv-synic")]
    assert props["hv-stimer-direct"].requirements[0][0] is HvRequirement.LAPIC
    assert props["hv-evmcs"].requirements[0][0] is HvRequirement.NESTED_VMX
    assert props["hv-relaxed"].requirements == ()


def test_recorded_host_has_no_hyperv() -> None:
    snap, _ = load(str(FIXTURES / "amd-epyc-pvm-6.18.json"))
    a = h.analyse(snap)
    assert a.availability is HvAvailability.NOT_BUILT
    assert "KVM_CAP_SYS_HYPERV_CPUID (191) and KVM_CAP_HYPERV (44) answered 0" in a.evidence[0]
    assert all(p.supported is False and p.passthrough is False for p in a.properties)
    assert dict(a.caps)["KVM_CAP_SYS_HYPERV_CPUID"] == 0
    assert a.leaves == () and a.vendor is None


def test_einval_without_hyperv_caps_is_not_built() -> None:
    err = ProbeError("KVM_GET_SUPPORTED_HV_CPUID", errno.EINVAL, "Invalid argument")
    a = h.analyse(no_hyperv_host(error=err))
    assert a.availability is HvAvailability.NOT_BUILT and a.error == err
    assert any("Invalid argument" in line for line in a.evidence)


def test_other_errors_leave_it_unknown() -> None:
    err = ProbeError("KVM_GET_SUPPORTED_HV_CPUID", errno.EIO, "Input/output error")
    a = h.analyse(no_hyperv_host(error=err, hv_cap=1))
    assert a.availability is HvAvailability.FAILED
    assert all(p.supported is None and p.passthrough is None for p in a.properties)


def test_cap_present_but_no_answer_is_unknown() -> None:
    snap = hyperv_host()
    a = h.analyse(replace(snap, supported_hv_cpuid=None))
    assert a.availability is HvAvailability.UNKNOWN
    older = replace(
        snap,
        supported_hv_cpuid=None,
        caps={**snap.caps, "system": {caps_data.KVM_CAP_HYPERV: 1}},
    )
    a = h.analyse(older)
    assert a.availability is HvAvailability.UNKNOWN and "per vCPU" in a.evidence[0]
    unprobed = replace(snap, supported_hv_cpuid=None, caps={"system": None})
    assert h.analyse(unprobed).availability is HvAvailability.UNKNOWN


def test_alias_lookup() -> None:
    assert h.lookup_property("hv-apicv") == "hv-avic"
    assert h.lookup_property("HV-TIME") == "hv-time"
    assert h.lookup_property("hv-nothing") is None
