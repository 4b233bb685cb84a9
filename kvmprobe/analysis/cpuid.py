"""CPUID decoding: the feature table, name lookup, and register views over raw entries.

Pure: entries in, named bits and fields out. The quirk engine (analysis.quirks) builds on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from kvmprobe.frozen import frozen
from kvmprobe.snapshot import CpuidEntry
from kvmprobe.vocab import FieldEncoding, Vendor

REGISTERS = ("eax", "ebx", "ecx", "edx")
SIGNIFICANT_INDEX = 1  # KVM_CPUID_FLAG_SIGNIFCANT_INDEX

# (leaf, subleaf, register, bit)
Loc = tuple[int, int, str, int]


def fmt_loc(leaf: int, subleaf: int, register: str, bit: int | str) -> str:
    """The location notation used everywhere: 0x7.0.ecx[22]."""
    return f"{leaf:#x}.{subleaf}.{register}[{bit}]"


@frozen
class FeatureDef:
    """One CPUID feature bit: where it is (leaf, subleaf, register, bit) and its names."""

    leaf: int
    subleaf: int
    register: str
    bit: int
    name: str
    kernel_name: str | None
    qemu_name: str | None
    area: str
    description: str
    known: bool = True

    @property
    def loc(self) -> Loc:
        return (self.leaf, self.subleaf, self.register, self.bit)

    @property
    def where(self) -> str:
        return fmt_loc(self.leaf, self.subleaf, self.register, self.bit)


@frozen
class FieldDef:
    """One multi-bit CPUID field: where it is (leaf, subleaf, register, bits lo..hi)."""

    leaf: int
    subleaf: int
    register: str
    lo: int
    hi: int
    name: str
    description: str
    #: how the value reads (the generated table's FIELD_ENCODINGS)
    encoding: FieldEncoding = FieldEncoding.NUMBER

    @property
    def where(self) -> str:
        bits = f"{self.hi}:{self.lo}" if self.hi != self.lo else str(self.lo)
        return fmt_loc(self.leaf, self.subleaf, self.register, bits)

    def extract(self, value: int) -> int:
        return (value >> self.lo) & ((1 << (self.hi - self.lo + 1)) - 1)

    def text(self, value: int | None) -> str:
        """The value as a report shows it: "?" when unknown; a minus-one field as the number
        it stands for (value + 1); bitmaps, masks and leaf numbers in hex; others in decimal."""
        if value is None:
            return "?"
        if self.encoding is FieldEncoding.HEX:
            return f"{value:#x}"
        if self.encoding is FieldEncoding.MINUS_ONE:
            return str(value + 1)
        return str(value)


@cache
def features() -> tuple[FeatureDef, ...]:
    from kvmprobe.tables import cpuid_data

    return tuple(FeatureDef(*row) for row in cpuid_data.FEATURES)


@cache
def fields() -> tuple[FieldDef, ...]:
    from kvmprobe.tables import cpuid_data

    enc = cpuid_data.FIELD_ENCODINGS
    return tuple(
        FieldDef(*row, encoding=FieldEncoding(enc.get(row[5], FieldEncoding.NUMBER)))
        for row in cpuid_data.FIELDS
    )


@cache
def indexed_leaves() -> frozenset[int]:
    from kvmprobe.tables import cpuid_data

    return frozenset(cpuid_data.INDEXED_LEAVES)


@cache
def by_loc() -> dict[Loc, FeatureDef]:
    return {f.loc: f for f in features()}


@cache
def _exact_names() -> dict[str, FeatureDef]:
    """Kernel macro names (X86_FEATURE_*, KVM_FEATURE_*, KVM_HINTS_*) and Linux names, as the
    generated table spells them."""
    out: dict[str, FeatureDef] = {}
    for f in features():
        for n in (f.kernel_name, f.name):
            if n:
                out.setdefault(n, f)
    return out


def feature_loc(name: str) -> Loc:
    """The location of a feature the generated table names, by its kernel macro name
    (``X86_FEATURE_X2APIC``, ``KVM_FEATURE_PV_UNHALT``) or its Linux name, spelled exactly.

    Code that needs a fixed location calls this at import time instead of retyping the
    numbers, so a table that loses the row fails loudly at import, not silently later."""
    f = _exact_names().get(name)
    if f is None:
        raise LookupError(f"CPUID feature {name!r} is not in kvmprobe.tables.cpuid_data")
    return f.loc


def xcr0_component(name: str) -> int:
    """The XSAVE state-component number of an XCR0 row of the generated table (leaf 0xD
    subleaf 0: EAX holds components 0-31, EDX components 32-63), e.g. ``xcr0_tiledata``."""
    f = _exact_names().get(name)
    if f is None or (f.leaf, f.subleaf) != (0xD, 0) or f.register not in ("eax", "edx"):
        raise LookupError(f"{name!r} is not an XCR0 component row of kvmprobe.tables.cpuid_data")
    return f.bit + (32 if f.register == "edx" else 0)


@cache
def _names() -> dict[str, FeatureDef]:
    """Every accepted spelling (Linux, QEMU, kernel macro, location), normalised."""
    out: dict[str, FeatureDef] = {}
    for f in features():
        for n in (f.qemu_name, f.kernel_name, f.where, f.name):
            if n:
                out[_norm(n)] = f
    return out


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "")


@cache
def _linux_names() -> dict[str, FeatureDef]:
    """The table's own names, each already in normal form and found by ``_names`` as itself
    (tests/test_speed_paths.py holds the table to that): code looking up a fixed name needs
    no index of every spelling, which costs milliseconds to build."""
    return {f.name: f for f in features() if f.name}


def lookup(name: str) -> FeatureDef | None:
    """A feature by Linux name (tsc_deadline_timer), QEMU name (tsc-deadline), kernel name
    (X86_FEATURE_TSC_DEADLINE_TIMER, KVM_FEATURE_PV_UNHALT) or location (0x1.0.ecx[24])."""
    hit = _linux_names().get(name)
    if hit is not None:
        return hit
    n = _norm(name)
    hit = _names().get(n)
    if hit is None and n.startswith("x86_feature_"):
        hit = _names().get(n.removeprefix("x86_feature_"))
    if hit is None:
        hit = _by_location_text(n)
    return hit


def _by_location_text(n: str) -> FeatureDef | None:
    # accept 1.0.ecx[24] / 0x1.0.ecx[24] / 0x40000001.0.eax[7]
    try:
        head, rest = n.split("[", 1)
        bit = int(rest.rstrip("]"), 0)
        leaf_s, sub_s, reg = head.split(".")
        leaf = int(leaf_s, 16) if not leaf_s.startswith("0x") else int(leaf_s, 0)
        return by_loc().get((leaf, int(sub_s, 0), reg, bit))
    except ValueError:
        return None


def suggestions(name: str, limit: int = 5) -> list[str]:
    """Names close to ``name``: spelled alike, or containing it. Only names (Linux, QEMU,
    kernel) are candidates, never locations: ``0x1.0.ecx`` is not "close" to ``ssse3``
    because that feature sits at ``0x1.0.ecx[9]``."""
    import difflib

    n = _norm(name)
    names = _names()
    pool = sorted(k for k, f in names.items() if k != _norm(f.where))
    close = difflib.get_close_matches(n, pool, n=limit * 3, cutoff=0.75)
    close += [p for p in pool if n and n in p and p not in close]
    seen: list[str] = []
    for c in close:
        display = names[c].name
        if display not in seen:
            seen.append(display)
    return seen[:limit]


def matches(f: FeatureDef, needle: str) -> bool:
    """Filter predicate: case-insensitive substring of any of the feature's names."""
    n = _norm(needle)
    return any(n in _norm(x) for x in (f.name, f.qemu_name or "", f.kernel_name or ""))


