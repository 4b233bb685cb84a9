#!/usr/bin/env python3
"""Generate kvmprobe/tables/cpuid_data.py: every named CPUID feature bit and multi-bit field.

Facts (names, leaf/subleaf/register/bit positions) are read from upstream files given on the
command line; nothing upstream is committed here (see scripts/README.md for where each file
comes from and a copy-paste recipe). Our own words -- the area classification and the one-line
descriptions -- come from ``scripts/data/cpuid_overlay.tsv``. The generator joins the two and
fails when a feature or field has no overlay row, or an overlay row matches nothing.

Inputs (one path each, or ``--sources DIR`` holding them under the names in ``INPUTS``):

* Linux ``tools/arch/x86/include/asm/cpufeatures.h``: X86_FEATURE_* word/bit numbers and the
  /proc/cpuinfo names (the quoted string that opens the comment; no string means hidden).
* Linux ``arch/x86/include/asm/cpufeature.h``: ``enum cpuid_leafs`` (word number -> CPUID_* name).
* Linux ``arch/x86/kvm/reverse_cpuid.h``: CPUID_* name -> (leaf, subleaf, register), the
  KVM-only words (7.1.EDX, 7.2.EDX, 0x1E.1.EAX, 0x24 ...) and KVM's translated scattered bits.
* Linux ``arch/x86/kernel/cpu/scattered.c``: CPUID positions of Linux-defined (scattered) bits.
* Linux ``arch/x86/include/asm/cpuid/api.h``: ``cpuid_function_is_indexed()``.
* Linux ``arch/x86/include/uapi/asm/kvm_para.h``: KVM_FEATURE_* (0x40000001.EAX) and
  KVM_HINTS_REALTIME (0x40000001.EDX).
* kcpuid ``tools/arch/x86/kcpuid/cpuid.csv`` (x86-cpuid-db): every bitfield, for bits Linux does
  not name and for the multi-bit fields. Its long descriptions are never used.
* QEMU ``target/i386/cpu.c``: ``feature_word_info`` (QEMU property names per CPUID word/bit).
  Only that array is read (and hashed), so an excerpt holding it works as well as the file.

Scope: basic leaves 0x0..0x24, KVM's 0x40000000..0x40000001 and extended 0x80000000..0x80000022.

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

Areas (our classification, ``FEATURES[i][7]``) are listed in ``AREAS`` below.

Stdlib only; deterministic output, already in ``ruff format`` style::

    python scripts/gen_cpuid_tables.py --sources /tmp/kvmprobe-upstream        # regenerate
    python scripts/gen_cpuid_tables.py --sources /tmp/kvmprobe-upstream --check
    python scripts/gen_cpuid_tables.py --sources DIR --missing   # overlay rows still needed
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "kvmprobe" / "tables" / "cpuid_data.py"
DEFAULT_OVERLAY = REPO_ROOT / "scripts" / "data" / "cpuid_overlay.tsv"
GENERATOR = "scripts/gen_cpuid_tables.py"

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

# input key -> (command-line option, file name under --sources, repository, commit, path)
INPUTS: dict[str, tuple[str, str, str, str, str]] = {
    "cpufeatures": (
        "--cpufeatures",
        "cpufeatures.h",
        "intel-lab-lkp/linux",
        "0888e83ed3db961461a6451aacfd8cefd2f7a078",
        "tools/arch/x86/include/asm/cpufeatures.h",
    ),
    "cpufeature": (
        "--cpufeature-h",
        "cpufeature.h",
        "intel-lab-lkp/linux",
        "e9c89606c337fe4e33726c3ba293bb03f4a27163",
        "arch/x86/include/asm/cpufeature.h",
    ),
    "reverse_cpuid": (
        "--reverse-cpuid",
        "reverse_cpuid.h",
        "intel-lab-lkp/linux",
        "7e520dab3e011f2e5ca7d944b7526f5664eed6f3",
        "arch/x86/kvm/reverse_cpuid.h",
    ),
    "scattered": (
        "--scattered",
        "scattered.c",
        "intel-lab-lkp/linux",
        "0115d3be36fbdce1ef24602e729032c818fe37a2",
        "arch/x86/kernel/cpu/scattered.c",
    ),
    "cpuid_api": (
        "--cpuid-api-h",
        "cpuid_api.h",
        "torvalds/linux",
        "4f9786035f9e519db41375818e1d0b5f20da2f10",
        "arch/x86/include/asm/cpuid/api.h",
    ),
    "kvm_para": (
        "--kvm-para-h",
        "kvm_para.h",
        "torvalds/linux",
        "693270471d96a63897bd132df15e00da826fa84b",
        "arch/x86/include/uapi/asm/kvm_para.h",
    ),
    "cpuid_csv": (
        "--cpuid-csv",
        "cpuid.csv",
        "intel-lab-lkp/linux",
        "baa7a01d1f4d88a5189b712b057e1b653dc74f41",
        "tools/arch/x86/kcpuid/cpuid.csv",
    ),
    "qemu_cpu_c": (
        "--qemu-cpu-c",
        "qemu_cpu.c",
        "qemu/qemu",
        "0048035a870312f2fd0f3dd28115398d26e419bb",
        "target/i386/cpu.c",
    ),
}

REGS = ("eax", "ebx", "ecx", "edx")
NAME_RE = re.compile(r"^[a-z0-9_]+$")
# kcpuid field names that count a leaf's subleaves (leaf7_n_subleaves, pt_max_subleaf, ...)
SUBLEAF_COUNT_RE = re.compile(r"max_subleaf|n_subleaves|nr_subleaves")
MAX_DESCRIPTION = 70
LINE_LENGTH = 100

# Registers that hold vendor/brand/signature strings: never decoded as fields.
STRING_REGISTERS: frozenset[tuple[int, int | None, str]] = frozenset(
    [(0x0, 0, r) for r in ("ebx", "ecx", "edx")]
    + [(0x80000000, 0, r) for r in ("ebx", "ecx", "edx")]
    + [(0x40000000, 0, r) for r in ("ebx", "ecx", "edx")]
    + [(0x21, 0, r) for r in ("ebx", "ecx", "edx")]
    + [(leaf, 0, r) for leaf in (0x80000002, 0x80000003, 0x80000004) for r in REGS]
    + [(0x17, 1, r) for r in REGS]
)

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


def in_scope(leaf: int) -> bool:
    return leaf <= 0x24 or 0x40000000 <= leaf <= 0x40000001 or 0x80000000 <= leaf <= 0x80000022


def c_int(text: str) -> int:
    return int(text, 0)


def strip_c_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.DOTALL)


def match_brace(text: str, open_at: int) -> int:
    """Index of the brace closing the one at ``open_at`` (comments already stripped)."""
    depth = 0
    in_str = False
    i = open_at
    while i < len(text):
        ch = text[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise GenError("unbalanced braces")


# --------------------------------------------------------------------------------------------
# Upstream parsers


@dataclass(frozen=True)
class LinuxMacro:
    macro: str  # X86_FEATURE_...
    word: int
    bit: int
    cpuinfo: str | None  # None: hidden from /proc/cpuinfo


def parse_cpufeatures(text: str) -> tuple[dict[str, LinuxMacro], dict[int, str]]:
    """X86_FEATURE_* macros, and each word's section comment (for cross-checks)."""
    macros: dict[str, LinuxMacro] = {}
    define = re.compile(
        r"^#define\s+(X86_FEATURE_\w+)\s+\(\s*(\d+)\s*\*\s*32\s*\+\s*(\d+)\s*\)[ \t]*"
        r"(?:/\*\s*(\"([^\"]*)\")?)?",
        re.MULTILINE,
    )
    for m in define.finditer(text):
        name, word, bit = m.group(1), int(m.group(2)), int(m.group(3))
        cpuinfo = m.group(5) if m.group(4) else None
        if name in macros:
            raise GenError(f"cpufeatures.h defines {name} twice")
        macros[name] = LinuxMacro(name, word, bit, cpuinfo or None)
    sections: dict[int, str] = {}
    for m in re.finditer(r"/\*([^*]*?word (\d+)[^*]*?)\*/", text):
        sections.setdefault(int(m.group(2)), " ".join(m.group(1).split()))
    if not macros:
        raise GenError("no X86_FEATURE_* found in cpufeatures.h")
    return macros, sections


