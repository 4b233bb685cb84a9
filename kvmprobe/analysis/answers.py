"""One answer per feature: can a guest be given it, and if not, why.

The level and dependency analyses (analysis.levels, analysis.deps) take a mapping
``feature name -> Answer``; the name is kvmprobe's feature name (FEATURES[i][4] of the CPUID
table: the Linux /proc/cpuinfo name where Linux has one). A name missing from the mapping is
an unknown answer, never a "no".

Pure: no I/O. Two builders are here:

* ``answer_from_status`` turns an effective-analysis result (a FeatureStatus and the
  ``effective`` bool, None when unknown) into an Answer;
* ``answers_from_cpuid`` reads raw KVM_GET_SUPPORTED_CPUID (and KVM_GET_EMULATED_CPUID) entries:
  KVM's own answer before any quirk, which is what the consistency checks look at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kvmprobe.analysis import cpuid as cp
from kvmprobe.frozen import frozen
from kvmprobe.snapshot import CpuidEntry
from kvmprobe.vocab import FeatureStatus, NotOfferedReason, Offered


@frozen
class Answer:
    """Offered yes / no / unknown; a "no" always carries a reason (UNKNOWN when none is known)."""

    offered: Offered
    reason: NotOfferedReason | None = None

    def __post_init__(self) -> None:
        if self.offered is Offered.NO and self.reason is None:
            object.__setattr__(self, "reason", NotOfferedReason.UNKNOWN)
        elif self.offered is not Offered.NO and self.reason is not None:
            raise ValueError(f"an answer of {self.offered} carries no reason")

    @property
    def yes(self) -> bool:
        return self.offered is Offered.YES

    @property
    def why(self) -> NotOfferedReason | None:
        """Why the feature is not offered: the reason of a "no", UNKNOWN for an unknown answer,
        None for a "yes"."""
        if self.offered is Offered.YES:
            return None
        return self.reason or NotOfferedReason.UNKNOWN

    def label(self) -> str:
        """Short text for reports: "offered", "not offered (host-only)", "unknown"."""
        if self.offered is Offered.YES:
            return "offered"
        if self.offered is Offered.UNKNOWN:
            return "unknown"
        return f"not offered ({self.why})"


YES = Answer(Offered.YES)
UNKNOWN = Answer(Offered.UNKNOWN)

AnswerMap = Mapping[str, Answer]


#: one "no" per reason, like YES and UNKNOWN (answers are immutable values): a host's
#: answers are mostly "no", hundreds per analysis, each otherwise a new frozen object
_NO: dict[NotOfferedReason, Answer] = {}


def no(reason: NotOfferedReason = NotOfferedReason.UNKNOWN) -> Answer:
    answer = _NO.get(reason)
    if answer is None:
        answer = _NO[reason] = Answer(Offered.NO, reason)
    return answer


def lookup_answer(answers: AnswerMap, name: str) -> Answer:
    """The answer for a feature; UNKNOWN when the mapping does not hold it."""
    return answers.get(name, UNKNOWN)


_STATUS_REASON: dict[FeatureStatus, NotOfferedReason] = {
    FeatureStatus.HOST_ONLY: NotOfferedReason.HOST_ONLY,
    FeatureStatus.REMOVED_BY_QUIRK: NotOfferedReason.REMOVED_BY_QUIRK,
    FeatureStatus.EMULATED: NotOfferedReason.EMULATED,
    FeatureStatus.UNSUPPORTED: NotOfferedReason.UNSUPPORTED,
    FeatureStatus.OPT_IN: NotOfferedReason.OPT_IN,
    FeatureStatus.RUNTIME: NotOfferedReason.RUNTIME,
}


def answer_from_status(status: FeatureStatus | None, effective: bool | None) -> Answer:
    """An effective-analysis result as an Answer.

    ``effective`` decides yes/no (None: unknown, whatever the status); the status gives the
    reason of a "no". A status that does not explain a "no" (SUPPORTED, ADDED_BY_QUIRK) gives
    reason UNKNOWN rather than a guess.
    """
    if effective is None:
        return UNKNOWN
    if effective:
        return YES
    reason = _STATUS_REASON.get(status) if status is not None else None
    return no(reason or NotOfferedReason.UNKNOWN)


def verdict_answer(
    status: FeatureStatus, effective: bool | None, emulated: bool, *, level: bool = False
) -> Answer:
    """One effective-analysis verdict as an Answer.

    Like ``answer_from_status``, with two refinements for emulated features (KVM
    traps each use of the instruction: MOVBE on many AMD hosts):

    * a feature a guest cannot be given that KVM_GET_EMULATED_CPUID lists, and that no quirk
      decided (status host-only or unsupported), is "no (emulated)";
    * with ``level`` (answers for the x86-64 level), a feature offered only through KVM's
      emulator (status emulated) is "no (emulated)" too, so that ``levels.psabi_level`` applies
      its rule for emulated features (listed, not counted by default)."""
    if effective is None or status is FeatureStatus.UNKNOWN:
        return UNKNOWN
    if level and status is FeatureStatus.EMULATED:
        return no(NotOfferedReason.EMULATED)
    if effective:
        return YES
    if status in (FeatureStatus.HOST_ONLY, FeatureStatus.UNSUPPORTED) and emulated:
        return no(NotOfferedReason.EMULATED)
    return no(_STATUS_REASON.get(status, NotOfferedReason.UNKNOWN))


def answers_from_cpuid(
    supported: Iterable[CpuidEntry] | None,
    emulated: Iterable[CpuidEntry] | None = None,
    *,
    features: Iterable[cp.FeatureDef] | None = None,
) -> dict[str, Answer]:
    """KVM's own answer, feature by feature, from raw CPUID entries (no quirks applied).

    A bit set in ``supported`` is YES; clear there but set in ``emulated`` is NO (emulated);
    clear in both is NO (unsupported). ``supported`` None (the probe step failed) makes every
    answer UNKNOWN. ``features`` defaults to every row of the CPUID table.
    """
    feats = tuple(features) if features is not None else cp.features()
    if supported is None:
        return {f.name: UNKNOWN for f in feats}
    kgsc = cp.CpuidView(supported)
    kgec = cp.CpuidView(emulated) if emulated is not None else None
    out: dict[str, Answer] = {}
    for f in feats:
        if kgsc.has_loc(f.loc):
            out[f.name] = YES
        elif kgec is not None and kgec.has_loc(f.loc):
            out[f.name] = no(NotOfferedReason.EMULATED)
        else:
            out[f.name] = no(NotOfferedReason.UNSUPPORTED)
    return out
