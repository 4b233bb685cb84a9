"""One host as the fleet questions see it: a compact, picklable ``HostProfile``.

``diff``, ``baseline`` and ``--require`` compare what a guest sees and what a migration needs.
A profile keeps exactly that from one snapshot, analysed for one VMM set-up (Options):

* every CPUID feature bit's effective answer, as bit masks over a fixed "feature space" (each
  register that names features gets 32 positions; see ``FeatureSpace``), with the status and
  quirks of every bit a quirk touched;
* the registers that hold multi-bit fields (leaf maxima, MAXPHYADDR, family/model...);
* the XSAVE state components (size, offset) and the XCR0 mask;
* the capabilities a VMM needs to migrate (``kvmprobe.knowledge.migration``);
* the MSR index list and the feature MSRs (ARCH_CAPABILITIES...);
* the probe errors, so that every unknown names its failed step.

A profile is small (a few kilobytes), so a fleet of ten thousand hosts fits in memory.

The effective answers equal ``analysis.effective.analyse()``'s (tests compare every bit on every
recorded and synthetic host and on randomly altered ones). For a complete snapshot (every CPUID
step answered, no probe error) they are computed the short way: the quirk engine evaluates the
bits its records target (unless every such record is a note, which never decides, or is for
the other CPU vendor, and so never applies), and every other bit keeps KVM's answer, as the
engine's base verdict does (in KVM_GET_SUPPORTED_CPUID: supported; else on the host:
host-only; else unsupported).
A snapshot with any probe error, or without the host's CPUID or KVM_GET_EMULATED_CPUID, goes
through the full ``analyse()``, so its unknown answers are the engine's own.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import cache

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.answers import UNKNOWN, Answer
from kvmprobe.analysis.answers import verdict_answer as verdict_answer  # its old home
from kvmprobe.frozen import frozen
from kvmprobe.snapshot import ProbeError, Snapshot, Steps
from kvmprobe.vocab import FeatureStatus, Vendor

U32 = 0xFFFF_FFFF

# --------------------------------------------------------------------------------------------
# The feature space: one 32-bit slot per register that names CPUID features


@frozen
class FeatureSpace:
    """Positions for every bit of every register the CPUID table names features in.

    Position ``slot * 32 + bit``; ``slots[i]`` is (leaf, subleaf, register). Bits of those
    registers that no row names and no multi-bit field covers are positions too (unnamed bits,
    as ``cpuid.unnamed_bits`` reports them), so an unnamed bit KVM sets is kept and compared."""

    slots: tuple[tuple[int, int, str], ...]
    #: per slot: the bits that are feature positions (named or unnamed; not field bits)
    space: tuple[int, ...]
    #: position -> table row, for named bits
    named: Mapping[int, cp.FeatureDef]
    #: (leaf, subleaf, register) -> slot
    index: Mapping[tuple[int, int, str], int]
    #: every named position as one mask
    named_mask: int
    #: kvmprobe name -> position
    by_name: Mapping[str, int]

    def position(self, loc: cp.Loc) -> int | None:
        slot = self.index.get((loc[0], loc[1], loc[2]))
        if slot is None or not self.space[slot] >> loc[3] & 1:
            return None
        return slot * 32 + loc[3]

    def loc(self, pos: int) -> cp.Loc:
        leaf, sub, reg = self.slots[pos >> 5]
        return (leaf, sub, reg, pos & 31)

    def feature(self, pos: int) -> cp.FeatureDef:
        """The table row of a position, or an unnamed-bit row like ``cpuid.unnamed_bits``'."""
        f = self.named.get(pos)
        if f is not None:
            return f
        leaf, sub, reg, bit = self.loc(pos)
        where = cp.fmt_loc(leaf, sub, reg, bit)
        return cp.FeatureDef(
            leaf, sub, reg, bit, where, None, None, "other",
            "bit not named by kvmprobe's tables", known=False,
        )  # fmt: skip

    def name(self, pos: int) -> str:
        f = self.named.get(pos)
        return f.name if f is not None else cp.fmt_loc(*self.loc(pos))

    def mask_of(self, view: cp.CpuidView) -> int:
        """Every feature position whose bit is set in these entries."""
        out = 0
        space = self.space
        for i, v in enumerate(view.values(self.slots)):
            if v:
                out |= (v & space[i]) << (i * 32)
        return out

    def register_values(self, mask: int) -> dict[tuple[int, int, str], int]:
        """The register values a feature mask stands for (slots with no bit set left out)."""
        out: dict[tuple[int, int, str], int] = {}
        for i, key in enumerate(self.slots):
            v = mask >> (i * 32) & U32
            if v:
                out[key] = v
        return out


