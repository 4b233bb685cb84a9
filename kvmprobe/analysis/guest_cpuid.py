"""The effective guest CPU as register values: what every exporter (``kvmprobe export``) reads.

``GuestCpu`` is the neutral input of the exporters. One host's analysis produces it
(``guest_cpu_from_analysis``); a baseline of several hosts can produce the same thing. It holds
the vendor and signature, the effective feature locations, and the whole KVM_SET_CPUID2 table
(which also carries every non-feature register: leaf counts, cache and topology leaves, XSAVE
sizes, address widths), with every change made to KVM's own answer and why.

How the table is built from KVM_GET_SUPPORTED_CPUID (the export policy, also in the README):

- a bit the analysis removes (``removed-by-quirk``) is cleared; a bit it adds
  (``added-by-quirk``) is set;
- ``opt-in`` and ``emulated`` bits are set only when the caller asks for them
  (``with_opt_in``): they need the VMM to do something (a promise, an exit it handles, slow
  emulation), so a plain export leaves them out;
- ``runtime`` bits are left as KVM reports them (KVM itself changes them while the guest runs);
- a bit whose answer is ``unknown`` is never set;
- a value a real vCPU refused (the snapshot's verification) is never exported: a refused
  IA32_ARCH_CAPABILITIES or IA32_PERF_CAPABILITIES value clears the CPUID bit that announces
  the MSR (what QEMU's ``-arch-capabilities`` / ``-pdcm`` do); refused XCR0 components are
  cleared from leaf 0xD; a table KVM_SET_CPUID2 refused as a whole cannot be exported at all;
- every feature-MSR bit KVM advertises travels with its answer (``msr_bits``): an exporter
  turns off by name each one a vCPU refused or that no verification vouches for.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.effective import CpuidAnalysis
from kvmprobe.analysis.msr_features import MsrBitResult, advertised_bits
from kvmprobe.analysis.verify import SET_CPUID2, SET_MSRS, SET_XCRS, verification
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.frozen import field, frozen, replace
from kvmprobe.snapshot import CpuidEntry, SetAttempt, Snapshot
from kvmprobe.tables import msr_data
from kvmprobe.vocab import FeatureStatus, Irqchip, Offered

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.baseline import Baseline

ARCH_CAPABILITIES_LOC = cp.feature_loc("X86_FEATURE_ARCH_CAPABILITIES")
PDCM_LOC = cp.feature_loc("X86_FEATURE_PDCM")

#: statuses whose bits are set only when the export asks for opt-in bits
OPT_IN_STATUSES = frozenset({FeatureStatus.OPT_IN, FeatureStatus.EMULATED})


@frozen
class Change:
    """One bit of the exported table that differs from KVM_GET_SUPPORTED_CPUID, or one bit the
    export leaves out on purpose (``action`` "left-out": KVM does not report it either)."""

    loc: cp.Loc
    name: str
    action: str  # "set", "cleared", "left-out"
    status: str  # the FeatureStatus, or "refused" (vCPU verification) / "unplaced"
    reason: str

    @property
    def where(self) -> str:
        return cp.fmt_loc(*self.loc)


@frozen
class GuestCpu:
    """The effective guest CPU, ready for export."""

    vendor: str | None  # leaf 0's vendor string, e.g. "AuthenticAMD"
    signature: tuple[int, int, int] | None  # (family, model, stepping) of leaf 1 EAX
    #: every feature location whose bit is set in ``entries`` (named or not)
    features: frozenset[cp.Loc]
    #: the KVM_SET_CPUID2 table
    entries: tuple[CpuidEntry, ...]
    changes: tuple[Change, ...] = ()
    with_opt_in: bool = False
    irqchip: str = "kernel"
    disable_exits: tuple[str, ...] = ()
    #: MSRs whose advertised value a vCPU refused (index -> refused bit names): a VMM must not
    #: copy KVM's advertisement of them
    refused_msrs: dict[int, tuple[str, ...]] = field(default_factory=dict)
    #: what KVM offers (KVM_GET_SUPPORTED_CPUID): where a VMM's host model starts from
    offered: tuple[CpuidEntry, ...] = ()
    #: feature locations KVM itself changes while the guest runs (``runtime``): an exporter
    #: leaves them to KVM
    runtime: frozenset[cp.Loc] = frozenset()
    #: every named bit of a plain-bits feature MSR that KVM advertises set, with whether a
    #: guest is effectively given it (a refused or unverified bit is not): what an exporter
    #: turns off by name
    msr_bits: tuple[MsrBitResult, ...] = ()
    #: the snapshots of a baseline (``--from`` several times), in the order given; empty for
    #: one host
    hosts: tuple[str, ...] = ()
    #: a baseline's CPUID fields whose value differs between the hosts and that no rule
    #: settles: the value is the first host's (see ``guest_cpu_from_baseline``)
    first_host_fields: tuple[str, ...] = ()
    #: register bits a baseline must write whatever a host's KVM offers ((leaf, subleaf,
    #: register) -> mask): the fields a guest must not see shrink (leaf maxima, address
    #: widths, PMU counters: ``compare.FIELD_RULES``) whose value differs between some host's
    #: offer and the baseline's (a Firecracker template pins them; every other field is
    #: left as each host's KVM and VMM make it)
    pinned: dict[tuple[int, int, str], int] = field(default_factory=dict)

    @property
    def is_baseline(self) -> bool:
        return len(self.hosts) > 1

    def has(self, loc: cp.Loc) -> bool:
        return loc in self.features

    def names(self) -> list[str]:
        """The effective features' Linux names (locations for bits no table row names)."""
        table = cp.by_loc()
        return [
            table[loc].name if loc in table else cp.fmt_loc(*loc) for loc in sorted(self.features)
        ]


