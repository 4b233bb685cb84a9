"""The x86-64 psABI micro-architecture level a guest can be given.

Input: a mapping feature name -> Answer (analysis.answers). Output: the highest level met
(x86-64-v1..v4, or below-x86-64-v1) and, for every level, the rows not met with their reason.

The rows are facts from the x86-64 psABI table "Micro-Architecture Levels", generated into
kvmprobe.tables.deps_data.PSABI_LEVELS from scripts/data/psabi_levels.json (citations there).
How each row is checked (RequirementKind):

* ``cpuid``: the feature must be offered.
* ``os-enable``: OSFXSR, SCE and OSXSAVE are switches the guest kernel turns on (CR4.OSFXSR,
  EFER.SCE, CR4.OSXSAVE). A VMM can only offer the feature that makes the switch possible, so the
  row names that feature: fxsr, syscall, xsave. (KVM never offers the OSXSAVE CPUID bit itself;
  the CPU mirrors the guest's CR4.OSXSAVE into it at run time.)
* ``xsave-state``: the psABI makes v3 and v4 available only when their features are "fully
  enabled", XCR0 included; the level therefore also needs the XCR0 components its registers live
  in (SSE and AVX state for v3; opmask, ZMM_Hi256, Hi16_ZMM for v4) to be enumerated in leaf 0xD.
  These rows use the CPUID table's names for the 0xD.0 EAX bits (xcr0_sse, xcr0_avx, ...), so an
  answer mapping built from the table holds them.

Emulated features (answer NO, reason EMULATED: only in KVM_GET_EMULATED_CPUID, e.g. MOVBE on
many AMD hosts) do not meet a level by default: KVM traps and emulates every such instruction, so
code built for the level runs far slower than the level promises. ``count_emulated=True`` counts
them as met; either way they are listed in ``LevelResult.emulated``. Unknown never meets a level.
"""

from __future__ import annotations

from functools import cache

from kvmprobe.analysis.answers import Answer, AnswerMap, lookup_answer
from kvmprobe.analysis.cpuid import fmt_loc
from kvmprobe.frozen import frozen
from kvmprobe.vocab import NotOfferedReason, Offered, PsabiLevel, RequirementKind


@frozen
class Requirement:
    """One row of a psABI level as kvmprobe checks it."""

    level: PsabiLevel
    #: the psABI's name (CMPXCHG16B, LAHF-SAHF, OSXSAVE...); None for xsave-state rows
    psabi_name: str | None
    #: kvmprobe's feature name whose answer decides the row (cx16, lahf_lm, xsave, xcr0_avx...)
    feature: str
    kind: RequirementKind
    leaf: int
    subleaf: int
    register: str
    bit: int

    @property
    def where(self) -> str:
        return fmt_loc(self.leaf, self.subleaf, self.register, self.bit)

    @property
    def label(self) -> str:
        """What a report calls the row: "LAHF-SAHF (lahf_lm)", "XCR0 state xcr0_avx"."""
        if self.psabi_name is None:
            return f"XCR0 state {self.feature}"
        if self.psabi_name.lower().replace("-", "_") == self.feature:
            return self.psabi_name
        return f"{self.psabi_name} ({self.feature})"


@frozen
class Shortfall:
    """A requirement that is not met, with the answer that decided it."""

    requirement: Requirement
    answer: Answer

    @property
    def reason(self) -> NotOfferedReason:
        """Why it is not met: the answer's reason, UNKNOWN for an unknown answer."""
        return self.answer.why or NotOfferedReason.UNKNOWN

    def describe(self) -> str:
        r = self.requirement
        return f"{r.label} at {r.where}: {self.answer.label()}"


@frozen
class LevelResult:
    """One level's own rows (not the lower levels')."""

    level: PsabiLevel
    #: every row of this level is met
    met: bool
    #: rows not met, in table order
    missing: tuple[Shortfall, ...]
    #: rows whose feature is emulated only (met only when count_emulated is on)
    emulated: tuple[Requirement, ...]


@frozen
class LevelReport:
    """The highest level met and every level's result, lowest first."""

    highest: PsabiLevel
    count_emulated: bool
    levels: tuple[LevelResult, ...]

    def result(self, level: PsabiLevel) -> LevelResult:
        for r in self.levels:
            if r.level is level:
                return r
        raise KeyError(level)

    def meets(self, level: PsabiLevel) -> bool:
        """Whether the guest reaches ``level`` (cumulative; BELOW_V1 is always reached)."""
        return self.highest.rank >= level.rank

    def missing_through(self, level: PsabiLevel) -> tuple[Shortfall, ...]:
        """Every row not met from x86-64-v1 up to ``level``: what stands between the guest and
        that level."""
        out: list[Shortfall] = []
        for r in self.levels:
            if r.level.rank <= level.rank:
                out.extend(r.missing)
        return tuple(out)

    @property
    def next_level(self) -> LevelResult | None:
        """The first level not reached (None when x86-64-v4 is met)."""
        for r in self.levels:
            if r.level.rank > self.highest.rank:
                return r
        return None


@cache
def requirements() -> tuple[Requirement, ...]:
    """Every psABI row, lowest level first, in the psABI's order within a level."""
    from kvmprobe.tables import deps_data

    return tuple(
        Requirement(PsabiLevel(lv), psabi, feat, RequirementKind(kind), leaf, sub, reg, bit)
        for lv, psabi, feat, kind, leaf, sub, reg, bit in deps_data.PSABI_LEVELS
    )


def requirements_of(level: PsabiLevel) -> tuple[Requirement, ...]:
    """The rows a level adds to the one below it."""
    return tuple(r for r in requirements() if r.level is level)


def _is_emulated(answer: Answer) -> bool:
    return answer.offered is Offered.NO and answer.reason is NotOfferedReason.EMULATED


def psabi_level(answers: AnswerMap, *, count_emulated: bool = False) -> LevelReport:
    """The highest x86-64 level whose rows, and every lower level's rows, are all met.

    ``answers`` maps kvmprobe feature names to Answers; a name it lacks is unknown.
    ``count_emulated``: whether an emulated-only feature meets its row (default: no).
    """
    results: list[LevelResult] = []
    for level in PsabiLevel.levels():
        missing: list[Shortfall] = []
        emulated: list[Requirement] = []
        for req in requirements_of(level):
            answer = lookup_answer(answers, req.feature)
            if _is_emulated(answer):
                emulated.append(req)
                if count_emulated:
                    continue
            if not answer.yes:
                missing.append(Shortfall(req, answer))
        results.append(LevelResult(level, not missing, tuple(missing), tuple(emulated)))
    highest = PsabiLevel.BELOW_V1
    for r in results:
        if not r.met:
            break
        highest = r.level
    return LevelReport(highest, count_emulated, tuple(results))
