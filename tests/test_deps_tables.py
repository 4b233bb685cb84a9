"""The generated dependency / psABI / XSAVE tables (kvmprobe/tables/deps_data.py) and their
generator. Every input is committed, so the regeneration check always runs."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from kvmprobe.analysis import cpuid as cp
from kvmprobe.tables import deps_data

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "scripts" / "gen_deps_tables.py"
DATA = REPO / "scripts" / "data"


@functools.cache
def gen() -> ModuleType:
    """scripts/ is not a package: load the generator from its file."""
    spec = importlib.util.spec_from_file_location("gen_deps_tables", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_generated_module_is_up_to_date() -> None:
    r = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "up to date" in r.stdout


def test_check_fails_on_a_stale_module(tmp_path: Path) -> None:
    stale = tmp_path / "deps_data.py"
    stale.write_text(Path(deps_data.__file__).read_text().replace('"avx2"', '"avx3"', 1))
    r = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--output", str(stale)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1
    assert "stale" in r.stderr


def test_header_hashes_match_the_committed_inputs() -> None:
    header = Path(deps_data.__file__).read_text().split('"""', 1)[0]
    for name in ("cpuid_deps.tsv", "psabi_levels.json", "xsave_components.tsv", "runtime_bits.tsv"):
        digest = hashlib.sha256((DATA / name).read_bytes()).hexdigest()
        assert f"{name}: sha256 {digest}" in header


# ---- the psABI levels ---------------------------------------------------------------------

# The psABI table (x86-64-ABI/low-level-sys-info.tex, "Micro-Architecture Levels"), as spelt
# there (SSE4\symbol{95}1 is SSE4_1).
PSABI_TABLE = {
    "x86-64-v1": ["CMOV", "CX8", "FPU", "FXSR", "MMX", "OSFXSR", "SCE", "SSE", "SSE2"],
    "x86-64-v2": ["CMPXCHG16B", "LAHF-SAHF", "POPCNT", "SSE3", "SSE4_1", "SSE4_2", "SSSE3"],
    "x86-64-v3": ["AVX", "AVX2", "BMI1", "BMI2", "F16C", "FMA", "LZCNT", "MOVBE", "OSXSAVE"],
    "x86-64-v4": ["AVX512F", "AVX512BW", "AVX512CD", "AVX512DQ", "AVX512VL"],
}


def test_psabi_rows_are_the_psabi_table() -> None:
    got: dict[str, list[str]] = {}
    for level, psabi, *_rest in deps_data.PSABI_LEVELS:
        if psabi is not None:
            got.setdefault(level, []).append(psabi)
    assert got == PSABI_TABLE


# Every psABI name -> (kvmprobe feature, kind, location), pinned.
PINNED = {
    "CMOV": ("cmov", "cpuid", "0x1.0.edx[15]"),
    "CX8": ("cx8", "cpuid", "0x1.0.edx[8]"),
    "FPU": ("fpu", "cpuid", "0x1.0.edx[0]"),
    "FXSR": ("fxsr", "cpuid", "0x1.0.edx[24]"),
    "MMX": ("mmx", "cpuid", "0x1.0.edx[23]"),
    "OSFXSR": ("fxsr", "os-enable", "0x1.0.edx[24]"),
    "SCE": ("syscall", "os-enable", "0x80000001.0.edx[11]"),
    "SSE": ("sse", "cpuid", "0x1.0.edx[25]"),
    "SSE2": ("sse2", "cpuid", "0x1.0.edx[26]"),
    "CMPXCHG16B": ("cx16", "cpuid", "0x1.0.ecx[13]"),
    "LAHF-SAHF": ("lahf_lm", "cpuid", "0x80000001.0.ecx[0]"),
    "POPCNT": ("popcnt", "cpuid", "0x1.0.ecx[23]"),
    "SSE3": ("pni", "cpuid", "0x1.0.ecx[0]"),
    "SSE4_1": ("sse4_1", "cpuid", "0x1.0.ecx[19]"),
    "SSE4_2": ("sse4_2", "cpuid", "0x1.0.ecx[20]"),
    "SSSE3": ("ssse3", "cpuid", "0x1.0.ecx[9]"),
    "AVX": ("avx", "cpuid", "0x1.0.ecx[28]"),
    "AVX2": ("avx2", "cpuid", "0x7.0.ebx[5]"),
    "BMI1": ("bmi1", "cpuid", "0x7.0.ebx[3]"),
    "BMI2": ("bmi2", "cpuid", "0x7.0.ebx[8]"),
    "F16C": ("f16c", "cpuid", "0x1.0.ecx[29]"),
    "FMA": ("fma", "cpuid", "0x1.0.ecx[12]"),
    "LZCNT": ("abm", "cpuid", "0x80000001.0.ecx[5]"),
    "MOVBE": ("movbe", "cpuid", "0x1.0.ecx[22]"),
    "OSXSAVE": ("xsave", "os-enable", "0x1.0.ecx[26]"),
    "AVX512F": ("avx512f", "cpuid", "0x7.0.ebx[16]"),
    "AVX512BW": ("avx512bw", "cpuid", "0x7.0.ebx[30]"),
    "AVX512CD": ("avx512cd", "cpuid", "0x7.0.ebx[28]"),
    "AVX512DQ": ("avx512dq", "cpuid", "0x7.0.ebx[17]"),
    "AVX512VL": ("avx512vl", "cpuid", "0x7.0.ebx[31]"),
}


