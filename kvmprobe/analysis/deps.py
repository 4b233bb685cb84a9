"""Feature dependencies and the XSAVE-state consistency of one CPUID answer.

Three pure questions:

* ``violations(answers)``: features offered while a feature they require (directly or through a
  chain) is not. The dependencies are facts from Linux's ``cpuid_deps[]``
  (arch/x86/kernel/cpu/cpuid-deps.c), generated into kvmprobe.tables.deps_data.DEPENDS, plus
  (``state=True``, the default) the XSAVE-state ones: a feature needs the XCR0 components it
  uses (Linux's xsave_cpuid_features[] pairs; glibc counts AVX/AVX-512/AMX usable only with
  that state enabled), e.g. avx512f needs xcr0_avx512_opmask, _zmm_hi256 and _hi16_zmm.
* ``close_under_deps(features)``: the largest subset of a feature set whose requirements are all
  inside it -- what ``baseline`` keeps -- and, for every feature dropped, the chain that explains
  it ("avx2 dropped: needs avx, which host X lacks").
* ``xsave_findings(entries)``: contradictions between leaf 0xD (the XSAVE state components) and
  the features in raw CPUID entries, e.g. AVX-512 state enumerated without AVX512F.

``consistency_findings(supported, emulated)`` runs the dependency and XSAVE checks on KVM's raw
answer and returns them as ``Finding`` records with evidence text (our words) and raw values.

Names are kvmprobe feature names (the CPUID table's ``name`` column). A dependency whose Linux
macro the table does not know is reported by ``unresolved()`` and left out of the analyses.
Linux gives X86_FEATURE_MBA two CPUID positions (Intel 0x10, AMD 0x80000008); a requirement on it
is met by either (``Dependency.requires`` holds both names). Runtime bits (OSXSAVE, OSPKE) are
never offered by KVM; wherever a fact names one, the feature a VMM offers instead (xsave, pku)
stands in for it (deps_data.RUNTIME_BITS).
"""

from __future__ import annotations

from collections import deque, namedtuple
from collections.abc import Iterable
from functools import cache

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.answers import UNKNOWN, Answer, AnswerMap, answers_from_cpuid
from kvmprobe.frozen import frozen
from kvmprobe.snapshot import CpuidEntry
from kvmprobe.vocab import ConsistencyCheck, DependencyKind, Offered

TYPE_CHECKING = False
if TYPE_CHECKING:  # re-exported: at run time through __getattr__ below
    from typing import NamedTuple

    from kvmprobe.analysis.deps_found import Dropped as Dropped
    from kvmprobe.analysis.deps_found import Violation as Violation


if not TYPE_CHECKING:  # to a type checker, a module __getattr__ makes every name exist
    from kvmprobe.lazy import forward

    # what a check finds missing is in kvmprobe.analysis.deps_found, created only when found
    __getattr__ = forward(
        __name__, dict.fromkeys(("Dropped", "Violation"), "kvmprobe.analysis.deps_found")
    )


# --------------------------------------------------------------------------------------------
# The dependency facts


@frozen
class Dependency:
    """``feature`` needs one of ``requires`` (usually exactly one name)."""

    feature: str
    requires: tuple[str, ...]
    kind: DependencyKind
    #: the Linux names behind the row: X86_FEATURE_ macros, or the XFEATURE_ component
    feature_macro: str
    requires_macro: str
    #: ids of the copies of cpuid-deps.c holding the row (deps_data.DEPS_SOURCES); empty for
    #: XSAVE-state dependencies
    sources: tuple[str, ...]


@frozen
class DependencyRow:
    """A cpuid_deps[] row as generated, resolved or not."""

    feature_macro: str
    feature_names: tuple[str, ...]
    requires_macro: str
    requires_names: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def resolved(self) -> bool:
        return bool(self.feature_names and self.requires_names)


def _rows(table: str) -> tuple[DependencyRow, ...]:
    from kvmprobe.tables import deps_data

    data = getattr(deps_data, table)
    return tuple(
        DependencyRow(fm, fnames, rm, rnames, srcs)
        for fm, fnames, _fw, rm, rnames, _rw, srcs in data
    )


@cache
def dependency_rows() -> tuple[DependencyRow, ...]:
    """Every row in use (present in the newest copy of cpuid-deps.c), resolved or not."""
    return _rows("DEPENDS")


