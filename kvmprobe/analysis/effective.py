"""The effective guest CPUID for a VMM set-up: every feature with KVM's answer, the quirks
applied, the effective answer and why; multi-bit fields; notes on whole leaves.

Everything the cpuid report and JSON show is computed here; the renderers only format it."""

from __future__ import annotations

from collections.abc import Iterable

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis import quirks as qk
from kvmprobe.frozen import frozen
from kvmprobe.snapshot import Snapshot
from kvmprobe.tables.caps_data import KVM_X86_GRP_SYSTEM, KVM_X86_XCOMP_GUEST_SUPP
from kvmprobe.vocab import FeatureStatus, QuirkEffect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.explanation import Explanation as Explanation
    from kvmprobe.analysis.explanation import explain as explain


if not TYPE_CHECKING:  # to a type checker, a module __getattr__ makes every name exist
    from kvmprobe.lazy import forward

    # ``cpuid --explain``'s story is in kvmprobe.analysis.explanation (one value type fewer
    # for every other report); the names stay importable from here
    __getattr__ = forward(
        __name__, dict.fromkeys(("Explanation", "explain"), "kvmprobe.analysis.explanation")
    )


@frozen
class FeatureResult:
    """One feature and its verdict."""

    feature: cp.FeatureDef
    verdict: qk.Verdict

    @property
    def changed(self) -> bool:
        return self.verdict.status not in (FeatureStatus.SUPPORTED, FeatureStatus.UNSUPPORTED)


@frozen
class Tally:
    """The numbers of a summary sentence: how many features a guest can be given, by status;
    how many it cannot, by status; how many are unknown. Every feature counts exactly once, so
    ``sum(given.values())`` is the number a guest can be given and, per status, given plus not
    given plus unknown is that status's count (``CpuidAnalysis.counts()``)."""

    given: dict[FeatureStatus, int]  # effective true
    not_given: dict[FeatureStatus, int]  # effective false
    unknown: dict[FeatureStatus, int]  # effective unknown (a probe step failed)

    @property
    def given_total(self) -> int:
        return sum(self.given.values())

    @property
    def unknown_total(self) -> int:
        return sum(self.unknown.values())


def tally(results: Iterable[FeatureResult]) -> Tally:
    """The summary numbers of these features (a whole analysis or what a filter selects)."""
    given = dict.fromkeys(FeatureStatus, 0)
    not_given = dict.fromkeys(FeatureStatus, 0)
    unknown = dict.fromkeys(FeatureStatus, 0)
    for r in results:
        eff = r.verdict.effective
        (unknown if eff is None else given if eff else not_given)[r.verdict.status] += 1
    return Tally(given, not_given, unknown)


@frozen
class FieldResult:
    """One multi-bit field as KVM and the host answer it."""

    field: cp.FieldDef
    kvm: int | None
    host: int | None


@frozen
class LeafNote:
    """A leaf-level quirk that applies here, with its evidence."""

    quirk: qk.LeafQuirk
    evidence: str

    @property
    def shown(self) -> bool:
        """A note about a leaf (not a catalogue row that concerns no CPUID leaf)."""
        return self.quirk.effect is not QuirkEffect.NOT_APPLICABLE


@frozen
class XsaveComponent:
    """One XSAVE state component KVM reports (leaf 0xD subleaf n >= 2)."""

    number: int
    size: int  # bytes (0xD.n EAX)
    offset: int  # in the standard format (0xD.n EBX)
    supervisor: bool  # 0xD.n ECX[0]: managed through IA32_XSS rather than XCR0


