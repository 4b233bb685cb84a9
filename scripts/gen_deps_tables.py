#!/usr/bin/env python3
"""Generate kvmprobe/tables/deps_data.py: feature dependencies, x86-64 levels, XSAVE components.

Every input is a committed data file under ``scripts/data/`` (facts with their citations), joined
with the generated CPUID table ``kvmprobe/tables/cpuid_data.py`` (names and bit positions):

* ``cpuid_deps.tsv``: the (feature, required feature) pairs of Linux's ``cpuid_deps[]`` in
  ``arch/x86/kernel/cpu/cpuid-deps.c``, as X86_FEATURE_ macro names, from the copies named in
  ``DEPS_INPUTS`` (repository, commit, path and sha256 in the file's header). Only the pairs are
  committed. ``--extract-deps ID=PATH ...`` rewrites the file from the upstream copies (and with
  ``--check`` compares instead of writing); see "Refreshing" below.
* ``psabi_levels.json``: the x86-64 psABI level table, each row mapped to kvmprobe's feature name
  and pinned to its CPUID location.
* ``xsave_components.tsv``: XSAVE state components (bit, Linux XFEATURE_ name, the feature that
  uses it, XCR0 or IA32_XSS) and where leaf 0xD enumerates them.
* ``runtime_bits.tsv``: bits the CPU sets from guest state (OSXSAVE, OSPKE) and the feature a VMM
  offers instead.

Resolution: a macro resolves through the CPUID table's ``kernel_name`` column to kvmprobe's feature
name and location. A dependency row whose macro the table lacks is kept with ``None`` for the name
(``deps.unresolved()`` lists it) -- never dropped. Rows present in an older copy of cpuid-deps.c
but absent from the newest one were changed upstream: they go to ``SUPERSEDED`` (kept, not used).

Checks (the generator stops, exit 2, when one fails): every psABI row's feature exists in the
CPUID table at exactly the pinned location; every XSAVE component bit has a table row at its
register (except where the table names none, e.g. APX, listed in the output); the enumeration
registers match the table's xcr0_/xss_ rows; no macro has two table rows.

Stdlib only; deterministic output::

    python scripts/gen_deps_tables.py            # regenerate kvmprobe/tables/deps_data.py
    python scripts/gen_deps_tables.py --check    # exit 1 if it is stale (tests run this)

Refreshing the dependency pairs: fetch the copies in ``DEPS_INPUTS`` (bare repository, ``git
fetch --depth=1 URL COMMIT``, ``git show COMMIT:arch/x86/kernel/cpu/cpuid-deps.c > FILE``), then::

    python scripts/gen_deps_tables.py --extract-deps A=FILE_A B=FILE_B C=FILE_C
    python scripts/gen_deps_tables.py

To follow a newer kernel, add an input to ``DEPS_INPUTS`` (the last one is the newest and decides
which rows are used), extract, regenerate, and review the diff of both files.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import re
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "scripts" / "data"
DEFAULT_OUTPUT = REPO_ROOT / "kvmprobe" / "tables" / "deps_data.py"
CPUID_TABLE = REPO_ROOT / "kvmprobe" / "tables" / "cpuid_data.py"
DEPS_TSV = DATA / "cpuid_deps.tsv"
PSABI_JSON = DATA / "psabi_levels.json"
XSAVE_TSV = DATA / "xsave_components.tsv"
RUNTIME_TSV = DATA / "runtime_bits.tsv"
GENERATOR = "scripts/gen_deps_tables.py"
DEPS_PATH = "arch/x86/kernel/cpu/cpuid-deps.c"

# id -> (repository, commit, role). Oldest first; the last is the newest and decides which rows
# are used. Each commit is the one that last changed the file in that copy.
DEPS_INPUTS: dict[str, tuple[str, str, str]] = {
    "A": (
        "torvalds/linux",
        "dd7ce6547aeec06fc67a6ac36c958f4a9d352f37",
        "mainline, older (before SGX_EDECCSSA, SHSTK and FRED were added)",
    ),
    "B": (
        "intel-lab-lkp/linux",
        "860f61b9e2436f33884278648c7e20abab7e91f4",
        "Intel 0-day mirror: adds SGX_EDECCSSA, SHSTK, FRED, BMEC, SDCIAE, AVX_VNNI and moves "
        "GFNI/VAES/VPCLMULQDQ off AVX512VL",
    ),
    "C": (
        "ColinIanKing/linux-next",
        "6850f6aa97a9d72a42efc7b67a2f9aa44af776a5",
        "linux-next copy, newest: adds APX, AMX_FP16/BF16/INT8, SPEC_CTRL_SSBD, LASS; "
        "holds every row of B (second source for B)",
    ),
}

LEVELS = ("x86-64-v1", "x86-64-v2", "x86-64-v3", "x86-64-v4")
KINDS = ("cpuid", "os-enable", "xsave-state")
REGS = ("eax", "ebx", "ecx", "edx")
WHERE_RE = re.compile(r"^0x([0-9a-f]+)\.(\d+)\.(eax|ebx|ecx|edx)\[(\d+)\]$")
PAIR_RE = re.compile(r"\{\s*(X86_FEATURE_\w+)\s*,\s*(X86_FEATURE_\w+)\s*,?\s*\}")
LINE_LENGTH = 100


class GenError(Exception):
    """The inputs are inconsistent or incomplete; nothing is written."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fmt_where(leaf: int, subleaf: int, reg: str, bit: int) -> str:
    """The location notation of kvmprobe.analysis.cpuid.fmt_loc: 0x7.0.ebx[5]."""
    return f"{leaf:#x}.{subleaf}.{reg}[{bit}]"