@cache
def superseded() -> tuple[DependencyRow, ...]:
    """Rows of older copies that the newest copy changed; kept for the record, never used."""
    return _rows("SUPERSEDED")


def unresolved() -> tuple[DependencyRow, ...]:
    """Rows in use whose macros the CPUID table does not name: not analysed, never hidden."""
    return tuple(r for r in dependency_rows() if not r.resolved)


@cache
def runtime_offered_by() -> dict[str, str]:
    """Runtime bit -> the feature a VMM offers instead (osxsave -> xsave, ospke -> pku)."""
    from kvmprobe.tables import deps_data

    return {rt: offered for rt, offered, _control in deps_data.RUNTIME_BITS}


def _offered_name(name: str) -> str:
    return runtime_offered_by().get(name, name)


@cache
def dependencies(*, state: bool = True) -> tuple[Dependency, ...]:
    """The resolved dependencies, one per feature name (a macro with two positions gives two).

    With ``state`` (the default) they include the XSAVE-state dependencies: a feature that uses
    an XCR0 component beyond x87/SSE needs that component enumerated (avx needs xcr0_avx,
    avx512f needs xcr0_avx512_opmask, _zmm_hi256 and _hi16_zmm, amx_tile the two tile
    components...), named by the CPUID table's rows for the 0xD.0 mask bits. A component the
    table names no row for (APX state, bit 19) is listed by ``unnamed_state_components()``."""
    out: list[Dependency] = []
    for r in dependency_rows():
        if not r.resolved:
            continue
        requires = tuple(dict.fromkeys(_offered_name(n) for n in r.requires_names))
        for fname in r.feature_names:
            out.append(
                Dependency(
                    fname,
                    requires,
                    DependencyKind.CPUID_DEPS,
                    r.feature_macro,
                    r.requires_macro,
                    r.sources,
                )
            )
    if state:
        for c, row in _state_rows():
            if row is not None:
                out.append(
                    Dependency(
                        c.feature,
                        (row.name,),
                        DependencyKind.XSAVE_STATE,
                        c.feature,
                        f"XFEATURE_{c.name}",
                        (),
                    )
                )
    return tuple(out)


def _state_rows() -> list[tuple[Component, cp.FeatureDef | None]]:
    """Each extended XCR0 component with the CPUID table row of its 0xD.0 mask bit."""
    from kvmprobe.tables import deps_data

    leaf, subleaf, low, high = deps_data.XCR0_ENUMERATION
    out: list[tuple[Component, cp.FeatureDef | None]] = []
    for c in components():
        if c.register != "xcr0" or c.bit < deps_data.XFEATURE_YMM:
            continue
        reg, bit = (low, c.bit) if c.bit < 32 else (high, c.bit - 32)
        out.append((c, cp.by_loc().get((leaf, subleaf, reg, bit))))
    return out


def unnamed_state_components() -> tuple[Component, ...]:
    """XCR0 components the CPUID table has no row for: their state dependency cannot be
    expressed by name and is left out of ``dependencies()`` (not hidden: listed here)."""
    return tuple(c for c, row in _state_rows() if row is None)


@cache
def _requires_map(state: bool) -> dict[str, tuple[Dependency, ...]]:
    out: dict[str, list[Dependency]] = {}
    for d in dependencies(state=state):
        out.setdefault(d.feature, []).append(d)
    return {k: tuple(v) for k, v in out.items()}


def requirements_of(feature: str, *, state: bool = True) -> tuple[Dependency, ...]:
    """The direct requirements of one feature (empty when it has none)."""
    return _requires_map(state).get(feature, ())


# --------------------------------------------------------------------------------------------
# Violations: offered while a requirement is not


def _requirement_answer(answers: AnswerMap, dep: Dependency) -> tuple[str, Answer]:
    """The best answer among a dependency's alternatives: a yes if any, else the first
    known "no", else unknown."""
    found: list[tuple[str, Answer]] = [(n, answers.get(n, UNKNOWN)) for n in dep.requires]
    for name, a in found:
        if a.yes:
            return name, a
    for name, a in found:
        if a.offered is Offered.NO:
            return name, a
    return found[0]


