"""What a user asks of ``kvmprobe cpuid``: which features, values, leaf notes and raw entries a
filter selects, the spellings people use for a feature, and whether the set-up asked for can
be had.

Pure: the analysis in, selections out. A filter is one of

* a name kvmprobe knows exactly (Linux ``x2apic``, QEMU ``tsc-deadline``, libvirt
  ``pclmuldq``, kernel ``X86_FEATURE_AVX``, a well-known spelling such as ``sse3``) -- that
  feature is always selected, whatever its status, and so is every other feature whose names
  contain the text;
* a location: ``0x1.0.ecx[24]`` (one bit), ``0x80000008.0.eax[23:16]`` (bits),
  ``0x1.0.ecx`` (a register), ``0x7.1`` (a subleaf) or ``0x40000001`` (a whole leaf);
* any other text: every feature and value whose names contain it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

from kvmprobe.analysis import cpuid as cp
from kvmprobe.frozen import frozen
from kvmprobe.vocab import DisableExit, FeatureStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.effective import (
        CpuidAnalysis,
        FeatureResult,
        FieldResult,
        LeafNote,
        Tally,
    )
    from kvmprobe.analysis.msr import BitRef
    from kvmprobe.snapshot import CpuidEntry, Snapshot

#: Spellings people type that are neither kvmprobe's (Linux's) name nor QEMU's nor the
#: kernel's, each -> kvmprobe's name. Kept small on purpose; the x86-64 psABI's own names
#: (SSE3, LZCNT, CMPXCHG16B, LAHF-SAHF) are added from the generated psABI table, which cites
#: the psABI. Sources for these: Intel SDM vol. 2A, CPUID "Feature Information" (ECX[0] is
#: "SSE3", EDX[20] of 0x80000001 is "XD": Execute Disable); AMD APM vol. 3, appendix E
#: (CPUID Fn8000_0001_ECX[5] "ABM: advanced bit manipulation, LZCNT"); Linux
#: arch/x86/include/asm/cpufeatures.h (X86_FEATURE_XMM3 is shown as "pni", X86_FEATURE_ABM as
#: "abm", X86_FEATURE_SHA_NI as "sha_ni"); Intel SDM vol. 3C chapter 23 (VMX, "VT-x") and AMD
#: APM vol. 2 chapter 15 (SVM, "AMD-V").
ALIASES: Mapping[str, str] = {
    "sse3": "pni",
    "xd": "nx",
    "lzcnt": "abm",
    "sha": "sha_ni",
    "vt_x": "vmx",
    "amd_v": "svm",
    # QEMU's legacy property aliases (QEMU target/i386/cpu.c x86_cpu_initfn(): "i64" for
    # "lm", "ffxsr" for "fxsr-opt"); QEMU's other aliases differ from its names only by "_"
    # for "-" or "." (sse4_1), which every lookup already ignores
    "i64": "lm",
    "ffxsr": "fxsr_opt",
}

_HEX_LEAF = re.compile(r"0x[0-9a-f]+")
_LOCATION = re.compile(
    r"(?P<leaf>(?:0x)?[0-9a-f]+)"
    r"(?:\.(?P<sub>(?:0x)?[0-9a-f]+)"
    r"(?:\.(?P<reg>e[abcd]x)"
    r"(?:\[(?P<hi>\d+)(?::(?P<lo>\d+))?\])?)?)?"
)


def _norm(text: str) -> str:
    return text.strip().lower().replace("-", "_").replace(".", "_").replace(" ", "")


@cache
def aliases() -> dict[str, str]:
    """Every accepted extra spelling (normalised) -> kvmprobe's feature name: the psABI's
    names for its level rows, then ALIASES. Names the CPUID table itself knows are never
    shadowed."""
    from kvmprobe.analysis.levels import requirements
    from kvmprobe.vocab import RequirementKind

    out: dict[str, str] = {}
    for req in requirements():
        if req.psabi_name and req.kind is RequirementKind.CPUID:
            out[_norm(req.psabi_name)] = req.feature
    for spelling, name in ALIASES.items():
        out[_norm(spelling)] = name
    out.update(libvirt_names())
    return {k: v for k, v in out.items() if cp.lookup(k) is None and cp.lookup(v) is not None}


@cache
def libvirt_names() -> dict[str, str]:
    """libvirt's CPUID feature names (its cpu_map, generated into tables.libvirt_data), each
    normalised -> kvmprobe's name of the same bit, where libvirt spells it differently from
    Linux and QEMU (``pclmuldq`` -> ``pclmulqdq``, ``cmt`` -> ``cqm``)."""
    from kvmprobe.tables import libvirt_data as lv

    table = cp.by_loc()
    out: dict[str, str] = {}
    for loc, name in lv.FEATURES.items():
        f = table.get(loc)
        if f is not None and cp.lookup(name) is None:
            out[_norm(name)] = f.name
    return out


def resolve(name: str) -> tuple[cp.FeatureDef | None, str | None]:
    """The feature ``name`` names exactly (any accepted spelling or a one-bit location), and
    the kvmprobe name when ``name`` was a spelling of another's (``sse3`` -> ``pni``)."""
    hit = cp.lookup(name)
    if hit is not None:
        return hit, None
    target = aliases().get(_norm(name))
    if target is None:
        return None, None
    return cp.lookup(target), target