def py_hex(value: int) -> str:
    return "0x" + f"{value:X}" if value > 9 else str(value)


def py_str(value: str | None) -> str:
    return "None" if value is None else json.dumps(value)


def py_tuple(values: list[str] | tuple[str, ...]) -> str:
    """A tuple of strings as Python source: (), ("a",), ("a", "b")."""
    if len(values) == 1:
        return f"({py_str(values[0])},)"
    return "(" + ", ".join(py_str(v) for v in values) + ")"


# --------------------------------------------------------------------------------------------
# cpuid-deps.c -> cpuid_deps.tsv


def parse_cpuid_deps(text: str) -> list[tuple[str, str]]:
    """The (feature, depends) pairs of cpuid_deps[], in file order, duplicates included."""
    no_comments = re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.DOTALL)
    m = re.search(r"cpuid_deps\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\};", no_comments, flags=re.DOTALL)
    if not m:
        raise GenError("no cpuid_deps[] array found")
    pairs = PAIR_RE.findall(m.group(1))
    if not pairs:
        raise GenError("cpuid_deps[] holds no pairs")
    return [(a, b) for a, b in pairs]


def render_deps_tsv(texts: dict[str, str]) -> str:
    """The committed TSV: header with every input's provenance, then one row per unique pair."""
    missing = [k for k in DEPS_INPUTS if k not in texts]
    if missing:
        raise GenError(f"--extract-deps needs every input in DEPS_INPUTS; missing {missing}")
    per_input = {k: parse_cpuid_deps(texts[k]) for k in DEPS_INPUTS}
    ids = list(DEPS_INPUTS)
    newest = ids[-1]
    order: list[tuple[str, str]] = []
    for k in [newest, *ids[:-1]]:
        for pair in per_input[k]:
            if pair not in order:
                order.append(pair)
    out = [
        "# Feature dependencies: Linux arch/x86/kernel/cpu/cpuid-deps.c, cpuid_deps[]. Each row",
        "# is a feature and the feature it requires (the kernel clears the first when the second",
        "# is cleared). Only these pairs are taken from the file. Written by",
        f"# {GENERATOR} --extract-deps; the last source is the newest and decides which rows",
        "# are used; a row missing from it was changed upstream (listed, not used).",
        "#",
        "# @source\tid\trepository\tcommit\tpath\tsha256 of the file\trole",
    ]
    for k, (repo, commit, role) in DEPS_INPUTS.items():
        out.append(f"#@source\t{k}\t{repo}\t{commit}\t{DEPS_PATH}\t{sha256(texts[k])}\t{role}")
    for k in ids:
        dupes = len(per_input[k]) - len(set(per_input[k]))
        if dupes:
            out.append(f"# {k}: {len(per_input[k])} rows, {dupes} repeated (kept once here)")
        else:
            out.append(f"# {k}: {len(per_input[k])} rows")
    out.append("feature\trequires\tin")
    for a, b in order:
        where = " ".join(k for k in ids if (a, b) in per_input[k])
        out.append(f"{a}\t{b}\t{where}")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class DepSource:
    ident: str
    repo: str
    commit: str
    path: str
    sha256: str
    role: str


