"""Decisions about one host's guest: its x86-64 level next to the host's, the consistency of
KVM's own CPUID answer, and the ``--require`` subjects for a host, a profile or a baseline.

* ``guest_answers(a)``: the effective analysis as feature name -> Answer. A feature a guest
  cannot be given that KVM only emulates is "no (emulated)" (see ``answers.verdict_answer``);
  emulated features do not meet a level (``levels.psabi_level``'s default; KVM traps every
  such instruction).
* ``psabi_summary(a)``: the guest's level in the analysed set-up and the host CPU's own level,
  from the host's CPUID, or, when that could not be read, from the /proc/cpuinfo flags
  (``fleet_facts.cpuinfo_answers``; marked so with ``LevelSource``).
* ``cpuid_consistency(snap)``: contradictions inside KVM_GET_SUPPORTED_CPUID (a feature without
  one it depends on, XSAVE state without XSAVE, AVX-512 state without AVX512F...), as
  ``deps.Finding`` records with evidence: the function ``cpuid`` and ``doctor`` call.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from functools import cache

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.answers import (
    UNKNOWN,
    YES,
    Answer,
    answers_from_cpuid,
    no,
    verdict_answer,
)
from kvmprobe.analysis.deps import Finding, consistency_findings
from kvmprobe.analysis.levels import LevelReport, psabi_level, requirements
from kvmprobe.frozen import frozen
from kvmprobe.vocab import LevelSource, NotOfferedReason, Offered

TYPE_CHECKING = False
if TYPE_CHECKING:
    # What only the --require subjects and annotations need stays out of the import of
    # ``cpuid``'s path (start-up time): baseline, fleet facts, MSR decoding, requirements.
    from kvmprobe.analysis.baseline import Baseline
    from kvmprobe.analysis.effective import CpuidAnalysis
    from kvmprobe.analysis.msr import BitRef
    from kvmprobe.analysis.profile import HostProfile, MsrFacts
    from kvmprobe.analysis.require import Subject
    from kvmprobe.snapshot import Snapshot

#: where the host's level came from (kept as names for readers of this module)
HOST_FROM_CPUID = LevelSource.CPUID
HOST_FROM_CPUINFO = LevelSource.CPUINFO


@frozen
class PsabiSummary:
    """The x86-64 levels a guest can be given and the host's own."""

    guest: LevelReport
    #: None when neither the host's CPUID nor its /proc/cpuinfo flags are known
    host: LevelReport | None
    #: the host's CPUID or its /proc/cpuinfo flags; None when neither is known
    host_source: LevelSource | None
    #: why the host's CPUID is missing (when it is)
    host_cpuid_error: str | None


def guest_answers(a: CpuidAnalysis, only: Container[str] | None = None) -> dict[str, Answer]:
    """Every named feature of the analysis (or those named in ``only``) as an Answer for the
    x86-64 level (unnamed bits left out; a feature offered only through KVM's emulator is
    "no (emulated)")."""
    out: dict[str, Answer] = {}
    for r in a.features:
        if not r.feature.known or (only is not None and r.feature.name not in only):
            continue
        v = r.verdict
        eff: bool | None = v.effective
        out[r.feature.name] = verdict_answer(v.status, eff, bool(v.emulated), level=True)
    return out


@cache
def _level_features() -> tuple[cp.FeatureDef, ...]:
    """The CPUID table's rows the x86-64 levels read (psabi_level looks at no other name)."""
    names = {r.feature for r in requirements()}
    return tuple(f for f in cp.features() if f.name in names)


def psabi_summary(a: CpuidAnalysis) -> PsabiSummary:
    # only the features the levels read are turned into answers (a name left out is
    # "unknown" to psabi_level, which never asks for one outside its rows)
    names = {f.name for f in _level_features()}
    guest = psabi_level(guest_answers(a, names))
    snap = a.snap
    if snap.host.cpuid is not None:
        host = psabi_level(answers_from_cpuid(snap.host.cpuid, features=_level_features()))
        return PsabiSummary(guest, host, HOST_FROM_CPUID, None)
    error = snap.host.cpuid_error or "not recorded"
    if not snap.host.cpuinfo_flags:
        return PsabiSummary(guest, None, None, error)
    from kvmprobe.analysis.fleet_facts import cpuinfo_answers

    flags = cpuinfo_answers(snap.host.cpuinfo_flags)
    return PsabiSummary(guest, psabi_level(flags), LevelSource.CPUINFO, error)