def parse_cpufeature_enum(text: str) -> list[str]:
    m = re.search(r"enum\s+cpuid_leafs\s*\{(.*?)\}", strip_c_comments(text), re.DOTALL)
    if not m:
        raise GenError("enum cpuid_leafs not found in cpufeature.h")
    names = [item.split("=")[0].strip() for item in m.group(1).split(",")]
    names = [n for n in names if n and n != "NR_CPUID_WORDS"]
    if names[0] != "CPUID_1_EDX":
        raise GenError("enum cpuid_leafs does not start with CPUID_1_EDX")
    return names


@dataclass
class ReverseCpuid:
    words: dict[str, tuple[int, int, str]]  # CPUID_* -> (leaf, subleaf, reg)
    features: list[tuple[str, str, int]]  # (macro as written, CPUID_* word, bit)


def parse_reverse_cpuid(text: str) -> ReverseCpuid:
    body = strip_c_comments(text)
    words: dict[str, tuple[int, int, str]] = {}
    for m in re.finditer(
        r"\[(CPUID_\w+)\]\s*=\s*\{\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(\d+)\s*,\s*CPUID_(E[ABCD]X)\s*\}",
        body,
    ):
        words[m.group(1)] = (c_int(m.group(2)), int(m.group(3)), m.group(4).lower())
    features = [
        (m.group(1), m.group(2), int(m.group(3)))
        for m in re.finditer(
            r"#define\s+((?:KVM_)?X86_FEATURE_\w+)\s+KVM_X86_FEATURE\(\s*(CPUID_\w+)\s*,\s*(\d+)\s*\)",
            body,
        )
    ]
    if not words or not features:
        raise GenError("reverse_cpuid.h: reverse_cpuid[] or KVM_X86_FEATURE() not found")
    return ReverseCpuid(words, features)