@dataclass(frozen=True)
class DepRow:
    feature: str
    requires: str
    sources: tuple[str, ...]


def read_deps_tsv(text: str) -> tuple[list[DepSource], list[DepRow]]:
    sources: list[DepSource] = []
    rows: list[DepRow] = []
    header_seen = False
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("#@source\t"):
            parts = line.split("\t")
            if len(parts) != 7:
                raise GenError(f"cpuid_deps.tsv:{n}: a #@source line has 7 columns")
            sources.append(DepSource(*parts[1:]))
            continue
        if not line or line.startswith("#"):
            continue
        if not header_seen:
            if line != "feature\trequires\tin":
                raise GenError(f"cpuid_deps.tsv:{n}: expected the column header")
            header_seen = True
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.startswith("X86_FEATURE_") for p in parts[:2]):
            raise GenError(f"cpuid_deps.tsv:{n}: bad row {line!r}")
        rows.append(DepRow(parts[0], parts[1], tuple(parts[2].split())))
    known = [s.ident for s in sources]
    if known != list(DEPS_INPUTS):
        raise GenError(f"cpuid_deps.tsv names sources {known}, DEPS_INPUTS {list(DEPS_INPUTS)}")
    for s in sources:
        repo, commit, _role = DEPS_INPUTS[s.ident]
        if (s.repo, s.commit, s.path) != (repo, commit, DEPS_PATH):
            raise GenError(f"cpuid_deps.tsv source {s.ident} differs from DEPS_INPUTS")
    for r in rows:
        if not r.sources or any(x not in known for x in r.sources):
            raise GenError(f"cpuid_deps.tsv: row {r.feature} -> {r.requires} names no known source")
    if len({(r.feature, r.requires) for r in rows}) != len(rows):
        raise GenError("cpuid_deps.tsv: a pair is listed twice")
    return sources, rows


# --------------------------------------------------------------------------------------------
# The CPUID table


@dataclass(frozen=True)
class TableRow:
    leaf: int
    subleaf: int
    reg: str
    bit: int
    name: str
    kernel_name: str | None

    @property
    def where(self) -> str:
        return fmt_where(self.leaf, self.subleaf, self.reg, self.bit)


@dataclass(frozen=True)
class Table:
    rows: tuple[TableRow, ...]
    fields: tuple[tuple[int, int, str, int, int, str, str], ...]
    ranges: tuple[tuple[int, int, int], ...]

    def by_macro(self) -> dict[str, tuple[TableRow, ...]]:
        """Macro -> its rows. Linux gives a few macros two CPUID positions (X86_FEATURE_MBA:
        Intel's 0x10 and AMD's 0x80000008); the kernel sets the feature when either is set."""
        out: dict[str, tuple[TableRow, ...]] = {}
        for r in self.rows:
            if r.kernel_name:
                out[r.kernel_name] = (*out.get(r.kernel_name, ()), r)
        return out

    def by_name(self) -> dict[str, TableRow]:
        return {r.name: r for r in self.rows}

    def at(self, leaf: int, subleaf: int, reg: str, bit: int) -> TableRow | None:
        for r in self.rows:
            if (r.leaf, r.subleaf, r.reg, r.bit) == (leaf, subleaf, reg, bit):
                return r
        return None