@cache
def feature_space() -> FeatureSpace:
    regs = sorted({(f.leaf, f.subleaf, f.register) for f in cp.features()})
    index = {r: i for i, r in enumerate(regs)}
    fields_in: dict[tuple[int, int, str], int] = {}
    for fd in cp.fields():
        key = (fd.leaf, fd.subleaf, fd.register)
        if key in index:
            fields_in[key] = fields_in.get(key, 0) | (((1 << (fd.hi - fd.lo + 1)) - 1) << fd.lo)
    named: dict[int, cp.FeatureDef] = {}
    by_name: dict[str, int] = {}
    named_mask = 0
    for f in cp.features():
        pos = index[(f.leaf, f.subleaf, f.register)] * 32 + f.bit
        named.setdefault(pos, f)
        by_name.setdefault(f.name, pos)
        named_mask |= 1 << pos
    space = []
    for i, r in enumerate(regs):
        named_bits = named_mask >> (i * 32) & U32
        space.append((U32 & ~fields_in.get(r, 0)) | named_bits)
    return FeatureSpace(tuple(regs), tuple(space), named, index, named_mask, by_name)


def positions(mask: int) -> Iterator[int]:
    """The set bits of a mask, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


# --------------------------------------------------------------------------------------------
# Registers that hold fields (leaf maxima, address widths, family/model...)


@cache
def field_slots() -> tuple[tuple[int, int, str], ...]:
    """Every register a multi-bit field of the CPUID table lives in."""
    return tuple(sorted({(fd.leaf, fd.subleaf, fd.register) for fd in cp.fields()}))


@cache
def _field_slot_index() -> dict[tuple[int, int, str], int]:
    return {r: i for i, r in enumerate(field_slots())}


@cache
def field_def(name: str) -> cp.FieldDef:
    for fd in cp.fields():
        if fd.name == name:
            return fd
    raise LookupError(f"field {name!r} is not in kvmprobe.tables.cpuid_data")


# --------------------------------------------------------------------------------------------
# The profile


@frozen
class Override:
    """A bit whose answer is not simply KVM's: what a quirk (or a failed step) made of it."""

    status: FeatureStatus
    #: None: unknown
    effective: bool | None
    quirks: tuple[str, ...] = ()
    #: for an unknown answer: the failed probe steps behind it, as the engine names them
    unknowns: tuple[str, ...] = ()


@frozen
class XsaveComponent:
    """One XSAVE state component of leaf 0xD (subleaf n >= 2) as KVM reports it."""

    number: int
    size: int
    offset: int
    supervisor: bool


@frozen
class MsrFacts:
    """What one host says about its feature MSRs: KVM's list and values, and what a vCPU did
    with them (kvmprobe's verification). Hashable, so a fleet can share equal ones."""

    feature_list: frozenset[int] | None
    values: tuple[tuple[int, int], ...]
    vendor: Vendor = Vendor.OTHER
    #: MSR index -> the advertised bits a vCPU refused (0: it took them all), for every MSR
    #: the verification tried
    refused: tuple[tuple[int, int], ...] = ()
    #: why nothing is known of what a vCPU takes (no verification in the snapshot, or it
    #: failed); None when the verification ran
    unverified: str | None = None

    def value(self, index: int) -> int | None:
        return dict(self.values).get(index)

    def refused_mask(self, index: int) -> int | None:
        return dict(self.refused).get(index)