def test_psabi_rows_are_pinned_to_their_cpuid_bits() -> None:
    got = {
        psabi: (feature, kind, cp.fmt_loc(leaf, sub, reg, bit))
        for _lv, psabi, feature, kind, leaf, sub, reg, bit in deps_data.PSABI_LEVELS
        if psabi is not None
    }
    assert got == PINNED


def test_psabi_rows_agree_with_the_cpuid_table() -> None:
    for _lv, _psabi, feature, _kind, leaf, sub, reg, bit in deps_data.PSABI_LEVELS:
        f = cp.lookup(feature)
        assert f is not None and f.name == feature
        assert f.loc == (leaf, sub, reg, bit), feature


def test_xsave_state_rows_of_v3_and_v4() -> None:
    state = [
        (lv, feature, cp.fmt_loc(leaf, sub, reg, bit))
        for lv, _p, feature, kind, leaf, sub, reg, bit in deps_data.PSABI_LEVELS
        if kind == "xsave-state"
    ]
    assert state == [
        ("x86-64-v3", "xcr0_sse", "0xd.0.eax[1]"),
        ("x86-64-v3", "xcr0_avx", "0xd.0.eax[2]"),
        ("x86-64-v4", "xcr0_avx512_opmask", "0xd.0.eax[5]"),
        ("x86-64-v4", "xcr0_avx512_zmm_hi256", "0xd.0.eax[6]"),
        ("x86-64-v4", "xcr0_avx512_hi16_zmm", "0xd.0.eax[7]"),
    ]
    # and they are the components glibc checks, by their generated numbers
    assert [b for *_r, b in deps_data.PSABI_LEVELS[-3:]] == [
        deps_data.XFEATURE_OPMASK,
        deps_data.XFEATURE_ZMM_HI256,
        deps_data.XFEATURE_HI16_ZMM,
    ]


def test_generator_refuses_a_wrongly_pinned_psabi_row() -> None:
    g = gen()
    table = g.load_table(g.CPUID_TABLE)
    data = json.loads((DATA / "psabi_levels.json").read_text())
    data["levels"][1]["requirements"][1]["where"] = "0x80000001.0.ecx[1]"  # LAHF-SAHF moved
    with pytest.raises(g.GenError, match=re.escape("lahf_lm is pinned at 0x80000001.0.ecx[1]")):
        g.read_psabi(json.dumps(data), table)


# ---- dependencies -------------------------------------------------------------------------


Names = tuple[str, ...]
DepRows = tuple[tuple[str, Names, Names, str, Names, Names, Names], ...]


def dep_pairs(rows: DepRows) -> set[tuple[str, Names]]:
    return {(fn, rn) for _fm, fnames, _fw, _rm, rn, _rw, _s in rows for fn in fnames}