def load_table(path: Path) -> Table:
    """The generated CPUID table, read as plain data (it holds no logic)."""
    ns: dict[str, Any] = runpy.run_path(str(path))
    rows = tuple(TableRow(f[0], f[1], f[2], f[3], f[4], f[5]) for f in ns["FEATURES"])
    return Table(rows, tuple(ns["FIELDS"]), tuple(ns["SUBLEAF_RANGES"]))


# --------------------------------------------------------------------------------------------
# psABI levels, XSAVE components, runtime bits


@dataclass(frozen=True)
class LevelRow:
    level: str
    psabi: str | None
    feature: str
    kind: str
    row: TableRow


def read_psabi(text: str, table: Table) -> list[LevelRow]:
    data = json.loads(text)
    names = table.by_name()
    levels = [lv["level"] for lv in data["levels"]]
    if levels != list(LEVELS):
        raise GenError(f"psabi_levels.json: levels {levels}, expected {list(LEVELS)}")
    out: list[LevelRow] = []
    for lv in data["levels"]:
        for req in lv["requirements"]:
            kind, feature, where = req["kind"], req["feature"], req["where"]
            if kind not in KINDS:
                raise GenError(f"psabi_levels.json: {feature}: unknown kind {kind!r}")
            if (req["psabi"] is None) != (kind == "xsave-state"):
                raise GenError(f"psabi_levels.json: {feature}: only xsave-state rows lack a name")
            row = names.get(feature)
            if row is None:
                raise GenError(f"psabi_levels.json: {feature} is not in the CPUID table")
            if row.where != where:
                raise GenError(
                    f"psabi_levels.json: {feature} is pinned at {where}, the table has {row.where}"
                )
            out.append(LevelRow(lv["level"], req["psabi"], feature, kind, row))
    return out


@dataclass(frozen=True)
class Component:
    bit: int
    xfeature: str
    requires: str
    register: str


@dataclass(frozen=True)
class XsaveFacts:
    components: list[Component]
    registers: dict[str, tuple[int, int, str, str]]  # xcr0/xss -> (leaf, subleaf, low, high)
    size: tuple[int, str]  # (leaf, register) of a component's size


def read_xsave(text: str, table: Table) -> XsaveFacts:
    comps: list[Component] = []
    registers: dict[str, tuple[int, int, str, str]] = {}
    size: tuple[int, str] | None = None
    header_seen = False
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split("\t")
        if parts[0] == "#@register":
            registers[parts[1]] = (int(parts[2], 0), int(parts[3]), parts[4], parts[5])
            continue
        if parts[0] == "#@size":
            size = (int(parts[1], 0), parts[2])
            continue
        if not line or line.startswith("#"):
            continue
        if not header_seen:
            if line != "bit\txfeature\trequires\tregister":
                raise GenError(f"xsave_components.tsv:{n}: expected the column header")
            header_seen = True
            continue
        if len(parts) != 4 or parts[3] not in ("xcr0", "xss"):
            raise GenError(f"xsave_components.tsv:{n}: bad row {line!r}")
        comps.append(Component(int(parts[0]), parts[1], parts[2], parts[3]))
    if set(registers) != {"xcr0", "xss"} or size is None:
        raise GenError("xsave_components.tsv: needs #@register xcr0, #@register xss and #@size")
    if len({c.bit for c in comps}) != len(comps):
        raise GenError("xsave_components.tsv: a bit is listed twice")
    # Cross-check the enumeration registers and every bit against the CPUID table.
    for reg_name, (leaf, subleaf, low, high) in registers.items():
        prefix = "xcr0_" if reg_name == "xcr0" else "xss_"
        named = [r for r in table.rows if r.name.startswith(prefix)]
        if not named:
            raise GenError(f"the CPUID table has no {prefix}* rows to check {reg_name} against")
        for r in named:
            if (r.leaf, r.subleaf) != (leaf, subleaf) or r.reg not in (low, high):
                raise GenError(f"table row {r.name} at {r.where} is outside {reg_name}")
    for c in comps:
        leaf, subleaf, low, high = registers[c.register]
        reg, bit = (low, c.bit) if c.bit < 32 else (high, c.bit - 32)
        if table.at(leaf, subleaf, reg, bit) is None and c.xfeature != "XFEATURE_APX":
            raise GenError(
                f"{c.xfeature} (bit {c.bit}) has no CPUID table row at "
                f"{fmt_where(leaf, subleaf, reg, bit)}"
            )
    size_fields = [f for f in table.fields if (f[0], f[2], f[3], f[4]) == (size[0], size[1], 0, 31)]
    if not any(f[5] == "xsave_comp_size" for f in size_fields):
        raise GenError("the CPUID table has no xsave_comp_size field where #@size points")
    return XsaveFacts(comps, registers, size)


