#!/usr/bin/env python3
"""Generate kvmprobe/tables/caps_data.py from the verified KVM ABI facts.

Inputs are the kvm-abi JSON files (``kvm_caps.json`` and ``kvm_x86_consts.json``), which record
every ``KVM_CAP_*`` name and number through Linux v7.2, the arch each cap belongs to, the bit and
value groups cap values are decoded with, and what ``KVM_CHECK_EXTENSION`` returns for the caps
whose value is more than a yes/no; and ``scripts/data/cap_arch.tsv``, the architecture of the
caps that the facts' name-based arch map leaves generic although upstream defines them for one
architecture (each row with its source). Optionally an upstream ``include/uapi/linux/kvm.h``
is parsed to cross-check every ``KVM_CAP_*`` name and number (any disagreement is fatal).

The output is plain data with a provenance header; it is deterministic (same inputs, same bytes)
and already in ``ruff format`` style. ``--check`` exits 1 when the committed file is stale.

Stdlib only, so it runs from a plain checkout::

    python scripts/gen_cap_tables.py                    # regenerate
    python scripts/gen_cap_tables.py --check            # CI: is the committed file current?
    python scripts/gen_cap_tables.py --kvm-h linux/include/uapi/linux/kvm.h
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ABI_DIR = REPO_ROOT / "scripts" / "data" / "kvm-abi"
DEFAULT_OUTPUT = REPO_ROOT / "kvmprobe" / "tables" / "caps_data.py"
DEFAULT_ARCH_FACTS = REPO_ROOT / "scripts" / "data" / "cap_arch.tsv"
GENERATOR = "scripts/gen_cap_tables.py"

CAPS_JSON = "kvm_caps.json"
CONSTS_JSON = "kvm_x86_consts.json"
ARCH_TSV = "cap_arch.tsv"

ARCHES = ("generic", "x86", "s390", "powerpc", "arm64", "riscv", "mips", "loongarch")

# cap_returns "kind" in the facts -> kind in CAP_VALUE_KIND
RETURN_KINDS = {
    "bitmask": "bitmask",
    "bitmask_of_values": "values",
    "boolean": "boolean",
    "scalar": "scalar",
}

# "<owner>/<repo> <path> @ [commit ]<sha>" as the facts' source fields name their inputs
SOURCE_REF = re.compile(r"([\w.-]+/[\w.-]+) ([\w./-]+) @ (?:commit )?([0-9a-f]{7,40})\b")
KVM_H_CAP = re.compile(r"^\s*#\s*define\s+(KVM_CAP_\w+)\s+(\d+)\b", re.MULTILINE)

WRAP = 96


class GenError(Exception):
    """The inputs are inconsistent; nothing is written."""


@dataclass(frozen=True)
class Group:
    name: str
    kind: str  # "bits" (member n means 1 << n) or "values" (member n is the value n)
    members: tuple[tuple[str, int], ...]  # (constant, bit position in a cap's return value)
    masks: tuple[tuple[str, int], ...]  # multi-bit constants (e.g. *_VALID_MASK), never flags
    header: str | None
    status: dict[str, str]  # constant (or "" for the whole group) -> note from the facts


@dataclass(frozen=True)
class Tables:
    abi_version: str
    caps: dict[int, tuple[str, str]]
    groups: dict[str, Group]
    cap_value_kind: dict[str, tuple[str, str | None]]
    cap_enable_arg_group: dict[str, str]
    constants: dict[str, int]  # every other named uapi constant (constants_flat), by name
    sources: tuple[tuple[str, str, str], ...]
    source_texts: tuple[tuple[str, str], ...]  # (json file, its "source" text)
    digests: tuple[tuple[str, str], ...]  # (json file, sha256)
    arch_rows: tuple[tuple[str, str, str], ...] = ()  # cap_arch.tsv: (cap, arch, source)
    arch_digest: str | None = None  # cap_arch.tsv sha256


# ---------------------------------------------------------------------------------------------
# reading and checking the facts


def _load(path: Path) -> tuple[dict[str, Any], str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GenError(f"cannot read {path}: {exc.strerror}") from exc
    return json.loads(raw), hashlib.sha256(raw).hexdigest()


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _group(name: str, raw: dict[str, Any], kind: str) -> Group:
    members: list[tuple[str, int]] = []
    masks: list[tuple[str, int]] = []
    status: dict[str, str] = {}
    raw_status = raw.get("_status")
    if isinstance(raw_status, str):
        status[""] = raw_status
    elif isinstance(raw_status, dict):
        status.update(raw_status)
    for const, entry in raw.items():
        if const.startswith("_"):
            continue
        if kind == "values":
            if not isinstance(entry, int) or entry < 0:
                raise GenError(f"{name}.{const}: a values group needs a non-negative int")
            members.append((const, entry))
            continue
        if isinstance(entry, int):
            value, bit = entry, None
        else:
            value, bit = entry.get("value"), entry.get("bit")
        if bit is not None:
            if value is not None and value != 1 << bit:
                raise GenError(f"{name}.{const}: bit {bit} but value {value}")
            members.append((const, bit))
        elif isinstance(value, int) and _is_power_of_two(value):
            members.append((const, value.bit_length() - 1))
        elif isinstance(value, int) and value > 0:
            masks.append((const, value))
        else:
            raise GenError(f"{name}.{const}: cannot read {entry!r}")
    if not members:
        raise GenError(f"group {name} has no members")
    names = [const for const, _ in members + masks]
    if len(set(names)) != len(names):
        raise GenError(f"group {name} repeats a name")
    for const in status:
        if const and const not in names:
            raise GenError(f"group {name}: _status names unknown constant {const}")
    return Group(
        name=name,
        kind=kind,
        members=tuple(sorted(members, key=lambda m: (m[1], m[0]))),
        masks=tuple(sorted(masks, key=lambda m: (m[1], m[0]))),
        header=raw.get("_header"),
        status=status,
    )


def _decode(group: Group, value: int) -> list[str]:
    return [const for const, pos in group.members if value >> pos & 1]


def _arch_rows(path: Path) -> tuple[list[tuple[str, str, str]], str]:
    """The rows of cap_arch.tsv (cap, arch, source) and the file's sha256."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GenError(f"cannot read {path}: {exc.strerror}") from exc
    rows: list[tuple[str, str, str]] = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not all(f.strip() for f in fields):
            raise GenError(f"{path.name}:{number}: want three tab-separated columns")
        cap, arch, source = (f.strip() for f in fields)
        if not SOURCE_REF.search(source):
            raise GenError(f"{path.name}:{number}: the source names no '<repo> <path> @ <commit>'")
        rows.append((cap, arch, source))
    return rows, hashlib.sha256(raw).hexdigest()