def test_dependency_sources_are_the_pinned_copies() -> None:
    srcs = [
        (i, repo, commit, path) for i, repo, commit, path, _sha, _role in deps_data.DEPS_SOURCES
    ]
    assert srcs == [
        (
            "A",
            "torvalds/linux",
            "dd7ce6547aeec06fc67a6ac36c958f4a9d352f37",
            "arch/x86/kernel/cpu/cpuid-deps.c",
        ),
        (
            "B",
            "intel-lab-lkp/linux",
            "860f61b9e2436f33884278648c7e20abab7e91f4",
            "arch/x86/kernel/cpu/cpuid-deps.c",
        ),
        (
            "C",
            "ColinIanKing/linux-next",
            "6850f6aa97a9d72a42efc7b67a2f9aa44af776a5",
            "arch/x86/kernel/cpu/cpuid-deps.c",
        ),
    ]
    for source in deps_data.DEPS_SOURCES:
        assert len(source[4]) == 64 and int(source[4], 16) >= 0


def test_dependency_rows_counts_and_resolution() -> None:
    assert len(deps_data.DEPENDS) == 70
    assert all(row[1] and row[4] for row in deps_data.DEPENDS)  # every macro resolved
    # the old mainline rows the newer copies changed are kept, not used
    assert dep_pairs(deps_data.SUPERSEDED) == {
        ("gfni", ("avx512vl",)),
        ("vaes", ("avx512vl",)),
        ("vpclmulqdq", ("avx512vl",)),
    }
    # every row of the 0-day copy (B) is also in the newest (C): two sources agree
    b_rows = [r for r in deps_data.DEPENDS + deps_data.SUPERSEDED if "B" in r[6]]
    assert all("C" in r[6] for r in b_rows)


def test_pinned_dependencies() -> None:
    pairs = dep_pairs(deps_data.DEPENDS)
    for pair in [
        ("avx2", ("avx",)),
        ("avx512f", ("avx",)),
        ("avx", ("xsave",)),
        ("xsave", ("fxsr",)),
        ("fma", ("avx",)),
        ("avx512vl", ("avx512f",)),
        ("avx512_fp16", ("avx512bw",)),
        ("gfni", ("sse2",)),
        ("vaes", ("avx",)),
        ("amx_tile", ("xfd",)),
        ("xfd", ("xsaves",)),
        ("xfd", ("xgetbv1",)),
        ("amx_bf16", ("amx_tile",)),
        ("fred", ("lkgs",)),
        ("per_thread_mba", ("mba", "mba_80000008")),  # one Linux macro, two CPUID positions
    ]:
        assert pair in pairs, pair


def test_dependency_locations_are_the_table_locations() -> None:
    for _fm, fnames, fwhere, _rm, rnames, rwhere, _s in deps_data.DEPENDS:
        for name, where in [*zip(fnames, fwhere, strict=True), *zip(rnames, rwhere, strict=True)]:
            f = cp.lookup(name)
            assert f is not None and f.where == where


def test_parse_cpuid_deps_takes_only_the_pairs() -> None:
    text = """
    static const struct cpuid_dep cpuid_deps[] = {
        { X86_FEATURE_A,   X86_FEATURE_B   },   /* a comment { X86_FEATURE_X, X86_FEATURE_Y } */
        { X86_FEATURE_C,   X86_FEATURE_B,  },
        { X86_FEATURE_A,   X86_FEATURE_B   },
        {}
    };
    static const struct other other[] = { { X86_FEATURE_Q, X86_FEATURE_R } };
    """
    assert gen().parse_cpuid_deps(text) == [
        ("X86_FEATURE_A", "X86_FEATURE_B"),
        ("X86_FEATURE_C", "X86_FEATURE_B"),
        ("X86_FEATURE_A", "X86_FEATURE_B"),
    ]
    with pytest.raises(gen().GenError):
        gen().parse_cpuid_deps("int x;")