def cpuid_consistency(snap: Snapshot) -> tuple[Finding, ...]:
    """Contradictions inside KVM's own CPUID answer (before any quirk), with evidence.
    Empty when KVM_GET_SUPPORTED_CPUID failed: unknown is not a contradiction."""
    return consistency_findings(snap.supported_cpuid, snap.emulated_cpuid)


# --------------------------------------------------------------------------------------------
# --require subjects


def _msr_answer(facts: MsrFacts) -> Callable[[BitRef], tuple[Answer, str]]:
    from kvmprobe.analysis.compare import msr_bit_answer

    def answer(ref: BitRef) -> tuple[Answer, str]:
        return msr_bit_answer(ref, facts)

    return answer


def analysis_subject(a: CpuidAnalysis, summary: PsabiSummary | None = None) -> Subject:
    """The guest of one analysed host (``kvmprobe cpuid --require``)."""
    from kvmprobe.analysis.profile import msr_facts
    from kvmprobe.analysis.require import Subject

    s = summary or psabi_summary(a)
    by_loc = {r.feature.loc: r for r in a.features}

    def feature(f: cp.FeatureDef) -> tuple[Answer, str]:
        r = by_loc.get(f.loc)
        if r is None:
            return UNKNOWN, "not in the analysis"
        v = r.verdict
        ans = verdict_answer(v.status, v.effective, bool(v.emulated))
        return ans, f"{ans.label()}: {v.reason}" if v.reason else ans.label()

    snap = a.snap
    return Subject(snap.source, feature, _msr_answer(msr_facts(snap)), s.guest)


def profile_subject(p: HostProfile) -> Subject:
    """The guest of one host profile (``kvmprobe diff --require``)."""
    from kvmprobe.analysis.profile import feature_space
    from kvmprobe.analysis.require import Subject

    space = feature_space()
    levels = psabi_level(p.answers({r.feature for r in requirements()}, level=True))

    def feature(f: cp.FeatureDef) -> tuple[Answer, str]:
        pos = space.position(f.loc)
        if pos is None:
            return UNKNOWN, "not a feature position"
        ans = p.answer(pos)
        if ans.offered is Offered.UNKNOWN:
            return ans, f"unknown: {p.unknown_why(pos)}"
        o = p.overrides.get(pos)
        quirks = f" [{', '.join(o.quirks)}]" if o is not None and o.quirks else ""
        return ans, ans.label() + quirks

    return Subject(
        p.name,
        feature,
        _msr_answer(p.msr),
        levels,
    )


def baseline_subject(b: Baseline) -> Subject:
    """The baseline guest of a fleet (``kvmprobe baseline --require``): an MSR bit is met when
    every host offers it."""
    from kvmprobe.analysis.compare import msr_bit_answer
    from kvmprobe.analysis.profile import feature_space
    from kvmprobe.analysis.require import Subject

    space = feature_space()
    if b.vendor is None:  # no guest can move between these hosts: nothing is met
        vendors = ", ".join(b.vendors)
        why = f"the hosts' CPU vendors differ ({vendors}): no guest can move between them"
        nothing = no(NotOfferedReason.UNSUPPORTED)
        return Subject(
            "baseline",
            lambda f: (nothing, why),
            lambda ref: (nothing, why),
            psabi_level({r.feature: nothing for r in requirements()}),
        )
    levels = psabi_level(b.answers(level=True))

    def feature(f: cp.FeatureDef) -> tuple[Answer, str]:
        pos = space.position(f.loc)
        if pos is None:
            return UNKNOWN, "not a feature position"
        ans = b.answer(pos)
        return ans, "in the baseline" if ans.yes else b.why_not(pos)

    def msr_bit(ref: BitRef) -> tuple[Answer, str]:
        lacking: list[str] = []
        unknown = False
        for host, facts in b.msr_hosts():
            ans, why = msr_bit_answer(ref, facts)
            if not ans.yes:
                lacking.append(f"{host} ({why})")
                unknown = unknown or ans.offered is Offered.UNKNOWN
        if not lacking:
            return YES, f"every one of the {len(b.hosts)} hosts offers it"
        n = len(lacking)
        text = f"{n} of {len(b.hosts)} hosts lack it: " + "; ".join(lacking[:3])
        text += f" and {n - 3} more" if n > 3 else ""
        return (UNKNOWN if unknown else no(NotOfferedReason.UNSUPPORTED)), text

    return Subject("baseline", feature, msr_bit, levels)