def msr_facts(snap: Snapshot) -> MsrFacts:
    """The MsrFacts of one snapshot."""
    from kvmprobe.analysis.msr import vendor_of
    from kvmprobe.analysis.verify import refused_mask, verification
    from kvmprobe.snapshot import Steps

    v = verification(snap)
    unverified = None
    if snap.verification is None:
        failure = snap.failure(Steps.VERIFY)
        unverified = (
            f"{failure.step} failed ({failure.errno_name or 'no errno'})"
            if failure is not None
            else "no vCPU verification in this snapshot (record it again)"
        )
    refused = []
    for index in sorted(snap.feature_msrs):
        mask = refused_mask(v, index)
        if mask is not None:
            refused.append((index, mask))
    lst = snap.msr_feature_index_list
    return MsrFacts(
        feature_list=None if lst is None else frozenset(lst),
        values=tuple(sorted(snap.feature_msrs.items())),
        vendor=vendor_of(snap),
        refused=tuple(refused),
        unverified=unverified,
    )


@frozen
class HostProfile:
    """What ``diff``, ``baseline`` and ``--require`` know of one host in one set-up."""

    #: the snapshot file, or the device node a live probe opened (/dev/kvm)
    name: str
    kernel_release: str
    irqchip: str
    disable_exits: tuple[str, ...]
    #: KVM_GET_SUPPORTED_CPUID answered (False: every CPUID answer is unknown)
    cpuid_known: bool
    #: feature positions KVM_GET_SUPPORTED_CPUID / the host / KVM_GET_EMULATED_CPUID set
    kvm: int
    host: int
    emulated: int
    #: the host's CPUID was read; KVM_GET_EMULATED_CPUID was answered
    host_known: bool
    emulated_known: bool
    #: positions a guest in this set-up can be given, and positions whose answer is unknown
    effective: int
    unknown: int
    #: positions a quirk (or a failed step) decided, with what it decided
    overrides: Mapping[int, Override]
    #: KVM's leaf-0 vendor string, and family/model/stepping from leaf 1
    vendor: str | None
    signature: tuple[int, int, int] | None
    #: the registers of field_slots(), from KVM_GET_SUPPORTED_CPUID (None: register absent)
    field_regs: tuple[int | None, ...]
    #: the XCR0 mask of leaf 0xD.0 (None: leaf absent) and the components of leaf 0xD
    xcr0: int | None
    xsave_components: tuple[XsaveComponent, ...]
    #: KVM_X86_XCOMP_GUEST_SUPP (None: not read)
    xcomp_guest_supp: int | None
    #: capability name -> value in its scope (knowledge.migration.CAPS); None: unknown
    caps: Mapping[str, int | None]
    #: KVM_GET_MSR_INDEX_LIST (None: unknown)
    msr_index_list: frozenset[int] | None
    #: KVM_GET_MSR_FEATURE_INDEX_LIST (None: unknown) and the values read
    msr_feature_list: frozenset[int] | None
    feature_msrs: Mapping[int, int]
    errors: tuple[ProbeError, ...] = ()
    #: the CPU vendor as the quirk engine sees it ("intel", "amd", "other")
    vendor_kind: str = "other"
    #: what a vCPU took of the feature MSRs (kvmprobe's verification), as in MsrFacts
    msr_refused: tuple[tuple[int, int], ...] = ()
    msr_unverified: str | None = "not recorded"

    @property
    def msr(self) -> MsrFacts:
        """The feature MSRs with what a vCPU took of them."""
        return MsrFacts(
            feature_list=self.msr_feature_list,
            values=tuple(sorted(self.feature_msrs.items())),
            vendor=Vendor(self.vendor_kind),
            refused=self.msr_refused,
            unverified=self.msr_unverified,
        )

    # -- answers ------------------------------------------------------------------------------
    def status(self, pos: int) -> FeatureStatus:
        o = self.overrides.get(pos)
        if o is not None:
            return o.status
        if not self.cpuid_known:
            return FeatureStatus.UNKNOWN
        if self.kvm >> pos & 1:
            return FeatureStatus.SUPPORTED
        if self.host >> pos & 1:
            return FeatureStatus.HOST_ONLY
        return FeatureStatus.UNSUPPORTED

    def answer(self, pos: int, *, level: bool = False) -> Answer:
        """Offered yes / no (with why) / unknown, for one feature position (``level``: as the
        x86-64 level counts it, see ``verdict_answer``)."""
        if self.unknown >> pos & 1:
            return UNKNOWN
        return verdict_answer(
            self.status(pos),
            bool(self.effective >> pos & 1),
            bool(self.emulated >> pos & 1),
            level=level,
        )

    def answers(
        self, names: Iterable[str] | None = None, *, level: bool = False
    ) -> dict[str, Answer]:
        """kvmprobe feature name -> Answer, for the named features (default: every row)."""
        space = feature_space()
        wanted = space.by_name if names is None else {n: space.by_name[n] for n in names
                                                      if n in space.by_name}  # fmt: skip
        return {n: self.answer(p, level=level) for n, p in wanted.items()}

    @property
    def emulated_offered(self) -> int:
        """Positions a guest is given only through KVM's instruction emulator."""
        out = 0
        for pos, o in self.overrides.items():
            if o.status is FeatureStatus.EMULATED and o.effective:
                out |= 1 << pos
        return out

    def field(self, name: str) -> int | None:
        fd = field_def(name)
        v = self.field_regs[_field_slot_index()[(fd.leaf, fd.subleaf, fd.register)]]
        return None if v is None else fd.extract(v)

    def unknown_why(self, pos: int) -> str:
        """Why a position's answer is unknown: the failed probe steps behind it."""
        o = self.overrides.get(pos)
        if o is not None and o.unknowns:
            return "; ".join(o.unknowns)
        return self.cpuid_error() or "a probe step it depends on failed"

    def cpuid_error(self) -> str | None:
        """The failed step behind unknown CPUID answers, or None."""
        for e in self.errors:
            if e.step == Steps.SUPPORTED_CPUID:
                return _step_text(e)
        return None if self.cpuid_known else "KVM_GET_SUPPORTED_CPUID was not answered"


