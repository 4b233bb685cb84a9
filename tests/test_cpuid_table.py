"""The generated CPUID feature table (kvmprobe/tables/cpuid_data.py) and its generator.

Runs from a plain clone: the upstream inputs are not in the repository, so the full
regeneration check (``--check``) runs only when ``KVMPROBE_CPUID_SOURCES`` names a directory
holding them (see scripts/README.md) and is skipped otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from kvmprobe.tables import cpuid_data
from kvmprobe.tables.cpuid_data import FEATURES, FIELDS, INDEXED_LEAVES, SUBLEAF_RANGES

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "scripts" / "gen_cpuid_tables.py"
OVERLAY = REPO / "scripts" / "data" / "cpuid_overlay.tsv"
TABLE = Path(cpuid_data.__file__)
REGISTERS = {"eax", "ebx", "ecx", "edx"}
NAME = re.compile(r"^[a-z0-9_]+$")


@functools.cache
def load_generator() -> ModuleType:
    """scripts/ is not a package: load the generator from its file."""
    spec = importlib.util.spec_from_file_location("gen_cpuid_tables", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def in_scope(leaf: int) -> bool:
    return leaf <= 0x24 or 0x40000000 <= leaf <= 0x40000001 or 0x80000000 <= leaf <= 0x80000022


def feature(leaf: int, subleaf: int, reg: str, bit: int) -> tuple:
    rows = [f for f in FEATURES if f[:4] == (leaf, subleaf, reg, bit)]
    assert len(rows) == 1, f"{leaf:#x}.{subleaf}.{reg}[{bit}]: {rows}"
    return rows[0]


# ---- shape and invariants -------------------------------------------------------------------


def test_feature_rows_have_the_agreed_shape() -> None:
    assert len(FEATURES) > 500
    for row in FEATURES:
        assert len(row) == 9, row
        leaf, subleaf, reg, bit, name, kernel, qemu, area, description = row
        assert isinstance(leaf, int) and in_scope(leaf), row
        assert isinstance(subleaf, int) and subleaf >= 0, row
        assert reg in REGISTERS, row
        assert isinstance(bit, int) and 0 <= bit <= 31, row
        assert NAME.match(name), row
        assert kernel is None or re.match(
            r"^(X86_FEATURE_|KVM_FEATURE_|KVM_HINTS_)[A-Z0-9_]+$", kernel
        )
        assert qemu is None or re.match(r"^[a-z0-9.-]+$", qemu), row
        assert area in cpuid_data.AREAS, row
        assert description and len(description) <= 70, row


def test_no_duplicate_feature_positions() -> None:
    dupes = [k for k, n in Counter(f[:4] for f in FEATURES).items() if n > 1]
    assert not dupes


def test_names_are_unique_across_features_and_fields() -> None:
    names = [f[4] for f in FEATURES] + [f[5] for f in FIELDS]
    dupes = [n for n, c in Counter(names).items() if c > 1]
    assert not dupes


def test_field_rows_have_the_agreed_shape() -> None:
    assert len(FIELDS) > 150
    for row in FIELDS:
        assert len(row) == 7, row
        leaf, subleaf, reg, lo, hi, name, description = row
        assert in_scope(leaf) and subleaf >= 0 and reg in REGISTERS, row
        assert 0 <= lo < hi <= 31, row
        assert NAME.match(name), row
        assert description and len(description) <= 70, row


def test_fields_overlap_neither_each_other_nor_features() -> None:
    owner: dict[tuple[int, int, str, int], str] = {f[:4]: f[4] for f in FEATURES}
    for leaf, subleaf, reg, lo, hi, name, _ in FIELDS:
        for bit in range(lo, hi + 1):
            key = (leaf, subleaf, reg, bit)
            assert key not in owner, f"{name} overlaps {owner.get(key)} at {key}"
            owner[key] = name


def test_vendor_and_brand_strings_are_not_fields() -> None:
    strings = {(0, "ebx"), (0, "ecx"), (0, "edx"), (0x80000000, "ebx"), (0x80000000, "ecx")}
    strings |= {(0x80000000, "edx"), (0x40000000, "ebx"), (0x40000000, "ecx"), (0x40000000, "edx")}
    strings |= {(leaf, r) for leaf in (0x80000002, 0x80000003, 0x80000004) for r in REGISTERS}
    assert not [f for f in FIELDS if (f[0], f[2]) in strings]


def test_subleaf_ranges_point_at_stored_rows() -> None:
    stored = {(f[0], f[1]) for f in FEATURES} | {(f[0], f[1]) for f in FIELDS}
    for leaf, first, last in SUBLEAF_RANGES:
        assert first < last and (leaf, first) in stored
        assert leaf in INDEXED_LEAVES


def test_indexed_leaves() -> None:
    # cpuid_function_is_indexed() (Linux) plus the multi-subleaf leaves kcpuid describes
    expected = {4, 7, 0xB, 0xD, 0xF, 0x10, 0x12, 0x14, 0x17, 0x18, 0x1D, 0x1E, 0x1F, 0x24}
    expected |= {0x1B, 0x20, 0x23, 0x8000001D, 0x80000020, 0x80000026}
    assert expected <= INDEXED_LEAVES
    assert not {0, 1, 2, 6, 0xA, 0x40000001, 0x80000001, 0x80000008} & INDEXED_LEAVES
    assert isinstance(INDEXED_LEAVES, frozenset)
    # every feature/field at a non-zero subleaf belongs to an indexed leaf
    for row in [*FEATURES, *FIELDS]:
        assert row[1] == 0 or row[0] in INDEXED_LEAVES, row


def test_every_leaf_in_scope_is_covered() -> None:
    leaves = {f[0] for f in FEATURES}
    for leaf in (1, 6, 7, 0xD, 0x12, 0x14, 0x24, 0x40000001, 0x80000001, 0x80000008):
        assert leaf in leaves
    for leaf in (0x80000007, 0x8000000A, 0x8000001F, 0x80000021, 0x80000022):
        assert leaf in leaves
    assert {0, 0x40000000, 0x80000000, 0x80000008} <= {f[0] for f in FIELDS}


# ---- pinned facts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "name", "kernel", "qemu"),
    [
        ((1, 0, "ecx", 24), "tsc_deadline_timer", "X86_FEATURE_TSC_DEADLINE_TIMER", "tsc-deadline"),
        ((1, 0, "ecx", 21), "x2apic", "X86_FEATURE_X2APIC", "x2apic"),
        ((1, 0, "ecx", 31), "hypervisor", "X86_FEATURE_HYPERVISOR", "hypervisor"),
        ((1, 0, "ecx", 3), "monitor", "X86_FEATURE_MWAIT", "monitor"),
        ((1, 0, "ecx", 5), "vmx", "X86_FEATURE_VMX", "vmx"),
        ((0x80000001, 0, "ecx", 2), "svm", "X86_FEATURE_SVM", "svm"),
        ((7, 0, "ebx", 6), "fdp_excptn_only", "X86_FEATURE_FDP_EXCPTN_ONLY", "fdp-excptn-only"),
        ((7, 0, "ebx", 13), "zero_fcs_fds", "X86_FEATURE_ZERO_FCS_FDS", "zero-fcs-fds"),
        ((7, 0, "ecx", 5), "waitpkg", "X86_FEATURE_WAITPKG", "waitpkg"),
        ((7, 0, "edx", 29), "arch_capabilities", "X86_FEATURE_ARCH_CAPABILITIES", None),
        ((6, 0, "eax", 2), "arat", "X86_FEATURE_ARAT", "arat"),
        ((0x40000001, 0, "eax", 7), "kvm_pv_unhalt", "KVM_FEATURE_PV_UNHALT", "kvm-pv-unhalt"),
        ((0x40000001, 0, "eax", 15), "kvm_msi_ext_dest_id", "KVM_FEATURE_MSI_EXT_DEST_ID", None),
        ((0x40000001, 0, "edx", 0), "kvm_hints_realtime", "KVM_HINTS_REALTIME", None),
        ((7, 1, "edx", 19), "avx10", "X86_FEATURE_AVX10", "avx10"),
    ],
)
def test_pinned_facts(
    position: tuple[int, int, str, int], name: str, kernel: str, qemu: str | None
) -> None:
    row = feature(*position)
    assert row[4] == name
    assert row[5] == kernel
    if qemu is not None:
        assert row[6] == qemu


def test_pinned_qemu_names_of_kvm_bits() -> None:
    assert feature(0x40000001, 0, "eax", 0)[6] == "kvmclock"
    assert feature(0x40000001, 0, "eax", 15)[6] == "kvm-msi-ext-dest-id"
    assert feature(0x40000001, 0, "edx", 0)[6] == "kvm-hint-dedicated"
    assert feature(7, 0, "edx", 29)[6] == "arch-capabilities"


def test_kvm_pv_bits_match_kvm_para_h() -> None:
    # KVM_FEATURE_* bits as in arch/x86/include/uapi/asm/kvm_para.h
    bits = {f[3]: f[5] for f in FEATURES if f[0] == 0x40000001 and f[2] == "eax"}
    assert bits == {
        0: "KVM_FEATURE_CLOCKSOURCE",
        1: "KVM_FEATURE_NOP_IO_DELAY",
        2: "KVM_FEATURE_MMU_OP",
        3: "KVM_FEATURE_CLOCKSOURCE2",
        4: "KVM_FEATURE_ASYNC_PF",
        5: "KVM_FEATURE_STEAL_TIME",
        6: "KVM_FEATURE_PV_EOI",
        7: "KVM_FEATURE_PV_UNHALT",
        9: "KVM_FEATURE_PV_TLB_FLUSH",
        10: "KVM_FEATURE_ASYNC_PF_VMEXIT",
        11: "KVM_FEATURE_PV_SEND_IPI",
        12: "KVM_FEATURE_POLL_CONTROL",
        13: "KVM_FEATURE_PV_SCHED_YIELD",
        14: "KVM_FEATURE_ASYNC_PF_INT",
        15: "KVM_FEATURE_MSI_EXT_DEST_ID",
        16: "KVM_FEATURE_HC_MAP_GPA_RANGE",
        17: "KVM_FEATURE_MIGRATION_CONTROL",
        24: "KVM_FEATURE_CLOCKSOURCE_STABLE_BIT",
    }
    assert all(
        f[4] == "kvm_" + f[5].removeprefix("KVM_FEATURE_").lower()
        for f in FEATURES
        if f[0] == 0x40000001 and f[2] == "eax"
    )


def test_pinned_fields() -> None:
    fields = {f[5]: f[:5] for f in FIELDS}
    assert fields["max_basic_leaf"] == (0, 0, "eax", 0, 31)
    assert fields["stepping"] == (1, 0, "eax", 0, 3)
    assert fields["family"] == (1, 0, "eax", 8, 11)
    assert fields["ext_family"] == (1, 0, "eax", 20, 27)
    assert fields["phys_addr_bits"] == (0x80000008, 0, "eax", 0, 7)
    assert fields["guest_phys_addr_bits"] == (0x80000008, 0, "eax", 16, 23)
    assert fields["hypervisor_max_leaf"] == (0x40000000, 0, "eax", 0, 31)
    assert fields["avx10_version"] == (0x24, 0, "ebx", 0, 7)
    assert fields["pmu_version"] == (0xA, 0, "eax", 0, 7)


# ---- provenance and the generator -----------------------------------------------------------


def test_provenance_header() -> None:
    text = TABLE.read_text(encoding="utf-8")
    head = text.split('"""', 1)[0]
    assert "Generated by scripts/gen_cpuid_tables.py -- do not edit by hand." in head
    gen = load_generator()
    for _opt, _fname, repo, commit, path in gen.INPUTS.values():
        assert f"{repo} @ {commit}" in head
        assert path in head
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", head), "the header must carry no date"


