"""One host as fleet tools see it: the facts behind ``kvmprobe fact`` (Ansible's facts.d),
``kvmprobe metrics`` (Prometheus) and ``kvmprobe nfd`` (node-feature-discovery labels).

``host_facts(snap, irqchips)`` gathers, from one Snapshot:

* whether KVM is usable (``doctor.usable``: the expected API version and a VM could be
  created), the API version, the doctor's checks and verdict, the probe errors;
* per VMM set-up (irqchip mode): every named CPUID feature with its effective answer (None:
  unknown) and the guest's x86-64 psABI level (``levels.psabi_level`` over the effective
  answers, ``answers.answer_from_status``);
* the host CPU's own x86-64 level, from its CPUID, or from the /proc/cpuinfo flags when its
  CPUID could not be read (``LevelSource`` says which);
* the capability values of ``knowledge.fleet.FLEET_CAPS``;
* the feature-MSR bits (``MsrBitFact``): every named single bit of a plain-bits feature MSR
  KVM reports set (``msr_features.advertised_refs``), plus any bit asked for by name, each
  with ``compare.msr_bit_answer``'s answer: given only when KVM lists the MSR, reports the bit
  set and a vCPU took it; unknown without the vCPU verification; not given when refused.
  These do not depend on the irqchip set-up, so they belong to the host.

Unknown stays unknown. When KVM_GET_SUPPORTED_CPUID gave no answer (or the probe never ran),
no feature is known: the set-up's ``cpuid_known`` is False and its features are empty, rather
than answers derived from nothing. A level is known only when it is decided: the first level
not reached has a row answered "no"; when every row keeping the guest from it is unknown,
the level is None.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from kvmprobe.analysis.answers import YES, Answer, answers_from_cpuid, no
from kvmprobe.analysis.doctor import DoctorReport, diagnose, usable
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.levels import LevelReport, psabi_level, requirements
from kvmprobe.analysis.msr import BitRef, MsrBit, lookup_bit, msr_name
from kvmprobe.analysis.quirks import Options
from kvmprobe.frozen import frozen
from kvmprobe.knowledge.fleet import FLEET_CAPS, FleetCap
from kvmprobe.snapshot import ProbeError, Snapshot
from kvmprobe.vocab import (
    FeatureStatus,
    Irqchip,
    LevelSource,
    NotOfferedReason,
    Offered,
    PsabiLevel,
    RequirementKind,
)


@frozen
class FeatureFact:
    """One named CPUID feature in one set-up."""

    name: str  # kvmprobe's feature name (the Linux /proc/cpuinfo flag where Linux has one)
    qemu: str | None
    status: FeatureStatus
    effective: bool | None  # None: unknown


@frozen
class SetupFacts:
    """What a guest can be given in one VMM set-up."""

    irqchip: Irqchip
    #: KVM_GET_SUPPORTED_CPUID answered; when False, ``features`` is empty and the level None
    cpuid_known: bool
    #: the guest's x86-64 level; None when it is not decided (an unknown answer could lift it)
    level: PsabiLevel | None
    features: tuple[FeatureFact, ...]

    @property
    def effective(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.effective is True)

    @property
    def not_effective(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.effective is False)

    @property
    def unknown(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.effective is None)


@frozen
class CapFact:
    """A capability value a fleet watches; ``value`` None when it is unknown."""

    cap: FleetCap
    number: int
    value: int | None
    #: why the value is unknown (the failed step), or "not probed"; None when known
    unknown_because: str | None


@frozen
class MsrBitFact:
    """One feature-MSR bit and whether a guest is given it."""

    #: QEMU's spelling (mds-no) where it names this bit alone, else kvmprobe's display name
    #: in lower case with dashes (its-no); ``msr.lookup_bit`` takes either
    name: str
    qemu: str | None
    #: the Linux macro (ARCH_CAP_MDS_NO), None when only QEMU names it
    kernel: str | None
    #: the MSR KVM lists that carries the bit (the first of the bit's MSRs when none is listed)
    msr: int
    msr_name: str
    bit: int
    #: here only because it was asked for by name (``host_facts(msr_bits=...)``): not one of
    #: the plain bits KVM reports set (it may be clear, unknown, or a VMX control)
    asked: bool
    effective: bool | None  # None: unknown
    why: str


@frozen
class HostFacts:
    usable: bool
    api_version: int | None
    #: the probe of the device ran (False: only host facts, e.g. /dev/kvm missing)
    probed: bool
    kernel_release: str
    #: the kvmprobe version that recorded the snapshot
    recorded_by: str
    recorded_at: str
    #: "live", or the snapshot file it was loaded from
    source: str
    device: str
    setups: tuple[SetupFacts, ...]
    #: the host CPU's own level; None when neither its CPUID nor its flags are known
    host_level: PsabiLevel | None
    host_level_source: LevelSource | None
    caps: tuple[CapFact, ...]
    doctor: DoctorReport
    errors: tuple[ProbeError, ...]
    #: KVM_GET_MSR_FEATURE_INDEX_LIST answered (False: which bits KVM reports is unknown)
    msr_known: bool = False
    #: the advertised feature-MSR bits, then the other bits asked for by name
    msr_bits: tuple[MsrBitFact, ...] = ()

    @property
    def msr_advertised(self) -> tuple[MsrBitFact, ...]:
        """The plain feature-MSR bits KVM reports set (not the ones only asked for)."""
        return tuple(b for b in self.msr_bits if not b.asked)

    def setup(self, irqchip: Irqchip) -> SetupFacts:
        for s in self.setups:
            if s.irqchip is irqchip:
                return s
        raise KeyError(irqchip)


def decided_level(report: LevelReport) -> PsabiLevel | None:
    """The level of a report when it is decided: the first level not reached has a row
    answered "no" (not only unknown ones). None when an unknown answer could lift it."""
    nxt = report.next_level
    if nxt is None:
        return report.highest
    if any(s.answer.offered is Offered.NO for s in nxt.missing):
        return report.highest
    return None


def setup_facts(snap: Snapshot, irqchip: Irqchip) -> SetupFacts:
    """The effective features and the guest level for one irqchip mode."""
    if snap.supported_cpuid is None:
        # The effective analysis needs KVM's answer; without it nothing about the guest is known.
        return SetupFacts(irqchip, False, None, ())
    a = analyse(snap, Options(irqchip=irqchip))
    feats = tuple(
        FeatureFact(r.feature.name, r.feature.qemu_name, r.verdict.status, r.verdict.effective)
        for r in a.features
        if r.feature.known
    )
    # The same answers as the cpuid report's level: a feature KVM only emulates does not meet
    # a level (KVM traps every use).
    from kvmprobe.analysis.guest import guest_answers

    report = psabi_level(guest_answers(a))
    return SetupFacts(irqchip, True, decided_level(report), feats)


# psABI rows that read XCR0 state, and the /proc/cpuinfo flag that stands for that state:
# Linux shows avx and avx512f only when XSAVE enables their register state (it clears a
# feature whose state components are not all enabled), and SSE state whenever it uses XSAVE.
_STATE_FLAG = {
    "xcr0_sse": "xsave",
    "xcr0_avx": "avx",
    "xcr0_avx512_opmask": "avx512f",
    "xcr0_avx512_zmm_hi256": "avx512f",
    "xcr0_avx512_hi16_zmm": "avx512f",
}


def cpuinfo_answers(flags: Iterable[str]) -> dict[str, Answer]:
    """The psABI rows answered from /proc/cpuinfo flags: a flag Linux shows is yes, a flag it
    does not show is no (Linux did not enable it). XCR0-state rows follow the flag that
    stands for the state (``_STATE_FLAG``)."""
    have = set(flags)
    out: dict[str, Answer] = {}
    for req in requirements():
        flag = req.feature
        if req.kind is RequirementKind.XSAVE_STATE:
            flag = _STATE_FLAG.get(req.feature, req.feature)
        out[req.feature] = YES if flag in have else no(NotOfferedReason.UNSUPPORTED)
    return out


def host_level(snap: Snapshot) -> tuple[PsabiLevel | None, LevelSource | None]:
    """The host CPU's own level and where it was read from."""
    if snap.host.cpuid is not None:
        return decided_level(psabi_level(answers_from_cpuid(snap.host.cpuid))), LevelSource.CPUID
    if snap.host.cpuinfo_flags:
        report = psabi_level(cpuinfo_answers(snap.host.cpuinfo_flags))
        return report.highest, LevelSource.CPUINFO
    return None, None


