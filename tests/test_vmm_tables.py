"""Consistency checks for the hand-curated VMM and module-parameter tables.

Self-contained: no /dev/kvm, nothing read from outside the repository.
"""

from __future__ import annotations

import importlib
import re

import pytest

from kvmprobe.knowledge.module_params import (
    KVM_MODULES,
    MODULE_PARAMS,
    ModuleParam,
    params_for_module,
)
from kvmprobe.knowledge.vmm_requirements import VMMS, VmmProfile, vmm_by_id

CAP_NAME = re.compile(r"KVM_CAP_[A-Z0-9_]+")
COMMIT = re.compile(r"\b[0-9a-f]{40}\b")
PARAM_NAME = re.compile(r"[a-z][a-z0-9_]*")

ALL_CAPS = sorted({r.cap for p in VMMS for r in p.requirements})


def _profile_ids(profile: VmmProfile) -> str:
    return profile.id


# ---------------------------------------------------------------------------- VMMs


def test_expected_vmms_present() -> None:
    assert [p.id for p in VMMS] == ["qemu", "firecracker", "cloud-hypervisor"]
    assert len({p.name for p in VMMS}) == len(VMMS)


@pytest.mark.parametrize("profile", VMMS, ids=_profile_ids)
def test_profile_has_required_caps(profile: VmmProfile) -> None:
    assert any(r.required for r in profile.requirements)


@pytest.mark.parametrize("profile", VMMS, ids=_profile_ids)
def test_profile_caps_unique(profile: VmmProfile) -> None:
    caps = [r.cap for r in profile.requirements]
    dupes = sorted({c for c in caps if caps.count(c) > 1})
    assert not dupes, f"{profile.id}: listed more than once: {dupes}"


@pytest.mark.parametrize("profile", VMMS, ids=_profile_ids)
def test_profile_cap_names_well_formed(profile: VmmProfile) -> None:
    bad = [r.cap for r in profile.requirements if not CAP_NAME.fullmatch(r.cap)]
    assert not bad, f"{profile.id}: malformed cap names {bad}"


@pytest.mark.parametrize("profile", VMMS, ids=_profile_ids)
def test_profile_source_carries_commit(profile: VmmProfile) -> None:
    assert COMMIT.search(profile.source), f"{profile.id}: no 40-hex commit in source"
    assert " @ " in profile.source


@pytest.mark.parametrize("profile", VMMS, ids=_profile_ids)
def test_profile_text_filled(profile: VmmProfile) -> None:
    assert all(r.note.strip() for r in profile.requirements)
    assert profile.other_checks
    assert all(c.strip() for c in profile.other_checks)


def test_known_required_caps() -> None:
    """Spot checks against the cited upstream lists."""
    qemu = vmm_by_id("qemu")
    fc = vmm_by_id("firecracker")
    ch = vmm_by_id("cloud-hypervisor")
    assert qemu is not None and fc is not None and ch is not None
    req = {p.id: {r.cap for r in p.requirements if r.required} for p in (qemu, fc, ch)}
    assert {"KVM_CAP_USER_MEMORY", "KVM_CAP_IOEVENTFD_ANY_LENGTH"} <= req["qemu"]
    assert "KVM_CAP_SET_IDENTITY_MAP_ADDR" in req["qemu"]
    assert len(req["firecracker"]) == 14
    assert {"KVM_CAP_PIT2", "KVM_CAP_XCRS"} <= req["firecracker"]
    assert len(req["cloud-hypervisor"]) == 17
    assert {"KVM_CAP_SPLIT_IRQCHIP", "KVM_CAP_USER_NMI"} <= req["cloud-hypervisor"]
    assert vmm_by_id("bhyve") is None


def test_caps_known_to_cap_table() -> None:
    try:
        caps_mod = importlib.import_module("kvmprobe.analysis.caps")
    except ImportError as exc:
        pytest.skip(f"kvmprobe.analysis.caps not importable yet: {exc}")
    cap_by_name = getattr(caps_mod, "cap_by_name", None)
    if cap_by_name is None:
        pytest.skip("kvmprobe.analysis.caps has no cap_by_name() yet")
    unknown = [name for name in ALL_CAPS if cap_by_name(name) is None]
    assert not unknown, f"not in kvmprobe's capability table: {unknown}"


def test_caps_known_to_generated_table() -> None:
    try:
        data = importlib.import_module("kvmprobe.tables.caps_data")
    except ImportError as exc:
        pytest.skip(f"kvmprobe.tables.caps_data not importable: {exc}")
    table = getattr(data, "CAPS", None)
    if not isinstance(table, dict):
        pytest.skip("kvmprobe.tables.caps_data has no CAPS mapping")
    names = {entry[0] if isinstance(entry, tuple) else entry for entry in table.values()}
    unknown = [name for name in ALL_CAPS if name not in names]
    assert not unknown, f"not in the generated capability table: {unknown}"


# ---------------------------------------------------------------------------- modules


def test_kvm_modules() -> None:
    assert KVM_MODULES == ("kvm", "kvm_intel", "kvm_amd", "kvm_pvm")


def test_module_params_unique() -> None:
    keys = [(p.module, p.name) for p in MODULE_PARAMS]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    assert not dupes, f"duplicated entries: {dupes}"


def test_module_params_modules_known() -> None:
    assert {p.module for p in MODULE_PARAMS} <= set(KVM_MODULES)
    for module in KVM_MODULES:
        assert params_for_module(module), f"no entries for {module}"


@pytest.mark.parametrize("param", MODULE_PARAMS, ids=lambda p: f"{p.module}.{p.name}")
def test_module_param_fields(param: ModuleParam) -> None:
    assert PARAM_NAME.fullmatch(param.name)
    assert param.meaning.strip()
    assert param.source.strip()
    assert param.good is None or param.good.strip()
    assert param.concern is None or param.concern.strip()


def test_params_named_in_design_brief_present() -> None:
    have = {(p.module, p.name) for p in MODULE_PARAMS}
    expected = {
        ("kvm", "enable_pmu"),
        ("kvm", "mitigate_smt_rsb"),
        ("kvm", "nx_huge_pages"),
        ("kvm", "tdp_mmu"),
        ("kvm", "ignore_msrs"),
        ("kvm", "halt_poll_ns"),
        ("kvm", "kvmclock_periodic_sync"),
        ("kvm", "lapic_timer_advance"),
        ("kvm", "enable_vmware_backdoor"),
        ("kvm", "force_emulation_prefix"),
        ("kvm_intel", "nested"),
        ("kvm_intel", "ept"),
        ("kvm_intel", "enable_apicv"),
        ("kvm_intel", "vmentry_l1d_flush"),
        ("kvm_intel", "tdx"),
        ("kvm_amd", "nested"),
        ("kvm_amd", "npt"),
        ("kvm_amd", "avic"),
        ("kvm_amd", "sev"),
        ("kvm_amd", "sev_es"),
        ("kvm_amd", "sev_snp"),
    }
    assert expected <= have, sorted(expected - have)


def test_params_for_module_accepts_dash() -> None:
    assert params_for_module("kvm-intel") == params_for_module("kvm_intel")
    assert params_for_module("nope") == ()