def test_table_matches_the_committed_overlay() -> None:
    """The overlay hash in the header catches an overlay edit that was not regenerated."""
    text = TABLE.read_text(encoding="utf-8")
    m = re.search(r"cpuid_overlay\.tsv\n#\s+sha256 ([0-9a-f]{64})", text)
    assert m, "overlay hash missing from the header"
    assert m.group(1) == hashlib.sha256(OVERLAY.read_bytes()).hexdigest()


def test_overlay_rows_are_well_formed() -> None:
    gen = load_generator()
    rows = gen.parse_overlay(OVERLAY.read_text(encoding="utf-8"))
    assert len(rows) == len(FEATURES) + len(FIELDS)
    for row in rows.values():
        assert len(row.description) <= 70
        if row.name and row.key[3] == row.key[4]:
            assert row.note, f"override without reason on line {row.lineno}"


def test_overlay_covers_every_row() -> None:
    gen = load_generator()
    rows = gen.parse_overlay(OVERLAY.read_text(encoding="utf-8"))
    for f in FEATURES:
        assert (f[0], f[1], f[2], f[3], f[3]) in rows
        assert rows[(f[0], f[1], f[2], f[3], f[3])].description == f[8]
    for f in FIELDS:
        assert (f[0], f[1], f[2], f[3], f[4]) in rows


def test_generated_module_is_plain_data() -> None:
    text = TABLE.read_text(encoding="utf-8")
    assert not re.search(r"^(import|from|def|class)\b", text, re.MULTILINE)


def test_check_mode_against_upstream_inputs() -> None:
    sources = os.environ.get("KVMPROBE_CPUID_SOURCES")
    if not sources or not Path(sources).is_dir():
        pytest.skip(
            "upstream inputs not available: set KVMPROBE_CPUID_SOURCES to a directory "
            "prepared as in scripts/README.md to run gen_cpuid_tables.py --check"
        )
    gen = load_generator()
    assert gen.main(["--sources", sources, "--check"]) == 0
