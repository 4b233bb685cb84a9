"""The quirk engine: the VMM set-up (Options), what a condition may read (Ctx), the record
types, and how records turn KVM's answer for one bit into a Verdict.

Records live in the theme modules beside their conditions; this module knows none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property

from kvmprobe.analysis.cpuid import CpuidView, Loc, cpuinfo_flag, vendor_kind
from kvmprobe.frozen import field, frozen
from kvmprobe.snapshot import ProbeError, Snapshot, Steps
from kvmprobe.tables.caps_data import KVM_CAP_X86_DISABLE_EXITS
from kvmprobe.vocab import DisableExit, FeatureStatus, Irqchip, QuirkEffect, Scope, Vendor


@frozen(kw_only=True)
class Options:
    """The VMM set-up being analysed. Plain strings are accepted and checked against the
    vocabularies (a bad name raises ValueError)."""

    irqchip: Irqchip = Irqchip.KERNEL
    disable_exits: frozenset[DisableExit] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "irqchip", Irqchip(self.irqchip))
        try:
            exits = frozenset(DisableExit(x) for x in self.disable_exits)
        except ValueError:
            unknown = sorted(set(map(str, self.disable_exits)) - set(DisableExit))
            raise ValueError(f"unknown exits: {unknown}") from None
        object.__setattr__(self, "disable_exits", exits)


class Ctx:
    """What a quirk condition may look at: the snapshot, the options, and views of it.

    Every fact that a probe step could fail to deliver is read through a method here. When the
    step failed, the method notes it (``unknowns``) and answers as if the fact were absent; the
    engine then turns any record whose condition read such a fact into an unknown answer, so no
    condition has to handle failures itself."""

    def __init__(self, snap: Snapshot, opts: Options) -> None:
        self.snap = snap
        self.opts = opts
        self.kgsc = CpuidView(snap.supported_cpuid)
        self.kgec = CpuidView(snap.emulated_cpuid)
        self.host = CpuidView(snap.host.cpuid) if snap.host.cpuid else None
        self.unknowns: list[str] = []

    def _unknown(self, failure: ProbeError | None, what: str) -> None:
        if failure is not None:
            errno = failure.errno_name or "no errno"
            self.unknowns.append(f"{failure.step} failed ({errno})")
        else:
            self.unknowns.append(what)

    def collect_unknowns(self) -> list[str]:
        """The unknown facts read since the last call (and forget them)."""
        out, self.unknowns = list(dict.fromkeys(self.unknowns)), []
        return out

    @cached_property
    def vendor(self) -> Vendor:
        """From KVM's leaf 0, else the host's; OTHER when neither names Intel or AMD."""
        v = vendor_kind(self.kgsc)
        if v is Vendor.OTHER and self.host is not None:
            v = vendor_kind(self.host)
        return v

    @property
    def lapic_in_kernel(self) -> bool:
        return self.opts.irqchip.lapic_in_kernel

    def kvm(self, loc: Loc) -> bool:
        return self.kgsc.has_loc(loc)

    @cached_property
    def host_flags(self) -> frozenset[str] | None:
        """/proc/cpuinfo's flags, used for the host's features when its CPUID could not be
        read (without root); None when neither is known."""
        if self.host is not None or not self.snap.host.cpuinfo_flags:
            return None
        return frozenset(self.snap.host.cpuinfo_flags)

    @property
    def host_source(self) -> str | None:
        """Where the host's features come from: "cpuid", "cpuinfo" (flags only), or None."""
        if self.host is not None:
            return "cpuid"
        return "cpuinfo" if self.host_flags is not None else None

    def host_has(self, loc: Loc) -> bool | None:
        """The host CPU has the bit; from /proc/cpuinfo when only its flags are known (None
        for bits Linux does not show there); None when unknown."""
        if self.host is not None:
            return self.host.has_loc(loc)
        if self.host_flags is None:
            return None
        flag = cpuinfo_flag(loc)
        return None if flag is None else flag in self.host_flags

    def cap(self, number: int) -> int:
        """A capability's value on /dev/kvm (0 when the check failed: noted as unknown)."""
        value = self.snap.cap(number, Scope.SYSTEM)
        if value is None:
            self._unknown(
                self.snap.cap_failure(number, Scope.SYSTEM),
                f"KVM_CHECK_EXTENSION({number}) was not asked",
            )
            return 0
        return value

    @property
    def emulated_unknown(self) -> bool:
        """KVM_GET_EMULATED_CPUID was asked and failed."""
        return (
            self.snap.emulated_cpuid is None and self.snap.failure(Steps.EMULATED_CPUID) is not None
        )

    def emulated(self, loc: Loc) -> bool:
        """KVM_GET_EMULATED_CPUID has the bit (False when it failed: noted as unknown)."""
        if self.emulated_unknown:
            self._unknown(self.snap.failure(Steps.EMULATED_CPUID), "")
            return False
        return self.kgec.has_loc(loc)

    def attr(self, group: int, attr: int) -> int | None:
        """A /dev/kvm device attribute; None when absent (or failed: noted as unknown)."""
        failure = self.snap.failure(Steps.attr(group, attr))
        if failure is not None:
            self._unknown(failure, "")
        return self.snap.attr(group, attr)

    def msr_lists(self) -> list[tuple[int, ...]]:
        """KVM's MSR index lists that were answered (a failed one is noted as unknown)."""
        out = []
        for step, values in (
            (Steps.MSR_INDEX_LIST, self.snap.msr_index_list),
            (Steps.MSR_FEATURE_INDEX_LIST, self.snap.msr_feature_index_list),
        ):
            if values is not None:
                out.append(values)
            elif (failure := self.snap.failure(step)) is not None:
                self._unknown(failure, "")
        return out

    def feature_msr(self, index: int) -> int | None:
        """A feature MSR's value as system-fd KVM_GET_MSRS reported it; None when KVM does not
        list the MSR in KVM_GET_MSR_FEATURE_INDEX_LIST (or when the list or the read failed:
        noted as unknown)."""
        listed = self.snap.msr_feature_index_list
        if listed is None:
            self._unknown(
                self.snap.failure(Steps.MSR_FEATURE_INDEX_LIST),
                f"{Steps.MSR_FEATURE_INDEX_LIST} was not answered",
            )
            return None
        if index not in listed:
            return None
        value = self.snap.feature_msrs.get(index)
        if value is None:
            self._unknown(
                self.snap.failure(Steps.feature_msr(index)),
                f"{Steps.feature_msr(index)} was not read",
            )
        return value

    def msr_refused(self, index: int) -> int:
        """The advertised bits of feature MSR ``index`` that KVM_SET_MSRS on a vCPU refused
        (kvmprobe's own verification); 0 when the vCPU took them all. When the snapshot has no
        verification (format 1), the verification failed, or this MSR could not be tried, the
        fact is noted as unknown and 0 is answered."""
        from kvmprobe.analysis.verify import msr_attempt, refused_mask, verification

        v = verification(self.snap)
        mask = refused_mask(v, index)
        if mask is not None:
            return mask
        failure = self.snap.failure(Steps.VERIFY)
        attempt = msr_attempt(v, index)
        if failure is not None:
            self._unknown(failure, "")
        elif self.snap.verification is None:
            self._unknown(
                None,
                "no vCPU verification in this snapshot (recorded before kvmprobe tried KVM's "
                "advertised values on a vCPU; record it again)",
            )
        elif attempt is None:
            self._unknown(None, f"KVM_SET_MSRS({index:#x}) was not tried on a vCPU")
        else:
            errno = attempt.errno_name or "no errno"
            self._unknown(None, f"KVM_SET_MSRS({index:#x}) on a vCPU could not be tried ({errno})")
        return 0

    def exit_allowed(self, exit: DisableExit) -> bool:
        """KVM_CAP_X86_DISABLE_EXITS lets a VMM disable this exit."""
        return bool(self.cap(KVM_CAP_X86_DISABLE_EXITS) & exit.flag)

    def exit_disabled(self, exit: DisableExit) -> bool:
        """The set-up asks for this exit to be disabled and KVM allows it."""
        return exit in self.opts.disable_exits and self.exit_allowed(exit)

    def module_param(self, param: str, modules: tuple[str, ...]) -> tuple[str, str] | None:
        for m in modules:
            info = self.snap.host.modules.get(m)
            if info and param in info.params:
                return m, info.params[param]
        return None