@frozen
class CpuidAnalysis:
    """The effective CPUID of a guest in one set-up: every feature, field and leaf note."""

    snap: Snapshot
    options: qk.Options
    features: tuple[FeatureResult, ...]
    fields: tuple[FieldResult, ...]
    leaf_notes: tuple[LeafNote, ...]
    strings: dict[str, str | None]
    host_available: bool
    xsave_components: tuple[XsaveComponent, ...] = ()
    #: where the host column comes from: "cpuid" (the host's own CPUID), "cpuinfo" (only
    #: /proc/cpuinfo's flags could be read: bits Linux hides stay unknown), or None
    host_source: str | None = None

    def counts(self) -> dict[FeatureStatus, int]:
        out = dict.fromkeys(FeatureStatus, 0)
        for f in self.features:
            out[f.verdict.status] += 1
        return out

    def tally(self) -> Tally:
        return tally(self.features)

    @property
    def host_cpuid_error(self) -> str | None:
        """Why the host's own CPUID is unknown, or None when it is known."""
        if self.host_available:
            return None
        return self.snap.host.cpuid_error or "not recorded"

    @property
    def emulated_probed(self) -> bool:
        """KVM_GET_EMULATED_CPUID was answered (an empty answer counts)."""
        return self.snap.emulated_cpuid is not None

    def find(self, feature: cp.FeatureDef) -> FeatureResult | None:
        for f in self.features:
            if f.feature.loc == feature.loc:
                return f
        return None


def analyse(snap: Snapshot, options: qk.Options | None = None) -> CpuidAnalysis:
    opts = options or qk.Options()
    c = qk.Ctx(snap, opts)
    targeted = qk.quirks_for(c, qk.QUIRKS)
    table = cp.by_loc()
    results: list[FeatureResult] = []
    seen: set[cp.Loc] = set()
    for f in cp.features():
        results.append(FeatureResult(f, qk.evaluate(c, f.loc, targeted.get(f.loc, []))))
        seen.add(f.loc)
    # bits KVM (or its emulated list) sets that no table row names: reported, never dropped
    unnamed = {u.loc: u for u in cp.unnamed_bits(c.kgsc)}
    for u in cp.unnamed_bits(c.kgec):
        unnamed.setdefault(u.loc, u)
    for loc, u in sorted(unnamed.items()):
        if loc not in table and loc not in seen:
            results.append(FeatureResult(u, qk.evaluate(c, loc, targeted.get(loc, []))))
    fields = tuple(
        FieldResult(
            fd,
            _field(c.kgsc, fd),
            _field(c.host, fd) if c.host is not None else None,
        )
        for fd in cp.fields()
    )
    notes: list[LeafNote] = []
    for lq in qk.LEAF_QUIRKS:
        if lq.test is None:
            notes.append(LeafNote(lq, ""))
            continue
        applies, evidence = lq.test(c)
        if applies:
            notes.append(LeafNote(lq, evidence))
    fms = cp.family_model_stepping(c.kgsc)
    strings = {
        "vendor": cp.vendor_string(c.kgsc, 0),
        "signature": None if fms is None else "family {} model {} stepping {}".format(*fms),
        "kvm_signature": cp.vendor_string(c.kgsc, 0x40000000),
        "host_vendor": cp.vendor_string(c.host, 0) if c.host else None,
        "host_brand": cp.brand_string(c.host) if c.host else None,
    }
    xcr0 = cp.xcr0_mask(c.kgsc)
    strings["xcr0_mask"] = None if xcr0 is None else f"{xcr0:#x}"
    supp = snap.attr(KVM_X86_GRP_SYSTEM, KVM_X86_XCOMP_GUEST_SUPP)
    strings["xcomp_guest_supp"] = None if supp is None else f"{supp:#x}"
    strings["host_features_from"] = c.host_source
    components = tuple(
        XsaveComponent(n, e.eax, e.ebx, bool(e.ecx & 1))
        for n in range(2, 64)
        if (e := c.kgsc.entry(0xD, n)) is not None and e.index == n and e.eax
    )
    return CpuidAnalysis(
        xsave_components=components,
        snap=snap,
        options=opts,
        features=tuple(results),
        fields=fields,
        leaf_notes=tuple(notes),
        strings=strings,
        host_available=c.host is not None,
        host_source=c.host_source,
    )


def _field(view: cp.CpuidView | None, fd: cp.FieldDef) -> int | None:
    if view is None:
        return None
    v = view.reg(fd.leaf, fd.subleaf, fd.register)
    return None if v is None else fd.extract(v)