def test_a_macro_missing_from_the_table_is_kept_unresolved(tmp_path: Path) -> None:
    """Generate against a CPUID table without X86_FEATURE_LKGS: the FRED row stays, with no
    names, and the analysis lists it as unresolved."""
    g = gen()
    table = g.load_table(g.CPUID_TABLE)
    trimmed = g.Table(
        tuple(r for r in table.rows if r.kernel_name != "X86_FEATURE_LKGS"),
        table.fields,
        table.ranges,
    )
    inputs = {p.name: p.read_text() for p in (g.DEPS_TSV, g.PSABI_JSON, g.XSAVE_TSV, g.RUNTIME_TSV)}
    sources, deps = g.read_deps_tsv(inputs["cpuid_deps.tsv"])
    text = g.render(
        inputs,
        trimmed,
        sources,
        deps,
        g.read_psabi(inputs["psabi_levels.json"], trimmed),
        g.read_xsave(inputs["xsave_components.tsv"], trimmed),
        g.read_runtime(inputs["runtime_bits.tsv"]),
    )
    ns: dict[str, object] = {}
    exec(compile(text, "deps_data_trimmed.py", "exec"), ns)
    depends = ns["DEPENDS"]
    assert isinstance(depends, tuple)
    fred = [r for r in depends if r[0] == "X86_FEATURE_FRED"]
    assert fred == [
        ("X86_FEATURE_FRED", ("fred",), ("0x7.1.eax[17]",), "X86_FEATURE_LKGS", (), (), ("B", "C"))
    ]
    assert len(depends) == len(deps_data.DEPENDS)
    assert "1 unresolved" in text


def test_fred_location_used_above_is_the_table_one() -> None:
    f = cp.lookup("fred")
    assert f is not None and f.where == "0x7.1.eax[17]"


# ---- XSAVE components ---------------------------------------------------------------------


def test_xsave_component_numbers() -> None:
    assert (deps_data.XFEATURE_FP, deps_data.XFEATURE_SSE, deps_data.XFEATURE_YMM) == (0, 1, 2)
    assert (deps_data.XFEATURE_BNDREGS, deps_data.XFEATURE_BNDCSR) == (3, 4)
    assert (
        deps_data.XFEATURE_OPMASK,
        deps_data.XFEATURE_ZMM_HI256,
        deps_data.XFEATURE_HI16_ZMM,
    ) == (5, 6, 7)
    assert deps_data.XFEATURE_PKRU == 9
    assert (deps_data.XFEATURE_XTILE_CFG, deps_data.XFEATURE_XTILE_DATA) == (17, 18)
    assert deps_data.XFEATURE_APX == 19
    assert deps_data.XCR0_ENUMERATION == (0xD, 0, "eax", "edx")
    assert deps_data.XSS_ENUMERATION == (0xD, 1, "ecx", "edx")


def test_xsave_components_match_the_cpuid_table_rows() -> None:
    """Each component bit is where kcpuid's table names it (APX has no row there yet)."""
    for bit, xfeature, _macro, name, register in deps_data.XSAVE_COMPONENTS:
        leaf, sub, low, _high = (
            deps_data.XCR0_ENUMERATION if register == "xcr0" else deps_data.XSS_ENUMERATION
        )
        row = cp.by_loc().get((leaf, sub, low, bit))
        if xfeature == "XFEATURE_APX":
            assert row is None
        else:
            assert row is not None, xfeature
        assert cp.lookup(name) is not None


def test_component_features() -> None:
    by_bit = {bit: name for bit, _x, _m, name, _r in deps_data.XSAVE_COMPONENTS}
    assert by_bit[deps_data.XFEATURE_YMM] == "avx"
    assert {by_bit[b] for b in (5, 6, 7)} == {"avx512f"}
    assert by_bit[deps_data.XFEATURE_PKRU] == "ospke"  # Linux's fact; a runtime bit
    assert {by_bit[b] for b in (17, 18)} == {"amx_tile"}
    assert deps_data.RUNTIME_BITS == (
        ("osxsave", "xsave", "CR4.OSXSAVE"),
        ("ospke", "pku", "CR4.PKE"),
    )