#: A condition returns (applies, evidence): evidence is the facts it read, for --explain.
Condition = Callable[[Ctx, Loc], tuple[bool, str]]
#: The condition of a leaf record: whether its note is shown, and the facts read.
LeafCondition = Callable[[Ctx], tuple[bool, str]]

FEATURE_EFFECTS = frozenset(
    {
        QuirkEffect.REMOVE,
        QuirkEffect.ADD,
        QuirkEffect.OPT_IN,
        QuirkEffect.RUNTIME,
        QuirkEffect.EMULATED,
        QuirkEffect.NOTE,
    }
)
LEAF_EFFECTS = frozenset({QuirkEffect.VMM_BUILDS, QuirkEffect.NOTE, QuirkEffect.NOT_APPLICABLE})


@frozen(kw_only=True)
class Quirk:
    """One documented behaviour of KVM's CPUID answer, for the feature bits it names."""

    id: str
    bits: tuple[Loc, ...]
    effect: QuirkEffect
    when: str  # the condition in words
    reason: str  # one line, ours: why the effect
    citation: tuple[str, ...]
    test: Condition
    effective: bool | None = None  # RUNTIME: what the guest effectively gets (None: keep)
    vendor: Vendor | None = None  # None: both vendors; else the record applies only there
    catalogue: str  # the research/quirks.md row this record covers
    targets: Callable[[Ctx], tuple[Loc, ...]] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.effect not in FEATURE_EFFECTS:
            raise ValueError(f"{self.id}: {self.effect} is not an effect on a feature bit")
        if self.vendor is Vendor.OTHER:
            raise ValueError(f"{self.id}: a record is scoped to Intel or AMD, or to neither")