def cap_facts(snap: Snapshot, caps: Iterable[FleetCap] = FLEET_CAPS) -> tuple[CapFact, ...]:
    from kvmprobe.tables import caps_data

    out: list[CapFact] = []
    for c in caps:
        number = int(getattr(caps_data, c.name))
        value = snap.cap(number, c.scope)
        why: str | None = None
        if value is None:
            failure = snap.cap_failure(number, c.scope)
            why = failure.step if failure is not None else "not probed"
        out.append(CapFact(c, number, value, why))
    return tuple(out)


def bit_name(bit: MsrBit) -> str:
    """The name a fleet output gives a feature-MSR bit: QEMU's where it names this bit
    alone, else the display name in lower case with dashes (both found by lookup_bit)."""
    return bit.feature_name


def msr_bit_facts(
    snap: Snapshot, asked: Iterable[BitRef] = ()
) -> tuple[bool, tuple[MsrBitFact, ...]]:
    """Whether KVM's feature-MSR list is known, and the advertised bits with their answers,
    then each bit in ``asked`` that is not among them."""
    from kvmprobe.analysis.compare import msr_bit_answer
    from kvmprobe.analysis.msr_features import advertised_refs
    from kvmprobe.analysis.profile import msr_facts

    facts = msr_facts(snap)
    out: list[MsrBitFact] = []
    seen: set[tuple[int, int, int]] = set()

    def add(ref: BitRef, asked: bool) -> None:
        listed = [i for i in ref.msrs if facts.feature_list is not None and i in facts.feature_list]
        index = (listed or list(ref.msrs) or [-1])[0]
        key = (index, ref.bit.lo, ref.bit.hi)
        if index < 0 or key in seen:
            return
        seen.add(key)
        answer, why = msr_bit_answer(ref, facts)
        effective = None if answer.offered is Offered.UNKNOWN else answer.yes
        b = ref.bit
        out.append(
            MsrBitFact(
                bit_name(b), b.qemu_name, b.kernel_name, index, msr_name(index)[0], b.lo,
                asked, effective, why,
            )
        )  # fmt: skip

    for ref in advertised_refs(facts):
        add(ref, False)
    for ref in asked:
        add(ref, True)
    return facts.feature_list is not None, tuple(out)