def _step_text(e: ProbeError) -> str:
    errno = f" ({e.errno_name})" if e.errno is not None else ""
    return f"{e.step} failed{errno}: {e.message}" if e.message else f"{e.step} failed{errno}"


def _complete(snap: Snapshot) -> bool:
    """Whether the short way gives the engine's answers: every CPUID step answered and no
    probe error anywhere (a failed step may make answers unknown)."""
    return (
        not snap.errors
        and snap.supported_cpuid is not None
        and snap.emulated_cpuid is not None
        and snap.host.cpuid is not None
    )


def cap_value(snap: Snapshot, number: int, scope: str = "system") -> int | None:
    """A capability's value, or None when its scope was not probed or its check failed."""
    if number >= snap.cap_limit:
        return None  # never asked
    return snap.cap(number, scope)


def build(snap: Snapshot, options: object | None = None) -> HostProfile:
    """The profile of one snapshot for one set-up (``analysis.quirks.Options``)."""
    from kvmprobe.analysis import quirks as qk
    from kvmprobe.analysis.quirks.engine import vendor_mismatch
    from kvmprobe.vocab import QuirkEffect

    NOTE = QuirkEffect.NOTE
    from kvmprobe.knowledge.migration import CAPS

    opts = options if isinstance(options, qk.Options) else qk.Options()
    space = feature_space()
    ctx = qk.Ctx(snap, opts)
    kvm = space.mask_of(ctx.kgsc)
    host = space.mask_of(ctx.host) if ctx.host is not None else 0
    emulated = space.mask_of(ctx.kgec)
    overrides: dict[int, Override] = {}
    unknown = 0
    if snap.supported_cpuid is not None and _complete(snap):
        effective = kvm
        targeted = qk.quirks_for(ctx, qk.QUIRKS)
        for loc, records in targeted.items():
            pos = space.position(loc)
            if pos is None:
                continue
            if pos not in space.named and not (kvm | emulated) >> pos & 1:
                continue  # analyse() reports unnamed bits only when KVM sets them
            if all(q.effect is NOTE or vendor_mismatch(ctx, q) is not None for q in records):
                # records for the other vendor never apply and notes never decide (the
                # engine's own rules): the base verdict stands
                continue
            v = qk.evaluate(ctx, loc, records)
            if v.status is FeatureStatus.UNKNOWN:
                # a record's condition read a fact the snapshot lacks (e.g. no vCPU
                # verification in a format-1 snapshot): the engine's unknown answer
                effective = _set(effective, pos, False)
                unknown |= 1 << pos
                overrides[pos] = Override(v.status, None, tuple(v.quirks), tuple(v.unknowns))
                continue
            if not v.quirks:
                continue  # no record applied: the verdict is the base one
            effective = _set(effective, pos, bool(v.effective))
            overrides[pos] = Override(v.status, bool(v.effective), tuple(v.quirks))
    elif snap.supported_cpuid is not None:
        effective, unknown = _from_analysis(snap, opts, space, kvm, host, overrides)
    else:
        effective, unknown = 0, space.named_mask
    fview = ctx.kgsc
    field_regs = tuple(fview.values(field_slots()))
    components = tuple(
        sorted(
            (
                XsaveComponent(e.index, e.eax, e.ebx, bool(e.ecx & 1))
                for e in fview.entries
                if e.function == 0xD and 2 <= e.index < 64 and e.eax
            ),
            key=lambda x: x.number,
        )
    )
    from kvmprobe.tables.caps_data import KVM_X86_GRP_SYSTEM, KVM_X86_XCOMP_GUEST_SUPP

    caps = {c.name: cap_value(snap, c.number, c.scope) for c in CAPS}
    facts = msr_facts(snap)
    return HostProfile(
        name=snap.device if snap.source == "live" else snap.source,
        kernel_release=snap.host.kernel_release,
        irqchip=str(opts.irqchip),
        disable_exits=tuple(sorted(str(x) for x in opts.disable_exits)),
        cpuid_known=snap.supported_cpuid is not None,
        kvm=kvm,
        host=host,
        emulated=emulated,
        host_known=snap.host.cpuid is not None,
        emulated_known=snap.emulated_cpuid is not None,
        effective=effective,
        unknown=unknown,
        overrides=overrides,
        vendor=cp.vendor_string(fview, 0) if snap.supported_cpuid is not None else None,
        signature=cp.family_model_stepping(fview),
        field_regs=field_regs,
        xcr0=cp.xcr0_mask(fview),
        xsave_components=components,
        xcomp_guest_supp=snap.attr(KVM_X86_GRP_SYSTEM, KVM_X86_XCOMP_GUEST_SUPP),
        caps=caps,
        msr_index_list=None if snap.msr_index_list is None else frozenset(snap.msr_index_list),
        msr_feature_list=(
            None if snap.msr_feature_index_list is None else frozenset(snap.msr_feature_index_list)
        ),
        feature_msrs=dict(snap.feature_msrs),
        errors=snap.errors,
        vendor_kind=str(ctx.vendor),
        msr_refused=facts.refused,
        msr_unverified=facts.unverified,
    )