def build(abi_dir: Path, arch_facts: Path | None = None) -> Tables:
    """The tables from the kvm-abi facts in ``abi_dir`` and, when given, the architectures of
    the caps the facts' name map leaves generic (``arch_facts``, cap_arch.tsv)."""
    caps_facts, caps_sha = _load(abi_dir / CAPS_JSON)
    consts_facts, consts_sha = _load(abi_dir / CONSTS_JSON)

    # -- caps: names, numbers, arch
    by_name: dict[str, int] = caps_facts["caps"]
    numbers = list(by_name.values())
    if len(set(numbers)) != len(numbers):
        raise GenError("kvm_caps.json: two names share a number")
    if len(by_name) != caps_facts["count"]:
        raise GenError(f"kvm_caps.json: count {caps_facts['count']} but {len(by_name)} names")
    if max(numbers) != caps_facts["highest_cap"]:
        raise GenError("kvm_caps.json: highest_cap disagrees with the names")
    for name in by_name:
        if not name.startswith("KVM_CAP_"):
            raise GenError(f"kvm_caps.json: odd name {name}")
    unused = set(caps_facts.get("unused_numbers", ()))
    if unused & set(numbers):
        raise GenError("kvm_caps.json: a number is both used and unused")
    arch_map: dict[str, str] = caps_facts["arch"]
    for name, arch in arch_map.items():
        if name not in by_name:
            raise GenError(f"kvm_caps.json: arch map names unknown cap {name}")
        if arch not in ARCHES:
            raise GenError(f"kvm_caps.json: {name} has unknown arch {arch}")
    arch_of = dict(arch_map)
    arch_rows: list[tuple[str, str, str]] = []
    arch_digest = None
    if arch_facts is not None:
        arch_rows, arch_digest = _arch_rows(arch_facts)
        for cap, arch, _source in arch_rows:
            if cap not in by_name:
                raise GenError(f"{ARCH_TSV}: unknown cap {cap}")
            if arch not in ARCHES or arch == "generic":
                raise GenError(f"{ARCH_TSV}: {cap} has arch {arch}, not one architecture")
            if cap in arch_of:
                raise GenError(f"{ARCH_TSV}: {cap} is placed already ({arch_of[cap]})")
            arch_of[cap] = arch
    caps = {num: (name, arch_of.get(name, "generic")) for name, num in by_name.items()}
    caps = dict(sorted(caps.items()))

    # -- cap value kinds and the groups they decode with
    groups_raw: dict[str, dict[str, Any]] = consts_facts["groups"]
    cap_value_kind: dict[str, tuple[str, str | None]] = {}
    cap_enable_arg_group: dict[str, str] = {}
    wanted: dict[str, str] = {}  # group -> "bits" | "values"
    for cap, spec in consts_facts["cap_returns"].items():
        if by_name.get(cap) != spec["cap"]:
            raise GenError(f"cap_returns: {cap} is {spec['cap']}, caps say {by_name.get(cap)}")
        kind = RETURN_KINDS.get(spec["kind"])
        if kind is None:
            raise GenError(f"cap_returns: {cap} has unknown kind {spec['kind']}")
        group = spec.get("bits") or spec.get("values")
        if (kind in ("bitmask", "values")) != (group is not None):
            raise GenError(f"cap_returns: {cap} kind {kind} with group {group}")
        cap_value_kind[cap] = (kind, group)
        if group is not None:
            wanted_kind = "values" if kind == "values" else "bits"
            if wanted.setdefault(group, wanted_kind) != wanted_kind:
                raise GenError(f"group {group} is used both as bits and as values")
        if spec.get("enable_arg_bits"):
            cap_enable_arg_group[cap] = spec["enable_arg_bits"]
            if wanted.setdefault(spec["enable_arg_bits"], "bits") != "bits":
                raise GenError(f"group {spec['enable_arg_bits']} used both ways")
    cap_value_kind = dict(sorted(cap_value_kind.items(), key=lambda kv: by_name[kv[0]]))
    cap_enable_arg_group = dict(sorted(cap_enable_arg_group.items()))

    groups: dict[str, Group] = {}
    for name in sorted(wanted):
        if name not in groups_raw:
            raise GenError(f"cap_returns names group {name}, kvm_x86_consts.json lacks it")
        groups[name] = _group(name, groups_raw[name], wanted[name])

    # -- cross-checks inside the facts
    flat: dict[str, int] = consts_facts["constants_flat"]
    for group in groups.values():
        for const, pos in group.members:
            want = pos if group.kind == "values" else 1 << pos
            if flat.get(const) != want:
                raise GenError(f"{const}: group says {want}, constants_flat {flat.get(const)}")
        for const, value in group.masks:
            if flat.get(const) != value:
                raise GenError(f"{const}: group says {value}, constants_flat {flat.get(const)}")
    for cap, listed in consts_facts["cap_to_bits"].items():
        kind, group_name = cap_value_kind.get(cap, (None, None))
        if group_name is None:
            raise GenError(f"cap_to_bits lists {cap}, which has no decode group")
        group = groups[group_name]
        member_names = {const for const, _ in group.members}
        mask_names = {const for const, _ in group.masks}
        if not set(listed) <= member_names | mask_names:
            raise GenError(f"cap_to_bits {cap}: {sorted(set(listed) - member_names)} unknown")
        if member_names - set(listed):
            raise GenError(f"cap_to_bits {cap} omits {sorted(member_names - set(listed))}")
    observed = consts_facts.get("host_observed_6.18.44", {}).get("check_extension_on_dev_kvm", {})
    for cap, seen in observed.items():
        if "decoded" not in seen:
            continue
        kind, group_name = cap_value_kind[cap]
        assert group_name is not None
        got = _decode(groups[group_name], seen["value"])
        if got != seen["decoded"]:
            raise GenError(f"host sample {cap}={seen['value']}: decode {got} != {seen['decoded']}")

    # -- provenance
    sources: list[tuple[str, str, str]] = []
    texts = [caps_facts["source"], consts_facts["source"], *(r[2] for r in arch_rows)]
    for text in texts:
        for ref in SOURCE_REF.findall(text):
            if ref not in sources:
                sources.append(ref)
    if not sources:
        raise GenError("no '<repo> <path> @ <commit>' reference in the facts' source fields")
    if caps_facts["kernel_version"] != "v7.2":
        print(f"note: facts target {caps_facts['kernel_version']}", file=sys.stderr)

    return Tables(
        abi_version=caps_facts["kernel_version"],
        caps=caps,
        groups=groups,
        cap_value_kind=cap_value_kind,
        cap_enable_arg_group=cap_enable_arg_group,
        constants=dict(sorted(flat.items())),
        sources=tuple(sources),
        source_texts=((CAPS_JSON, caps_facts["source"]), (CONSTS_JSON, consts_facts["source"])),
        digests=((CAPS_JSON, caps_sha), (CONSTS_JSON, consts_sha)),
        arch_rows=tuple(arch_rows),
        arch_digest=arch_digest,
    )


