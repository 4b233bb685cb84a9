#!/usr/bin/env python3
"""Generate kvmprobe/tables/cpuid_data.py: every named CPUID feature bit and multi-bit field.

Stage two of two, and the only one a plain clone needs. It joins two committed files:

* ``scripts/data/cpuid_facts.tsv``: upstream facts only (names, macro names, CPUID positions,
  field bit ranges, the indexed leaves, QEMU property names), written by stage one,
  ``scripts/extract_cpuid_facts.py``, from upstream files that are never committed (see
  scripts/README.md for where they come from);
* ``scripts/data/cpuid_overlay.tsv``: our own words -- the area classification, the one-line
  descriptions and the few name overrides.

It fails when a feature or field has no overlay row, when an overlay row matches nothing, or
when the facts file is not exactly what stage one writes (so it cannot drift by hand edits).
This module also owns the facts file format (``parse_facts``/``format_facts``); stage one
imports it from here.

Scope (decided by stage one): basic leaves 0x0..0x24, KVM's 0x40000000..0x40000001 and extended
0x80000000..0x80000022.

Names (``FEATURES[i][4]``), in order of preference:

1. an overlay name override (the overlay row must give a reason in its note column);
2. the Linux /proc/cpuinfo name when cpufeatures.h has one for the macro at that bit;
3. the lower-cased X86_FEATURE_ name without its prefix (hidden in cpuinfo, KVM-only or
   scattered bits);
4. ``kvm_`` + the lower-cased name after KVM_FEATURE_ (KVM_HINTS_REALTIME: kvm_hints_realtime);
5. kcpuid's short name, lower-cased;
6. QEMU's property name with ``-`` and ``.`` turned into ``_`` (bits only QEMU names).

Collisions (two bits wanting one name): rows are ordered by the rank above (1 best), then by
(leaf, subleaf, register, bit); the first keeps the name and every later one gets the suffix
``_<leaf in hex>``, then ``_s<subleaf>``, then ``_<register>`` until it is unique. Overlay
overrides are used where an automatic suffix reads badly (e.g. AMD's 0x80000001.EDX aliases).

Subleaf ranges: kcpuid describes some subleaves as a range (leaf 4 "31:0", 0xD "63:2" ...).
Such rows are stored once, at the first subleaf of the range, and ``SUBLEAF_RANGES`` lists
(leaf, first, last): the rows at (leaf, first) describe every subleaf first..last, except where
a row exists for that exact subleaf (Linux names 0x10.2.ECX[2] cdp_l2 apart from 0x10.1).

Areas (our classification, ``FEATURES[i][7]``) are listed in ``AREAS`` below. For a field the
overlay's area column says how its value reads instead (``ENCODINGS`` below): the generated
``FIELD_ENCODINGS`` maps each field that is not a plain number to its encoding.

Stdlib only; deterministic output, already in ``ruff format`` style::

    python scripts/gen_cpuid_tables.py             # regenerate
    python scripts/gen_cpuid_tables.py --check     # CI: exit 1 if the committed table is stale
    python scripts/gen_cpuid_tables.py --missing   # overlay rows the facts still need
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "kvmprobe" / "tables" / "cpuid_data.py"
DEFAULT_OVERLAY = REPO_ROOT / "scripts" / "data" / "cpuid_overlay.tsv"
DEFAULT_FACTS = REPO_ROOT / "scripts" / "data" / "cpuid_facts.tsv"
GENERATOR = "scripts/gen_cpuid_tables.py"
EXTRACTOR = "scripts/extract_cpuid_facts.py"
FACTS_LABEL = "scripts/data/cpuid_facts.tsv"
OVERLAY_LABEL = "scripts/data/cpuid_overlay.tsv"

# Our area classification: name -> what belongs there.
AREAS: dict[str, str] = {
    "base": "core ISA, identification and legacy platform bits",
    "simd": "vector/matrix/FP instruction sets (SSE, AVX*, AMX, FMA, ...)",
    "security": "speculation controls, mitigations, protection keys, CET, enclaves, TDX/SEV",
    "virtualization": "VMX/SVM and their sub-features, hypervisor-facing bits",
    "timers-apic": "TSC, APIC and APIC-timer features",
    "kvm-pv": "KVM paravirtual features and hints (leaf 0x40000001)",
    "memory": "paging, address width, caching and memory-ordering instructions",
    "power": "thermal and power management",
    "perf-debug": "performance monitoring, tracing, debug and RAS",
    "xsave": "XSAVE instructions and state components",
    "cache-topology": "cache, TLB and CPU topology description",
    "qos": "resource monitoring and allocation (Intel RDT, AMD PQoS)",
    "other": "anything else",
}

#: how a field's value reads (the overlay's area column for a field); '-' is the default
ENCODINGS: dict[str, str] = {
    "-": "a number (a count, a size, a level, an ID): shown in decimal",
    "minus-one": "CPUID stores the number minus one: reports show the number (value + 1)",
    "hex": "a bitmap, a mask, a leaf number or an address part: shown in hex",
}

REGS = ("eax", "ebx", "ecx", "edx")
NAME_RE = re.compile(r"^[a-z0-9_]+$")
MAX_DESCRIPTION = 70
LINE_LENGTH = 100

# Name sources, best first (see the module docstring).
RANK_OVERLAY, RANK_CPUINFO, RANK_MACRO, RANK_KVM_PV, RANK_CSV, RANK_QEMU = range(6)


NAMES_NOTE = [
    "# Names: Linux /proc/cpuinfo name, else lower-cased X86_FEATURE_/KVM_FEATURE_ name,",
    "# else kcpuid's short name; collisions get a _<leaf> suffix (rules in the generator).",
]
INDEXED_NOTE = [
    "# Leaves whose subleaf (ECX index) is significant. Sources per leaf:",
    "#   linux = cpuid_function_is_indexed() in asm/cpuid/api.h,",
    "#   kvm = a reverse_cpuid[] word at a non-zero subleaf,",
    "#   qemu = a feature word read with ECX != 0,",
    "#   kcpuid = a cpuid.csv row for a non-zero subleaf,",
    "#   kcpuid-count = a cpuid.csv field that counts the leaf's subleaves.",
]
RANGES_NOTE = [
    "# (leaf, first, last): rows stored at (leaf, first) describe every subleaf",
    "# first..last, except where a row exists for that exact subleaf.",
]


class GenError(Exception):
    """The inputs are inconsistent or incomplete; nothing is written."""


def c_int(text: str) -> int:
    return int(text, 0)


KEY_RE = re.compile(r"^(0x[0-9a-fA-F]+)\.(\d+)\.(eax|ebx|ecx|edx)\[(\d+)(?::(\d+))?\]$")


def format_key(leaf: int, subleaf: int, reg: str, lo: int, hi: int) -> str:
    bits = f"{lo}" if lo == hi else f"{hi}:{lo}"
    return f"0x{leaf:x}.{subleaf}.{reg}[{bits}]"


def parse_key(text: str) -> tuple[int, int, str, int, int] | None:
    """``LEAF.SUBLEAF.REG[BIT]`` or ``LEAF.SUBLEAF.REG[HI:LO]`` -> (leaf, subleaf, reg, lo, hi)."""
    km = KEY_RE.match(text)
    if not km:
        return None
    lo = hi = int(km.group(4))
    if km.group(5) is not None:
        hi, lo = int(km.group(4)), int(km.group(5))
    return (c_int(km.group(1)), int(km.group(2)), km.group(3), lo, hi)


def sort_key(key: tuple[int, int, str, int]) -> tuple[int, int, int, int]:
    leaf, subleaf, reg, b = key
    return (leaf, subleaf, REGS.index(reg), b)


# --------------------------------------------------------------------------------------------
# The facts file (written by stage one, read here)


@dataclass(frozen=True)
class Source:
    """One upstream input of stage one."""

    file: str  # name under --sources DIR
    repo: str
    commit: str
    path: str
    hashed: str  # "file", or the part of the file that is read and hashed
    sha256: str


@dataclass(frozen=True)
class Bit:
    """Everything upstream says about one feature bit."""

    leaf: int
    subleaf: int
    reg: str
    bit: int
    macro: str | None  # X86_FEATURE_* that Linux places at this bit
    macro_from: tuple[str, ...]  # where: word (cpufeatures.h word), kvm, scattered
    cpuinfo: str | None  # the macro's /proc/cpuinfo name; None: hidden or not in cpufeatures.h
    kvm_pv: str | None  # KVM_FEATURE_* / KVM_HINTS_* (leaf 0x40000001)
    csv: str | None  # kcpuid's short name
    qemu: str | None  # QEMU's property name

    @property
    def key(self) -> tuple[int, int, str, int]:
        return (self.leaf, self.subleaf, self.reg, self.bit)


@dataclass(frozen=True)
class Field:
    """A kcpuid multi-bit field (inclusive bits lo..hi)."""

    leaf: int
    subleaf: int
    reg: str
    lo: int
    hi: int
    name: str  # kcpuid's short name (the table uses the overlay's name)


@dataclass(frozen=True)
class Facts:
    sources: tuple[Source, ...]
    bits: tuple[Bit, ...]
    fields: tuple[Field, ...]
    ranges: tuple[tuple[int, int, int], ...]  # (leaf, first subleaf, last subleaf)
    indexed: dict[int, tuple[str, ...]]  # leaf -> which sources say its subleaf matters


FACTS_HEADER = [
    "# CPUID facts, extracted from upstream files by scripts/extract_cpuid_facts.py and read",
    "# by scripts/gen_cpuid_tables.py -- do not edit by hand. Facts only: names, macro names,",
    "# CPUID positions, field bit ranges, indexed leaves, QEMU property names; never upstream",
    "# descriptions or comments. kcpuid's short names come from x86-cpuid-db (CC0-1.0).",
    "# Regenerate: python scripts/extract_cpuid_facts.py --sources DIR (see scripts/README.md)",
    "#",
    "# Tab-separated records ('-' marks an absent value):",
    "#   source   FILE REPOSITORY COMMIT PATH HASHED SHA256",
    "#            one upstream input; HASHED: 'file', or the part of it that is read and hashed",
    "#   bit      KEY LINUX_MACRO FROM CPUINFO KVM_MACRO KCPUID QEMU",
    "#            a named bit at KEY (LEAF.SUBLEAF.REG[BIT]); FROM: where Linux places the macro",
    "#            there (word: its cpufeatures.h word, kvm: reverse_cpuid.h, scattered:",
    "#            scattered.c); CPUINFO: its /proc/cpuinfo name ('-': hidden, or not in",
    "#            cpufeatures.h); KVM_MACRO: kvm_para.h; KCPUID: kcpuid's short name; QEMU:",
    "#            QEMU's property name",
    "#   field    KEY KCPUID",
    "#            a multi-bit field at KEY (LEAF.SUBLEAF.REG[HI:LO])",
    "#   range    LEAF FIRST LAST",
    "#            rows at LEAF.FIRST describe every subleaf FIRST..LAST (kcpuid)",
    "#   indexed  LEAF SOURCES",
    "#            the leaf's subleaf (ECX) is significant, according to SOURCES",
]

MACRO_FROM = ("word", "kvm", "scattered")
INDEXED_SOURCES = ("linux", "kvm", "qemu", "kcpuid", "kcpuid-count")
FACT_PATTERNS: dict[str, re.Pattern[str]] = {
    "file": re.compile(r"^[A-Za-z0-9_.-]+$"),
    "repo": re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"),
    "commit": re.compile(r"^[0-9a-f]{40}$"),
    "path": re.compile(r"^[A-Za-z0-9_./-]+$"),
    "hashed": re.compile(r"^[A-Za-z0-9_\[\]]+$"),
    "sha256": re.compile(r"^[0-9a-f]{64}$"),
    "macro": re.compile(r"^X86_FEATURE_[A-Z0-9_]+$"),
    "cpuinfo": re.compile(r"^[a-z0-9_]+$"),
    "kvm_pv": re.compile(r"^KVM_(FEATURE|HINTS)_[A-Z0-9_]+$"),
    "csv": re.compile(r"^[a-z0-9_]+$"),
    "qemu": re.compile(r"^[a-z0-9.-]+$"),
}
RECORD_WIDTH = {"source": 7, "bit": 8, "field": 3, "range": 4, "indexed": 3}


def _opt(value: str | None) -> str:
    return "-" if value is None else value


def _fact(name: str, text: str, where: str) -> str:
    """``text``, checked against the pattern for a ``name`` value."""
    if not FACT_PATTERNS[name].match(text):
        raise GenError(f"{where}: bad {name} {text!r}")
    return text


def _optional_fact(name: str, text: str, where: str) -> str | None:
    return None if text == "-" else _fact(name, text, where)


def format_facts(facts: Facts) -> str:
    """The facts file text; deterministic (records in a fixed order)."""
    out = list(FACTS_HEADER)
    for s in facts.sources:
        out.append("\t".join(["source", s.file, s.repo, s.commit, s.path, s.hashed, s.sha256]))
    rows: list[tuple[tuple[int, int, int, int, int], str]] = []
    for b in facts.bits:
        cols = [
            "bit",
            format_key(b.leaf, b.subleaf, b.reg, b.bit, b.bit),
            _opt(b.macro),
            ",".join(b.macro_from) or "-",
            _opt(b.cpuinfo),
            _opt(b.kvm_pv),
            _opt(b.csv),
            _opt(b.qemu),
        ]
        rows.append(((*sort_key(b.key), b.bit), "\t".join(cols)))
    for f in facts.fields:
        cols = ["field", format_key(f.leaf, f.subleaf, f.reg, f.lo, f.hi), f.name]
        rows.append(((*sort_key((f.leaf, f.subleaf, f.reg, f.lo)), f.hi), "\t".join(cols)))
    out += [line for _key, line in sorted(rows)]
    for leaf, first, last in sorted(facts.ranges):
        out.append(f"range\t0x{leaf:x}\t{first}\t{last}")
    for leaf in sorted(facts.indexed):
        out.append(f"indexed\t0x{leaf:x}\t{','.join(sorted(facts.indexed[leaf]))}")
    return "\n".join(out) + "\n"


def parse_facts(text: str) -> Facts:
    """Read a facts file; it must be exactly what ``format_facts`` writes for its records."""
    sources: list[Source] = []
    bits: dict[tuple[int, int, str, int], Bit] = {}
    fields: dict[tuple[int, int, str, int, int], Field] = {}
    ranges: set[tuple[int, int, int]] = set()
    indexed: dict[int, tuple[str, ...]] = {}

    for lineno, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        cols = line.split("\t")
        kind = cols[0]
        where = f"facts line {lineno}"
        if RECORD_WIDTH.get(kind) != len(cols):
            raise GenError(f"{where}: not a record this generator knows: {line!r}")

        if kind == "source":
            names = ("file", "repo", "commit", "path", "hashed", "sha256")
            file, repo, commit, path, hashed, sha = (
                _fact(n, t, where) for n, t in zip(names, cols[1:], strict=True)
            )
            sources.append(Source(file, repo, commit, path, hashed, sha))
        elif kind in ("bit", "field"):
            key = parse_key(cols[1])
            if key is None:
                raise GenError(f"{where}: bad key {cols[1]!r}")
            leaf, subleaf, reg, lo, hi = key
            if kind == "bit":
                if lo != hi:
                    raise GenError(f"{where}: a bit record needs a single bit")
                macro_from = () if cols[3] == "-" else tuple(cols[3].split(","))
                if any(m not in MACRO_FROM for m in macro_from):
                    raise GenError(f"{where}: bad FROM {cols[3]!r}")
                macro = _optional_fact("macro", cols[2], where)
                if (macro is None) != (not macro_from):
                    raise GenError(f"{where}: LINUX_MACRO and FROM go together")
                b = Bit(
                    leaf,
                    subleaf,
                    reg,
                    lo,
                    macro,
                    macro_from,
                    _optional_fact("cpuinfo", cols[4], where),
                    _optional_fact("kvm_pv", cols[5], where),
                    _optional_fact("csv", cols[6], where),
                    _optional_fact("qemu", cols[7], where),
                )
                if b.key in bits:
                    raise GenError(f"{where}: {cols[1]} repeats")
                bits[b.key] = b
            else:
                if lo == hi:
                    raise GenError(f"{where}: a field record needs a bit range")
                if key in fields:
                    raise GenError(f"{where}: {cols[1]} repeats")
                fields[key] = Field(leaf, subleaf, reg, lo, hi, _fact("csv", cols[2], where))
        elif kind == "range":
            if not re.fullmatch(r"0x[0-9a-f]+", cols[1]) or not all(c.isdigit() for c in cols[2:]):
                raise GenError(f"{where}: bad range {line!r}")
            ranges.add((c_int(cols[1]), int(cols[2]), int(cols[3])))
        else:  # indexed
            said_by = tuple(cols[2].split(","))
            if not re.fullmatch(r"0x[0-9a-f]+", cols[1]) or any(
                n not in INDEXED_SOURCES for n in said_by
            ):
                raise GenError(f"{where}: bad indexed leaf {line!r}")
            indexed[c_int(cols[1])] = said_by

    if not sources or not bits:
        raise GenError("the facts file has no source or no bit records")
    facts = Facts(
        tuple(sources), tuple(bits.values()), tuple(fields.values()), tuple(ranges), indexed
    )
    if format_facts(facts) != text:
        raise GenError(
            "the facts file is not in the form scripts/extract_cpuid_facts.py writes "
            "(edited by hand?); regenerate it"
        )
    return facts


# --------------------------------------------------------------------------------------------
# Overlay


@dataclass
class OverlayRow:
    lineno: int
    key: tuple[int, int, str, int, int]  # leaf, subleaf, reg, lo, hi
    area: str
    name: str
    description: str
    note: str
    used: bool = False

    @property
    def is_fact(self) -> bool:
        return self.note.startswith("fact:")


def parse_overlay(text: str) -> dict[tuple[int, int, str, int, int], OverlayRow]:
    rows: dict[tuple[int, int, str, int, int], OverlayRow] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 4 or len(cols) > 5:
            raise GenError(f"overlay line {lineno}: want 4 or 5 tab-separated columns")
        key_text, area, name, description = (c.strip() for c in cols[:4])
        note = cols[4].strip() if len(cols) == 5 else ""
        key = parse_key(key_text)
        if key is None:
            raise GenError(f"overlay line {lineno}: bad key {key_text!r}")
        _leaf, _subleaf, _reg, lo, hi = key
        if key in rows:
            raise GenError(f"overlay line {lineno}: {key_text} repeats line {rows[key].lineno}")
        if lo == hi and area not in AREAS:
            raise GenError(f"overlay line {lineno}: unknown area {area!r}")
        if lo != hi and area not in ("", *ENCODINGS):
            raise GenError(
                f"overlay line {lineno}: a field's area column is its encoding, one of "
                + ", ".join(ENCODINGS)
            )
        if name and not NAME_RE.match(name):
            raise GenError(f"overlay line {lineno}: bad name {name!r}")
        if not description or len(description) > MAX_DESCRIPTION:
            raise GenError(f"overlay line {lineno}: description empty or over {MAX_DESCRIPTION}")
        if '"' in description or "\\" in description:
            raise GenError(f"overlay line {lineno}: no quotes or backslashes in descriptions")
        rows[key] = OverlayRow(lineno, key, area, name, description, note)
    return rows


# --------------------------------------------------------------------------------------------
# Joining facts and overlay


@dataclass
class Feature:
    leaf: int
    subleaf: int
    reg: str
    bit: int
    name: str
    kernel_name: str | None
    qemu_name: str | None
    area: str
    description: str
    rank: int


@dataclass
class FieldOut:
    leaf: int
    subleaf: int
    reg: str
    lo: int
    hi: int
    name: str
    description: str
    encoding: str = "-"


def candidate_name(b: Bit) -> tuple[str, str | None, int]:
    """(name, kernel_name, rank) from upstream facts."""
    if b.macro:
        if b.cpuinfo:
            return b.cpuinfo, b.macro, RANK_CPUINFO
        return b.macro.removeprefix("X86_FEATURE_").lower(), b.macro, RANK_MACRO
    if b.kvm_pv:
        if b.kvm_pv.startswith("KVM_FEATURE_"):
            return "kvm_" + b.kvm_pv.removeprefix("KVM_FEATURE_").lower(), b.kvm_pv, RANK_KVM_PV
        return b.kvm_pv.lower(), b.kvm_pv, RANK_KVM_PV
    if b.csv:
        return b.csv, None, RANK_CSV
    if b.qemu:
        return re.sub(r"[-.]", "_", b.qemu), None, RANK_QEMU
    raise GenError(f"{format_key(*b.key, b.bit)}: no name at all")


def build(
    facts: Facts, overlay: dict[tuple[int, int, str, int, int], OverlayRow]
) -> tuple[list[Feature], list[FieldOut], list[str]]:
    problems: list[str] = []
    features: list[Feature] = []
    for b in sorted(facts.bits, key=lambda b: sort_key(b.key)):
        name, kernel, rank = candidate_name(b)
        ov = overlay.get((b.leaf, b.subleaf, b.reg, b.bit, b.bit))
        if ov is None:
            problems.append(f"missing overlay row for feature {format_key(*b.key, b.bit)} ({name})")
            continue
        ov.used = True
        if ov.name:
            if not ov.note or ov.is_fact:
                problems.append(f"overlay line {ov.lineno}: a name override needs a reason")
            name, rank = ov.name, RANK_OVERLAY
        features.append(
            Feature(
                b.leaf, b.subleaf, b.reg, b.bit, name, kernel, b.qemu, ov.area, ov.description, rank
            )
        )

    fields: list[FieldOut] = []
    for row in facts.fields:
        ov = overlay.get((row.leaf, row.subleaf, row.reg, row.lo, row.hi))
        key_text = format_key(row.leaf, row.subleaf, row.reg, row.lo, row.hi)
        if ov is None:
            problems.append(f"missing overlay row for field {key_text} ({row.name})")
            continue
        ov.used = True
        if not ov.name:
            problems.append(f"overlay line {ov.lineno}: fields need a name")
            continue
        fields.append(
            FieldOut(
                row.leaf, row.subleaf, row.reg, row.lo, row.hi, ov.name, ov.description, ov.area
            )
        )

    # Supplementary facts the inputs lack: each overlay row says where the fact comes from.
    for ov in overlay.values():
        if ov.used or not ov.is_fact:
            continue
        leaf, subleaf, reg, lo, hi = ov.key
        if lo == hi:
            problems.append(f"overlay line {ov.lineno}: 'fact:' rows may only add fields")
            continue
        ov.used = True
        fields.append(FieldOut(leaf, subleaf, reg, lo, hi, ov.name, ov.description, ov.area))

    for ov in overlay.values():
        if not ov.used:
            problems.append(f"overlay line {ov.lineno}: {format_key(*ov.key)} matches nothing")

    # Unique names, deterministic: best rank first, then position.
    taken: set[str] = set()
    for feat in sorted(
        features, key=lambda f: (f.rank, sort_key((f.leaf, f.subleaf, f.reg, f.bit)))
    ):
        base = feat.name
        suffixes = [f"_{feat.leaf:x}", f"_s{feat.subleaf}", f"_{feat.reg}"]
        name = base
        i = 0
        while name in taken:
            if i >= len(suffixes):
                raise GenError(f"cannot make {base} unique")
            name += suffixes[i]
            i += 1
        feat.name = name
        taken.add(name)
    for fo in fields:
        if fo.name in taken:
            problems.append(f"field name {fo.name} is already used")
        taken.add(fo.name)

    fields.sort(key=lambda f: (sort_key((f.leaf, f.subleaf, f.reg, f.lo)), f.hi))
    problems += check_overlaps(features, fields)
    for feat in features:
        if not NAME_RE.match(feat.name):
            problems.append(f"bad feature name {feat.name!r}")
    return features, fields, problems


def check_overlaps(features: list[Feature], fields: list[FieldOut]) -> list[str]:
    problems = []
    owner: dict[tuple[int, int, str, int], str] = {}
    for feat in features:
        owner[(feat.leaf, feat.subleaf, feat.reg, feat.bit)] = feat.name
    for fo in fields:
        for b in range(fo.lo, fo.hi + 1):
            key = (fo.leaf, fo.subleaf, fo.reg, b)
            if key in owner:
                problems.append(f"field {fo.name} overlaps {owner[key]} at {key}")
            owner[key] = fo.name
    return problems


# --------------------------------------------------------------------------------------------
# Output


def py_str(value: str | None) -> str:
    if value is None:
        return "None"
    if '"' in value or "\\" in value or not value.isascii():
        raise GenError(f"unexpected character in {value!r}")
    return f'"{value}"'


def py_hex(value: int) -> str:
    return "0x" + f"{value:X}" if value > 9 else str(value)


def emit_tuple(items: list[str]) -> list[str]:
    """One table row per line (the tables sit between ``# fmt: off`` and ``# fmt: on``)."""
    return ["    (" + ", ".join(items) + "),"]


def render(
    features: list[Feature],
    fields: list[FieldOut],
    facts: Facts,
    facts_hash: str,
    overlay_hash: str,
) -> str:
    out: list[str] = []
    out.append("# ruff: noqa: E501")
    out.append(f"# Generated by {GENERATOR} -- do not edit by hand.")
    out.append(f"# Regenerate: python {GENERATOR} (two stages: see scripts/README.md)")
    out.append("#")
    out.append("# Upstream facts (names, leaf/subleaf/register/bit positions), repo @ commit:")
    for s in facts.sources:
        suffix = f" (only {s.hashed} is read and hashed)" if s.hashed != "file" else ""
        out.append(f"#   {s.file}: {s.repo} @ {s.commit}")
        out.append(f"#     {s.path}{suffix}")
        out.append(f"#     sha256 {s.sha256}")
    out.append(f"# The facts taken from them by {EXTRACTOR}:")
    out.append(f"#   {FACTS_LABEL}")
    out.append(f"#     sha256 {facts_hash}")
    out.append("# Our own words (areas, descriptions, name overrides):")
    out.append(f"#   {OVERLAY_LABEL}")
    out.append(f"#     sha256 {overlay_hash}")
    out.append("#")
    out += NAMES_NOTE
    out.append("# Areas (meanings in the generator): " + ", ".join(list(AREAS)[:6]) + ",")
    out.append("#   " + ", ".join(list(AREAS)[6:]) + ".")
    out.append('"""CPUID feature bits and multi-bit fields (generated; plain data, no logic)."""')
    out.append("")
    out.append("# One row per line, so the tables are not reformatted (rows are long).")
    out.append("# fmt: off")
    out.append("# (leaf, subleaf, register, bit, name, kernel_name, qemu_name, area, description)")
    out.append(
        "FEATURES: tuple[tuple[int, int, str, int, str, str | None, str | None, str, str], ...] = ("
    )
    for f in sorted(features, key=lambda f: sort_key((f.leaf, f.subleaf, f.reg, f.bit))):
        out += emit_tuple(
            [
                py_hex(f.leaf),
                str(f.subleaf),
                py_str(f.reg),
                str(f.bit),
                py_str(f.name),
                py_str(f.kernel_name),
                py_str(f.qemu_name),
                py_str(f.area),
                py_str(f.description),
            ]
        )
    out.append(")")
    out.append("")
    out.append("# (leaf, subleaf, register, lo_bit, hi_bit, name, description)  inclusive bits")
    out.append("FIELDS: tuple[tuple[int, int, str, int, int, str, str], ...] = (")
    for fo in fields:
        out += emit_tuple(
            [
                py_hex(fo.leaf),
                str(fo.subleaf),
                py_str(fo.reg),
                str(fo.lo),
                str(fo.hi),
                py_str(fo.name),
                py_str(fo.description),
            ]
        )
    out.append(")")
    out.append("# fmt: on")
    out.append("")
    out += INDEXED_NOTE
    for leaf in sorted(facts.indexed):
        out.append(f"#   {py_hex(leaf)}: {', '.join(sorted(facts.indexed[leaf]))}")
    leaves = ", ".join(py_hex(leaf) for leaf in sorted(facts.indexed))
    line = f"INDEXED_LEAVES: frozenset[int] = frozenset({{{leaves}}})"
    if len(line) <= LINE_LENGTH:
        out.append(line)
    else:
        out.append("INDEXED_LEAVES: frozenset[int] = frozenset(")
        out.append("    {")
        out += [f"        {py_hex(leaf)}," for leaf in sorted(facts.indexed)]
        out.append("    }")
        out.append(")")
    out.append("")
    out += RANGES_NOTE
    out.append("SUBLEAF_RANGES: tuple[tuple[int, int, int], ...] = (")
    used = {(f.leaf, f.subleaf) for f in features} | {(f.leaf, f.subleaf) for f in fields}
    for leaf, first, last in sorted(facts.ranges):
        if (leaf, first) in used:
            out.append(f"    ({py_hex(leaf)}, {first}, {last}),")
    out.append(")")
    out.append("")
    out.append("# Bits Linux shows in /proc/cpuinfo, with the flag name it shows (facts: CPUINFO)")
    out.append("CPUINFO_FLAGS: dict[tuple[int, int, str, int], str] = {")
    for b in sorted(facts.bits, key=lambda b: sort_key(b.key)):
        if b.cpuinfo:
            key = f"({py_hex(b.leaf)}, {b.subleaf}, {py_str(b.reg)}, {b.bit})"
            out.append(f"    {key}: {py_str(b.cpuinfo)},")
    out.append("}")
    out.append("")
    out.append("AREAS: tuple[str, ...] = (")
    out += [f"    {py_str(a)}," for a in AREAS]
    out.append(")")
    out.append("")
    out.append("# How a field's value reads, for each field that is not a plain number")
    kinds = ", ".join(e for e in ENCODINGS if e != "-")
    out.append(f"# (meanings in the generator's ENCODINGS): {kinds}")
    out.append("FIELD_ENCODINGS: dict[str, str] = {")
    for fo in fields:
        if fo.encoding not in ("", "-"):
            out.append(f"    {py_str(fo.name)}: {py_str(fo.encoding)},")
    out.append("}")
    text = "\n".join(out) + "\n"
    for n, ln in enumerate(text.splitlines(), 1):
        if len(ln) > LINE_LENGTH and not ln.startswith("    ("):
            raise GenError(f"generated line {n} is longer than {LINE_LENGTH}: {ln!r}")
    return text


# --------------------------------------------------------------------------------------------
# Command line


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise GenError(f"cannot read the {what} {path}: {e.strerror}") from e


def generate(facts_path: Path, overlay_path: Path) -> tuple[str, int, int]:
    """(module text, feature count, field count) from the facts file and the overlay."""
    facts_text = read_text(facts_path, "facts file")
    overlay_text = read_text(overlay_path, "overlay")
    facts = parse_facts(facts_text)
    features, fields, problems = build(facts, parse_overlay(overlay_text))
    if problems:
        raise GenError("\n".join(problems))
    text = render(
        features,
        fields,
        facts,
        hashlib.sha256(facts_text.encode()).hexdigest(),
        hashlib.sha256(overlay_text.encode()).hexdigest(),
    )
    return text, len(features), len(fields)


def print_missing(facts: Facts, overlay: dict[tuple[int, int, str, int, int], OverlayRow]) -> None:
    for b in sorted(facts.bits, key=lambda b: sort_key(b.key)):
        if (b.leaf, b.subleaf, b.reg, b.bit, b.bit) in overlay:
            continue
        name, kernel, _rank = candidate_name(b)
        hint = " ".join(x for x in (kernel, b.csv, b.qemu) if x)
        print(f"{format_key(*b.key, b.bit)}\t?\t\t?\t# {name} {hint}".rstrip())
    for row in facts.fields:
        if (row.leaf, row.subleaf, row.reg, row.lo, row.hi) in overlay:
            continue
        key_text = format_key(row.leaf, row.subleaf, row.reg, row.lo, row.hi)
        print(f"{key_text}\t-\t?\t?\t# {row.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--facts", default=str(DEFAULT_FACTS), help="facts file (stage one)")
    parser.add_argument("--overlay", default=str(DEFAULT_OVERLAY), help="our overlay TSV")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="generated module")
    parser.add_argument("--check", action="store_true", help="exit 1 if --output is stale")
    parser.add_argument(
        "--missing", action="store_true", help="print overlay rows still needed (TSV skeleton)"
    )
    args = parser.parse_args(argv)
    try:
        if args.missing:
            facts = parse_facts(read_text(Path(args.facts), "facts file"))
            print_missing(facts, parse_overlay(read_text(Path(args.overlay), "overlay")))
            return 0
        text, n_features, n_fields = generate(Path(args.facts), Path(args.overlay))
    except GenError as e:
        print(f"gen_cpuid_tables: error: {e}", file=sys.stderr)
        return 2
    output = Path(args.output)
    counts = f"{n_features} features, {n_fields} fields"
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), str(output), "generated", lineterm=""
            )
            sys.stderr.write("\n".join(list(diff)[:60]) + "\n")
            print(f"gen_cpuid_tables: {output} is stale; regenerate it", file=sys.stderr)
            return 1
        print(f"gen_cpuid_tables: {output} is up to date ({counts})")
        return 0
    output.write_text(text, encoding="utf-8")
    print(f"gen_cpuid_tables: wrote {output} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