def _set(mask: int, pos: int, value: bool) -> int:
    return mask | (1 << pos) if value else mask & ~(1 << pos)


def _from_analysis(
    snap: Snapshot,
    opts: object,
    space: FeatureSpace,
    kvm: int,
    host: int,
    overrides: dict[int, Override],
) -> tuple[int, int]:
    """Effective and unknown masks from the full analysis (snapshots with failed steps)."""
    from kvmprobe.analysis import quirks as qk
    from kvmprobe.analysis.effective import analyse

    assert isinstance(opts, qk.Options)
    a = analyse(snap, opts)
    effective = unknown = 0
    for r in a.features:
        pos = space.position(r.feature.loc)
        if pos is None:
            continue
        v = r.verdict
        eff: bool | None = v.effective  # None once the engine marks unknown answers
        if eff is None or v.status is FeatureStatus.UNKNOWN:
            unknown |= 1 << pos
        elif eff:
            effective |= 1 << pos
        in_kvm = bool(kvm >> pos & 1)
        base = (
            FeatureStatus.SUPPORTED
            if in_kvm
            else FeatureStatus.HOST_ONLY
            if host >> pos & 1
            else FeatureStatus.UNSUPPORTED
        )
        if v.status is not base or v.quirks or eff is not in_kvm:
            known_eff = None if (eff is None or v.status is FeatureStatus.UNKNOWN) else bool(eff)
            unknowns = tuple(getattr(v, "unknowns", ()))
            overrides[pos] = Override(v.status, known_eff, tuple(v.quirks), unknowns)
    return effective, unknown