#: how alike a name must be to what was typed to be suggested (difflib's ratio: 0.75 is one
#: letter wrong in a four-letter name)
CLOSE = 0.75


def suggestions(name: str, limit: int = 5) -> list[str]:
    """Names close to a name nothing matches, closest first: spelled alike (``x2apci``),
    containing it (``avx5``: ``avx512f``), or a well-known spelling it starts (``lzcn``:
    ``abm (lzcnt)``). Candidates are the names of features (Linux, QEMU, kernel, the extra
    spellings), of values and of feature-MSR bits; never locations, and nothing for a text
    shaped like a location (what is at a location is said by its own message)."""
    from difflib import SequenceMatcher

    t = name.strip().lower()
    if _LOCATION.fullmatch(t) and (t.startswith("0x") or "." in t):
        return []
    n = _bare(_norm(name))
    if not n:
        return []
    from kvmprobe.analysis.msr import _bit_names

    score: dict[str, float] = {}

    def offer(display: str, key: str, floor: float = 0.0) -> None:
        m = SequenceMatcher(None, n, key)
        r = m.ratio() if m.real_quick_ratio() >= CLOSE and m.quick_ratio() >= CLOSE else 0.0
        if len(n) < 3:
            floor = 0.0  # one or two letters are in too many names to say which was meant
        elif n in key:
            floor = max(floor, CLOSE)
        r = max(r, floor)
        if r >= CLOSE and r > score.get(display, 0.0):
            score[display] = r

    for k, v in aliases().items():
        offer(f"{v} ({k})", k, 0.9 if k.startswith(n) or n.startswith(k) else 0.0)
    for f in cp.features():
        for spelling in (f.name, f.qemu_name, f.kernel_name):
            if spelling:
                offer(f.name, _bare(_norm(spelling)))
    for fd in cp.fields():
        offer(fd.name, _norm(fd.name))
    for key, refs in _bit_names().items():
        offer(refs[0].bit.qemu_name or key.replace("_", "-"), _norm(key))
    ranked = sorted(score, key=lambda d: -score[d])  # stable: table order among equals
    return ranked[:limit]


def _bare(n: str) -> str:
    """A normalised name without the kernel's prefix (``x86_feature_avx`` -> ``avx``)."""
    for prefix in ("x86_feature_", "kvm_feature_"):
        if n.startswith(prefix) and len(n) > len(prefix):
            return n.removeprefix(prefix)
    return n


@frozen
class Location:
    """A leaf, optionally narrowed to a subleaf, a register and bits."""

    leaf: int
    subleaf: int | None = None
    register: str | None = None
    lo: int | None = None
    hi: int | None = None

    def covers(self, leaf: int, subleaf: int, register: str, lo: int, hi: int) -> bool:
        if leaf != self.leaf:
            return False
        if self.subleaf is not None and subleaf != self.subleaf:
            return False
        if self.register is not None and register != self.register:
            return False
        if self.lo is None or self.hi is None:
            return True
        return lo <= self.hi and self.lo <= hi


def parse_location(text: str) -> Location | None:
    """``0x1.0.ecx[24]``, ``0x1.0.eax[11:8]``, ``0x1.0.ecx``, ``0x7.1`` or ``0x40000001``
    (leaf and subleaf in hex, ``0x`` optional once a subleaf is given); None for anything
    else."""
    t = text.strip().lower()
    m = _LOCATION.fullmatch(t)
    if m is None:
        return None
    leaf_s, sub_s = m.group("leaf"), m.group("sub")
    if sub_s is None and not _HEX_LEAF.fullmatch(leaf_s):
        return None  # a bare word such as "abm" or "ace" is a name, not a leaf
    leaf = int(leaf_s, 16)
    sub = None if sub_s is None else int(sub_s, 16)
    hi_s, lo_s = m.group("hi"), m.group("lo")
    hi = None if hi_s is None else int(hi_s)
    lo = hi if lo_s is None else int(lo_s)
    if hi is not None and lo is not None and (hi > 31 or lo > hi):
        return None
    if leaf > 0xFFFFFFFF or (sub is not None and sub > 0xFFFFFFFF):
        return None
    return Location(leaf, sub, m.group("reg"), lo, hi)


