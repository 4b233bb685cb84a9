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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.effective import CpuidAnalysis
from kvmprobe.analysis.msr_features import MsrBitResult, advertised_bits
from kvmprobe.analysis.verify import SET_CPUID2, SET_MSRS, SET_XCRS, verification
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.snapshot import CpuidEntry, Snapshot
from kvmprobe.tables import msr_data
from kvmprobe.vocab import FeatureStatus, Irqchip

if TYPE_CHECKING:
    from kvmprobe.analysis.baseline import Baseline

ARCH_CAPABILITIES_LOC = cp.feature_loc("X86_FEATURE_ARCH_CAPABILITIES")
PDCM_LOC = cp.feature_loc("X86_FEATURE_PDCM")

#: statuses whose bits are set only when the export asks for opt-in bits
OPT_IN_STATUSES = frozenset({FeatureStatus.OPT_IN, FeatureStatus.EMULATED})


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


def guest_cpu_from_baseline(b: Baseline, hosts: Sequence[GuestCpu]) -> GuestCpu:
    """The baseline guest of several hosts, ready for export.

    Its features are those of the baseline (``kvmprobe baseline``: every host gives them, and
    their dependencies stay whole) that every host's own export also carries (the export
    policy above: opt-in bits only when asked, nothing a vCPU refused); ``offered`` is what
    every host's KVM offers (a VMM may add only that with ``enforce``); ``runtime`` is every
    bit some host's KVM changes while the guest runs. ``entries`` are the baseline's register
    values (``Baseline.registers()``: feature bits and common fields only; topology and cache
    leaves are the VMM's to build). Raises KvmprobeError when the hosts share no CPUID vendor:
    no guest can move between them."""
    if b.vendor is None or not hosts:
        vendors = ", ".join(f"{v} ({n} hosts)" for v, n in b.vendors.items())
        raise KvmprobeError(
            f"the snapshots have no common CPUID vendor: {vendors}",
            "a guest cannot move between vendors; export each vendor's hosts separately",
            ExitStatus.CHECK_FAILED,
        )
    from kvmprobe.analysis.profile import feature_space, positions

    space = feature_space()
    base_locs = {space.loc(p) for p in positions(b.features)}
    feats = frozenset.intersection(frozenset(base_locs), *(g.features for g in hosts))
    regs = {(e.function, e.index): [e.eax, e.ebx, e.ecx, e.edx] for e in b.registers()}
    for loc in base_locs - feats:
        r = regs.get((loc[0], loc[1]))
        if r is not None:
            r[cp.REGISTERS.index(loc[2])] &= ~(1 << loc[3])
    entries = tuple(
        CpuidEntry(e.function, e.index, e.flags, *regs[(e.function, e.index)])
        for e in b.registers()
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
    sigs = {g.signature for g in hosts}
    first = hosts[0]
    return GuestCpu(
        vendor=b.vendor,
        signature=sigs.pop() if len(sigs) == 1 else None,
        features=feats,
        entries=entries,
        with_opt_in=first.with_opt_in,
        irqchip=first.irqchip,
        disable_exits=first.disable_exits,
        refused_msrs=refused,
        offered=tuple(common.values()),
        runtime=frozenset().union(*(g.runtime for g in hosts)),
    )