def _no_table(why: str) -> KvmprobeError:
    return KvmprobeError(
        f"nothing to export: {why}",
        "record the snapshot on a host where /dev/kvm answers KVM_GET_SUPPORTED_CPUID "
        "('kvmprobe doctor' says why it does not)",
    )


def guest_cpu_from_analysis(a: CpuidAnalysis, *, with_opt_in: bool = False) -> GuestCpu:
    """The effective guest CPU of one host's analysis (see the module text for the policy).

    Raises KvmprobeError when there is nothing to export (no KVM_GET_SUPPORTED_CPUID answer,
    or a vCPU refused KVM's own table)."""
    snap = a.snap
    if not snap.supported_cpuid:
        raise _no_table("the snapshot holds no KVM_GET_SUPPORTED_CPUID answer")
    v = verification(snap)
    for r in v.refusals:
        if r.attempt.what == SET_CPUID2:
            raise KvmprobeError(
                "a vCPU refused KVM's own KVM_GET_SUPPORTED_CPUID table (KVM_SET_CPUID2)",
                "no table derived from it can be trusted here; see 'kvmprobe doctor'",
                ExitStatus.CHECK_FAILED,
            )
    regs: dict[tuple[int, int], list[int]] = {}
    order: list[CpuidEntry] = []
    view = cp.CpuidView(snap.supported_cpuid)
    for e in snap.supported_cpuid:
        key = (e.function, e.index)
        if key not in regs:
            regs[key] = [e.eax, e.ebx, e.ecx, e.edx]
            order.append(e)

    def slot(loc: cp.Loc) -> list[int] | None:
        e = view.entry(loc[0], loc[1])
        return None if e is None else regs[(e.function, e.index)]

    def put(loc: cp.Loc, on: bool) -> bool:
        s = slot(loc)
        if s is None:
            return False
        i = cp.REGISTERS.index(loc[2])
        s[i] = s[i] | (1 << loc[3]) if on else s[i] & ~(1 << loc[3])
        return True

    def get(loc: cp.Loc) -> bool:
        s = slot(loc)
        return bool(s is not None and s[cp.REGISTERS.index(loc[2])] >> loc[3] & 1)

    changes: list[Change] = []
    for fr in a.features:
        f, verdict = fr.feature, fr.verdict
        st = verdict.status
        kvm_has = get(f.loc)
        want: bool | None  # None: leave as KVM reports it
        if st is FeatureStatus.UNKNOWN or st is FeatureStatus.REMOVED_BY_QUIRK:
            want = False
        elif st is FeatureStatus.ADDED_BY_QUIRK:
            want = True
        elif st in OPT_IN_STATUSES:
            want = bool(verdict.effective) if with_opt_in else False
            if not with_opt_in and verdict.effective and not kvm_has:
                changes.append(
                    Change(f.loc, f.name, "left-out", st.value,
                           f"{verdict.reason} (export with --with-opt-in to include it)")
                )  # fmt: skip
        else:
            want = None
        if want is None or want == kvm_has:
            continue
        if not put(f.loc, want):
            changes.append(
                Change(f.loc, f.name, "left-out", "unplaced",
                       f"KVM's table has no leaf {f.leaf:#x}.{f.subleaf} to carry it")
            )  # fmt: skip
            continue
        changes.append(
            Change(f.loc, f.name, "set" if want else "cleared", st.value, verdict.reason)
        )

    refused: dict[int, tuple[str, ...]] = {}
    for r in v.refusals:
        at = r.attempt  # an MSR or XCR0 refusal does not depend on the irqchip set-up
        if at.what == SET_MSRS and at.target is not None:
            refused[at.target] = tuple(b.name for b in r.bits)
            loc = {
                msr_data.MSR_IA32_ARCH_CAPABILITIES: ARCH_CAPABILITIES_LOC,
                msr_data.MSR_IA32_PERF_CAPABILITIES: PDCM_LOC,
            }.get(at.target)
            if loc is not None and get(loc):
                put(loc, False)
                changes.append(
                    Change(loc, cp.by_loc()[loc].name, "cleared", "refused",
                           f"a vCPU refused {r.what} = {r.value_text} that KVM advertises; "
                           "without this bit no guest expects the MSR")
                )  # fmt: skip
        elif at.what == SET_XCRS:
            for bit in at.refused_bits:
                xloc = (0xD, 0, "eax" if bit < 32 else "edx", bit % 32)
                if get(xloc):
                    put(xloc, False)
                    changes.append(
                        Change(xloc, f"xcr0 component {bit}", "cleared", "refused",
                               f"a vCPU refused XCR0 component {bit} that KVM advertises")
                    )  # fmt: skip

    entries = tuple(
        CpuidEntry(e.function, e.index, e.flags, *regs[(e.function, e.index)]) for e in order
    )
    final = cp.CpuidView(entries)
    feats = frozenset(x.feature.loc for x in a.features if final.has_loc(x.feature.loc))
    fms = cp.family_model_stepping(final)
    return GuestCpu(
        vendor=cp.vendor_string(final, 0),
        signature=fms,
        features=feats,
        entries=entries,
        changes=tuple(changes),
        with_opt_in=with_opt_in,
        irqchip=a.options.irqchip.value,
        disable_exits=tuple(sorted(x.value for x in a.options.disable_exits)),
        refused_msrs=refused,
        offered=tuple(snap.supported_cpuid),
        runtime=frozenset(
            x.feature.loc for x in a.features if x.verdict.status is FeatureStatus.RUNTIME
        ),
        msr_bits=advertised_bits(a),
    )


