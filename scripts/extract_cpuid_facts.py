#!/usr/bin/env python3
"""Extract the CPUID facts file (scripts/data/cpuid_facts.tsv) from upstream files.

Stage one of two. It reads eight upstream files (never committed; scripts/README.md says where
each comes from and how to fetch it) and writes only facts: names, macro names, CPUID
leaf/subleaf/register/bit positions, field bit ranges, the indexed leaves, QEMU property names,
and each macro's /proc/cpuinfo name or its absence. No upstream description or comment is
written. The header names every input's repository, commit, path and sha256. Stage two,
``scripts/gen_cpuid_tables.py``, joins that file with our overlay into
kvmprobe/tables/cpuid_data.py and runs on a plain clone; this stage runs only when the upstream
files are at hand (to refresh the facts, or to prove that the committed facts file is theirs).

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
* kcpuid ``tools/arch/x86/kcpuid/cpuid.csv`` (x86-cpuid-db, CC0-1.0): every bitfield, for bits
  Linux does not name and for the multi-bit fields. Its long descriptions are never used.
* QEMU ``target/i386/cpu.c``: ``feature_word_info`` (QEMU property names per CPUID word/bit).
  Only that array is read (and hashed), so an excerpt holding it works as well as the file.

Scope: basic leaves 0x0..0x24, KVM's 0x40000000..0x40000001 and extended 0x80000000..0x80000022
(the indexed-leaf list keeps every leaf the inputs name). It stops when the inputs disagree
(e.g. one macro at two positions, or a cpufeatures.h word at another leaf than reverse_cpuid.h
says).

Stdlib only; deterministic output::

    python scripts/extract_cpuid_facts.py --sources DIR            # rewrite the facts file
    python scripts/extract_cpuid_facts.py --sources DIR --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The facts file format and its vocabulary belong to stage two (this directory is on sys.path
# when the script runs).
from gen_cpuid_tables import (
    DEFAULT_FACTS,
    REGS,
    Bit,
    Facts,
    Field,
    GenError,
    Source,
    c_int,
    format_facts,
)

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

# kcpuid field names that count a leaf's subleaves (leaf7_n_subleaves, pt_max_subleaf, ...)
SUBLEAF_COUNT_RE = re.compile(r"max_subleaf|n_subleaves|nr_subleaves")

# What is read (and hashed) of QEMU's cpu.c.
QEMU_HASHED = "feature_word_info[]"

# Registers that hold vendor/brand/signature strings: never decoded as fields.
STRING_REGISTERS: frozenset[tuple[int, int | None, str]] = frozenset(
    [(0x0, 0, r) for r in ("ebx", "ecx", "edx")]
    + [(0x80000000, 0, r) for r in ("ebx", "ecx", "edx")]
    + [(0x40000000, 0, r) for r in ("ebx", "ecx", "edx")]
    + [(0x21, 0, r) for r in ("ebx", "ecx", "edx")]
    + [(leaf, 0, r) for leaf in (0x80000002, 0x80000003, 0x80000004) for r in REGS]
    + [(0x17, 1, r) for r in REGS]
)


def in_scope(leaf: int) -> bool:
    return leaf <= 0x24 or 0x40000000 <= leaf <= 0x40000001 or 0x80000000 <= leaf <= 0x80000022


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


@dataclass
class _Bit:
    """What the inputs say about one bit, gathered while reading them."""

    leaf: int
    subleaf: int
    reg: str
    bit: int
    linux: list[tuple[str, str]] = field(default_factory=list)  # (macro, where from)
    kvm_pv: str | None = None
    csv: str | None = None
    qemu: str | None = None

    @property
    def key(self) -> tuple[int, int, str, int]:
        return (self.leaf, self.subleaf, self.reg, self.bit)

    def freeze(self, cpuinfo: dict[str, str | None]) -> Bit:
        macro = self.linux[0][0] if self.linux else None
        return Bit(
            self.leaf,
            self.subleaf,
            self.reg,
            self.bit,
            macro,
            tuple(where for _m, where in self.linux),
            cpuinfo.get(macro) if macro else None,
            self.kvm_pv,
            self.csv,
            self.qemu,
        )


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
    """The facts of every input, cross-checked; raises GenError where the inputs disagree."""
    macros, sections = parse_cpufeatures(texts["cpufeatures"])
    enum = parse_cpufeature_enum(texts["cpufeature"])
    rev = parse_reverse_cpuid(texts["reverse_cpuid"])
    scattered = parse_scattered(texts["scattered"])
    indexed_kvm = parse_indexed(texts["cpuid_api"])
    para = parse_kvm_para(texts["kvm_para"])
    csv_rows = parse_cpuid_csv(texts["cpuid_csv"])
    qemu = parse_qemu(texts["qemu_cpu_c"], para.constants)

    bits: dict[tuple[int, int, str, int], _Bit] = {}

    def bit_at(leaf: int, subleaf: int, reg: str, b: int) -> _Bit:
        key = (leaf, subleaf, reg, b)
        if key not in bits:
            bits[key] = _Bit(leaf, subleaf, reg, b)
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
        if (macro, "kvm") not in entry.linux:
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
            if (macro, "scattered") not in entry.linux:
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
    sources = tuple(
        Source(
            fname, repo, commit, path, QEMU_HASHED if key == "qemu_cpu_c" else "file", hashes[key]
        )
        for key, (_opt, fname, repo, commit, path) in INPUTS.items()
    )
    return Facts(
        sources,
        tuple(b.freeze(cpuinfo) for b in bits.values()),
        tuple(Field(r.leaf, r.sub_lo, r.reg, r.lo, r.hi, r.name) for r in fields),
        tuple(sorted(ranges)),
        {leaf: tuple(sorted(names)) for leaf, names in indexed.items()},
    )


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sources", help="directory holding every input under its usual name")
    for _key, (opt, fname, repo, commit, path) in INPUTS.items():
        parser.add_argument(opt, metavar="PATH", help=f"{fname}: {repo} @ {commit[:12]} {path}")
    parser.add_argument("--output", default=str(DEFAULT_FACTS), help="facts file to write")
    parser.add_argument("--check", action="store_true", help="exit 1 if --output is stale")
    args = parser.parse_args(argv)
    try:
        texts, hashes = read_inputs(input_paths(args))
        facts = collect(texts, hashes)
        text = format_facts(facts)
    except GenError as e:
        print(f"extract_cpuid_facts: error: {e}", file=sys.stderr)
        return 2
    output = Path(args.output)
    counts = f"{len(facts.bits)} bits, {len(facts.fields)} fields, {len(facts.sources)} inputs"
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), str(output), "extracted", lineterm=""
            )
            sys.stderr.write("\n".join(list(diff)[:60]) + "\n")
            print(f"extract_cpuid_facts: {output} is stale; regenerate it", file=sys.stderr)
            return 1
        print(f"extract_cpuid_facts: {output} is up to date ({counts})")
        return 0
    output.write_text(text, encoding="utf-8")
    print(f"extract_cpuid_facts: wrote {output} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