def parse_scattered(text: str) -> list[tuple[str, int, int, str, int]]:
    """(macro, leaf, subleaf, reg, bit) for every cpuid_bits[] entry."""
    out = [
        (m.group(1), c_int(m.group(4)), int(m.group(5)), m.group(2).lower(), int(m.group(3)))
        for m in re.finditer(
            r"\{\s*(X86_FEATURE_\w+)\s*,\s*CPUID_(E[ABCD]X)\s*,\s*(\d+)\s*,"
            r"\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(\d+)\s*\}",
            strip_c_comments(text),
        )
    ]
    if not out:
        raise GenError("scattered.c: cpuid_bits[] not found")
    return out


def parse_indexed(text: str) -> set[int]:
    body = strip_c_comments(text)
    m = re.search(r"cpuid_function_is_indexed\s*\([^)]*\)\s*\{", body)
    if not m:
        raise GenError("cpuid_function_is_indexed() not found")
    end = match_brace(body, m.end() - 1)
    leaves = {c_int(x) for x in re.findall(r"case\s+(0x[0-9a-fA-F]+|\d+)\s*:", body[m.end() : end])}
    if not leaves:
        raise GenError("cpuid_function_is_indexed() has no cases")
    return leaves


@dataclass
class KvmPara:
    constants: dict[str, int]
    eax_bits: dict[str, int]  # KVM_FEATURE_* -> bit
    edx_bits: dict[str, int]  # KVM_HINTS_* -> bit


def parse_kvm_para(text: str) -> KvmPara:
    consts = {
        m.group(1): c_int(m.group(2))
        for m in re.finditer(r"^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\b", text, re.MULTILINE)
    }
    eax = {k: v for k, v in consts.items() if k.startswith("KVM_FEATURE_")}
    edx = {k: v for k, v in consts.items() if k.startswith("KVM_HINTS_")}
    for need in ("KVM_CPUID_SIGNATURE", "KVM_CPUID_FEATURES", "KVM_FEATURE_PV_UNHALT"):
        if need not in consts:
            raise GenError(f"kvm_para.h: {need} not found")
    return KvmPara(consts, eax, edx)


