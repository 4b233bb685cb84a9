"""The generated CPUID feature table (kvmprobe/tables/cpuid_data.py) and its two-stage generator.

Stage two (scripts/gen_cpuid_tables.py: committed facts file + our overlay -> the table) runs
here on every clone, ``--check`` included; so do the facts-file provenance checks and a run of
both stages on small synthetic inputs. Stage one against the real upstream files
(scripts/extract_cpuid_facts.py ``--check``) runs only when ``KVMPROBE_CPUID_SOURCES`` names a
directory holding them (see scripts/README.md), and is skipped, with that reason, otherwise.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from kvmprobe.tables import cpuid_data
from kvmprobe.tables.cpuid_data import FEATURES, FIELDS, INDEXED_LEAVES, SUBLEAF_RANGES

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "scripts" / "gen_cpuid_tables.py"
EXTRACTOR = REPO / "scripts" / "extract_cpuid_facts.py"
OVERLAY = REPO / "scripts" / "data" / "cpuid_overlay.tsv"
FACTS = REPO / "scripts" / "data" / "cpuid_facts.tsv"
TABLES_DIR = REPO / "kvmprobe" / "tables"
TABLE = Path(cpuid_data.__file__)
REGISTERS = {"eax", "ebx", "ecx", "edx"}
NAME = re.compile(r"^[a-z0-9_]+$")


def _load_script(name: str, path: Path) -> ModuleType:
    """scripts/ is not a package: load a script from its file."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@functools.cache
def load_generator() -> ModuleType:
    return _load_script("gen_cpuid_tables", GENERATOR)


@functools.cache
def load_extractor() -> ModuleType:
    load_generator()  # the extractor imports the facts format from "gen_cpuid_tables"
    return _load_script("extract_cpuid_facts", EXTRACTOR)


def in_scope(leaf: int) -> bool:
    return leaf <= 0x24 or 0x40000000 <= leaf <= 0x40000001 or 0x80000000 <= leaf <= 0x80000022


def feature(leaf: int, subleaf: int, reg: str, bit: int) -> tuple[object, ...]:
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
        f[4] == "kvm_" + str(f[5]).removeprefix("KVM_FEATURE_").lower()
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


# ---- provenance: the table, the facts file, the overlay ------------------------------------


def table_header() -> str:
    return TABLE.read_text(encoding="utf-8").split('"""', 1)[0]


def test_provenance_header_names_every_input_the_facts_and_the_overlay() -> None:
    head = table_header()
    assert "Generated by scripts/gen_cpuid_tables.py -- do not edit by hand." in head
    facts = load_generator().parse_facts(FACTS.read_text(encoding="utf-8"))
    assert len(facts.sources) == 8
    for source in facts.sources:
        assert f"#   {source.file}: {source.repo} @ {source.commit}\n" in head
        assert f"#     {source.path}" in head
        assert f"#     sha256 {source.sha256}\n" in head
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", head), "the header must carry no date"


@pytest.mark.parametrize(
    ("label", "path"),
    [("cpuid_facts.tsv", FACTS), ("cpuid_overlay.tsv", OVERLAY)],
)
def test_header_hashes_match_the_committed_inputs(label: str, path: Path) -> None:
    """An edit of the facts file or the overlay that was not regenerated is caught here."""
    m = re.search(rf"scripts/data/{re.escape(label)}\n#\s+sha256 ([0-9a-f]{{64}})", table_header())
    assert m, f"{label} hash missing from the header"
    assert m.group(1) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_facts_file_names_each_input_as_the_extractor_does() -> None:
    facts = load_generator().parse_facts(FACTS.read_text(encoding="utf-8"))
    inputs = load_extractor().INPUTS
    assert [(s.file, s.repo, s.commit, s.path) for s in facts.sources] == [
        (fname, repo, commit, path) for _opt, fname, repo, commit, path in inputs.values()
    ]
    for source in facts.sources:
        assert re.fullmatch(r"[0-9a-f]{40}", source.commit), source
        assert re.fullmatch(r"[0-9a-f]{64}", source.sha256), source
        expected = "feature_word_info[]" if source.repo == "qemu/qemu" else "file"
        assert source.hashed == expected, source