def location_problem(text: str) -> str | None:
    """Why a text shaped like a location is not one (``parse_location`` gives None for it),
    in words; None when it is a location or not shaped like one."""
    m = _LOCATION.fullmatch(text.strip().lower())
    if m is None or m.group("hi") is None:
        return None
    hi = int(m.group("hi"))
    lo = hi if m.group("lo") is None else int(m.group("lo"))
    if hi > 31:
        return "a CPUID register has bits 0..31"
    if lo > hi:
        return f"a bit range is written high:low ([{lo}:{hi}])"
    return None


@frozen
class CpuidFilter:
    """A parsed FEATURE-FILTER: the text; the feature it names exactly (always shown,
    whatever its status); kvmprobe's name when the text was another spelling of it ("sse3"
    -> "pni"); the location it gives, when it is one."""

    text: str
    exact: cp.FeatureDef | None
    alias_of: str | None
    location: Location | None

    def matches_feature(self, f: cp.FeatureDef) -> bool:
        if self.exact is not None and f.loc == self.exact.loc:
            return True
        if self.location is not None:
            return self.location.covers(f.leaf, f.subleaf, f.register, f.bit, f.bit)
        return cp.matches(f, self.text)

    def matches_field(self, fd: cp.FieldDef) -> bool:
        if self.location is not None:
            return self.location.covers(fd.leaf, fd.subleaf, fd.register, fd.lo, fd.hi)
        return _norm(self.text) in _norm(fd.name)


def parse_filter(text: str) -> CpuidFilter:
    exact, alias_of = resolve(text)
    location = parse_location(text)
    if exact is not None and location is not None and location.lo is not None:
        location = None  # one bit that names a feature: the feature says it all
    return CpuidFilter(text=text, exact=exact, alias_of=alias_of, location=location)


@frozen
class Selection:
    """What a filter selects from an analysis, section by section (``leaves``: every leaf a
    selected feature or value lives in)."""

    features: tuple[FeatureResult, ...]
    fields: tuple[FieldResult, ...]
    notes: tuple[LeafNote, ...]
    entries: tuple[CpuidEntry, ...]
    leaves: frozenset[int]

    @property
    def empty(self) -> bool:
        return not (self.features or self.fields or self.entries)

    def counts(self) -> dict[FeatureStatus, int]:
        out = dict.fromkeys(FeatureStatus, 0)
        for r in self.features:
            out[r.verdict.status] += 1
        return out

    def tally(self) -> Tally:
        from kvmprobe.analysis.effective import tally

        return tally(self.features)


def select(a: CpuidAnalysis, flt: CpuidFilter | None) -> Selection:
    """Everything when ``flt`` is None; else what it selects in every section."""
    entries = tuple(a.snap.supported_cpuid or ())
    if flt is None:
        leaves = frozenset(r.feature.leaf for r in a.features)
        return Selection(a.features, a.fields, a.leaf_notes, entries, leaves)
    features = tuple(r for r in a.features if flt.matches_feature(r.feature))
    fields = tuple(fr for fr in a.fields if flt.matches_field(fr.field))
    places = {(r.feature.leaf, r.feature.subleaf) for r in features}
    places |= {(fr.field.leaf, fr.field.subleaf) for fr in fields}
    loc = flt.location
    if loc is not None:
        places.add((loc.leaf, loc.subleaf if loc.subleaf is not None else -1))
    leaves = frozenset(leaf for leaf, _ in places)
    notes = tuple(n for n in a.leaf_notes if leaves.intersection(n.quirk.leaves))
    return Selection(features, fields, notes, _entries(entries, places, loc), leaves)


def _entries(
    entries: Iterable[CpuidEntry], places: set[tuple[int, int]], loc: Location | None
) -> tuple[CpuidEntry, ...]:
    out = []
    for e in entries:
        if loc is not None and loc.lo is None:
            if e.function == loc.leaf and (loc.subleaf is None or e.index == loc.subleaf):
                out.append(e)
            continue
        significant = e.flags & cp.SIGNIFICANT_INDEX
        if (e.function, e.index) in places or (
            not significant and any(leaf == e.function for leaf, _ in places)
        ):
            out.append(e)
    return tuple(out)


def refused_exits(snap: Snapshot, exits: Iterable[DisableExit]) -> tuple[list[DisableExit], bool]:
    """The exits the set-up asks to disable that KVM_CAP_X86_DISABLE_EXITS does not allow
    here, and whether the capability's answer is known at all (False: every one is in
    doubt)."""
    from kvmprobe.tables.caps_data import KVM_CAP_X86_DISABLE_EXITS

    value = snap.cap(KVM_CAP_X86_DISABLE_EXITS, "system")
    asked = sorted(exits)
    if value is None:
        return asked, False
    return [x for x in asked if not value & x.flag], True