@dataclass(frozen=True)
class CsvRow:
    leaf: int
    sub_lo: int
    sub_hi: int
    reg: str
    lo: int
    hi: int
    name: str


def _range(text: str) -> tuple[int, int]:
    if ":" in text:
        hi, lo = (int(x) for x in text.split(":"))
        return lo, hi
    return int(text), int(text)


def parse_cpuid_csv(text: str) -> list[CsvRow]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",", 5)]
        if len(parts) != 6 or parts[2] not in REGS:
            raise GenError(f"cpuid.csv line {lineno}: cannot parse {line!r}")
        sub_lo, sub_hi = _range(parts[1])
        lo, hi = _range(parts[3])
        if not (0 <= lo <= hi <= 31):
            raise GenError(f"cpuid.csv line {lineno}: bad bit range {parts[3]}")
        rows.append(CsvRow(c_int(parts[0]), sub_lo, sub_hi, parts[2], lo, hi, parts[4].lower()))
    if not rows:
        raise GenError("cpuid.csv has no rows")
    return rows


def extract_feature_word_info(text: str) -> str:
    """The ``feature_word_info[]`` initializer, from its declaration to the closing ``};``."""
    start = text.find("FeatureWordInfo feature_word_info[FEATURE_WORDS]")
    if start < 0:
        raise GenError("QEMU cpu.c: feature_word_info[] not found")
    i = text.index("{", start)
    depth = 0
    while i < len(text):
        if text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        ch = text[i]
        if ch == '"':
            i = text.index('"', i + 1) + 1
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                if not text.startswith(";", i + 1):
                    break
                return text[start : i + 2]
        i += 1
    raise GenError("QEMU cpu.c: end of feature_word_info[] not found")


def parse_qemu(text: str, kvm_consts: dict[str, int]) -> dict[tuple[int, int, str, int], str]:
    body = strip_c_comments(extract_feature_word_info(text))
    out: dict[tuple[int, int, str, int], str] = {}
    for m in re.finditer(r"\[(FEAT_\w+)\]\s*=\s*\{", body):
        end = match_brace(body, m.end() - 1)
        entry = body[m.end() : end]
        tm = re.search(r"\.type\s*=\s*(\w+)", entry)
        if not tm or tm.group(1) != "CPUID_FEATURE_WORD":
            continue
        cm = re.search(r"\.cpuid\s*=\s*\{", entry)
        if not cm:
            raise GenError(f"QEMU {m.group(1)}: no .cpuid")
        cpuid = entry[cm.end() : match_brace(entry, cm.end() - 1)]
        fields = dict(re.findall(r"\.(\w+)\s*=\s*([\w]+)", cpuid))
        eax = fields["eax"]
        leaf = kvm_consts[eax] if eax in kvm_consts else c_int(eax)
        subleaf = c_int(fields.get("ecx", "0")) if fields.get("needs_ecx") == "true" else 0
        reg = fields["reg"].removeprefix("R_").lower()
        nm = re.search(r"\.feat_names\s*=\s*\{", entry)
        if not nm:
            continue
        names = entry[nm.end() : match_brace(entry, nm.end() - 1)]
        pos = 0
        for item in (x.strip() for x in names.split(",")):
            if not item:
                continue
            dm = re.fullmatch(r'\[(\d+)\]\s*=\s*"([^"]*)"', item)
            if dm:
                pos = int(dm.group(1))
                value: str | None = dm.group(2)
            elif item == "NULL":
                value = None
            else:
                sm = re.fullmatch(r'"([^"]*)"', item)
                if not sm:
                    raise GenError(f"QEMU {m.group(1)}: cannot parse feat_names item {item!r}")
                value = sm.group(1)
            if value is not None:
                if pos > 31:
                    raise GenError(f"QEMU {m.group(1)}: bit {pos} out of range")
                out[(leaf, subleaf, reg, pos)] = value
            pos += 1
    if not out:
        raise GenError("QEMU: no CPUID feature names found")
    return out


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