@frozen(kw_only=True)
class LeafQuirk:
    """A catalogue row about a whole leaf, a field, an MSR or a capability, not a bit."""

    id: str
    leaves: tuple[int, ...]
    effect: QuirkEffect  # VMM_BUILDS, NOTE or NOT_APPLICABLE
    reason: str
    citation: tuple[str, ...]
    test: LeafCondition | None = None  # None: the note is always shown
    catalogue: str

    def __post_init__(self) -> None:
        if self.effect not in LEAF_EFFECTS:
            raise ValueError(f"{self.id}: {self.effect} is not an effect on a leaf")


@frozen
class Step:
    """One quirk considered for one feature: whether it applied, and the facts read."""

    record: Quirk
    applied: bool | None  # None: the condition read a fact a failed probe step did not give
    evidence: str

    @property
    def quirk(self) -> str:
        return self.record.id

    @property
    def effect(self) -> QuirkEffect:
        return self.record.effect


class Verdict:
    """What a guest gets for one feature bit: the raw answers, the status, and why. Built up
    by the records as they apply (so not a frozen value); equal to another with the same
    values."""

    __slots__ = _VERDICT_FIELDS = (
        "kvm",
        "emulated",
        "host",
        "effective",
        "status",
        "quirks",
        "reasons",
        "citations",
        "steps",
        "unknowns",
    )

    def __init__(
        self,
        kvm: bool,
        emulated: bool | None,
        host: bool | None,
        effective: bool | None,
        status: FeatureStatus,
        quirks: list[str] | None = None,
        reasons: list[str] | None = None,
        citations: list[str] | None = None,
        steps: list[Step] | None = None,
        unknowns: list[str] | None = None,
    ) -> None:
        self.kvm = kvm
        #: None: KVM_GET_EMULATED_CPUID failed
        self.emulated = emulated
        self.host = host
        #: None: unknown (see ``unknowns``)
        self.effective = effective
        self.status = status
        self.quirks: list[str] = [] if quirks is None else quirks
        self.reasons: list[str] = [] if reasons is None else reasons
        self.citations: list[str] = [] if citations is None else citations
        self.steps: list[Step] = [] if steps is None else steps
        #: the failed probe steps that make the answer unknown ("KVM_GET_EMULATED_CPUID failed
        #: (EIO)"); empty when the answer is known
        self.unknowns: list[str] = [] if unknowns is None else unknowns

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._VERDICT_FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._VERDICT_FIELDS)
        return f"Verdict({body})"

    @property
    def reason(self) -> str:
        """Why the feature is what it is: the applied records' reasons, else the base answer."""
        if self.unknowns:
            return "unknown: " + "; ".join(self.unknowns) + " (kvmprobe cannot tell)"
        if self.reasons:
            return "; ".join(self.reasons)
        return _BASE_REASONS.get(self.status, "")

    def make_unknown(self, why: list[str]) -> None:
        self.unknowns += [w for w in why if w not in self.unknowns]
        self.effective = None
        self.status = FeatureStatus.UNKNOWN