def vcpu_calls(snap: Snapshot, g: GuestCpu) -> tuple[SetAttempt, ...]:
    """The vCPU calls that tried this very table (its KVM_SET_CPUID2, then its XCR0): live,
    the export tried it itself; from a snapshot, ``record`` tried each irqchip mode's plain
    table (no opt-in bits, no exits disabled), and KVM's own table when they are equal.
    Empty when no attempt applies (a baseline, an older snapshot, another table)."""
    if g.is_baseline or (snap.source != "live" and (g.with_opt_in or g.disable_exits)):
        return ()
    v = verification(snap)
    calls = v.effective_table(g.irqchip)
    if not calls and g.entries == snap.supported_cpuid:  # KVM's own table: tried as such
        calls = tuple(a for a in v.attempts if a.what in (SET_CPUID2, SET_XCRS))
    return calls


def effective_tables(snap: Snapshot) -> dict[Irqchip, tuple[CpuidEntry, ...]]:
    """The table a plain ``kvmprobe export`` gives for each irqchip mode (no opt-in bits, no
    exits disabled): what ``kvmprobe record`` tries on a vCPU of each set-up. A mode with
    nothing to export is left out."""
    from kvmprobe.analysis.effective import analyse
    from kvmprobe.analysis.quirks import Options

    out: dict[Irqchip, tuple[CpuidEntry, ...]] = {}
    for mode in Irqchip:
        try:
            out[mode] = guest_cpu_from_analysis(analyse(snap, Options(irqchip=mode))).entries
        except KvmprobeError:
            continue
    return out


