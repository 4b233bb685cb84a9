"""``--require LIST``: does a guest (of one host, two hosts or a fleet's baseline) meet a bar?

An item is a CPUID feature in any spelling ``cpuid_query.resolve`` accepts (x2apic,
tsc-deadline, libvirt's pclmuldq, X86_FEATURE_AVX2, 0x7.0.ebx[5], sse3), a feature-MSR bit
as Linux, QEMU or libvirt spell it (``msr.lookup_bit``: mds-no, ARCH_CAP_GDS_NO), or an
x86-64 level (``PsabiLevel.parse``: x86-64-v2, v3). Levels are tried first, then CPUID
names, then MSR bits. An unknown answer never meets a requirement.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.answers import Answer
from kvmprobe.analysis.cpuid_query import resolve
from kvmprobe.analysis.levels import LevelReport
from kvmprobe.analysis.msr import BitRef, lookup_bit
from kvmprobe.frozen import frozen
from kvmprobe.vocab import Offered, PsabiLevel, RequireKind


@frozen
class Requirement:
    text: str
    kind: RequireKind
    feature: cp.FeatureDef | None = None
    bits: tuple[BitRef, ...] = ()
    level: PsabiLevel | None = None

    @property
    def label(self) -> str:
        if self.level is not None:
            return self.level.value
        if self.feature is not None:
            return self.feature.name
        return self.text


@frozen
class UnknownName:
    text: str
    suggestions: tuple[str, ...]


def parse(text: str) -> tuple[tuple[Requirement, ...], tuple[UnknownName, ...]]:
    """Split a comma-separated LIST into requirements; names nothing knows are returned apart
    with spelling suggestions (the caller makes them a usage error)."""
    reqs: list[Requirement] = []
    bad: list[UnknownName] = []
    seen: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        level = PsabiLevel.parse(item)
        if level is not None:
            req = Requirement(item, RequireKind.LEVEL, level=level)
        elif (f := resolve(item)[0]) is not None:
            req = Requirement(item, RequireKind.FEATURE, feature=f)
        elif refs := lookup_bit(item):
            req = Requirement(item, RequireKind.MSR_BIT, bits=refs)
        else:
            bad.append(UnknownName(item, _suggest(item)))
            continue
        if req.label not in seen:
            seen.add(req.label)
            reqs.append(req)
    return tuple(reqs), tuple(bad)


def _suggest(item: str, limit: int = 5) -> tuple[str, ...]:
    """Close CPUID names first, then close MSR-bit names, then "x86-64-v2" for level-like
    text."""
    import difflib

    from kvmprobe.analysis.msr import _bit_names

    out = list(cp.suggestions(item, limit))
    n = item.strip().lower().replace("-", "_")
    for m in difflib.get_close_matches(n, sorted(_bit_names()), n=limit, cutoff=0.75):
        refs = _bit_names()[m]
        shown = refs[0].bit.qemu_name or m.replace("_", "-")
        if shown not in out:
            out.append(shown)
    if "v" in n and ("86" in n or n.startswith("v")):
        out += [lv.value for lv in PsabiLevel.levels() if lv.value not in out]
    return tuple(out[:limit])


@frozen
class Subject:
    """Where answers come from: one host's effective CPUID, a baseline..."""

    name: str
    #: a CPUID feature's answer and, when not offered, why in words
    feature: Callable[[cp.FeatureDef], tuple[Answer, str]]
    #: a feature-MSR bit's answer and why
    msr_bit: Callable[[BitRef], tuple[Answer, str]]
    levels: LevelReport


@frozen
class Outcome:
    requirement: Requirement
    met: bool
    #: "yes", "no", "unknown"
    offered: Offered
    why: str


@frozen
class RequireResult:
    subject: str
    outcomes: tuple[Outcome, ...]

    @property
    def met(self) -> bool:
        return all(o.met for o in self.outcomes)

    @property
    def unmet(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.met)


def check(reqs: tuple[Requirement, ...], subject: Subject) -> RequireResult:
    out: list[Outcome] = []
    for r in reqs:
        if r.level is not None:
            met = subject.levels.meets(r.level)
            if met:
                out.append(Outcome(r, True, Offered.YES, f"reaches {subject.levels.highest}"))
                continue
            shortfalls = subject.levels.missing_through(r.level)
            unknown = any(s.answer.offered is Offered.UNKNOWN for s in shortfalls)
            by_answer: dict[str, list[str]] = {}
            for s in shortfalls:
                by_answer.setdefault(s.answer.label(), []).append(s.requirement.label)
            why = f"the guest reaches {subject.levels.highest}; " + "; ".join(
                f"{answer}: {', '.join(labels)}" for answer, labels in by_answer.items()
            )
            out.append(Outcome(r, False, Offered.UNKNOWN if unknown else Offered.NO, why))
        elif r.feature is not None:
            answer, why = subject.feature(r.feature)
            out.append(Outcome(r, answer.yes, answer.offered, why))
        else:
            best: tuple[Answer, str] | None = None
            for ref in r.bits:
                answer, why = subject.msr_bit(ref)
                if (
                    best is None
                    or answer.yes
                    or (answer.offered is Offered.UNKNOWN and not best[0].yes)
                ):
                    best = (answer, why)
                if answer.yes:
                    break
            assert best is not None
            out.append(Outcome(r, best[0].yes, best[0].offered, best[1]))
    return RequireResult(subject.name, tuple(out))