# ---- what ``cpuid --explain`` takes: the names and locations the filter takes, one at a time


def resolve_field(text: str) -> cp.FieldDef | None:
    """The multi-bit field (a value) ``text`` names: by its name (``phys_addr_bits``), by its
    location (``0x80000008.0.eax[7:0]``), or by bits that lie within it alone
    (``0x1.0.eax[8]`` is in ``family``)."""
    n = _norm(text)
    for fd in cp.fields():
        if _norm(fd.name) == n:
            return fd
    loc = parse_location(text)
    if loc is None or loc.lo is None or loc.hi is None or loc.subleaf is None:
        return None
    lo, hi = loc.lo, loc.hi
    inside = [
        fd
        for fd in cp.fields()
        if (fd.leaf, fd.subleaf, fd.register) == (loc.leaf, loc.subleaf, loc.register)
        and fd.lo <= lo
        and hi <= fd.hi
    ]
    return inside[0] if len(inside) == 1 else None


@frozen
class ExplainTarget:
    """What ``cpuid --explain TEXT`` tells the story of: a feature (``alias_of``: kvmprobe's
    name when TEXT was another spelling of it), feature-MSR bits, a field, or one bit no
    table names (``bit``: explained when KVM sets it, else refused once the analysis says
    so). ``refusal``: (message, hint) when TEXT is something the filter takes but that has
    no single story (a register, a leaf, part of several names)."""

    text: str
    feature: cp.FeatureDef | None = None
    alias_of: str | None = None
    msr_bits: tuple[BitRef, ...] = ()
    field: cp.FieldDef | None = None
    bit: cp.Loc | None = None
    refusal: tuple[str, str] | None = None


def explain_target(text: str) -> ExplainTarget | None:
    """What ``--explain TEXT`` explains, or why it cannot (``refusal``); None when TEXT names
    nothing kvmprobe knows (an unknown name, a location where no table names anything)."""
    feature, alias_of = resolve(text)
    if feature is not None:
        return ExplainTarget(text, feature=feature, alias_of=alias_of)
    from kvmprobe.analysis.msr import lookup_bit

    refs = lookup_bit(text)
    if refs:
        return ExplainTarget(text, msr_bits=refs)
    fd = resolve_field(text)
    if fd is not None:
        return ExplainTarget(text, field=fd)
    where = text.strip()
    loc = parse_location(text)
    if loc is not None:
        feats = [f.name for f in cp.features()
                 if loc.covers(f.leaf, f.subleaf, f.register, f.bit, f.bit)]  # fmt: skip
        flds = [fd.name for fd in cp.fields()
                if loc.covers(fd.leaf, fd.subleaf, fd.register, fd.lo, fd.hi)]  # fmt: skip
        if loc.lo is not None and loc.lo == loc.hi and loc.subleaf is not None and not flds:
            assert loc.register is not None  # a bit is always a register's
            return ExplainTarget(text, bit=(loc.leaf, loc.subleaf, loc.register, loc.lo))
        if not feats and not flds:
            return None
        if loc.lo is not None:
            span = f"bits {loc.hi}:{loc.lo} of a register"
        elif loc.register is not None:
            span = "a whole register"
        elif loc.subleaf is not None:
            span = "a whole subleaf"
        else:
            span = "a whole leaf"
        return ExplainTarget(text, refusal=(
            f"--explain tells the story of one feature or one value; {where!r} is {span}, "
            f"with {_names_count(feats, flds)}",
            f"'kvmprobe cpuid {where}' lists them; then 'kvmprobe cpuid --explain NAME' for one",
        ))  # fmt: skip
    flt = parse_filter(text)
    feats = [f.name for f in cp.features() if flt.matches_feature(f)]
    flds = [fd.name for fd in cp.fields() if flt.matches_field(fd)]
    if feats or flds:
        names = [*feats, *flds]
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        return ExplainTarget(text, refusal=(
            f"--explain takes one name, and {where!r} is only part of "
            f"{_names_count(feats, flds)} ({shown})",
            f"'kvmprobe cpuid {where}' lists them; then 'kvmprobe cpuid --explain NAME' for one",
        ))  # fmt: skip
    return None


def _names_count(feats: list[str], flds: list[str]) -> str:
    parts = []
    if feats:
        parts.append(f"{len(feats)} feature{'' if len(feats) == 1 else 's'}")
    if flds:
        parts.append(f"{len(flds)} value{'' if len(flds) == 1 else 's'}")
    return " and ".join(parts)