#: fields that are sizes a guest allocates by: the largest value among the hosts is safe (KVM
#: also recomputes the XSAVE sizes from the guest's XCR0 / XSS while it runs)
LARGEST_IS_SAFE = frozenset({"xsave_size_enabled", "xsave_size_max", "xsaves_size_enabled"})

#: fields that describe the CPU that ran CPUID (its APIC IDs, AMD's core and node of that CPU):
#: a VMM writes each vCPU's own values there, so a difference between the hosts' answers is no
#: difference a guest sees, and it is not named as one
PER_VCPU_FIELDS = frozenset(
    {"initial_apic_id", "topo_x2apic_id", "topo2_x2apic_id", "ext_apic_id", "core_id", "node_id"}
)


def guest_cpu_from_baseline(b: Baseline, hosts: Sequence[GuestCpu]) -> GuestCpu:
    """The baseline guest of several hosts, ready for export (the baseline export policy,
    also in the README).

    Features: those of the baseline (``kvmprobe baseline``: every host gives them, and their
    dependencies stay whole) that every host's own export also carries (the export policy
    above: opt-in bits only when asked, nothing a vCPU refused). ``offered`` is what every
    host's KVM offers (a VMM may add only that with ``enforce``); ``runtime`` is every bit
    some host's KVM changes while the guest runs.

    The table (``entries``), register by register:

    - leaves: those every host's table has, none beyond the smallest maximum basic and
      extended leaf, and of leaf 0xD only the XSAVE components the baseline keeps;
    - feature bits (every bit of a register that holds features and no multi-bit field, named
      or not): the baseline's;
    - fields (``cpuid.fields()``): the baseline's value where there is one (every host's
      common value; the smallest where a smaller value is safe: leaf maxima, address
      widths, PMU counters); XSAVE sizes: the largest (a guest allocates by them; KVM
      recomputes them anyway); any other field whose value differs between the hosts
      (family/model/stepping, cache and topology descriptions): the first host's, named in
      ``first_host_fields`` and in every export's comments, except the per-vCPU ones
      (``PER_VCPU_FIELDS``: APIC IDs, which a VMM sets for each vCPU);
    - every other register (brand string, cache and topology leaves with no field row): the
      first host's;
    - leaf 0xD: XCR0/XSS as the baseline keeps them, each component at its common size and
      offset.

    Feature-MSR bits (``msr_bits``): a bit any host's KVM advertises, given only when every
    host gives it (``compare.msr_bit_answer`` per host); unknown on any host means not given,
    and the answer says where. Raises KvmprobeError when the hosts share no CPUID vendor: no
    guest can move between them."""
    if b.vendor is None or not hosts:
        vendors = ", ".join(f"{v} ({n} host{'' if n == 1 else 's'})" for v, n in b.vendors.items())
        raise KvmprobeError(
            f"the snapshots have no common CPUID vendor: {vendors}",
            "a guest cannot move between vendors; export each vendor's hosts separately",
            ExitStatus.CHECK_FAILED,
        )
    from kvmprobe.analysis.profile import feature_space, positions

    space = feature_space()
    base_locs = {space.loc(p) for p in positions(b.features)}
    feats = frozenset.intersection(frozenset(base_locs), *(g.features for g in hosts))
    first = hosts[0]
    tables = [{(e.function, e.index): e for e in reversed(g.entries)} for g in hosts]
    common_keys = set.intersection(*(set(t) for t in tables))
    max_basic = b.common_fields.get("max_basic_leaf")
    max_ext = b.common_fields.get("max_ext_leaf")
    components = {c.number for c in b.xsave_components}
    baseline_regs = {(e.function, e.index): e for e in b.registers()}

    def beyond(leaf: int) -> bool:
        if leaf < 0x40000000:
            return max_basic is not None and leaf > max_basic
        if leaf >= 0x80000000:
            return max_ext is not None and leaf > max_ext
        return False

    regs: dict[tuple[int, int], list[int]] = {}
    order: list[CpuidEntry] = []
    for e in first.entries:
        key = (e.function, e.index)
        if key in regs or key not in common_keys or beyond(e.function):
            continue
        if e.function == 0xD and e.index >= 2:
            if e.index not in components:
                continue
            c = baseline_regs.get(key)
            regs[key] = [0, 0, 0, 0] if c is None else [c.eax, c.ebx, c.ecx, c.edx]
        else:
            regs[key] = [e.eax, e.ebx, e.ecx, e.edx]
        order.append(e)
    # feature bits: the baseline's
    for i, (leaf, sub, reg) in enumerate(space.slots):
        r = regs.get((leaf, sub))
        if r is None:
            continue
        want = sum(1 << loc[3] for loc in feats if loc[:3] == (leaf, sub, reg))
        j = cp.REGISTERS.index(reg)
        r[j] = (r[j] & ~space.space[i]) | want
    # fields: the baseline's value, the largest size, or the first host's
    from kvmprobe.analysis.compare import FIELD_RULES
    from kvmprobe.vocab import CompareRule

    pin_rules = {r.name for r in FIELD_RULES if r.rule is CompareRule.NOT_LESS}
    offered_views = [cp.CpuidView(g.offered) for g in hosts]
    first_host: list[str] = []
    pinned: dict[tuple[int, int, str], int] = {}
    for fd in cp.fields():
        key = (fd.leaf, fd.subleaf)
        r = regs.get(key)
        if r is None or (fd.leaf == 0xD and fd.subleaf >= 2):
            continue
        j = cp.REGISTERS.index(fd.register)
        mask = ((1 << (fd.hi - fd.lo + 1)) - 1) << fd.lo
        values = [getattr(t[key], fd.register) & mask for t in tables]
        m, v = b.field_bits.get((fd.leaf, fd.subleaf, fd.register), (0, 0))
        if len(set(values)) == 1:  # the hosts' tables agree (GuestPhysBits 0 stays 0)
            value = values[0]
        elif m & mask == mask:
            value = v & mask
        elif fd.name in LARGEST_IS_SAFE:
            value = max(values)
        else:
            value = r[j] & mask
            if len(set(values)) > 1 and fd.name not in PER_VCPU_FIELDS:
                first_host.append(fd.name)
        r[j] = (r[j] & ~mask) | value
        offered = [
            getattr(o, fd.register) & mask
            for view in offered_views
            if (o := view.entry(fd.leaf, fd.subleaf)) is not None
        ]
        if fd.name in pin_rules and any(x != value for x in offered):
            slot = (fd.leaf, fd.subleaf, fd.register)
            pinned[slot] = pinned.get(slot, 0) | mask
    entries = tuple(
        CpuidEntry(e.function, e.index, e.flags, *regs[(e.function, e.index)]) for e in order
    )
    common: dict[tuple[int, int], CpuidEntry] = {}
    for i, g in enumerate(hosts):
        seen: dict[tuple[int, int], CpuidEntry] = {}
        for e in g.offered:
            seen.setdefault((e.function, e.index), e)
        if i == 0:
            common = seen
            continue
        common = {
            k: CpuidEntry(k[0], k[1], e.flags, e.eax & o.eax, e.ebx & o.ebx, e.ecx & o.ecx,
                          e.edx & o.edx)
            for k, e in common.items()
            if (o := seen.get(k)) is not None
        }  # fmt: skip
    refused: dict[int, tuple[str, ...]] = {}
    for g in hosts:
        for index, bits in g.refused_msrs.items():
            refused[index] = tuple(sorted(set(refused.get(index, ())) | set(bits)))
    final = cp.CpuidView(entries)
    return GuestCpu(
        vendor=b.vendor,
        signature=cp.family_model_stepping(final),
        features=frozenset(loc for loc in feats if final.has_loc(loc)),
        entries=entries,
        with_opt_in=first.with_opt_in,
        irqchip=first.irqchip,
        disable_exits=first.disable_exits,
        refused_msrs=refused,
        offered=tuple(common.values()),
        runtime=frozenset().union(*(g.runtime for g in hosts)),
        msr_bits=baseline_msr_bits(b, hosts),
        hosts=tuple(b.hosts),
        first_host_fields=tuple(first_host),
        pinned=pinned,
    )