_BASE_REASONS = {
    FeatureStatus.SUPPORTED: "reported by KVM_GET_SUPPORTED_CPUID",
    FeatureStatus.UNSUPPORTED: "not reported by KVM_GET_SUPPORTED_CPUID",
    FeatureStatus.HOST_ONLY: "the host CPU has it; KVM does not pass it on",
}


def base_verdict(c: Ctx, loc: Loc) -> Verdict:
    kvm = c.kvm(loc)
    host = c.host_has(loc)
    emulated: bool | None = c.emulated(loc)
    unknown = c.collect_unknowns()
    if unknown:
        emulated = None
    if kvm:
        status = FeatureStatus.SUPPORTED
    elif host:
        status = FeatureStatus.HOST_ONLY
    else:
        status = FeatureStatus.UNSUPPORTED
    v = Verdict(kvm=kvm, emulated=emulated, host=host, effective=kvm, status=status)
    if c.snap.supported_cpuid is None:
        # Without KVM's own answer nothing about the guest is known.
        failure = c.snap.failure(Steps.SUPPORTED_CPUID)
        why = f"{failure.step} failed ({failure.errno_name or 'no errno'})" if failure else ""
        v.make_unknown([why or "KVM_GET_SUPPORTED_CPUID was not answered"])
    elif unknown and not kvm:
        # Not supported, and whether KVM emulates it is unknown: so is what a guest gets.
        v.make_unknown(unknown)
    return v


def apply_effect(v: Verdict, q: Quirk) -> None:
    if q.effect is QuirkEffect.REMOVE:
        v.effective = False
        v.status = FeatureStatus.REMOVED_BY_QUIRK if v.kvm else FeatureStatus.UNSUPPORTED
    elif q.effect is QuirkEffect.ADD:
        v.effective = True
        v.status = FeatureStatus.ADDED_BY_QUIRK if not v.kvm else FeatureStatus.SUPPORTED
    elif q.effect is QuirkEffect.OPT_IN:
        v.effective = True
        v.status = FeatureStatus.OPT_IN
    elif q.effect is QuirkEffect.EMULATED:
        v.effective = True
        v.status = FeatureStatus.EMULATED
    elif q.effect is QuirkEffect.RUNTIME:
        v.status = FeatureStatus.RUNTIME
        if q.effective is not None:
            v.effective = q.effective
    v.quirks.append(q.id)
    v.reasons.append(q.reason)
    for cit in q.citation:
        if cit not in v.citations:
            v.citations.append(cit)


def vendor_mismatch(c: Ctx, q: Quirk) -> str | None:
    """Why a vendor-scoped record cannot apply on this host, or None when it may."""
    if q.vendor is None or q.vendor is c.vendor:
        return None
    if c.vendor is Vendor.OTHER:
        return (
            f"host vendor not recognised as Intel or AMD: this {q.vendor.display}-only record "
            "is not applied"
        )
    return f"{c.vendor.display} host: this record concerns {q.vendor.display} hosts only"


def quirks_for(c: Ctx, records: Iterable[Quirk]) -> dict[Loc, list[Quirk]]:
    """Which records target each location (static bits plus computed targets), in record
    order: when two records touch one bit, the later one's effect wins."""
    out: dict[Loc, list[Quirk]] = {}
    for q in records:
        locs = q.bits + (q.targets(c) if q.targets else ())
        for loc in dict.fromkeys(locs):
            out.setdefault(loc, []).append(q)
    return out


#: effects that change what a guest gets; a NOTE changes nothing, so an unknown fact read
#: by a NOTE's condition leaves the answer alone
_DECIDING = frozenset(FEATURE_EFFECTS - {QuirkEffect.NOTE})


def evaluate(c: Ctx, loc: Loc, records: Iterable[Quirk]) -> Verdict:
    v = base_verdict(c, loc)
    for q in records:
        mismatch = vendor_mismatch(c, q)
        if mismatch is not None:
            v.steps.append(Step(q, False, mismatch))
            continue
        c.collect_unknowns()
        applied, evidence = q.test(c, loc)
        unknown = c.collect_unknowns()
        if unknown and q.effect in _DECIDING:
            v.steps.append(Step(q, None, f"{evidence}; could not ask: {'; '.join(unknown)}"))
            v.make_unknown(unknown)
            continue
        v.steps.append(Step(q, applied, evidence))
        if applied and v.status is not FeatureStatus.UNKNOWN:
            apply_effect(v, q)
    return v