def test_facts_file_is_exactly_what_the_extractor_writes() -> None:
    """Fixed header, strict records, canonical order: no room for upstream prose or hand edits."""
    gen = load_generator()
    text = FACTS.read_text(encoding="utf-8")
    facts = gen.parse_facts(text)  # every value is checked against a name/number pattern
    assert gen.format_facts(facts) == text
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert comments == gen.FACTS_HEADER
    assert len(facts.bits) == len(FEATURES)
    # fields: kcpuid's, plus the overlay rows that cite a fact no input file has
    cited = [line for line in OVERLAY.read_text().splitlines() if "\tfact: " in line]
    assert len(facts.fields) + len(cited) == len(FIELDS)


def test_facts_agree_with_the_table() -> None:
    facts = load_generator().parse_facts(FACTS.read_text(encoding="utf-8"))
    by_key = {b.key: b for b in facts.bits}
    for row in FEATURES:
        fact = by_key[row[:4]]
        assert row[5] == (fact.macro or fact.kvm_pv), row
        assert row[6] == fact.qemu, row
    assert set(facts.indexed) == INDEXED_LEAVES


def _swap_first_two_bit_records(text: str) -> str:
    lines = text.split("\n")
    first, second = [i for i, line in enumerate(lines) if line.startswith("bit\t")][:2]
    lines[first], lines[second] = lines[second], lines[first]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("# CPUID facts", "# CPUID facts (edited)", 1), "not in the form"),
        (lambda t: t + "# a note\n", "not in the form"),
        (_swap_first_two_bit_records, "not in the form"),
        (lambda t: t.replace("\tpni\t", "\tStreaming SIMD 3\t", 1), "bad cpuinfo"),
        (lambda t: t.replace("\tpni\n", "\tpni\tSSE3\n", 1), "not a record"),
        (lambda t: t.replace("\t0888e83ed3db", "\tmain", 1), "bad commit"),
    ],
)
def test_facts_file_rejects_hand_edits(edit: Callable[[str], str], message: str) -> None:
    gen = load_generator()
    text = FACTS.read_text(encoding="utf-8")
    edited = edit(text)
    assert edited != text
    with pytest.raises(gen.GenError, match=message):
        gen.parse_facts(edited)


# ---- stage two on a plain clone --------------------------------------------------------------


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, check=False
    )