def baseline_msr_bits(b: Baseline, hosts: Sequence[GuestCpu]) -> tuple[MsrBitResult, ...]:
    """Every feature-MSR bit some host's KVM advertises, given only when every host gives it
    (``compare.msr_bit_answer`` over each host's facts): no on any host is no, otherwise
    unknown on any host is unknown (never given); the answer's ``why`` names the hosts."""
    from kvmprobe.analysis.answers import UNKNOWN, YES
    from kvmprobe.analysis.compare import msr_bit_answer

    facts = [f for _name, f in b.msr_hosts()]
    seen: dict[tuple[int | None, str], MsrBitResult] = {}
    for g in hosts:
        for r in g.msr_bits:
            seen.setdefault((r.index, r.bit.name), r)
    out: list[MsrBitResult] = []
    for r in seen.values():
        answers = [msr_bit_answer(r.ref, f) for f in facts]
        per_host = list(zip(b.hosts, answers, strict=True))
        nos = [(h, a, why) for h, (a, why) in per_host if a.offered is Offered.NO]
        unknown = [(h, why) for h, (a, why) in per_host if a.offered is Offered.UNKNOWN]
        if nos:
            host, answer, why = nos[0]
            text = f"not given on {host}: {why}" + (
                f" (and on {len(nos) - 1} more hosts)" if len(nos) > 1 else ""
            )
        elif unknown:
            answer = UNKNOWN
            text = "unknown on " + "; ".join(f"{h}: {why}" for h, why in unknown)
        else:
            answer, text = YES, f"given on every host of the {len(b.hosts)}"
        out.append(replace(r, answer=answer, why=text, attempt=None))
    return tuple(out)


def baseline_notes(g: GuestCpu) -> list[str]:
    """What every export of a baseline says about it, one sentence each (no notes for one
    host): which snapshots, which fields are the first host's, which feature-MSR bits are left
    out because some host does not give them or its answer is unknown."""
    if not g.is_baseline:
        return []
    notes = [f"the baseline of {len(g.hosts)} snapshots: {', '.join(g.hosts)}"]
    if g.first_host_fields:
        notes.append(
            f"CPUID fields whose value differs between the hosts, as the first ({g.hosts[0]}) "
            "has them: " + " ".join(g.first_host_fields)
        )
    unknown = [r.bit.feature_name for r in g.msr_bits if r.effective is None]
    lacking = [r.bit.feature_name for r in g.msr_bits if r.effective is False]
    if unknown:
        notes.append(
            "feature-MSR bits left out of the baseline, unknown on some host (no vCPU "
            "verification vouches for them there): " + " ".join(dict.fromkeys(unknown))
        )
    if lacking:
        notes.append(
            "feature-MSR bits left out of the baseline, not given on some host: "
            + " ".join(dict.fromkeys(lacking))
        )
    return notes