def cross_check_kvm_h(tables: Tables, kvm_h: Path) -> str:
    """Compare every KVM_CAP_* in an upstream kvm.h with the tables; raise on any mismatch."""
    try:
        text = kvm_h.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise GenError(f"cannot read {kvm_h}: {exc.strerror}") from exc
    header: dict[str, int] = {}
    for name, num in KVM_H_CAP.findall(text):
        if header.setdefault(name, int(num)) != int(num):
            raise GenError(f"{kvm_h}: {name} defined twice with different numbers")
    if not header:
        raise GenError(f"{kvm_h}: no '#define KVM_CAP_* N' lines")
    ours = {name: num for num, (name, _arch) in tables.caps.items()}
    problems: list[str] = []
    for name, num in sorted(header.items(), key=lambda kv: kv[1]):
        if name not in ours:
            problems.append(f"{name} {num} is in kvm.h but not in the facts")
        elif ours[name] != num:
            problems.append(f"{name} is {num} in kvm.h but {ours[name]} in the facts")
    by_num: dict[int, list[str]] = {}
    for name, num in header.items():
        by_num.setdefault(num, []).append(name)
    for num, names in sorted(by_num.items()):
        if len(names) > 1:
            problems.append(f"kvm.h gives {num} to {', '.join(sorted(names))}")
    top = max(header.values())
    for name, num in sorted(ours.items(), key=lambda kv: kv[1]):
        if num <= top and name not in header:
            problems.append(f"{name} {num} is missing from kvm.h (which goes up to {top})")
    if problems:
        raise GenError(f"{kvm_h} disagrees with the facts:\n  " + "\n  ".join(problems))
    newer = len(ours) - sum(1 for num in ours.values() if num <= top)
    return f"{kvm_h}: {len(header)} KVM_CAP_* names agree" + (
        f" ({newer} newer caps beyond its highest, {top})" if newer else ""
    )