KEY_RE = re.compile(r"^(0x[0-9a-fA-F]+)\.(\d+)\.(eax|ebx|ecx|edx)\[(\d+)(?::(\d+))?\]$")


def format_key(leaf: int, subleaf: int, reg: str, lo: int, hi: int) -> str:
    bits = f"{lo}" if lo == hi else f"{hi}:{lo}"
    return f"0x{leaf:x}.{subleaf}.{reg}[{bits}]"


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
        km = KEY_RE.match(key_text)
        if not km:
            raise GenError(f"overlay line {lineno}: bad key {key_text!r}")
        lo = int(km.group(4))
        hi = lo
        if km.group(5) is not None:
            hi, lo = int(km.group(4)), int(km.group(5))
        key = (c_int(km.group(1)), int(km.group(2)), km.group(3), lo, hi)
        if key in rows:
            raise GenError(f"overlay line {lineno}: {key_text} repeats line {rows[key].lineno}")
        if lo == hi and area not in AREAS:
            raise GenError(f"overlay line {lineno}: unknown area {area!r}")
        if lo != hi and area not in ("", "-"):
            raise GenError(f"overlay line {lineno}: fields take no area (use '-')")
        if name and not NAME_RE.match(name):
            raise GenError(f"overlay line {lineno}: bad name {name!r}")
        if not description or len(description) > MAX_DESCRIPTION:
            raise GenError(f"overlay line {lineno}: description empty or over {MAX_DESCRIPTION}")
        if '"' in description or "\\" in description:
            raise GenError(f"overlay line {lineno}: no quotes or backslashes in descriptions")
        rows[key] = OverlayRow(lineno, key, area, name, description, note)
    return rows


# --------------------------------------------------------------------------------------------
# Joining the facts


@dataclass
class Bit:
    leaf: int
    subleaf: int
    reg: str
    bit: int
    linux: list[tuple[str, str]] = field(default_factory=list)  # (macro, source)
    kvm_pv: str | None = None
    csv: str | None = None
    qemu: str | None = None
    ranged: bool = False

    @property
    def key(self) -> tuple[int, int, str, int]:
        return (self.leaf, self.subleaf, self.reg, self.bit)


@dataclass
class Facts:
    bits: dict[tuple[int, int, str, int], Bit]
    fields: list[CsvRow]
    ranges: set[tuple[int, int, int]]
    indexed: dict[int, set[str]]  # leaf -> which sources say its subleaf matters
    cpuinfo: dict[str, str | None]  # X86_FEATURE_* -> cpuinfo name
    hashes: dict[str, str]


def read_inputs(paths: dict[str, Path]) -> tuple[dict[str, str], dict[str, str]]:
    texts: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for key, path in paths.items():
        try:
            texts[key] = path.read_text(encoding="utf-8")
        except OSError as e:
            raise GenError(f"cannot read {INPUTS[key][1]} input {path}: {e}") from e
        hashed = texts[key]
        if key == "qemu_cpu_c":
            hashed = extract_feature_word_info(hashed)
        hashes[key] = hashlib.sha256(hashed.encode()).hexdigest()
    return texts, hashes