def violations(answers: AnswerMap, *, state: bool = True) -> tuple[Violation, ...]:
    """Every (offered feature, requirement not offered) pair, each with its shortest chain.

    Only offered features are examined; the search walks through offered requirements and stops
    at the first one that is not offered (NO or UNKNOWN; a name the mapping lacks is UNKNOWN).
    ``state``: include the XSAVE-state dependencies (see ``dependencies``). Sorted by feature,
    then by chain length.
    """
    out: list[Violation] = []
    for feature in sorted(n for n, a in answers.items() if a.yes):
        seen: set[str] = {feature}
        queue: deque[tuple[str, ...]] = deque([(feature,)])
        while queue:
            chain = queue.popleft()
            for dep in requirements_of(chain[-1], state=state):
                name, answer = _requirement_answer(answers, dep)
                if name in seen:
                    continue
                seen.add(name)
                if answer.yes:
                    queue.append((*chain, name))
                else:
                    from kvmprobe.analysis.deps_found import Violation

                    out.append(Violation((*chain, name), answer))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Closure: drop what cannot stand


# ``kept``: the features whose requirements are all kept; ``dropped``: the others with the
# chain to a missing requirement, sorted by feature. A named tuple, made without typing.
if TYPE_CHECKING:

    class Closure(NamedTuple):
        kept: frozenset[str]
        dropped: tuple[Dropped, ...]

else:
    Closure = namedtuple("Closure", ("kept", "dropped"))


def close_under_deps(features: Iterable[str], *, state: bool = True) -> Closure:
    """Drop every feature that needs (directly or through other features) one that is not in
    the set; a requirement with alternatives is met by any of them. Features the dependency
    table does not mention are kept as they are. ``state``: include the XSAVE-state
    dependencies, so AVX-512 without its XCR0 components is dropped too (the set then holds
    the table's xcr0_* names for the components a host enumerates)."""
    have = frozenset(features)
    dropped: list[Dropped] = []
    for feature in sorted(have):
        chain = _missing_chain(feature, have, state)
        if chain is not None:
            from kvmprobe.analysis.deps_found import Dropped

            dropped.append(Dropped(chain))
    gone = {d.feature for d in dropped}
    return Closure(have - gone, tuple(dropped))


def _missing_chain(feature: str, have: frozenset[str], state: bool) -> tuple[str, ...] | None:
    """Shortest chain from ``feature`` to a requirement absent from ``have``, or None."""
    seen = {feature}
    queue: deque[tuple[str, ...]] = deque([(feature,)])
    while queue:
        chain = queue.popleft()
        for dep in requirements_of(chain[-1], state=state):
            present = [n for n in dep.requires if n in have]
            if not present:
                return (*chain, dep.requires[0])
            for n in present:
                if n not in seen:
                    seen.add(n)
                    queue.append((*chain, n))
    return None


# --------------------------------------------------------------------------------------------
# XSAVE state consistency on raw CPUID entries


@frozen
class Component:
    """An XSAVE state component and the feature that uses it."""

    bit: int
    #: Linux's name without the XFEATURE_ prefix: YMM, OPMASK, ZMM_Hi256, XTILE_DATA...
    name: str
    #: kvmprobe name of the feature that uses it (runtime bits replaced: pkru -> pku)
    feature: str
    #: "xcr0" (user state) or "xss" (supervisor state)
    register: str


@cache
def components() -> tuple[Component, ...]:
    from kvmprobe.tables import deps_data

    return tuple(
        Component(bit, xf.removeprefix("XFEATURE_"), _offered_name(name), reg)
        for bit, xf, _macro, name, reg in deps_data.XSAVE_COMPONENTS
    )


@frozen
class Finding:
    """One contradiction inside a CPUID answer: which check, the features and state
    components involved, evidence text (our words) and the raw register values behind it."""

    check: ConsistencyCheck
    features: tuple[str, ...]
    components: tuple[int, ...]
    evidence: str
    #: (location such as "0xd.0.eax", value) pairs, in the order the evidence uses them
    raw: tuple[tuple[str, int], ...]


def _reg_where(leaf: int, subleaf: int, register: str) -> str:
    return f"{leaf:#x}.{subleaf}.{register}"


def _mask(
    view: cp.CpuidView, spec: tuple[int, int, str, str]
) -> tuple[int | None, list[tuple[str, int]]]:
    """A 64-bit component mask read from (leaf, subleaf, low register, high register)."""
    leaf, subleaf, low, high = spec
    lo = view.reg(leaf, subleaf, low)
    if lo is None:
        return None, []
    hi = view.reg(leaf, subleaf, high) or 0
    raw = [(_reg_where(leaf, subleaf, low), lo), (_reg_where(leaf, subleaf, high), hi)]
    return lo | hi << 32, raw