def test_generator_check_passes_on_a_plain_clone() -> None:
    """What CI runs: only committed files are read (no upstream input, no network)."""
    started = time.monotonic()
    result = run_generator("--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is up to date (648 features, 240 fields)" in result.stdout
    assert time.monotonic() - started < 5


def test_generator_check_fails_on_a_stale_table(tmp_path: Path) -> None:
    stale = tmp_path / "cpuid_data.py"
    stale.write_text(TABLE.read_text(encoding="utf-8").replace('"pni"', '"sse3"', 1))
    result = run_generator("--check", "--output", str(stale))
    assert result.returncode == 1
    assert "is stale" in result.stderr


def test_generator_check_fails_when_the_facts_change(tmp_path: Path) -> None:
    facts = tmp_path / "facts.tsv"
    text = FACTS.read_text(encoding="utf-8")
    facts.write_text(text.replace("\ttsc-deadline\n", "\ttsc-deadline-timer\n", 1))
    assert facts.read_text() != text
    result = run_generator("--check", "--facts", str(facts))
    assert result.returncode == 1, result.stderr
    assert "tsc-deadline-timer" in result.stderr


def test_generator_stops_on_a_bit_without_an_overlay_row(tmp_path: Path) -> None:
    gen = load_generator()
    facts = gen.parse_facts(FACTS.read_text(encoding="utf-8"))
    extra = gen.Bit(0x7, 0, "edx", 0, None, (), None, None, "new_bit", None)
    assert extra.key not in {b.key for b in facts.bits}
    changed = gen.Facts(
        facts.sources, (*facts.bits, extra), facts.fields, facts.ranges, facts.indexed
    )
    path = tmp_path / "facts.tsv"
    path.write_text(gen.format_facts(changed), encoding="utf-8")
    result = run_generator("--facts", str(path), "--output", str(tmp_path / "out.py"))
    assert result.returncode == 2
    assert "missing overlay row for feature 0x7.0.edx[0] (new_bit)" in result.stderr
    assert not (tmp_path / "out.py").exists()
    missing = run_generator("--facts", str(path), "--missing")
    assert missing.stdout.startswith("0x7.0.edx[0]\t?\t\t?\t# new_bit new_bit")


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
    for field in FIELDS:
        assert field[:5] in rows


def test_field_encodings_agree_with_what_each_field_means() -> None:
    """How a value reads comes from the table: a field CPUID stores minus one is encoded so
    (unless its name already says so), bitmaps and masks are hex, and nothing else is."""
    from kvmprobe.analysis import cpuid as cp
    from kvmprobe.vocab import FieldEncoding

    names = {f[5] for f in FIELDS}
    assert set(cpuid_data.FIELD_ENCODINGS) <= names
    assert {FieldEncoding(e) for e in cpuid_data.FIELD_ENCODINGS.values()} == {
        FieldEncoding.MINUS_ONE,
        FieldEncoding.HEX,
    }
    for fd in cp.fields():
        says_minus_one = "minus one" in fd.description
        named_raw = fd.name.endswith("_minus_one")
        assert (fd.encoding is FieldEncoding.MINUS_ONE) == (says_minus_one and not named_raw), fd
        if re.search(r"\bbitmap\b", fd.description, re.IGNORECASE):
            assert fd.encoding is FieldEncoding.HEX, fd
    ways = next(fd for fd in cp.fields() if fd.name == "amd_cache_ways")
    assert (ways.text(7), ways.text(None)) == ("8", "?")
    leaf = next(fd for fd in cp.fields() if fd.name == "max_basic_leaf")
    assert leaf.text(28) == "0x1c"
    size = next(fd for fd in cp.fields() if fd.name == "l2_size_kb")
    assert size.text(1024) == "1024"


def test_generator_refuses_an_unknown_field_encoding() -> None:
    gen = load_generator()
    with pytest.raises(gen.GenError, match="encoding"):
        gen.parse_overlay("0x1.0.ebx[15:8]\tbytes\tclflush_size\tCLFLUSH line size\n")


def test_generated_module_is_plain_data() -> None:
    text = TABLE.read_text(encoding="utf-8")
    assert not re.search(r"^(import|from|def|class)\b", text, re.MULTILINE)


# ---- the tables package holds generated modules only -----------------------------------------


def test_every_table_module_is_generated_and_stamped() -> None:
    generators = {
        "caps_data.py": "gen_cap_tables.py",
        "cpuid_data.py": "gen_cpuid_tables.py",
        "deps_data.py": "gen_deps_tables.py",
        "hyperv_data.py": "gen_msr_tables.py",
        "msr_data.py": "gen_msr_tables.py",
        "libvirt_data.py": "gen_libvirt_tables.py",
        "qemu_models_data.py": "gen_qemu_models.py",
    }
    #: modules transcribed from an installed release rather than an upstream commit
    released = {
        "libvirt_data.py": r"libvirt/libvirt v9\.0\.0 ",
        "qemu_models_data.py": r"QEMU emulator version 7\.2\.\d+ ",
    }
    files = sorted(p.name for p in TABLES_DIR.iterdir() if p.name != "__pycache__")
    assert files == ["__init__.py", *sorted(generators)]
    for name, generator in generators.items():
        head = (TABLES_DIR / name).read_text(encoding="utf-8").split('"""', 1)[0]
        assert f"# Generated by scripts/{generator} -- do not edit by hand.\n" in head
        assert (REPO / "scripts" / generator).is_file()
        assert re.search(r"sha256 [0-9a-f]{64}", head), f"{name} names no input hash"
        upstream = released.get(name, r"[\w.-]+/[\w.-]+ .*@ [0-9a-f]{12,40}")
        assert re.search(upstream, head), f"{name}: no upstream"
    # the package marker is a docstring naming both generators, and nothing else
    init = ast.parse((TABLES_DIR / "__init__.py").read_text(encoding="utf-8"))
    assert len(init.body) == 1
    doc = ast.get_docstring(init) or ""
    for generator in generators.values():
        assert f"scripts/{generator}" in doc
    for named in re.findall(r"scripts/[\w/.-]+", doc):
        assert (REPO / named.rstrip(".")).exists(), f"__init__.py names {named}, which is missing"


# ---- stage one ------------------------------------------------------------------------------

# Small inputs in the upstream files' formats (our own, not copies): enough for every parser.
SYNTHETIC = {
    "cpufeatures.h": """
        /* Intel-defined CPU features, CPUID level 0x00000001 (EDX), word 0 */
        #define X86_FEATURE_FPU\t\t( 0*32+ 0) /* "fpu" first */
        #define X86_FEATURE_HIDDEN\t( 0*32+ 1) /* no cpuinfo name */
        /* Linux-defined bits, word 1 */
        #define X86_FEATURE_SCAT\t( 1*32+ 0) /* "scat" scattered */
        """,
    "cpufeature.h": """
        enum cpuid_leafs
        {
        \tCPUID_1_EDX\t\t= 0,
        \tCPUID_LNX_1,
        \tNR_CPUID_WORDS,
        };
        """,
    "reverse_cpuid.h": """
        #define X86_FEATURE_KVMONLY\tKVM_X86_FEATURE(CPUID_7_1_EDX, 4)
        static const struct cpuid_reg reverse_cpuid[] = {
        \t[CPUID_1_EDX]   = {   1, 0, CPUID_EDX},
        \t[CPUID_7_1_EDX] = {   7, 1, CPUID_EDX},
        };
        """,
    "scattered.c": """
        static const struct cpuid_bit cpuid_bits[] = {
        \t{ X86_FEATURE_SCAT, CPUID_ECX,  3, 0x00000006, 0 },
        \t{ 0, 0, 0, 0, 0 }
        };
        """,
    "cpuid_api.h": """
        static bool cpuid_function_is_indexed(u32 function)
        {
        \tswitch (function) {
        \tcase 7:
        \t\treturn true;
        \t}
        \treturn false;
        }
        """,
    "kvm_para.h": """
        #define KVM_CPUID_SIGNATURE\t0x40000000
        #define KVM_CPUID_FEATURES\t0x40000001
        #define KVM_FEATURE_PV_UNHALT\t\t7
        #define KVM_HINTS_REALTIME      0
        """,
    "cpuid.csv": """
        # LEAF, SUBLEAVES, reg, bits, short_name, long_description
        0x0, 0, ebx, 31:0, vendor_0, a string register, never a field
        0x1, 0, eax, 3:0, stepping, synthetic
        0x1, 0, edx, 0, fpu, synthetic
        0x4, 31:0, eax, 4:0, cache_type, synthetic
        0x7, 0, eax, 31:0, leaf7_n_subleaves, synthetic
        0x80860001, 0, edx, 0, out_of_scope, synthetic
        """,
    "qemu_cpu.c": """
        static int unrelated;
        FeatureWordInfo feature_word_info[FEATURE_WORDS] = {
            [FEAT_1_EDX] = {
                .type = CPUID_FEATURE_WORD,
                .feat_names = { "fpu", "hidden-q" /* a comment */, },
                .cpuid = { .eax = 1, .reg = R_EDX, },
            },
            [FEAT_KVM] = {
                .type = CPUID_FEATURE_WORD,
                .feat_names = { [7] = "kvm-pv-unhalt", },
                .cpuid = { .eax = KVM_CPUID_FEATURES, .reg = R_EAX, },
            },
            [FEAT_MSR] = {
                .type = MSR_FEATURE_WORD,
                .feat_names = { "not-cpuid", },
            },
        };
        """,
}

SYNTHETIC_OVERLAY = """\
0x1.0.eax[3:0]\t-\tstepping\tStepping
0x1.0.edx[0]\tbase\t\tFloating point
0x1.0.edx[1]\tother\t\tA hidden bit
0x6.0.ecx[3]\tpower\t\tA scattered bit
0x7.0.eax[31:0]\t-\tmax_subleaf_7\tHighest subleaf of leaf 7
0x7.1.edx[4]\tsimd\t\tA KVM-only bit
0x4.0.eax[4:0]\t-\tcache_type\tCache type
0x40000001.0.eax[7]\tkvm-pv\t\tPV spinlock kick
0x40000001.0.edx[0]\tkvm-pv\t\tRealtime hint
"""


def write_synthetic(directory: Path, **changes: str) -> Path:
    for name, text in {**SYNTHETIC, **changes}.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return directory


def test_both_stages_on_synthetic_inputs(tmp_path: Path) -> None:
    sources = write_synthetic(tmp_path)
    facts_path = tmp_path / "facts.tsv"
    ext = load_extractor()
    assert ext.main(["--sources", str(sources), "--output", str(facts_path)]) == 0
    text = facts_path.read_text(encoding="utf-8")
    records = [line.split("\t") for line in text.splitlines() if not line.startswith("#")]
    assert [r[:2] + r[5:] for r in records if r[0] == "source"][-1] == [
        "source",
        "qemu_cpu.c",
        "feature_word_info[]",
        hashlib.sha256(
            textwrap.dedent(SYNTHETIC["qemu_cpu.c"])
            .lstrip()
            .split("static int unrelated;\n")[1]
            .rstrip("\n")
            .encode()
        ).hexdigest(),
    ]
    body = [r for r in records if r[0] != "source"]
    assert body == [
        ["field", "0x1.0.eax[3:0]", "stepping"],
        ["bit", "0x1.0.edx[0]", "X86_FEATURE_FPU", "word", "fpu", "-", "fpu", "fpu"],
        ["bit", "0x1.0.edx[1]", "X86_FEATURE_HIDDEN", "word", "-", "-", "-", "hidden-q"],
        ["field", "0x4.0.eax[4:0]", "cache_type"],
        ["bit", "0x6.0.ecx[3]", "X86_FEATURE_SCAT", "scattered", "scat", "-", "-", "-"],
        ["field", "0x7.0.eax[31:0]", "leaf7_n_subleaves"],
        ["bit", "0x7.1.edx[4]", "X86_FEATURE_KVMONLY", "kvm", "-", "-", "-", "-"],
        [
            "bit",
            "0x40000001.0.eax[7]",
            "-",
            "-",
            "-",
            "KVM_FEATURE_PV_UNHALT",
            "-",
            "kvm-pv-unhalt",
        ],
        ["bit", "0x40000001.0.edx[0]", "-", "-", "-", "KVM_HINTS_REALTIME", "-", "-"],
        ["range", "0x4", "0", "31"],
        ["indexed", "0x4", "kcpuid"],
        ["indexed", "0x7", "kcpuid-count,kvm,linux"],
    ]
    assert ext.main(["--sources", str(sources), "--output", str(facts_path), "--check"]) == 0

    overlay = tmp_path / "overlay.tsv"
    overlay.write_text(SYNTHETIC_OVERLAY, encoding="utf-8")
    table = tmp_path / "table.py"
    gen = load_generator()
    args = ["--facts", str(facts_path), "--overlay", str(overlay), "--output", str(table)]
    assert gen.main(args) == 0
    namespace: dict[str, object] = {}
    exec(compile(table.read_text(encoding="utf-8"), str(table), "exec"), namespace)
    rows = namespace["FEATURES"]
    assert isinstance(rows, tuple)
    assert [row[:7] for row in rows] == [
        (1, 0, "edx", 0, "fpu", "X86_FEATURE_FPU", "fpu"),
        (1, 0, "edx", 1, "hidden", "X86_FEATURE_HIDDEN", "hidden-q"),
        (6, 0, "ecx", 3, "scat", "X86_FEATURE_SCAT", None),
        (7, 1, "edx", 4, "kvmonly", "X86_FEATURE_KVMONLY", None),
        (0x40000001, 0, "eax", 7, "kvm_pv_unhalt", "KVM_FEATURE_PV_UNHALT", "kvm-pv-unhalt"),
        (0x40000001, 0, "edx", 0, "kvm_hints_realtime", "KVM_HINTS_REALTIME", None),
    ]
    assert namespace["INDEXED_LEAVES"] == frozenset({4, 7})
    assert namespace["SUBLEAF_RANGES"] == ((4, 0, 31),)
    assert gen.main([*args, "--check"]) == 0


def test_extractor_stops_when_the_inputs_disagree(tmp_path: Path) -> None:
    moved = """
        static const struct cpuid_bit cpuid_bits[] = {
        \t{ X86_FEATURE_SCAT, CPUID_ECX,  3, 0x00000006, 0 },
        \t{ X86_FEATURE_FPU, CPUID_ECX,  0, 0x00000006, 0 },
        };
        """
    sources = write_synthetic(tmp_path, **{"scattered.c": moved})
    out = tmp_path / "facts.tsv"
    assert load_extractor().main(["--sources", str(sources), "--output", str(out)]) == 2
    assert not out.exists()


def test_extractor_check_against_upstream_inputs() -> None:
    """Stage one on the real inputs: the committed facts file must be exactly theirs."""
    sources = os.environ.get("KVMPROBE_CPUID_SOURCES")
    if not sources or not Path(sources).is_dir():
        pytest.skip(
            "upstream inputs not available: set KVMPROBE_CPUID_SOURCES to a directory "
            "prepared as in scripts/README.md to run extract_cpuid_facts.py --check"
        )
    result = subprocess.run(
        [sys.executable, str(EXTRACTOR), "--sources", sources, "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