def collect(texts: dict[str, str], hashes: dict[str, str]) -> Facts:
    macros, sections = parse_cpufeatures(texts["cpufeatures"])
    enum = parse_cpufeature_enum(texts["cpufeature"])
    rev = parse_reverse_cpuid(texts["reverse_cpuid"])
    scattered = parse_scattered(texts["scattered"])
    indexed_kvm = parse_indexed(texts["cpuid_api"])
    para = parse_kvm_para(texts["kvm_para"])
    csv_rows = parse_cpuid_csv(texts["cpuid_csv"])
    qemu = parse_qemu(texts["qemu_cpu_c"], para.constants)

    bits: dict[tuple[int, int, str, int], Bit] = {}

    def bit_at(leaf: int, subleaf: int, reg: str, b: int) -> Bit:
        key = (leaf, subleaf, reg, b)
        if key not in bits:
            bits[key] = Bit(leaf, subleaf, reg, b)
        return bits[key]

    # Linux hardware words: enum position -> CPUID_* name -> reverse_cpuid[] location.
    where: dict[str, set[tuple[int, int, str, int]]] = {}
    for word, cname in enumerate(enum):
        if cname not in rev.words:
            continue  # Linux-defined word, or one KVM no longer maps
        leaf, subleaf, reg = rev.words[cname]
        section = sections.get(word, "")
        lm = re.search(r"level (0x[0-9a-fA-F]+)", section)
        if not lm or c_int(lm.group(1)) != leaf:
            raise GenError(f"word {word} ({cname}) disagrees with cpufeatures.h: {section!r}")
        if not in_scope(leaf):
            continue
        for mac in macros.values():
            if mac.word == word:
                bit_at(leaf, subleaf, reg, mac.bit).linux.append((mac.macro, "word"))
                where.setdefault(mac.macro, set()).add((leaf, subleaf, reg, mac.bit))

    # KVM-only words and KVM's translations of scattered bits.
    for written, cname, b in rev.features:
        if cname not in rev.words:
            raise GenError(f"reverse_cpuid.h: {written} uses unknown word {cname}")
        leaf, subleaf, reg = rev.words[cname]
        macro = written.removeprefix("KVM_")
        if not in_scope(leaf):
            continue
        pos = (leaf, subleaf, reg, b)
        if macro in where and pos not in where[macro]:
            raise GenError(f"{macro}: reverse_cpuid.h puts it at {pos}, others at {where[macro]}")
        where.setdefault(macro, set()).add(pos)
        entry = bit_at(*pos)
        if macro not in (m for m, _ in entry.linux):
            entry.linux.append((macro, "kvm"))

    # Scattered bits (the same macro may appear at two places: X86_FEATURE_MBA).
    scattered_where: dict[str, set[tuple[int, int, str, int]]] = {}
    for macro, leaf, subleaf, reg, b in scattered:
        if in_scope(leaf):
            scattered_where.setdefault(macro, set()).add((leaf, subleaf, reg, b))
    for macro, positions in scattered_where.items():
        if macro in where and not where[macro] <= positions:
            raise GenError(f"{macro}: scattered.c puts it at {positions}, others at {where[macro]}")
        for pos in sorted(positions):
            entry = bit_at(*pos)
            if macro not in (m for m, _ in entry.linux):
                entry.linux.append((macro, "scattered"))

    for entry in bits.values():
        distinct = {m for m, _ in entry.linux}
        if len(distinct) > 1:
            raise GenError(f"{entry.key}: several Linux macros {sorted(distinct)}")

    # KVM paravirt leaf.
    features_leaf = para.constants["KVM_CPUID_FEATURES"]
    for macro, b in para.eax_bits.items():
        bit_at(features_leaf, 0, "eax", b).kvm_pv = macro
    for macro, b in para.edx_bits.items():
        bit_at(features_leaf, 0, "edx", b).kvm_pv = macro

    # kcpuid: single bits (stored at the first subleaf of a range) and multi-bit fields.
    fields: list[CsvRow] = []
    ranges: set[tuple[int, int, int]] = set()
    indexed: dict[int, set[str]] = {}
    for leaf in indexed_kvm:
        indexed.setdefault(leaf, set()).add("linux")
    for row in csv_rows:
        if row.sub_hi > 0:
            indexed.setdefault(row.leaf, set()).add("kcpuid")
        if row.lo != row.hi and SUBLEAF_COUNT_RE.search(row.name):
            indexed.setdefault(row.leaf, set()).add("kcpuid-count")
        if not in_scope(row.leaf):
            continue
        if (row.leaf, row.sub_lo, row.reg) in STRING_REGISTERS:
            continue
        if row.sub_lo != row.sub_hi:
            ranges.add((row.leaf, row.sub_lo, row.sub_hi))
        if row.lo == row.hi:
            entry = bit_at(row.leaf, row.sub_lo, row.reg, row.lo)
            if entry.csv is not None:
                raise GenError(f"cpuid.csv names {entry.key} twice")
            entry.csv = row.name
            entry.ranged = row.sub_lo != row.sub_hi
        else:
            fields.append(row)

    for (leaf, subleaf, reg, b), name in qemu.items():
        if in_scope(leaf):
            bit_at(leaf, subleaf, reg, b).qemu = name
        if subleaf:
            indexed.setdefault(leaf, set()).add("qemu")
    for leaf, subleaf, _reg in rev.words.values():
        if subleaf:
            indexed.setdefault(leaf, set()).add("kvm")

    cpuinfo = {m.macro: m.cpuinfo for m in macros.values()}
    return Facts(bits, fields, ranges, indexed, cpuinfo, hashes)


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