def _bits(mask: int) -> list[int]:
    return [b for b in range(64) if mask >> b & 1]


def _feature(name: str) -> cp.FeatureDef:
    f = cp.lookup(name)
    if f is None:  # the generated tables guarantee it; a stale table is a bug, not an answer
        raise LookupError(f"feature {name!r} is not in the CPUID table")
    return f


def _feature_raw(view: cp.CpuidView, f: cp.FeatureDef) -> tuple[str, int]:
    return (_reg_where(f.leaf, f.subleaf, f.register), view.reg(f.leaf, f.subleaf, f.register) or 0)


def _names(comps: Iterable[Component]) -> str:
    return ", ".join(f"{c.bit} ({c.name})" for c in comps)


def xsave_findings(entries: Iterable[CpuidEntry]) -> tuple[Finding, ...]:
    """Contradictions between leaf 0xD and the feature bits of one set of raw CPUID entries.

    * XSAVE_STATE_WITHOUT_XSAVE: XCR0 components beyond x87 and SSE (bits >= 2) enumerated while
      XSAVE is not offered.
    * STATE_WITHOUT_FEATURE: an XCR0 component enumerated while the feature that uses it is not
      offered, grouped by feature (AVX-512 state without avx512f, tile state without amx_tile).
    * FEATURE_WITHOUT_STATE: with XSAVE offered, a feature offered while an XCR0 component it
      uses is not enumerated (avx512f without opmask/ZMM state, amx_tile without tile state).
    * XSAVE_LEAF_MISSING: XSAVE offered but the XCR0 enumeration (leaf 0xD.0) absent.
    * COMPONENT_WITHOUT_SIZE: an XCR0 component >= 2 enumerated but its subleaf is absent or
      reports size 0.

    Only user (XCR0) components are checked: for the supervisor ones (IA32_XSS) Linux's pairing
    is narrower than the architecture's (it ties CET user state to shadow stacks, which IBT
    uses too), so a mismatch there would not be a contradiction. No findings for entries
    without leaf 1 (nothing to compare).
    """
    from kvmprobe.tables import deps_data

    view = cp.CpuidView(entries)
    xsave = _feature("xsave")
    if view.reg(xsave.leaf, xsave.subleaf, xsave.register) is None:
        return ()
    xsave_on = view.has_loc(xsave.loc)
    xsave_raw = _feature_raw(view, xsave)
    leaf, subleaf, _low, _high = deps_data.XCR0_ENUMERATION
    enum_where = f"{leaf:#x}.{subleaf}"
    xcr0, xcr0_raw = _mask(view, deps_data.XCR0_ENUMERATION)
    out: list[Finding] = []

    if xcr0 is None:
        if xsave_on:
            out.append(
                Finding(
                    ConsistencyCheck.XSAVE_LEAF_MISSING,
                    ("xsave",),
                    (),
                    f"xsave ({xsave.where}) is offered but leaf {enum_where}, which enumerates "
                    f"the XSAVE state components, is missing "
                    f"({xsave_raw[0]} = {xsave_raw[1]:#010x})",
                    (xsave_raw,),
                )
            )
        return tuple(out)

    mask_text = (
        f"XCR0 mask {xcr0:#x}: {xcr0_raw[0][0]} = {xcr0_raw[0][1]:#010x}, "
        f"{xcr0_raw[1][0]} = {xcr0_raw[1][1]:#010x}"
    )
    extended = [b for b in _bits(xcr0) if b >= deps_data.XFEATURE_YMM]
    if extended and not xsave_on:
        out.append(
            Finding(
                ConsistencyCheck.XSAVE_STATE_WITHOUT_XSAVE,
                ("xsave",),
                tuple(extended),
                f"leaf {enum_where} enumerates XCR0 components {', '.join(map(str, extended))} "
                f"beyond x87/SSE ({mask_text}) while xsave ({xsave.where}) is not offered "
                f"({xsave_raw[0]} = {xsave_raw[1]:#010x})",
                (*xcr0_raw, xsave_raw),
            )
        )

    user: dict[str, list[Component]] = {}
    for c in components():
        if c.register == "xcr0":
            user.setdefault(c.feature, []).append(c)
    for feature, comps in user.items():
        f = _feature(feature)
        offered = view.has_loc(f.loc)
        f_raw = _feature_raw(view, f)
        present = [c for c in comps if xcr0 >> c.bit & 1]
        absent = [c for c in comps if not xcr0 >> c.bit & 1]
        if present and not offered:
            plural = "s" if len(present) > 1 else ""
            out.append(
                Finding(
                    ConsistencyCheck.STATE_WITHOUT_FEATURE,
                    (feature,),
                    tuple(c.bit for c in present),
                    f"leaf {enum_where} enumerates state component{plural} {_names(present)} "
                    f"used by {feature}, but {feature} ({f.where}) is not offered "
                    f"({f_raw[0]} = {f_raw[1]:#010x}; {mask_text})",
                    (*xcr0_raw, f_raw),
                )
            )
        if absent and offered and xsave_on:
            plural = "s" if len(absent) > 1 else ""
            out.append(
                Finding(
                    ConsistencyCheck.FEATURE_WITHOUT_STATE,
                    (feature,),
                    tuple(c.bit for c in absent),
                    f"{feature} ({f.where}) is offered but leaf {enum_where} does not enumerate "
                    f"its state component{plural} {_names(absent)} "
                    f"({f_raw[0]} = {f_raw[1]:#010x}; {mask_text})",
                    (*xcr0_raw, f_raw),
                )
            )

    size_leaf, size_reg = deps_data.COMPONENT_SIZE
    names = {c.bit: c.name for c in components()}
    for b in extended:
        entry = view.entry(size_leaf, b)
        if entry is not None and entry.index != b:
            entry = None  # a non-indexed fallback entry is not this component's subleaf
        if entry is not None and entry.reg(size_reg):
            continue
        label = f"{b} ({names[b]})" if b in names else str(b)
        raw: tuple[tuple[str, int], ...] = tuple(xcr0_raw)
        if entry is None:
            state = "is missing"
        else:
            state = "reports size 0"
            raw = (*raw, (_reg_where(size_leaf, b, size_reg), 0))
        out.append(
            Finding(
                ConsistencyCheck.COMPONENT_WITHOUT_SIZE,
                (),
                (b,),
                f"leaf {enum_where} enumerates XCR0 component {label} (XCR0 mask {xcr0:#x}) but "
                f"subleaf {size_leaf:#x}.{b}, which gives its size, {state}",
                raw,
            )
        )
    return tuple(out)