def read_runtime(text: str) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    header_seen = False
    for n, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        if not header_seen:
            if line != "runtime\toffered_by\tcontrol":
                raise GenError(f"runtime_bits.tsv:{n}: expected the column header")
            header_seen = True
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise GenError(f"runtime_bits.tsv:{n}: bad row {line!r}")
        out.append((parts[0], parts[1], parts[2]))
    return out


# --------------------------------------------------------------------------------------------
# Rendering


def const_name(xfeature: str) -> str:
    return xfeature.upper()


def render(
    inputs: dict[str, str],
    table: Table,
    sources: list[DepSource],
    deps: list[DepRow],
    levels: list[LevelRow],
    xsave: XsaveFacts,
    runtime: list[tuple[str, str, str]],
) -> str:
    macros = table.by_macro()
    newest = sources[-1].ident

    def side(macro: str) -> tuple[str, str]:
        rows = macros.get(macro, ())
        return py_tuple([r.name for r in rows]), py_tuple([r.where for r in rows])

    def resolve(macro: str) -> str:
        rows = macros.get(macro, ())
        if len(rows) != 1:
            raise GenError(f"{macro} has {len(rows)} rows in the CPUID table; expected one")
        return rows[0].name

    used = [r for r in deps if newest in r.sources]
    superseded = [r for r in deps if newest not in r.sources]
    unresolved = [r for r in used if r.feature not in macros or r.requires not in macros]

    out: list[str] = []
    out.append("# ruff: noqa: E501")
    out.append(f"# Generated by {GENERATOR} -- do not edit by hand.")
    out.append(f"# Regenerate: python {GENERATOR}   (inputs and rules in its docstring)")
    out.append("#")
    out.append("# Inputs (committed; sha256 of each file as read):")
    for name, text in inputs.items():
        out.append(f"#   {name}: sha256 {sha256(text)}")
    out.append("# Dependency pairs: Linux arch/x86/kernel/cpu/cpuid-deps.c, cpuid_deps[], from:")
    for s in sources:
        out.append(f"#   {s.ident}: {s.repo} @ {s.commit}")
        out.append(f"#      sha256 {s.sha256}")
    out.append(f"#   rows used: those in {newest} (the newest); others are SUPERSEDED.")
    out.append("# x86-64 levels: the x86-64 psABI, table 'Micro-Architecture Levels'")
    out.append("#   (gitlab.com/x86-psABIs/x86-64-ABI, x86-64-ABI/low-level-sys-info.tex);")
    out.append("#   citations and our rules in scripts/data/psabi_levels.json.")
    out.append("# XSAVE components: Linux enum xfeature and xsave_cpuid_features[] (cited in")
    out.append("#   scripts/data/xsave_components.tsv); bits checked against cpuid_data.py.")
    out.append('"""Feature dependencies, x86-64 psABI levels, XSAVE components (generated)."""')
    out.append("")
    out.append("# fmt: off")
    out.append("# Copies of cpuid-deps.c read: (id, repository, commit, path, sha256, role)")
    out.append("DEPS_SOURCES: tuple[tuple[str, str, str, str, str, str], ...] = (")
    for s in sources:
        out.append(
            f"    ({py_str(s.ident)}, {py_str(s.repo)}, {py_str(s.commit)}, {py_str(s.path)}, "
            f"{py_str(s.sha256)}, {py_str(s.role)}),"
        )
    out.append(")")
    out.append("")
    names_t = "tuple[str, ...]"
    dep_type = f"tuple[tuple[str, {names_t}, {names_t}, str, {names_t}, {names_t}, {names_t}], ...]"
    for title, rows in (("DEPENDS", used), ("SUPERSEDED", superseded)):
        out.append("# (feature macro, its names, their locations, required macro, its names,")
        out.append("#  their locations, copies of cpuid-deps.c holding the row). No names: the")
        out.append("#  macro is not in the CPUID table (unresolved). Two names: two positions of")
        out.append("#  one Linux feature; either sets it (a requirement is met by any of them).")
        out.append(f"{title}: {dep_type} = (")
        for r in rows:
            fn, fw = side(r.feature)
            rn, rw = side(r.requires)
            srcs = py_tuple(r.sources)
            out.append(
                f"    ({py_str(r.feature)}, {fn}, {fw}, {py_str(r.requires)}, {rn}, {rw}, {srcs}),"
            )
        out.append(")")
        out.append("")
    out.append("# (level, psABI feature name or None, kvmprobe feature name, kind, leaf, subleaf,")
    out.append("#  register, bit); kinds: cpuid, os-enable, xsave-state (rules in the JSON input)")
    out.append("PSABI_LEVELS: tuple[tuple[str, str | None, str, str, int, int, str, int], ...] = (")
    for lv in levels:
        t = lv.row
        out.append(
            f"    ({py_str(lv.level)}, {py_str(lv.psabi)}, {py_str(lv.feature)}, "
            f"{py_str(lv.kind)}, {py_hex(t.leaf)}, {t.subleaf}, {py_str(t.reg)}, {t.bit}),"
        )
    out.append(")")
    out.append("")
    out.append("# (component bit, Linux XFEATURE_ name, required macro, required feature name,")
    out.append("#  register: xcr0 = user state, xss = supervisor state)")
    out.append("XSAVE_COMPONENTS: tuple[tuple[int, str, str, str, str], ...] = (")
    for c in xsave.components:
        out.append(
            f"    ({c.bit}, {py_str(c.xfeature)}, {py_str(c.requires)}, "
            f"{py_str(resolve(c.requires))}, {py_str(c.register)}),"
        )
    out.append(")")
    out.append("# fmt: on")
    out.append("")
    out.append("# XSAVE state component numbers (bits of XCR0 / IA32_XSS)")
    for c in xsave.components:
        out.append(f"{const_name(c.xfeature)} = {c.bit}")
    out.append("")
    out.append("# Where leaf 0xD enumerates the masks: (leaf, subleaf, bits 0-31, bits 32-63)")
    for reg_name in ("xcr0", "xss"):
        leaf, subleaf, low, high = xsave.registers[reg_name]
        out.append(
            f"{reg_name.upper()}_ENUMERATION: tuple[int, int, str, str] = "
            f"({py_hex(leaf)}, {subleaf}, {py_str(low)}, {py_str(high)})"
        )
    out.append("# The size of component n (n >= 2): (leaf, register) read at subleaf n")
    out.append(
        f"COMPONENT_SIZE: tuple[int, str] = ({py_hex(xsave.size[0])}, {py_str(xsave.size[1])})"
    )
    out.append("")
    out.append("# Bits the CPU sets from guest state -> the feature a VMM offers instead, and the")
    out.append("# control the guest kernel sets: (runtime name, offered name, control)")
    out.append("RUNTIME_BITS: tuple[tuple[str, str, str], ...] = (")
    for rt, offered, control in runtime:
        out.append(f"    ({py_str(resolve(rt))}, {py_str(resolve(offered))}, {py_str(control)}),")
    out.append(")")
    out.append("")
    out.append(
        f"# {len(used)} dependencies used, {len(superseded)} superseded, "
        f"{len(unresolved)} unresolved"
    )
    text = "\n".join(out) + "\n"
    for n, ln in enumerate(text.splitlines(), 1):
        if ln.startswith("#") and len(ln) > LINE_LENGTH:
            raise GenError(f"generated comment line {n} is longer than {LINE_LENGTH}: {ln!r}")
    return text