def host_facts(
    snap: Snapshot,
    irqchips: Iterable[Irqchip] = (Irqchip.KERNEL,),
    doctor: DoctorReport | None = None,
    msr_bits: Iterable[BitRef] = (),
) -> HostFacts:
    """Everything the fleet outputs show about one host; ``msr_bits``: feature-MSR bits to
    answer also when KVM does not report them set (``metrics --features mds-no``)."""
    modes = tuple(dict.fromkeys(Irqchip(m) for m in irqchips)) or (Irqchip.KERNEL,)
    probed = snap.api_version is not None
    level, source = host_level(snap)
    msr_known, bits = msr_bit_facts(snap, msr_bits)
    return HostFacts(
        usable=usable(snap),
        api_version=snap.api_version,
        probed=probed,
        kernel_release=snap.host.kernel_release,
        recorded_by=snap.kvmprobe_version,
        recorded_at=snap.recorded_at,
        source=snap.source,
        device=snap.device,
        setups=tuple(setup_facts(snap, m) for m in modes),
        host_level=level,
        host_level_source=source,
        caps=cap_facts(snap) if probed else (),
        doctor=doctor if doctor is not None else diagnose(snap),
        errors=snap.errors,
        msr_known=msr_known,
        msr_bits=bits,
    )


def resolve_features(words: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Feature names from a user's words (Linux, QEMU, libvirt or kernel names, a
    well-known spelling, or a location), and the words that name no feature."""
    from kvmprobe.analysis.cpuid_query import resolve

    found: dict[str, str] = {}
    bad: list[str] = []
    for w in words:
        f = resolve(w)[0]
        if f is None:
            bad.append(w)
        else:
            found[f.name] = w
    return found, bad


def resolve_msr_bits(words: Iterable[str]) -> tuple[BitRef, ...]:
    """The feature-MSR bits the words name (any spelling ``msr.lookup_bit`` takes)."""
    out: list[BitRef] = []
    for w in words:
        for ref in lookup_bit(w):
            if ref not in out:
                out.append(ref)
    return tuple(out)


__all__ = [
    "CapFact",
    "FeatureFact",
    "HostFacts",
    "MsrBitFact",
    "SetupFacts",
    "bit_name",
    "cap_facts",
    "cpuinfo_answers",
    "decided_level",
    "host_facts",
    "host_level",
    "msr_bit_facts",
    "resolve_features",
    "resolve_msr_bits",
    "setup_facts",
]