def dependency_findings(
    answers: AnswerMap, entries: Iterable[CpuidEntry] | None = None, *, state: bool = True
) -> tuple[Finding, ...]:
    """``violations`` as Finding records (check DEPENDENCY). With the raw ``entries`` the
    answers came from, each finding carries the registers of the chain's features."""
    view = cp.CpuidView(entries) if entries is not None else None
    out: list[Finding] = []
    for v in violations(answers, state=state):
        raw: dict[str, int] = {}
        missing = cp.lookup(v.missing)
        evidence = v.describe()
        if missing is not None:
            evidence += f"; {v.missing} is {missing.where}"
        if view is not None:
            for name in v.chain:
                f = cp.lookup(name)
                if f is not None:
                    where, value = _feature_raw(view, f)
                    raw.setdefault(where, value)
        out.append(Finding(ConsistencyCheck.DEPENDENCY, v.chain, (), evidence, tuple(raw.items())))
    return tuple(out)


def consistency_findings(
    supported: Iterable[CpuidEntry] | None,
    emulated: Iterable[CpuidEntry] | None = None,
) -> tuple[Finding, ...]:
    """Dependency and XSAVE findings on KVM's raw answer (KVM_GET_SUPPORTED_CPUID entries,
    with KVM_GET_EMULATED_CPUID to tell emulated requirements apart).

    ``supported`` None (the probe step failed) gives no findings: there is nothing to compare,
    and unknown is not a contradiction."""
    if supported is None:
        return ()
    entries = tuple(supported)
    answers = answers_from_cpuid(entries, emulated)
    # XSAVE-state dependencies are left to xsave_findings, which says more about them.
    deps = dependency_findings(answers, entries, state=False)
    return (*deps, *xsave_findings(entries))