# --------------------------------------------------------------------------------------------
# Command line


def compare(path: Path, text: str, what: str) -> int:
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current == text:
        print(f"gen_deps_tables: {path.name} is up to date ({what})")
        return 0
    diff = difflib.unified_diff(
        current.splitlines(), text.splitlines(), str(path), "generated", lineterm=""
    )
    sys.stderr.write("\n".join(list(diff)[:60]) + "\n")
    print(f"gen_deps_tables: {path} is stale; regenerate it", file=sys.stderr)
    return 1


def generate(table_path: Path) -> tuple[str, str]:
    inputs = {
        p.name: p.read_text(encoding="utf-8")
        for p in (DEPS_TSV, PSABI_JSON, XSAVE_TSV, RUNTIME_TSV)
    }
    table = load_table(table_path)
    sources, deps = read_deps_tsv(inputs[DEPS_TSV.name])
    levels = read_psabi(inputs[PSABI_JSON.name], table)
    xsave = read_xsave(inputs[XSAVE_TSV.name], table)
    runtime = read_runtime(inputs[RUNTIME_TSV.name])
    text = render(inputs, table, sources, deps, levels, xsave, runtime)
    used = sum(1 for r in deps if sources[-1].ident in r.sources)
    counts = f"{used} dependencies, {len(levels)} level rows, {len(xsave.components)} components"
    return text, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="generated module")
    parser.add_argument("--cpuid-table", default=str(CPUID_TABLE), help="cpuid_data.py to join")
    parser.add_argument("--check", action="store_true", help="exit 1 if the output is stale")
    parser.add_argument(
        "--extract-deps",
        nargs="+",
        metavar="ID=PATH",
        help="rewrite scripts/data/cpuid_deps.tsv from upstream copies of cpuid-deps.c "
        f"(ids: {', '.join(DEPS_INPUTS)})",
    )
    args = parser.parse_args(argv)
    try:
        if args.extract_deps:
            texts: dict[str, str] = {}
            for item in args.extract_deps:
                ident, sep, path = item.partition("=")
                if not sep or ident not in DEPS_INPUTS:
                    raise GenError(f"--extract-deps takes ID=PATH with ID in {list(DEPS_INPUTS)}")
                texts[ident] = Path(path).read_text(encoding="utf-8")
            tsv = render_deps_tsv(texts)
            if args.check:
                return compare(DEPS_TSV, tsv, "dependency pairs")
            DEPS_TSV.write_text(tsv, encoding="utf-8")
            print(f"gen_deps_tables: wrote {DEPS_TSV}")
            return 0
        text, what = generate(Path(args.cpuid_table))
    except (GenError, OSError, KeyError, ValueError) as e:
        print(f"gen_deps_tables: error: {e}", file=sys.stderr)
        return 2
    output = Path(args.output)
    if args.check:
        return compare(output, text, what)
    output.write_text(text, encoding="utf-8")
    print(f"gen_deps_tables: wrote {output} ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
