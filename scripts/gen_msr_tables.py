#!/usr/bin/env python3
"""Generate kvmprobe/tables/msr_data.py and kvmprobe/tables/hyperv_data.py.

Inputs, both committed:

* ``scripts/data/msr_facts.json`` -- facts only: MSR names and numbers, the bit and field
  layouts of the feature MSRs KVM reports (IA32_ARCH_CAPABILITIES, IA32_PERF_CAPABILITIES, the
  IA32_VMX_* capability MSRs, ...), QEMU's property names for those bits (``feature_word_info``),
  libvirt's MSR feature names (``x86_features.xml``) and the Hyper-V CPUID leaves, bits and
  QEMU ``hv-*`` properties. Every group names the repository, path and commit it was
  transcribed from; the generated modules repeat them in their header and in ``SOURCES``.
* ``scripts/data/msr_overlay.tsv`` -- our own words: one line per MSR, bit, field, Hyper-V leaf
  and property saying what it means for a guest, plus the short "mitigation a guest may skip"
  label of each ARCH_CAPABILITIES immunity bit.

The generator joins the two and stops (exit 1, nothing written) when a fact has no overlay
row, an overlay row matches no fact, a description is too long, QEMU or libvirt names a bit
the layout does not list, two rows of a layout want one display name, a Hyper-V property
needs a bit no table names, or QEMU names a Hyper-V bit at a position the Linux table
does not name.

Display names (``ROWS[i][7]``): the kernel name without its layout prefix (``ARCH_CAP_``,
``VMX_FEATURE_``, ``VM_EXIT_`` ...; the prefixes are in ``STRIP`` below), else QEMU's name.

Stdlib only; deterministic output::

    python scripts/gen_msr_tables.py            # regenerate both modules
    python scripts/gen_msr_tables.py --check    # exit 1 if a committed module is stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FACTS = REPO_ROOT / "scripts" / "data" / "msr_facts.json"
DEFAULT_OVERLAY = REPO_ROOT / "scripts" / "data" / "msr_overlay.tsv"
DEFAULT_MSR_OUT = REPO_ROOT / "kvmprobe" / "tables" / "msr_data.py"
DEFAULT_HV_OUT = REPO_ROOT / "kvmprobe" / "tables" / "hyperv_data.py"
GENERATOR = "scripts/gen_msr_tables.py"

MAX_DESCRIPTION = 72
LAYOUT_KINDS = ("bits", "controls", "allowed1", "value")
REGISTERS = ("eax", "ebx", "ecx", "edx")

# Display-name prefixes stripped per layout (our presentation choice, not a fact).
STRIP: dict[str, tuple[str, ...]] = {
    "arch_capabilities": ("ARCH_CAP_",),
    "perf_capabilities": ("PERF_CAP_",),
    "core_caps": ("MSR_IA32_CORE_CAPS_",),
    "platform_info": ("MSR_PLATFORM_INFO_",),
    "de_cfg": ("MSR_AMD64_DE_CFG_",),
    "vmx_basic": ("VMX_BASIC_", "vmx_basic_"),
    "vmx_misc": ("VMX_MISC_", "vmx_misc_"),
    "vmx_ept_vpid_cap": ("VMX_",),
    "vmx_vmfunc": ("VMX_VMFUNC_",),
    "vmx_pinbased": ("VMX_FEATURE_",),
    "vmx_procbased": ("VMX_FEATURE_",),
    "vmx_secondary": ("VMX_FEATURE_",),
    "vmx_tertiary": ("VMX_FEATURE_",),
    "vmx_exit": ("VM_EXIT_",),
    "vmx_entry": ("VM_ENTRY_",),
}
STRIP_SUFFIXES = ("_BIT",)


class GenError(Exception):
    """The inputs are inconsistent; nothing is written."""


@dataclass(frozen=True)
class Source:
    repository: str
    path: str
    commit: str

    @property
    def text(self) -> str:
        return f"{self.repository} {self.path} @ {self.commit}"


@dataclass
class Row:
    layout: str
    lo: int
    hi: int
    kernel: str | None
    cpuinfo: str | None
    qemu: str | None
    libvirt: str | None
    name: str
    description: str
    skip: str | None
    values: str | None


@dataclass(frozen=True)
class Overlay:
    description: str
    skip: str | None
    line: int


# ---------------------------------------------------------------------------------------------
# reading


def _read(path: Path) -> tuple[bytes, str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GenError(f"cannot read {path}: {exc.strerror}") from exc
    return raw, hashlib.sha256(raw).hexdigest()


def _source(raw: Any, where: str) -> Source:
    if not isinstance(raw, dict):
        raise GenError(f"{where}: 'source' must be an object")
    try:
        src = Source(str(raw["repository"]), str(raw["path"]), str(raw["commit"]))
    except KeyError as exc:
        raise GenError(f"{where}: source lacks {exc.args[0]!r}") from None
    if len(src.commit) != 40 or any(c not in "0123456789abcdef" for c in src.commit):
        raise GenError(f"{where}: commit {src.commit!r} is not a 40-digit hex id")
    return src


def _hex(text: Any, where: str) -> int:
    if not isinstance(text, str) or not text.startswith("0x"):
        raise GenError(f"{where}: expected a hex string, got {text!r}")
    try:
        return int(text, 16)
    except ValueError:
        raise GenError(f"{where}: {text!r} is not hex") from None


def read_overlay(raw: bytes) -> dict[tuple[str, str], Overlay]:
    out: dict[tuple[str, str], Overlay] = {}
    for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 4:
            raise GenError(f"overlay line {number}: expected 4 tab-separated columns")
        table, key, description, skip = (c.strip() for c in cols)
        if not description:
            raise GenError(f"overlay line {number}: empty description")
        if len(description) > MAX_DESCRIPTION:
            raise GenError(
                f"overlay line {number}: description is {len(description)} characters "
                f"(at most {MAX_DESCRIPTION})"
            )
        if (table, key) in out:
            raise GenError(f"overlay line {number}: {table} {key} appears twice")
        out[(table, key)] = Overlay(description, None if skip == "-" else skip, number)
    return out


class OverlayUse:
    """Hands out overlay rows and remembers which were used."""

    def __init__(self, rows: dict[tuple[str, str], Overlay]) -> None:
        self.rows = rows
        self.used: set[tuple[str, str]] = set()

    def get(self, table: str, key: str) -> Overlay:
        row = self.rows.get((table, key))
        if row is None:
            raise GenError(f"no overlay row for {table} {key}: add one to msr_overlay.tsv")
        self.used.add((table, key))
        return row

    def check_all_used(self) -> None:
        extra = sorted(set(self.rows) - self.used, key=lambda k: self.rows[k].line)
        if extra:
            where = ", ".join(f"line {self.rows[k].line} ({k[0]} {k[1]})" for k in extra)
            raise GenError(f"overlay rows match no fact: {where}")


# ---------------------------------------------------------------------------------------------
# MSR tables


@dataclass
class MsrTables:
    sources: list[Source]
    names: dict[int, list[str]]
    origin: dict[int, str]
    constants: dict[str, int]
    ranges: list[tuple[str, int, int, int]]
    layout_kind: dict[str, str]
    msr_layout: dict[int, str]
    msr_description: dict[int, str]
    default1: dict[str, int]
    rows: list[Row]
    value_names: dict[str, dict[int, str]]
    qemu_words: list[tuple[str, str, int]]


def _display_name(layout: str, kernel: str | None, qemu: str | None) -> str:
    if kernel is None:
        if qemu is None:
            raise GenError(f"{layout}: a row has neither a kernel nor a QEMU name")
        return qemu
    name = kernel
    for prefix in STRIP.get(layout, ()):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    for suffix in STRIP_SUFFIXES:
        if name.endswith(suffix) and layout in ("vmx_ept_vpid_cap", "de_cfg"):
            name = name[: -len(suffix)]
    return name


def build_msr(facts: dict[str, Any], overlay: OverlayUse) -> MsrTables:
    sources: list[Source] = []

    def add_source(src: Source) -> None:
        if src not in sources:
            sources.append(src)

    names: dict[int, list[str]] = {}
    origin: dict[int, str] = {}
    constants: dict[str, int] = {}
    ranges: list[tuple[str, int, int, int]] = []
    for g, group in enumerate(facts["msr_names"]):
        where = f"msr_names[{g}]"
        add_source(_source(group["source"], where))
        grp_origin = group["origin"]
        for name, text in group["msrs"].items():
            index = _hex(text, f"{where}.{name}")
            if name in constants:
                raise GenError(f"{where}: {name} defined twice")
            if index in names:
                raise GenError(
                    f"{where}: {name} {index:#x} already named {names[index][0]} "
                    "(list true aliases under 'aliases')"
                )
            constants[name] = index
            names[index] = [name]
            origin[index] = grp_origin
        for name, text in group.get("aliases", {}).items():
            index = _hex(text, f"{where}.aliases.{name}")
            if index not in names:
                raise GenError(f"{where}: alias {name} of unnamed index {index:#x}")
            constants[name] = index
            names[index].append(name)
        for r in group.get("ranges", []):
            base = _hex(r["base"], f"{where}.ranges.{r['name']}")
            ranges.append((r["name"], base, int(r["stride"]), int(r["count"])))

    value_names: dict[str, dict[int, str]] = {}
    for vid, group in facts["value_names"].items():
        add_source(_source(group["source"], f"value_names.{vid}"))
        value_names[vid] = {int(k): v for k, v in group["values"].items()}

    layout_kind: dict[str, str] = {}
    msr_layout: dict[int, str] = {}
    msr_description: dict[int, str] = {}
    default1: dict[str, int] = {}
    rows: list[Row] = []
    by_layout: dict[str, dict[int, Row]] = {}
    for layout in facts["layouts"]:
        lid = layout["id"]
        where = f"layouts.{lid}"
        add_source(_source(layout["source"], where))
        if lid in layout_kind:
            raise GenError(f"{where}: layout defined twice")
        kind = layout["kind"]
        if kind not in LAYOUT_KINDS:
            raise GenError(f"{where}: kind {kind!r} not one of {LAYOUT_KINDS}")
        layout_kind[lid] = kind
        for msr_name in layout["msrs"]:
            if msr_name not in constants:
                raise GenError(f"{where}: {msr_name} is not among msr_names")
            index = constants[msr_name]
            if index in msr_layout:
                raise GenError(f"{where}: {msr_name} already has layout {msr_layout[index]}")
            msr_layout[index] = lid
            msr_description[index] = overlay.get("msr", msr_name).description
        if "default1" in layout:
            default1[lid] = _hex(layout["default1"]["mask"], f"{where}.default1")
        rows_here: dict[int, Row] = {}
        for r in layout["rows"]:
            if "bit" in r:
                lo = hi = int(r["bit"])
            else:
                lo, hi = int(r["lo"]), int(r["hi"])
            if not 0 <= lo <= hi <= 63:
                raise GenError(f"{where}: bad position {lo}..{hi}")
            for other in rows_here.values():
                if lo <= other.hi and other.lo <= hi:
                    raise GenError(
                        f"{where}: rows at {lo}..{hi} and {other.lo}..{other.hi} overlap"
                    )
            values = r.get("values")
            if values is not None and values not in value_names:
                raise GenError(f"{where}: unknown value table {values!r}")
            cpuinfo = r.get("cpuinfo")
            if cpuinfo is None and "cpuinfo" in r and r["kernel"]:
                # no quoted string in vmxfeatures.h: /proc/cpuinfo uses the lower-cased suffix
                cpuinfo = str(r["kernel"]).removeprefix("VMX_FEATURE_").lower()
            elif cpuinfo == "":
                cpuinfo = None  # "" in the header: hidden from /proc/cpuinfo
            row = Row(lid, lo, hi, r["kernel"], cpuinfo, None, None, "", "", None, values)
            rows_here[lo] = row
        by_layout[lid] = rows_here

    qsrc = _source(facts["qemu"]["source"], "qemu")
    add_source(qsrc)
    qemu_words: list[tuple[str, str, int]] = []
    for word in facts["qemu"]["words"]:
        where = f"qemu.{word['word']}"
        lid = word["layout"]
        if lid not in by_layout:
            raise GenError(f"{where}: unknown layout {lid}")
        if word["msr"] not in constants:
            raise GenError(f"{where}: {word['msr']} is not among msr_names")
        if msr_layout.get(constants[word["msr"]]) != lid:
            raise GenError(f"{where}: {word['msr']} does not use layout {lid}")
        qemu_words.append((word["word"], lid, constants[word["msr"]]))
        for bit_text, qname in word["names"].items():
            bit = int(bit_text)
            qrow = by_layout[lid].get(bit)
            if qrow is None or qrow.lo != qrow.hi:
                raise GenError(f"{where}: QEMU names bit {bit} ({qname}); the layout lists no bit")
            qrow.qemu = qname

    lsrc = _source(facts["libvirt"]["source"], "libvirt")
    add_source(lsrc)
    for feat in facts["libvirt"]["features"]:
        where = f"libvirt.{feat['name']}"
        index = _hex(feat["msr"], where)
        lid = msr_layout.get(index)
        if lid is None:
            raise GenError(f"{where}: MSR {index:#x} has no layout")
        mask = _hex(feat["eax"], where) | _hex(feat["edx"], where) << 32
        if mask.bit_count() != 1:
            raise GenError(f"{where}: mask {mask:#x} is not one bit")
        bit = mask.bit_length() - 1
        lrow = by_layout[lid].get(bit)
        if lrow is None or lrow.lo != lrow.hi:
            raise GenError(f"{where}: libvirt names bit {bit}; the layout lists no bit")
        lrow.libvirt = feat["name"]

    for lid, rows_here in by_layout.items():
        seen: dict[str, int] = {}
        for lo in sorted(rows_here):
            row = rows_here[lo]
            row.name = _display_name(lid, row.kernel, row.qemu)
            if row.name in seen:
                raise GenError(
                    f"layouts.{lid}: bits {seen[row.name]} and {lo} both want {row.name}"
                )
            seen[row.name] = lo
            key = row.kernel or row.qemu
            assert key is not None
            ov = overlay.get(lid, key)
            row.description = ov.description
            if ov.skip is not None and lid != "arch_capabilities":
                raise GenError(f"overlay line {ov.line}: a skip label only fits ARCH_CAPABILITIES")
            row.skip = ov.skip
            rows.append(row)

    return MsrTables(
        sources, names, origin, constants, ranges, layout_kind, msr_layout, msr_description,
        default1, rows, value_names, qemu_words,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Hyper-V tables


@dataclass
class HvTables:
    sources: list[Source]
    leaves: dict[int, str]
    leaf_description: dict[int, str]
    bits: list[tuple[int, str, int, str | None, str | None, str]]
    fields: list[tuple[int, str, int, int, str, str]]
    signatures: list[tuple[int, tuple[str, ...], str, str]]
    properties: list[
        tuple[str, tuple[str, ...], str, tuple[tuple[int, str, int], ...], tuple[str, ...],
              tuple[str, ...], bool, str]
    ]  # fmt: skip
    requirements: list[tuple[str, str, str]]
    kvm_vendor: str
    kvm_interface: int
    kvm_leaves: tuple[int, ...]


def _reg(text: Any, where: str) -> str:
    if text not in REGISTERS:
        raise GenError(f"{where}: register {text!r} not one of {REGISTERS}")
    return str(text)


def build_hyperv(facts: dict[str, Any], overlay: OverlayUse) -> HvTables:
    hv = facts["hyperv"]
    sources: list[Source] = []

    def add_source(src: Source) -> None:
        if src not in sources:
            sources.append(src)

    leaves: dict[int, str] = {}
    for group in ("leaves", "syndbg_leaves"):
        add_source(_source(hv[group]["source"], f"hyperv.{group}"))
        for text, name in hv[group]["names"].items():
            leaf = _hex(text, f"hyperv.{group}")
            if leaf in leaves:
                raise GenError(f"hyperv.{group}: leaf {leaf:#x} named twice")
            leaves[leaf] = name
    leaf_description = {
        leaf: overlay.get("hv-leaf", f"{leaf:#x}").description for leaf in sorted(leaves)
    }

    linux: dict[tuple[int, str, int], str] = {}
    for group in ("bits", "syndbg_bits"):
        add_source(_source(hv[group]["source"], f"hyperv.{group}"))
        for reg in hv[group]["registers"]:
            leaf = _hex(reg["leaf"], f"hyperv.{group}")
            name = _reg(reg["reg"], f"hyperv.{group}")
            if leaf not in leaves:
                raise GenError(f"hyperv.{group}: leaf {leaf:#x} has no name")
            for bit_text, macro in reg["bits"].items():
                key = (leaf, name, int(bit_text))
                if key in linux:
                    raise GenError(f"hyperv.{group}: {leaf:#x}.{name}[{bit_text}] named twice")
                linux[key] = macro

    add_source(_source(hv["qemu_bits"]["source"], "hyperv.qemu_bits"))
    qemu_pos: dict[str, tuple[int, str, int]] = {}
    qemu_at: dict[tuple[int, str, int], str] = {}
    for reg in hv["qemu_bits"]["registers"]:
        leaf = _hex(reg["leaf"], "hyperv.qemu_bits")
        name = _reg(reg["reg"], "hyperv.qemu_bits")
        for bit_text, macro in reg["bits"].items():
            key = (leaf, name, int(bit_text))
            if key not in linux:
                raise GenError(
                    f"hyperv.qemu_bits: QEMU names {macro} at {leaf:#x}.{name}[{bit_text}], "
                    "where the Linux table names nothing"
                )
            qemu_pos[macro] = key
            qemu_at[key] = macro

    bits: list[tuple[int, str, int, str | None, str | None, str]] = []
    for key in sorted(linux):
        leaf, name, bit = key
        ov = overlay.get("hv-bit", f"{leaf:#x}.{name}[{bit}]")
        bits.append((leaf, name, bit, linux[key], qemu_at.get(key), ov.description))

    add_source(_source(hv["fields"]["source"], "hyperv.fields"))
    fields = []
    for f in hv["fields"]["fields"]:
        leaf = _hex(f["leaf"], "hyperv.fields")
        name = _reg(f["reg"], "hyperv.fields")
        lo, hi = int(f["lo"]), int(f["hi"])
        if not 0 <= lo <= hi <= 31:
            raise GenError(f"hyperv.fields.{f['name']}: bad position {lo}..{hi}")
        for b in range(lo, hi + 1):
            if (leaf, name, b) in linux:
                raise GenError(f"hyperv.fields.{f['name']}: overlaps a named bit")
        ov = overlay.get("hv-field", f["name"])
        fields.append((leaf, name, lo, hi, str(f["name"]), ov.description))

    add_source(_source(hv["signatures"]["source"], "hyperv.signatures"))
    signatures = []
    for sig in hv["signatures"]["signatures"]:
        leaf = _hex(sig["leaf"], "hyperv.signatures")
        regs = tuple(_reg(r, "hyperv.signatures") for r in sig["regs"])
        for name in regs:
            if any(k[:2] == (leaf, name) for k in linux) or any(
                f[0] == leaf and f[1] == name for f in fields
            ):
                raise GenError(f"hyperv.signatures.{sig['name']}: {leaf:#x}.{name} is not text")
        ov = overlay.get("hv-sig", sig["name"])
        signatures.append((leaf, regs, str(sig["name"]), ov.description))

    psrc = _source(hv["qemu_properties"]["source"], "hyperv.qemu_properties")
    add_source(psrc)
    properties = []
    known = {p["name"] for p in hv["qemu_properties"]["properties"]}
    for p in hv["qemu_properties"]["properties"]:
        where = f"hyperv.qemu_properties.{p['name']}"
        needs: list[tuple[int, str, int]] = []
        for leaf_text, reg, macros in p["flags"]:
            leaf = _hex(leaf_text, where)
            name = _reg(reg, where)
            mask = 0
            for macro in macros:
                pos = qemu_pos.get(macro)
                if pos is None:
                    raise GenError(f"{where}: {macro} is not among hyperv.qemu_bits")
                if pos[:2] != (leaf, name):
                    raise GenError(f"{where}: {macro} is not in {leaf:#x}.{name}")
                mask |= 1 << pos[2]
            needs.append((leaf, name, mask))
        deps = tuple(p.get("dependencies", ()))
        extra = tuple(p.get("extra_dependencies", ()))
        for d in deps + extra:
            if d not in known:
                raise GenError(f"{where}: depends on unknown property {d}")
        ov = overlay.get("hv-prop", p["name"])
        properties.append(
            (p["name"], tuple(p.get("aliases", ())), p["feature"], tuple(needs), deps, extra,
             bool(p.get("skip_passthrough", False)), ov.description)
        )  # fmt: skip

    requirements = []
    for r in hv["requirements"]:
        src = _source(r["source"], f"hyperv.requirements.{r['property']}")
        add_source(src)
        if r["property"] not in known:
            raise GenError(f"hyperv.requirements: unknown property {r['property']}")
        requirements.append((r["property"], r["needs"], f"{src.text}: {r['source']['note']}"))

    ka = hv["kvm_answer"]
    add_source(_source(ka["source"], "hyperv.kvm_answer"))
    interface = ka["interface"].encode("ascii")
    if len(interface) != 4:
        raise GenError("hyperv.kvm_answer.interface must be 4 characters")
    return HvTables(
        sources, leaves, leaf_description, bits, fields, signatures, properties, requirements,
        ka["vendor"], int.from_bytes(interface, "little"),
        tuple(_hex(x, "hyperv.kvm_answer") for x in ka["leaves"]),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# rendering


def _h(value: int) -> str:
    return f"{value:#x}" if value < 10 else f"0x{value:X}"


def _s(value: str | None) -> str:
    return "None" if value is None else json.dumps(value)


def _header(
    module: str, doc: str, sources: list[Source], digests: list[tuple[str, str]]
) -> list[str]:
    lines = [
        "# ruff: noqa: E501",
        f"# Generated by {GENERATOR} -- do not edit by hand.",
        f"# Regenerate: python {GENERATOR} (--check to verify)",
        "#",
        "# Upstream facts, transcribed into scripts/data/msr_facts.json"
        " (repository, path @ commit):",
    ]
    lines += [f"#   {s.text}" for s in sources]
    lines += ["#", "# Inputs:"]
    lines += [f"#   {name} sha256 {digest}" for name, digest in digests]
    lines += [
        "# Descriptions and skip labels are our own words (scripts/data/msr_overlay.tsv).",
        f'"""{doc} (generated; plain data, no logic)."""',
        "",
        # Final for type checkers only (importing typing costs start-up time; the
        # annotations stay strings, never evaluated)
        "from __future__ import annotations",
        "",
        "TYPE_CHECKING = False",
        "if TYPE_CHECKING:",
        "    from typing import Final",
        "",
        "# (repository, path, commit) of every upstream file the facts come from",
        "SOURCES: tuple[tuple[str, str, str], ...] = (",
    ]
    lines += [f"    ({_s(s.repository)}, {_s(s.path)}, {_s(s.commit)})," for s in sources]
    lines.append(")")
    del module
    return lines


def render_msr(t: MsrTables, digests: list[tuple[str, str]]) -> str:
    out = _header("msr_data", "Feature-MSR names, numbers and bit layouts", t.sources, digests)
    out += ["", "# Named constants: every MSR the facts name."]
    for name, index in sorted(t.constants.items(), key=lambda kv: (kv[1], kv[0])):
        out.append(f"{name}: Final = {_h(index)}")
    out += [
        "",
        "# index -> names (preferred first; true aliases after)",
        "MSR_NAMES: dict[int, tuple[str, ...]] = {",
    ]
    for index in sorted(t.names):
        out.append(f"    {_h(index)}: ({', '.join(_s(n) for n in t.names[index])},),")
    out += ["}", "", "# index -> header the name comes from: msr-index, kvm, hyperv"]
    out.append("MSR_ORIGIN: dict[int, str] = {")
    for index in sorted(t.origin):
        out.append(f"    {_h(index)}: {_s(t.origin[index])},")
    out += [
        "}",
        "",
        "# (name, first index, stride, count): indexed families such as MSR_IA32_MCx_CTL(x)",
        "MSR_RANGES: tuple[tuple[str, int, int, int], ...] = (",
    ]
    out += [f"    ({_s(n)}, {_h(b)}, {s}, {c})," for n, b, s, c in t.ranges]
    out += [
        ")",
        "",
        "# layout id -> kind: bits (bits and fields), controls (low 32 bits = allowed-0 settings,",
        "# i.e. must be 1; high 32 = allowed-1 settings), allowed1 (all 64 bits allowed-1),",
        "# value (a number, not bits)",
        "LAYOUT_KIND: dict[str, str] = {",
    ]
    out += [f"    {_s(k)}: {_s(v)}," for k, v in t.layout_kind.items()]
    out += ["}", "", "# feature MSR index -> layout id", "MSR_LAYOUT: dict[int, str] = {"]
    out += [f"    {_h(k)}: {_s(t.msr_layout[k])}," for k in sorted(t.msr_layout)]
    out += ["}", "", "# feature MSR index -> what it tells a guest (our words)"]
    out.append("MSR_DESCRIPTIONS: dict[int, str] = {")
    out += [f"    {_h(k)}: {_s(t.msr_description[k])}," for k in sorted(t.msr_description)]
    out += [
        "}",
        "",
        "# controls layout -> the default1 class (bits forced to 1 by the non-TRUE MSRs)",
        "DEFAULT1: dict[str, int] = {",
    ]
    out += [f"    {_s(k)}: {_h(v)}," for k, v in t.default1.items()]
    out += [
        "}",
        "",
        "# value table id -> {value: name}",
        "VALUE_NAMES: dict[str, dict[int, str]] = {",
    ]
    for vid, values in t.value_names.items():
        inner = ", ".join(f"{k}: {_s(v)}" for k, v in sorted(values.items()))
        out.append(f"    {_s(vid)}: {{{inner}}},")
    out += [
        "}",
        "",
        "# (QEMU feature word, layout, MSR QEMU reads for it)",
        "QEMU_MSR_WORDS: tuple[tuple[str, str, int], ...] = (",
    ]
    out += [f"    ({_s(w)}, {_s(lid)}, {_h(i)})," for w, lid, i in t.qemu_words]
    out += [
        ")",
        "",
        "# One row per bit or field, in layout order.",
        "# (layout, lo, hi, kernel_name, cpuinfo_name, qemu_name, libvirt_name, name,",
        "#  description, skip_label, value_table)",
        "# fmt: off",
        "ROWS: tuple[tuple[str, int, int, str | None, str | None, str | None, str | None, str, "
        "str, str | None, str | None], ...] = (",
    ]
    for r in t.rows:
        out.append(
            f"    ({_s(r.layout)}, {r.lo}, {r.hi}, {_s(r.kernel)}, {_s(r.cpuinfo)}, {_s(r.qemu)}, "
            f"{_s(r.libvirt)}, {_s(r.name)}, {_s(r.description)}, {_s(r.skip)}, {_s(r.values)}),"
        )
    out += [")", "# fmt: on", ""]
    return "\n".join(out)


def render_hyperv(t: HvTables, digests: list[tuple[str, str]]) -> str:
    doc = "Hyper-V CPUID leaves, bits and QEMU hv-* properties"
    out = _header("hyperv_data", doc, t.sources, digests)
    out += ["", "# Named constants: every Hyper-V leaf the facts name."]
    for leaf in sorted(t.leaves):
        out.append(f"{t.leaves[leaf]}: Final = {_h(leaf)}")
    out += [
        "",
        f"KVM_HV_VENDOR: Final = {_s(t.kvm_vendor)}",
        f"HV_INTERFACE_SIGNATURE: Final = {_h(t.kvm_interface)}",
        "# the leaves KVM_GET_SUPPORTED_HV_CPUID returns, in its order",
        f"KVM_HV_LEAVES: tuple[int, ...] = ({', '.join(_h(x) for x in t.kvm_leaves)},)",
        "",
        "HV_LEAVES: dict[int, str] = {",
    ]
    out += [f"    {_h(leaf)}: {_s(t.leaves[leaf])}," for leaf in sorted(t.leaves)]
    out += ["}", "", "HV_LEAF_DESCRIPTIONS: dict[int, str] = {"]
    out += [f"    {_h(k)}: {_s(v)}," for k, v in t.leaf_description.items()]
    out += [
        "}",
        "",
        "# fmt: off",
        "# (leaf, register, bit, Linux name, QEMU macro, description)",
        "HV_BITS: tuple[tuple[int, str, int, str | None, str | None, str], ...] = (",
    ]
    out += [
        f"    ({_h(a)}, {_s(b)}, {c}, {_s(d)}, {_s(e)}, {_s(f)})," for a, b, c, d, e, f in t.bits
    ]
    out += [")", "", "# (leaf, register, lo, hi, name, description)"]
    out.append("HV_FIELDS: tuple[tuple[int, str, int, int, str, str], ...] = (")
    out += [f"    ({_h(a)}, {_s(b)}, {c}, {d}, {_s(e)}, {_s(f)})," for a, b, c, d, e, f in t.fields]
    out += [")", "", "# (leaf, registers holding ASCII text in order, name, description)"]
    out.append("HV_SIGNATURES: tuple[tuple[int, tuple[str, ...], str, str], ...] = (")
    for leaf, regs, name, desc in t.signatures:
        rg = "(" + "".join(f"{_s(r)}, " for r in regs) + ")"
        out.append(f"    ({_h(leaf)}, {rg}, {_s(name)}, {_s(desc)}),")
    out += [
        ")",
        "",
        "# QEMU kvm_hyperv_properties[]: (property, aliases, QEMU feature, ((leaf, register,",
        "# mask), ...) every bit of which KVM must report, dependencies, extra dependencies,",
        "# skip_passthrough, description)",
        "HV_PROPERTIES: tuple[tuple[str, tuple[str, ...], str, tuple[tuple[int, str, int], ...], "
        "tuple[str, ...], tuple[str, ...], bool, str], ...] = (",
    ]
    for name, aliases, feature, needs, deps, extra, skip, desc in t.properties:
        al = "(" + "".join(f"{_s(a)}, " for a in aliases) + ")"
        nd = "(" + "".join(f"({_h(lf)}, {_s(rg)}, {_h(m)}), " for lf, rg, m in needs) + ")"
        dp = "(" + "".join(f"{_s(d)}, " for d in deps) + ")"
        ex = "(" + "".join(f"{_s(d)}, " for d in extra) + ")"
        out.append(f"    ({_s(name)}, {al}, {_s(feature)}, {nd}, {dp}, {ex}, {skip}, {_s(desc)}),")
    out += [
        ")",
        "",
        "# (property, what it needs: lapic | nested-vmx | nested, citation)",
        "HV_REQUIREMENTS: tuple[tuple[str, str, str], ...] = (",
    ]
    out += [f"    ({_s(p)}, {_s(n)}, {_s(c)})," for p, n, c in t.requirements]
    out += [")", "# fmt: on", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def generate(facts_path: Path, overlay_path: Path) -> tuple[str, str]:
    facts_raw, facts_digest = _read(facts_path)
    overlay_raw, overlay_digest = _read(overlay_path)
    try:
        facts = json.loads(facts_raw)
    except json.JSONDecodeError as exc:
        raise GenError(f"{facts_path}: {exc}") from None
    overlay = OverlayUse(read_overlay(overlay_raw))
    digests = [
        ("scripts/data/msr_facts.json", facts_digest),
        ("scripts/data/msr_overlay.tsv", overlay_digest),
    ]
    try:
        msr = build_msr(facts, overlay)
        hv = build_hyperv(facts, overlay)
    except (KeyError, TypeError, ValueError) as exc:
        raise GenError(f"malformed facts: {type(exc).__name__}: {exc}") from None
    overlay.check_all_used()
    return render_msr(msr, digests), render_hyperv(hv, digests)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--facts", type=Path, default=DEFAULT_FACTS)
    ap.add_argument("--overlay", type=Path, default=DEFAULT_OVERLAY)
    ap.add_argument("--msr-output", type=Path, default=DEFAULT_MSR_OUT)
    ap.add_argument("--hyperv-output", type=Path, default=DEFAULT_HV_OUT)
    ap.add_argument("--check", action="store_true", help="exit 1 if an output is stale")
    args = ap.parse_args(argv)
    try:
        msr_text, hv_text = generate(args.facts, args.overlay)
    except GenError as exc:
        print(f"gen_msr_tables: error: {exc}", file=sys.stderr)
        return 1
    stale = []
    for path, text in ((args.msr_output, msr_text), (args.hyperv_output, hv_text)):
        if args.check:
            try:
                current = path.read_text()
            except OSError:
                current = None
            if current != text:
                stale.append(path)
        else:
            path.write_text(text)
    if stale:
        names = ", ".join(str(p) for p in stale)
        print(f"gen_msr_tables: stale: {names} (run {GENERATOR})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