def candidate_name(b: Bit, cpuinfo: dict[str, str | None]) -> tuple[str, str | None, int]:
    """(name, kernel_name, rank) from upstream facts."""
    if b.linux:
        macro = b.linux[0][0]
        shown = cpuinfo.get(macro)
        if shown:
            return shown, macro, RANK_CPUINFO
        return macro.removeprefix("X86_FEATURE_").lower(), macro, RANK_MACRO
    if b.kvm_pv:
        if b.kvm_pv.startswith("KVM_FEATURE_"):
            return "kvm_" + b.kvm_pv.removeprefix("KVM_FEATURE_").lower(), b.kvm_pv, RANK_KVM_PV
        return b.kvm_pv.lower(), b.kvm_pv, RANK_KVM_PV
    if b.csv:
        return b.csv, None, RANK_CSV
    if b.qemu:
        return re.sub(r"[-.]", "_", b.qemu), None, RANK_QEMU
    raise GenError(f"{b.key}: no name at all")


def build(
    facts: Facts, overlay: dict[tuple[int, int, str, int, int], OverlayRow]
) -> tuple[list[Feature], list[FieldOut], list[str]]:
    problems: list[str] = []
    features: list[Feature] = []
    for key in sorted(facts.bits, key=sort_key):
        b = facts.bits[key]
        name, kernel, rank = candidate_name(b, facts.cpuinfo)
        ov = overlay.get((b.leaf, b.subleaf, b.reg, b.bit, b.bit))
        if ov is None:
            problems.append(f"missing overlay row for feature {format_key(*key, b.bit)} ({name})")
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
        ov = overlay.get((row.leaf, row.sub_lo, row.reg, row.lo, row.hi))
        key_text = format_key(row.leaf, row.sub_lo, row.reg, row.lo, row.hi)
        if ov is None:
            problems.append(f"missing overlay row for field {key_text} ({row.name})")
            continue
        ov.used = True
        if not ov.name:
            problems.append(f"overlay line {ov.lineno}: fields need a name")
            continue
        fields.append(
            FieldOut(row.leaf, row.sub_lo, row.reg, row.lo, row.hi, ov.name, ov.description)
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
        fields.append(FieldOut(leaf, subleaf, reg, lo, hi, ov.name, ov.description))

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


def sort_key(key: tuple[int, int, str, int]) -> tuple[int, int, int, int]:
    leaf, subleaf, reg, b = key
    return (leaf, subleaf, REGS.index(reg), b)


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


def render(features: list[Feature], fields: list[FieldOut], facts: Facts, overlay_hash: str) -> str:
    out: list[str] = []
    out.append("# ruff: noqa: E501")
    out.append(f"# Generated by {GENERATOR} -- do not edit by hand.")
    out.append(
        "# Regenerate: python scripts/gen_cpuid_tables.py --sources DIR (see scripts/README.md)"
    )
    out.append("#")
    out.append("# Upstream facts (names, leaf/subleaf/register/bit positions), repo @ commit:")
    for key, (_opt, fname, repo, commit, path) in INPUTS.items():
        suffix = " (only feature_word_info[] is read and hashed)" if key == "qemu_cpu_c" else ""
        out.append(f"#   {fname}: {repo} @ {commit}")
        out.append(f"#     {path}{suffix}")
        out.append(f"#     sha256 {facts.hashes[key]}")
    out.append("# Our own words (areas, descriptions, name overrides):")
    out.append("#   scripts/data/cpuid_overlay.tsv")
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
    out.append("AREAS: tuple[str, ...] = (")
    out += [f"    {py_str(a)}," for a in AREAS]
    out.append(")")
    text = "\n".join(out) + "\n"
    for n, ln in enumerate(text.splitlines(), 1):
        if len(ln) > LINE_LENGTH and not ln.startswith("    ("):
            raise GenError(f"generated line {n} is longer than {LINE_LENGTH}: {ln!r}")
    return text


# --------------------------------------------------------------------------------------------
# Command line


def input_paths(args: argparse.Namespace) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for key, (opt, fname, *_rest) in INPUTS.items():
        given = getattr(args, opt.lstrip("-").replace("-", "_"))
        if given:
            paths[key] = Path(given)
        elif args.sources:
            paths[key] = Path(args.sources) / fname
        else:
            raise GenError(f"no input for {fname}: give {opt} PATH or --sources DIR")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", help="directory holding every input under its usual name")
    for _key, (opt, fname, repo, commit, path) in INPUTS.items():
        parser.add_argument(opt, metavar="PATH", help=f"{fname}: {repo} @ {commit[:12]} {path}")
    parser.add_argument("--overlay", default=str(DEFAULT_OVERLAY), help="our overlay TSV")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="generated module")
    parser.add_argument("--check", action="store_true", help="exit 1 if --output is stale")
    parser.add_argument(
        "--missing", action="store_true", help="print overlay rows still needed (TSV skeleton)"
    )
    args = parser.parse_args(argv)
    try:
        texts, hashes = read_inputs(input_paths(args))
        facts = collect(texts, hashes)
        overlay_path = Path(args.overlay)
        overlay_text = overlay_path.read_text(encoding="utf-8") if overlay_path.exists() else ""
        overlay = parse_overlay(overlay_text)
        if args.missing:
            print_missing(facts, overlay)
            return 0
        features, fields, problems = build(facts, overlay)
        if problems:
            raise GenError("\n".join(problems))
        overlay_hash = hashlib.sha256(overlay_text.encode()).hexdigest()
        text = render(features, fields, facts, overlay_hash)
    except GenError as e:
        print(f"gen_cpuid_tables: error: {e}", file=sys.stderr)
        return 2
    output = Path(args.output)
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), str(output), "generated", lineterm=""
            )
            sys.stderr.write("\n".join(list(diff)[:60]) + "\n")
            print(f"gen_cpuid_tables: {output} is stale; regenerate it", file=sys.stderr)
            return 1
        print(
            f"gen_cpuid_tables: {output} is up to date ({len(features)} features, "
            f"{len(fields)} fields)"
        )
        return 0
    output.write_text(text, encoding="utf-8")
    print(f"gen_cpuid_tables: wrote {output} ({len(features)} features, {len(fields)} fields)")
    return 0


def print_missing(facts: Facts, overlay: dict[tuple[int, int, str, int, int], OverlayRow]) -> None:
    for key in sorted(facts.bits, key=sort_key):
        b = facts.bits[key]
        if (b.leaf, b.subleaf, b.reg, b.bit, b.bit) in overlay:
            continue
        name, kernel, _rank = candidate_name(b, facts.cpuinfo)
        hint = " ".join(x for x in (kernel, b.csv, b.qemu) if x)
        print(f"{format_key(*key, b.bit)}\t?\t\t?\t# {name} {hint}".rstrip())
    for row in facts.fields:
        if (row.leaf, row.sub_lo, row.reg, row.lo, row.hi) in overlay:
            continue
        print(f"{format_key(row.leaf, row.sub_lo, row.reg, row.lo, row.hi)}\t-\t?\t?\t# {row.name}")


if __name__ == "__main__":
    sys.exit(main())