# ---------------------------------------------------------------------------------------------
# rendering


def _q(text: str) -> str:
    return json.dumps(text)  # double-quoted, escapes valid in Python too


def _wrap(text: str, prefix: str) -> list[str]:
    width = WRAP - len(prefix)
    return [prefix + line for line in textwrap.wrap(" ".join(text.split()), width)]


def _comment(text: str, indent: str = "") -> list[str]:
    return _wrap(text, indent + "# ")


def render(tables: Tables) -> str:
    out: list[str] = []
    add = out.append
    add(f"# Generated by {GENERATOR} -- do not edit by hand.")
    add(f"# Regenerate: python {GENERATOR} [--abi-dir DIR] [--kvm-h include/uapi/linux/kvm.h]")
    add(f"# Target ABI: upstream Linux {tables.abi_version} (KVM_CAP_* names and numbers, the")
    add("# bit/value groups cap values decode with, what KVM_CHECK_EXTENSION returns).")
    add("#")
    add("# Upstream sources, as named in the kvm-abi facts and cap_arch.tsv (repository, file,")
    add("# commit):")
    for repo, path, commit in tables.sources:
        add(f"#   {repo} {path} @ {commit}")
    add("#")
    add("# Inputs (the verified kvm-abi facts) and their 'source' fields:")
    for (name, digest), (_same, text) in zip(tables.digests, tables.source_texts, strict=True):
        add(f"#   {name} sha256 {digest}")
        out.extend(_wrap(text, "#     "))
    if tables.arch_digest is not None:
        add("#")
        add(f"# The architecture of the caps the name map leaves generic ({ARCH_TSV}):")
        add(f"#   {ARCH_TSV} sha256 {tables.arch_digest}")
        for cap, arch, source in tables.arch_rows:
            out.extend(
                textwrap.wrap(
                    f"{cap} {arch}: {source}",
                    WRAP,
                    initial_indent="#     ",
                    subsequent_indent="#       ",
                    break_on_hyphens=False,
                )
            )
    add('"""KVM capability tables (generated; plain data, no logic)."""')
    add("")
    # Final for type checkers only: importing typing costs a --json command a fifth of its
    # start-up (the annotations stay strings, never evaluated)
    add("from __future__ import annotations")
    add("")
    add("TYPE_CHECKING = False")
    add("if TYPE_CHECKING:")
    add("    from typing import Final")
    add("")
    add(f"ABI_VERSION = {_q(tables.abi_version)}")
    add("")
    add("# (repository, path, commit) of the upstream files the facts were taken from")
    add("SOURCES: tuple[tuple[str, str, str], ...] = (")
    for ref in tables.sources:
        add("    (")
        for part in ref:
            add(f"        {_q(part)},")
        add("    ),")
    add(")")
    add("")
    add("# cap number -> (name, arch); arch from the facts' name-based map, then from")
    add(f"# {ARCH_TSV} (caps upstream defines for one architecture); unlisted = generic")
    add("CAPS: dict[int, tuple[str, str]] = {")
    for num, (name, arch) in tables.caps.items():
        add(f"    {num}: ({_q(name)}, {_q(arch)}),")
    add("}")
    add("")
    add("# group -> kind: 'bits' (a member n is the flag 1 << n) or 'values' (a member n is the")
    add("# value n; caps returning such a group report a bitmap where bit n means value n)")
    add("GROUP_KIND: dict[str, str] = {")
    for group in tables.groups.values():
        add(f"    {_q(group.name)}: {_q(group.kind)},")
    add("}")
    add("")
    add("# group -> ((constant, n), ...) in bit order; n is the bit position in a cap's value for")
    add("# both kinds. Multi-bit masks are not members (see GROUP_MASKS).")
    add("GROUPS: dict[str, tuple[tuple[str, int], ...]] = {")
    for group in tables.groups.values():
        if group.header:
            out.extend(_comment(f"{group.header}", "    "))
        if "" in group.status:
            out.extend(_comment(f"status: {group.status['']}", "    "))
        _tuple_of_pairs(out, _q(group.name), group.members, group.status, str)
    add("}")
    add("")
    add("# group -> ((constant, value), ...): multi-bit masks, never decoded as flags")
    add("GROUP_MASKS: dict[str, tuple[tuple[str, int], ...]] = {")
    for group in tables.groups.values():
        if group.masks:
            _tuple_of_pairs(out, _q(group.name), group.masks, {}, lambda v: f"0x{v:X}")
    add("}")
    add("")
    add("# group -> prefix to drop for a short flag name (common to all members)")
    add("GROUP_PREFIX: dict[str, str] = {")
    for group in tables.groups.values():
        add(f"    {_q(group.name)}: {_q(_prefix(group))},")
    add("}")
    add("")
    add("# cap name -> (kind, group) for caps whose KVM_CHECK_EXTENSION value is more than yes/no")
    add("# (or whose yes/no nature is worth pinning). kind: bitmask | values | boolean | scalar")
    add("CAP_VALUE_KIND: dict[str, tuple[str, str | None]] = {")
    for cap, (kind, group_name) in tables.cap_value_kind.items():
        group_text = "None" if group_name is None else _q(group_name)
        add(f"    {_q(cap)}: ({_q(kind)}, {group_text}),")
    add("}")
    add("")
    add("# cap name -> group of the flags KVM_ENABLE_CAP takes in args[0], where that group is not")
    add("# what KVM_CHECK_EXTENSION returns")
    add("CAP_ENABLE_ARG_GROUP: dict[str, str] = {")
    for cap, group_name in tables.cap_enable_arg_group.items():
        add(f"    {_q(cap)}: {_q(group_name)},")
    add("}")
    add("")
    add("")
    add("# Named constants for code that needs a particular fact: every KVM_CAP_*, then every")
    add("# other uapi constant of the facts (flag and value groups, attribute numbers, ...).")
    for num, (name, _arch) in tables.caps.items():
        add(f"{name}: Final = {num}")
    for const, value in tables.constants.items():
        add(f"{const}: Final = 0x{value:X}" if value >= 16 else f"{const}: Final = {value}")
    out = _collapse_empty(out)
    text = "\n".join(out) + "\n"
    long_lines = [line for line in out if len(line) > 100]
    if long_lines:
        raise GenError(f"generated line longer than 100 columns: {long_lines[0]!r}")
    return text