class CpuidView:
    """Lookup over a list of kvm_cpuid_entry2-style entries.

    For leaves whose index is not significant, any subleaf finds the single entry."""

    def __init__(self, entries: Iterable[CpuidEntry] | None) -> None:
        self.entries: tuple[CpuidEntry, ...] = tuple(entries or ())
        self._map: dict[tuple[int, int], CpuidEntry] = {}
        self._plain: dict[int, CpuidEntry] = {}
        for e in self.entries:
            self._map.setdefault((e.function, e.index), e)
            if not e.flags & SIGNIFICANT_INDEX:
                self._plain.setdefault(e.function, e)

    def __bool__(self) -> bool:
        return bool(self.entries)

    # The lookups below are the analysis' innermost loop (every feature of every host of a
    # fleet), so each does its work inline rather than through the one above it.
    def entry(self, leaf: int, subleaf: int = 0) -> CpuidEntry | None:
        e = self._map.get((leaf, subleaf))
        if e is None:
            e = self._plain.get(leaf)
        return e

    def reg(self, leaf: int, subleaf: int, register: str) -> int | None:
        e = self._map.get((leaf, subleaf))
        if e is None:
            e = self._plain.get(leaf)
            if e is None:
                return None
        return int(getattr(e, register))

    def bit(self, leaf: int, subleaf: int, register: str, bit: int) -> bool:
        e = self._map.get((leaf, subleaf))
        if e is None:
            e = self._plain.get(leaf)
            if e is None:
                return False
        return bool(getattr(e, register) >> bit & 1)

    def values(self, keys: Iterable[tuple[int, int, str]]) -> list[int | None]:
        """``reg(leaf, subleaf, register)`` for many registers at once."""
        m, plain = self._map, self._plain
        out: list[int | None] = []
        for leaf, subleaf, register in keys:
            e = m.get((leaf, subleaf))
            if e is None:
                e = plain.get(leaf)
            out.append(None if e is None else int(getattr(e, register)))
        return out

    def has_loc(self, loc: Loc) -> bool:
        leaf, subleaf, register, bit = loc
        e = self._map.get((leaf, subleaf))
        if e is None:
            e = self._plain.get(leaf)
            if e is None:
                return False
        return bool(getattr(e, register) >> bit & 1)