def _collapse_empty(lines: list[str]) -> list[str]:
    """``X = {`` directly followed by ``}`` becomes ``X = {}`` (and likewise for tuples)."""
    out: list[str] = []
    for line in lines:
        if out and (out[-1][-3:], line) in (("= {", "}"), ("= (", ")")):
            out[-1] += line
        else:
            out.append(line)
    return out


def _tuple_of_pairs(
    out: list[str],
    key: str,
    pairs: tuple[tuple[str, int], ...],
    notes: dict[str, str],
    number: Callable[[int], str],
) -> None:
    """Emit ``key: ((name, n), ...),`` as a dict item, the way ``ruff format`` lays it out."""
    items = [f"({_q(const)}, {number(value)})" for const, value in pairs]
    one_line = f"    {key}: ({items[0]},),"
    if len(items) == 1 and len(one_line) <= 100 and pairs[0][0] not in notes:
        out.append(one_line)
        return
    out.append(f"    {key}: (")
    for (const, _value), item in zip(pairs, items, strict=True):
        if const in notes:
            out.extend(_comment(f"status: {notes[const]}", "        "))
        out.append(f"        {item},")
    out.append("    ),")


def _prefix(group: Group) -> str:
    names = [const for const, _ in group.members]
    own = group.name + "_"
    if all(name.startswith(own) for name in names):
        return own
    parts = [name.split("_") for name in names]
    common: list[str] = []
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    # never swallow a whole name
    while common and any(len(p) <= len(common) for p in parts):
        common.pop()
    return "_".join(common) + "_" if common else ""


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--abi-dir",
        type=Path,
        default=DEFAULT_ABI_DIR,
        help="directory holding kvm_caps.json and kvm_x86_consts.json "
        "(default: scripts/data/kvm-abi, the pinned copy)",
    )
    parser.add_argument(
        "--kvm-h", type=Path, help="upstream include/uapi/linux/kvm.h to cross-check against"
    )
    parser.add_argument(
        "--arch-facts",
        type=Path,
        help="the architectures of caps the facts' name map leaves generic (default: "
        "scripts/data/cap_arch.tsv with the default --abi-dir, none with another)",
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the output file is not up to date"
    )
    args = parser.parse_args(argv)
    try:
        arch_facts = args.arch_facts
        if arch_facts is None and args.abi_dir.resolve() == DEFAULT_ABI_DIR.resolve():
            arch_facts = DEFAULT_ARCH_FACTS
        tables = build(args.abi_dir, arch_facts)
        if args.kvm_h is not None:
            print(cross_check_kvm_h(tables, args.kvm_h), file=sys.stderr)
        text = render(tables)
    except GenError as exc:
        print(f"gen_cap_tables: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            print(f"gen_cap_tables: {args.output} is stale; run {GENERATOR}", file=sys.stderr)
            return 1
        print(f"gen_cap_tables: {args.output} is up to date", file=sys.stderr)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(
        f"gen_cap_tables: wrote {args.output} ({len(tables.caps)} caps, "
        f"{len(tables.groups)} groups)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