def unnamed_bits(view: CpuidView) -> list[FeatureDef]:
    """Set bits in registers that carry named features but that no table row names or covers
    with a field: reported as unknown features, never dropped."""
    named_regs: dict[tuple[int, int, str], int] = {}
    for f in features():
        key = (f.leaf, f.subleaf, f.register)
        named_regs[key] = named_regs.get(key, 0) | (1 << f.bit)
    for fd in fields():
        key = (fd.leaf, fd.subleaf, fd.register)
        if key in named_regs:
            named_regs[key] |= ((1 << (fd.hi - fd.lo + 1)) - 1) << fd.lo
    out: list[FeatureDef] = []
    for (leaf, sub, reg), covered in sorted(named_regs.items()):
        value = view.reg(leaf, sub, reg)
        if not value:
            continue
        rest = value & ~covered
        for bit in range(32):
            if rest >> bit & 1:
                where = fmt_loc(leaf, sub, reg, bit)
                out.append(
                    FeatureDef(leaf, sub, reg, bit, where, None, None, "other",
                               "bit not named by kvmprobe's tables", known=False)
                )  # fmt: skip
    return out


def vendor_string(view: CpuidView, leaf: int = 0) -> str | None:
    """The 12-byte vendor or hypervisor signature of leaf 0 / 0x40000000, printable part."""
    e = view.entry(leaf, 0)
    if e is None:
        return None
    regs = (e.ebx, e.edx, e.ecx) if leaf == 0 else (e.ebx, e.ecx, e.edx)
    raw = b"".join(r.to_bytes(4, "little") for r in regs)
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def xcr0_mask(view: CpuidView) -> int | None:
    """The XCR0 bits leaf 0xD.0 reports (EDX:EAX), or None when the leaf is absent."""
    lo = view.reg(0xD, 0, "eax")
    return None if lo is None else lo | (view.reg(0xD, 0, "edx") or 0) << 32


def brand_string(view: CpuidView) -> str | None:
    parts = []
    for leaf in (0x80000002, 0x80000003, 0x80000004):
        e = view.entry(leaf, 0)
        if e is None:
            return None
        parts += [e.eax, e.ebx, e.ecx, e.edx]
    raw = b"".join(r.to_bytes(4, "little") for r in parts)
    return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip() or None


def vendor_kind(view: CpuidView) -> Vendor:
    """Intel, AMD (Hygon counts as AMD) or other, from leaf 0's vendor string."""
    v = vendor_string(view) or ""
    if v == "GenuineIntel":
        return Vendor.INTEL
    if v in ("AuthenticAMD", "HygonGenuine"):
        return Vendor.AMD
    return Vendor.OTHER


def family_model_stepping(view: CpuidView) -> tuple[int, int, int] | None:
    eax = view.reg(1, 0, "eax")
    if eax is None:
        return None
    base_family = (eax >> 8) & 0xF
    family, model = base_family, (eax >> 4) & 0xF
    if base_family == 0xF:  # the extended family adds on only for base family 15
        family += (eax >> 20) & 0xFF
    if base_family in (0x6, 0xF):  # the extended model applies for families 6 and 15
        model |= ((eax >> 16) & 0xF) << 4
    return family, model, eax & 0xF


def cpuinfo_flag(loc: Loc) -> str | None:
    """The /proc/cpuinfo flag Linux shows for this bit, or None when Linux hides it."""
    from kvmprobe.tables import cpuid_data

    return cpuid_data.CPUINFO_FLAGS.get(loc)
