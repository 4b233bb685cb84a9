"""Every quirk record, both sides of its condition, on synthetic snapshots built from
documented bit positions (tests/support/synth.py)."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from support.synth import Cpuid, bits, snapshot

from kvmprobe.analysis import quirks as qk
from kvmprobe.analysis.cpuid import by_loc, feature_loc, lookup, xcr0_component
from kvmprobe.analysis.effective import analyse, explain
from kvmprobe.analysis.quirks import common
from kvmprobe.analysis.quirks.engine import Ctx, evaluate, quirks_for
from kvmprobe.tables.caps_data import KVM_CAP_DISABLE_QUIRKS2, KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS
from kvmprobe.vocab import DisableExit, FeatureStatus, Irqchip, QuirkEffect, Vendor

X2APIC = (0x1, 0, "ecx", 21)
TSC_DEADLINE = (0x1, 0, "ecx", 24)
PV_UNHALT = (0x40000001, 0, "eax", 7)

MODES = tuple(Irqchip)


def verdict(snap, loc, irqchip="kernel", exits=()):
    a = analyse(snap, qk.Options(irqchip=irqchip, disable_exits=frozenset(exits)))
    for r in a.features:
        if r.feature.loc == loc:
            return r.verdict
    raise AssertionError(f"{loc} not in the analysis")


def test_every_quirk_bit_is_a_table_feature() -> None:
    table = by_loc()
    for q in qk.QUIRKS:
        if q.id == "amd-aliases":
            continue  # AMD's copies of 1.EDX: reported if set, named or not
        for loc in q.bits:
            assert loc in table, f"{q.id}: {loc} missing from the CPUID table"


def test_quirk_records_are_complete() -> None:
    ids = [q.id for q in qk.QUIRKS] + [q.id for q in qk.LEAF_QUIRKS]
    assert len(ids) == len(set(ids)), "quirk ids are unique"
    for q in qk.QUIRKS:
        assert q.effect in (
            QuirkEffect.REMOVE, QuirkEffect.ADD, QuirkEffect.OPT_IN, QuirkEffect.RUNTIME,
            QuirkEffect.EMULATED, QuirkEffect.NOTE,
        )  # fmt: skip
        assert q.reason and q.when and q.citation and q.test is not None and q.catalogue
    for lq in qk.LEAF_QUIRKS:
        assert lq.reason and lq.citation and lq.catalogue
        if lq.effect == QuirkEffect.NOT_APPLICABLE:
            assert lq.test is None and not lq.leaves


def test_catalogue_section_1_is_covered() -> None:
    """Every row of research/quirks.md section 1 has at least one record."""
    catalogue = {
        "x2apic-needs-lapic", "pv-unhalt-needs-lapic", "pv-unhalt-vs-hlt-exits", "tsc-deadline",
        "hypervisor-bit", "msi-ext-dest-id", "kvm-hints-realtime", "kvm-pv-leaf-contents",
        "monitor-mwait", "mwait-runtime-quirks", "x87-inverted", "topology-leaves", "topoext",
        "amd-aliases", "xsave-dynamic", "amx-half-enabled", "xsave-runtime", "arat",
        "fast-string-passthrough", "tsx-broken", "arch-capabilities-svm", "arch-cap-fb-clear",
        "vmx-ctls2-missing", "avx10", "overflow-recov-succor", "emulated-cpuid",
        "guest-phys-bits", "nested-virt-bits", "waitpkg", "pmu", "leaf-limits",
        "legacy-1edx", "lapic-timer-freq", "cache-leaves", "disable-quirks-vs-2",
        "disable-exits-semantics",
    }  # fmt: skip
    covered = {q.catalogue for q in qk.QUIRKS} | {q.catalogue for q in qk.LEAF_QUIRKS}
    assert catalogue <= covered, sorted(catalogue - covered)


@pytest.mark.parametrize("loc", [X2APIC, PV_UNHALT])
@pytest.mark.parametrize("mode", MODES)
def test_lapic_dependent_bits(loc, mode) -> None:
    kgsc = Cpuid().set(*loc[:3], loc[3])
    v = verdict(snapshot(kgsc), loc, mode)
    assert v.kvm is True
    if mode == "userspace":
        assert (v.effective, v.status) == (False, "removed-by-quirk")
        assert any(q.endswith("needs-lapic") for q in v.quirks)
    else:
        assert (v.effective, v.status) == (True, "supported")


@pytest.mark.parametrize("bit", [4, 10, 14])
def test_async_pf_needs_lapic(bit) -> None:
    loc = (0x40000001, 0, "eax", bit)
    snap = snapshot(Cpuid().set(0x40000001, 0, "eax", bit))
    assert verdict(snap, loc, "userspace").status == "removed-by-quirk"
    assert verdict(snap, loc, "split").status == "supported"


def test_pv_unhalt_vs_hlt_exits() -> None:
    kgsc = Cpuid().set(0x40000001, 0, "eax", 7)
    allowed = snapshot(kgsc, caps={143: bits(1, 2)})  # HLT | PAUSE
    v = verdict(allowed, PV_UNHALT, exits=("hlt",))
    assert v.status == "removed-by-quirk" and "pv-unhalt-vs-hlt-exits" in v.quirks
    assert verdict(allowed, PV_UNHALT).status == "supported"
    refused = snapshot(kgsc, caps={143: bits(2)})  # PAUSE only: HLT exits cannot be disabled
    v = verdict(refused, PV_UNHALT, exits=("hlt",))
    assert v.status == "supported"
    assert "HLT allowed: no" in v.steps[-1].evidence if v.steps else False


class TestTscDeadline:
    """Linux 6.14 started reporting TSC_DEADLINE in KGSC; before that only cap 72 said so."""

    @pytest.mark.parametrize("mode", MODES)
    def test_new_kernel_bit_in_kgsc(self, mode) -> None:
        snap = snapshot(Cpuid().set(0x1, 0, "ecx", 24), caps={72: 1}, kernel="6.14.0")
        v = verdict(snap, TSC_DEADLINE, mode)
        assert "tsc-deadline-reported" in v.quirks
        if mode == "userspace":
            assert (v.status, v.effective) == ("removed-by-quirk", False)
        else:
            assert (v.status, v.effective) == ("supported", True)

    @pytest.mark.parametrize("mode", MODES)
    def test_old_kernel_with_cap(self, mode) -> None:
        snap = snapshot(Cpuid(), caps={72: 1}, kernel="6.1.0")
        v = verdict(snap, TSC_DEADLINE, mode)
        assert v.kvm is False
        if mode == "userspace":
            assert (v.status, v.effective) == ("unsupported", False)
            assert "tsc-deadline-needs-lapic" in v.quirks
        else:
            assert (v.status, v.effective) == ("added-by-quirk", True)
            assert "tsc-deadline-legacy-cap" in v.quirks

    @pytest.mark.parametrize("mode", MODES)
    def test_old_kernel_without_cap(self, mode) -> None:
        v = verdict(snapshot(Cpuid(), caps={}), TSC_DEADLINE, mode)
        assert (v.status, v.effective) == ("unsupported", False)
        assert "tsc-deadline-legacy-no-cap" in v.quirks

    def test_probes_behaviour_not_version_string(self) -> None:
        # a kernel that claims 7.0 but behaves like an old one is analysed by its behaviour
        snap = snapshot(Cpuid(), caps={72: 1}, kernel="7.0.0")
        assert verdict(snap, TSC_DEADLINE).status == "added-by-quirk"


def test_hypervisor_bit() -> None:
    loc = (0x1, 0, "ecx", 31)
    assert verdict(snapshot(Cpuid()), loc).status == "added-by-quirk"
    assert verdict(snapshot(Cpuid().set(0x1, 0, "ecx", 31)), loc).status == "supported"


def test_msi_ext_dest_id_split_only() -> None:
    loc = (0x40000001, 0, "eax", 15)
    snap = snapshot(Cpuid())
    assert verdict(snap, loc, "split").status == "opt-in"
    for mode in ("kernel", "userspace"):
        v = verdict(snap, loc, mode)
        assert (v.status, v.effective) == ("unsupported", False)
        assert "msi-ext-dest-id-not-split" in v.quirks


def test_kvm_hints_realtime_is_opt_in() -> None:
    v = verdict(snapshot(Cpuid()), (0x40000001, 0, "edx", 0))
    assert (v.kvm, v.status, v.effective) == (False, "opt-in", True)


def test_hc_map_gpa_range() -> None:
    loc = (0x40000001, 0, "eax", 16)
    assert verdict(snapshot(Cpuid(), caps={201: 1 << 12}), loc).status == "opt-in"
    assert verdict(snapshot(Cpuid(), caps={}), loc).status == "unsupported"


class TestMonitorMwait:
    loc = (0x1, 0, "ecx", 3)

    def test_exits_disabled_gives_monitor(self) -> None:
        snap = snapshot(Cpuid(), caps={143: bits(0, 1, 2, 3)})
        v = verdict(snap, self.loc, exits=("mwait",))
        assert (v.status, v.effective) == ("added-by-quirk", True)

    def test_available_on_request(self) -> None:
        v = verdict(snapshot(Cpuid(), caps={143: bits(0, 2)}), self.loc)
        assert v.status == "opt-in"

    def test_unavailable(self) -> None:
        snap = snapshot(Cpuid(), caps={143: bits(2)}, modules={"kvm": {"mitigate_smt_rsb": "Y"}})
        v = verdict(snap, self.loc, exits=("mwait",))
        assert (v.status, v.effective) == ("unsupported", False)
        assert "monitor-mwait-unavailable" in v.quirks
        step = next(s for s in v.steps if s.quirk == "monitor-mwait-unavailable")
        assert "mitigate_smt_rsb=Y" in step.evidence


def test_x87_inverted_is_a_note() -> None:
    loc = (0x7, 0, "ebx", 6)
    v = verdict(snapshot(Cpuid().set(0x7, 0, "ebx", 6, 13)), loc)
    assert v.status == "supported" and "x87-inverted" in v.quirks


def test_topoext_amd_only() -> None:
    loc = (0x80000001, 0, "ecx", 22)
    assert verdict(snapshot(Cpuid("amd")), loc).status == "opt-in"
    assert verdict(snapshot(Cpuid("intel")), loc).status == "unsupported"


def test_arat() -> None:
    loc = (0x6, 0, "eax", 2)
    assert verdict(snapshot(Cpuid()), loc).status == "added-by-quirk"
    assert verdict(snapshot(Cpuid().set(0x6, 0, "eax", 2)), loc).status == "supported"


def test_fast_strings_from_host() -> None:
    loc = (0x7, 1, "eax", 10)  # FZRM
    host = Cpuid().set(0x7, 1, "eax", 10)
    assert verdict(snapshot(Cpuid(), host=host), loc).status == "added-by-quirk"
    assert verdict(snapshot(Cpuid(), host=Cpuid()), loc).status == "unsupported"
    assert verdict(snapshot(Cpuid()), loc).status == "unsupported"  # no host CPUID: no guess


@pytest.mark.parametrize(
    "sig,broken",
    [(0x000306C3, True), (0x000306F2, True), (0x000306F4, False), (0x00050654, False)],
)
def test_tsx_broken_haswell(sig, broken) -> None:
    loc = (0x7, 0, "ebx", 11)  # RTM
    kgsc = Cpuid().put(0x1, 0, eax=sig).set(0x7, 0, "ebx", 4, 11)
    v = verdict(snapshot(kgsc), loc)
    assert v.status == ("removed-by-quirk" if broken else "supported")


def test_arch_capabilities_without_msr() -> None:
    loc = (0x7, 0, "edx", 29)
    kgsc = Cpuid("amd").set(0x7, 0, "edx", 29)
    assert verdict(snapshot(kgsc, msr_index_list=(0x10,)), loc).status == "removed-by-quirk"
    assert verdict(snapshot(kgsc, msr_index_list=(0x10A,)), loc).status == "supported"


def test_overflow_recov_succor() -> None:
    v = verdict(snapshot(Cpuid("amd")), (0x80000007, 0, "ebx", 1))
    assert v.status == "opt-in"


def test_emulated_movbe_and_rdpid() -> None:
    kgec = Cpuid().set(0x1, 0, "ecx", 22).set(0x7, 0, "ecx", 22)
    snap = snapshot(Cpuid(), kgec=kgec)
    for loc in ((0x1, 0, "ecx", 22), (0x7, 0, "ecx", 22)):
        v = verdict(snap, loc)
        assert (v.status, v.effective, v.emulated) == ("emulated", True, True)
    both = snapshot(Cpuid().set(0x1, 0, "ecx", 22), kgec=kgec)
    assert verdict(both, (0x1, 0, "ecx", 22)).status == "supported"


def test_nested_bits() -> None:
    vmx = (0x1, 0, "ecx", 5)
    on = snapshot(Cpuid().set(0x1, 0, "ecx", 5), modules={"kvm_intel": {"nested": "Y"}})
    v = verdict(on, vmx)
    assert v.status == "supported" and "nested-virt-offered" in v.quirks
    off = snapshot(Cpuid(), modules={"kvm_intel": {"nested": "N"}})
    v = verdict(off, vmx)
    assert v.status == "unsupported" and "nested-virt-missing" in v.quirks
    step = next(s for s in v.steps if s.quirk == "nested-virt-missing")
    assert "kvm_intel.nested=N" in step.evidence


def test_waitpkg_is_opt_in() -> None:
    v = verdict(snapshot(Cpuid().set(0x7, 0, "ecx", 5)), (0x7, 0, "ecx", 5))
    assert (v.kvm, v.status) == (True, "opt-in")


def test_legacy_1edx_and_htt() -> None:
    assert verdict(snapshot(Cpuid()), (0x1, 0, "edx", 12)).status == "added-by-quirk"
    assert verdict(snapshot(Cpuid().set(0x1, 0, "edx", 12)), (0x1, 0, "edx", 12)).status == (
        "supported"
    )
    assert verdict(snapshot(Cpuid()), (0x1, 0, "edx", 28)).status == "opt-in"


def test_amx_permission() -> None:
    amx_tile = (0x7, 0, "edx", 24)
    supp = {"0/0": bits(0, 1, 2, 17, 18)}
    v = verdict(snapshot(Cpuid(), device_attrs=supp), amx_tile)
    assert (v.status, v.effective) == ("opt-in", True)
    v = verdict(snapshot(Cpuid().set(0x7, 0, "edx", 24), device_attrs=supp), amx_tile)
    assert v.status == "supported" and "amx-permission-requested" in v.quirks
    assert verdict(snapshot(Cpuid(), device_attrs={"0/0": 7}), amx_tile).status == "unsupported"


def test_runtime_bits() -> None:
    v = verdict(snapshot(Cpuid()), (0x1, 0, "ecx", 27))  # OSXSAVE
    assert (v.status, v.effective) == ("runtime", False)
    v = verdict(snapshot(Cpuid().set(0x1, 0, "edx", 9)), (0x1, 0, "edx", 9))  # APIC
    assert (v.status, v.effective) == ("runtime", True)


def test_pmu_off_note() -> None:
    snap = snapshot(Cpuid().set(0x1, 0, "ecx", 15), modules={"kvm": {"enable_pmu": "N"}})
    v = verdict(snap, (0x1, 0, "ecx", 15))
    assert "pmu-off" in v.quirks
    snap = snapshot(Cpuid().set(0x1, 0, "ecx", 15).put(0xA, 0, eax=0x08300802))
    assert "pmu-off" not in verdict(snap, (0x1, 0, "ecx", 15)).quirks


def test_amd_aliases_note_on_intel() -> None:
    kgsc = Cpuid().set(0x1, 0, "edx", 0)  # FPU
    a = analyse(snapshot(kgsc))
    hits = [r for r in a.features if "amd-aliases" in r.verdict.quirks]
    assert all(r.feature.leaf == 0x80000001 for r in hits)


def test_topology_leaf_note() -> None:
    zero = snapshot(Cpuid().put(0xB, 0, edx=3, flags=1))
    notes = {n.quirk.id: n for n in analyse(zero).leaf_notes}
    assert "zero" in notes["topology-leaves"].evidence
    old = snapshot(Cpuid().put(0xB, 0, eax=1, ebx=2, ecx=0x100, flags=1))
    notes = {n.quirk.id: n for n in analyse(old).leaf_notes}
    assert "host's topology" in notes["topology-leaves"].evidence


def test_xtilecfg_without_xtiledata() -> None:
    kgsc = Cpuid().put(0xD, 0, eax=bits(0, 1, 2, 17), flags=1)
    notes = {n.quirk.id for n in analyse(snapshot(kgsc)).leaf_notes}
    assert "amx-half-enabled" in notes
    kgsc = Cpuid().put(0xD, 0, eax=bits(0, 1, 2, 17, 18), flags=1)
    assert "amx-half-enabled" not in {n.quirk.id for n in analyse(snapshot(kgsc)).leaf_notes}


def test_unknown_bits_are_reported() -> None:
    kgsc = Cpuid().set(0x40000001, 0, "eax", 30)  # no KVM_FEATURE_ at bit 30
    a = analyse(snapshot(kgsc))
    unknown = [r for r in a.features if not r.feature.known]
    assert [r.feature.where for r in unknown] == ["0x40000001.0.eax[30]"]
    assert unknown[0].verdict.status == "supported"


def test_options_validate() -> None:
    with pytest.raises(ValueError):
        qk.Options(irqchip="bogus")
    with pytest.raises(ValueError):
        qk.Options(disable_exits=frozenset({"nap"}))


@pytest.mark.parametrize(
    "eax,fms",
    [
        (0x000906EA, (6, 0x9E, 10)),  # Intel Coffee Lake: family 6 uses the extended model
        (0x00A00F11, (25, 1, 1)),  # AMD Zen 3: 0xF + extended family 0xA
        (0x00000F41, (15, 4, 1)),  # family 15, extended family 0
        (0x00000511, (5, 1, 1)),  # family 5: extended fields ignored
        (0x000F0511, (5, 1, 1)),
    ],
)
def test_family_model_stepping(eax, fms) -> None:
    from kvmprobe.analysis.cpuid import CpuidView, family_model_stepping

    assert family_model_stepping(CpuidView(Cpuid().put(0x1, 0, eax=eax).entries())) == fms


# -- the package: registry, records, vocabularies ----------------------------------------------


def _record_modules():
    for info in pkgutil.iter_modules(qk.__path__):
        yield importlib.import_module(f"{qk.__name__}.{info.name}")


def test_every_record_module_is_collected() -> None:
    """A record module the registry forgets would silently drop its quirks."""
    seen_quirks, seen_leaves = [], []
    for mod in _record_modules():
        seen_quirks += list(getattr(mod, "QUIRKS", ()))
        seen_leaves += list(getattr(mod, "LEAF_QUIRKS", ()))
    assert sorted(q.id for q in seen_quirks) == sorted(q.id for q in qk.QUIRKS)
    assert sorted(q.id for q in seen_leaves) == sorted(q.id for q in qk.LEAF_QUIRKS)
    assert len(qk.QUIRKS) + len(qk.LEAF_QUIRKS) == 52


def test_conditions_sit_beside_their_records() -> None:
    """Each condition is a named function of the record's own module (or one of the few
    shared ones in common.py), never an inline lambda."""
    for mod in _record_modules():
        records = [*getattr(mod, "QUIRKS", ()), *getattr(mod, "LEAF_QUIRKS", ())]
        for q in records:
            if q.test is None:
                continue
            assert q.test.__name__ != "<lambda>", q.id
            assert q.test.__module__ in (mod.__name__, common.__name__), q.id


def test_records_are_keyword_only() -> None:
    """The two prose fields (when, reason) cannot be swapped by position."""
    for cls in (qk.Quirk, qk.LeafQuirk):
        assert all(f.kw_only for f in dataclasses.fields(cls)), cls
    with pytest.raises(TypeError):
        qk.Quirk("x", (), QuirkEffect.NOTE, "when", "reason", (), common.always)  # type: ignore[misc]


def test_records_use_the_vocabularies() -> None:
    for q in qk.QUIRKS:
        assert isinstance(q.effect, QuirkEffect) and (q.vendor is None or q.vendor in Vendor)
    for lq in qk.LEAF_QUIRKS:
        assert isinstance(lq.effect, QuirkEffect)
    a = analyse(snapshot(Cpuid()))
    assert all(isinstance(r.verdict.status, FeatureStatus) for r in a.features)
    assert all(isinstance(s.effect, QuirkEffect) for r in a.features for s in r.verdict.steps)
    with pytest.raises(ValueError):
        qk.Quirk(
            id="x", bits=(), effect=QuirkEffect.VMM_BUILDS, when="w", reason="r", citation=(),
            test=common.always, catalogue="c",
        )  # fmt: skip
    with pytest.raises(ValueError):
        qk.Quirk(
            id="x", bits=(), effect=QuirkEffect.NOTE, when="w", reason="r", citation=(),
            test=common.always, vendor=Vendor.OTHER, catalogue="c",
        )  # fmt: skip


def test_options_take_the_vocabularies() -> None:
    opts = qk.Options(irqchip="split", disable_exits=frozenset({"hlt", DisableExit.MWAIT}))
    assert opts.irqchip is Irqchip.SPLIT
    assert opts.disable_exits == {DisableExit.HLT, DisableExit.MWAIT}
    assert all(isinstance(x, DisableExit) for x in opts.disable_exits)
    # exit bits come from the generated table (KVM_X86_DISABLE_EXITS_*): HLT is bit 1
    c = Ctx(snapshot(Cpuid(), caps={143: bits(1)}), opts)
    assert [x for x in DisableExit if c.exit_allowed(x)] == [DisableExit.HLT]
    assert c.exit_disabled(DisableExit.HLT) and not c.exit_disabled(DisableExit.MWAIT)


def test_feature_loc_reads_the_generated_table() -> None:
    assert feature_loc("X86_FEATURE_X2APIC") == (0x1, 0, "ecx", 21)
    assert feature_loc("x2apic") == feature_loc("X86_FEATURE_X2APIC")
    assert feature_loc("KVM_FEATURE_PV_UNHALT") == (0x40000001, 0, "eax", 7)
    assert feature_loc("KVM_HINTS_REALTIME") == (0x40000001, 0, "edx", 0)
    with pytest.raises(LookupError):
        feature_loc("X86_FEATURE_NO_SUCH_THING")
    with pytest.raises(LookupError):
        feature_loc("x86_feature_x2apic")  # exact spelling only: no fuzzy matching here
    assert (xcr0_component("xcr0_tileconfig"), xcr0_component("xcr0_tiledata")) == (17, 18)
    assert xcr0_component("xcr0_lwp") == 62  # an EDX row: components 32-63
    with pytest.raises(LookupError):
        xcr0_component("x2apic")


def test_mwait_never_ud_faults_is_read_as_a_flag() -> None:
    """KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS is bit 6 of the KVM_CAP_DISABLE_QUIRKS2 mask."""
    assert bits(6) == KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS
    monitor = (0x1, 0, "ecx", 3)

    def step(q2: int, exits=()):
        v = verdict(snapshot(Cpuid(), caps={KVM_CAP_DISABLE_QUIRKS2: q2, 143: bits(0)}),
                    monitor, exits=exits)  # fmt: skip
        return next(s for s in v.steps if s.quirk == "mwait-intercepted-nop")

    s = step(bits(6))
    assert s.applied and "MWAIT_NEVER_UD_FAULTS can be disabled: yes" in s.evidence
    s = step(bits(0, 1, 2, 3, 4, 5, 7))
    assert "MWAIT_NEVER_UD_FAULTS can be disabled: no" in s.evidence
    assert not step(bits(6), exits=("mwait",)).applied  # MWAIT runs natively: no interception


# -- vendor scoping ----------------------------------------------------------------------------

HASWELL = 0x000306C3  # family 6 model 60: TSX broken
VENDOR_OF = {"intel": Vendor.INTEL, "amd": Vendor.AMD}


def _every_bit(vendor: str) -> Cpuid:
    cpuid = Cpuid(vendor)
    for leaf, sub, reg, bit in by_loc():
        cpuid.set(leaf, sub, reg, bit)
    return cpuid


def _scenarios(vendor: str):
    """Synthetic hosts of one vendor on which as many conditions as possible hold: KVM
    reporting nothing, every named bit, or every named bit but leaf 0x80000001 EDX (the AMD
    copies of 1.EDX); the host and the emulated list having every bit; every exit and quirk
    allowed, AMX permitted, MSR 0x10a missing; every set-up."""
    sig = {"eax": HASWELL} if vendor == "intel" else {}
    no_copies = _every_bit(vendor).put(0x80000001, 0, edx=0)
    for kgsc in (Cpuid(vendor), _every_bit(vendor), no_copies):
        kgsc.put(0x1, 0, **sig)
        snap = snapshot(
            kgsc,
            caps={72: 1, 143: bits(0, 1, 2, 3), 201: bits(12), 213: bits(*range(12))},
            kgec=_every_bit(vendor),
            host=_every_bit(vendor),
            msr_index_list=(),
            device_attrs={"0/0": bits(0, 1, 2, 17, 18)},
            modules={"kvm_intel": {"nested": "Y"}, "kvm_amd": {"nested": "1"}},
        )
        for mode in Irqchip:
            for exits in (frozenset(), frozenset(DisableExit)):
                yield Ctx(snap, qk.Options(irqchip=mode, disable_exits=exits))


@pytest.mark.parametrize("vendor", ["intel", "amd"])
def test_no_record_applies_outside_its_vendor(vendor: str) -> None:
    host = VENDOR_OF[vendor]
    applied_here: set[str] = set()
    gated: set[str] = set()  # records whose own condition held but whose vendor did not
    for c in _scenarios(vendor):
        assert c.vendor is host
        for loc, records in quirks_for(c, qk.QUIRKS).items():
            for q, s in zip(records, evaluate(c, loc, records).steps, strict=True):
                assert s.record is q
                if q.vendor is None or q.vendor is host:
                    applied_here |= {q.id} if s.applied else set()
                    continue
                assert not s.applied, (q.id, loc)
                assert f"concerns {q.vendor.display} hosts only" in s.evidence
                if q.test(c, loc)[0]:
                    gated.add(q.id)
    scoped_here = {q.id for q in qk.QUIRKS if q.vendor is host}
    assert scoped_here <= applied_here, sorted(scoped_here - applied_here)
    expect_gated = {
        "intel": {"overflow-recov-succor", "topoext-vmm-builds", "arch-capabilities-svm"},
        "amd": {"x87-inverted", "waitpkg-opt-in", "amx-needs-permission",
                "amx-permission-requested"},
    }[vendor]  # fmt: skip
    assert expect_gated <= gated, sorted(expect_gated - gated)


def test_unknown_vendor_applies_no_scoped_record() -> None:
    kgsc = Cpuid().put(0x0, 0, ebx=0, ecx=0, edx=0).set(0x7, 0, "ebx", 6, 13)
    snap = snapshot(kgsc)
    assert Ctx(snap, qk.Options()).vendor is Vendor.OTHER
    v = verdict(snap, (0x7, 0, "ebx", 6))
    assert v.status == "supported" and "x87-inverted" not in v.quirks
    step = next(s for s in v.steps if s.quirk == "x87-inverted")
    assert not step.applied
    assert "not recognised as Intel or AMD" in step.evidence and "Intel-only" in step.evidence
    assert verdict(snap, (0x1, 0, "ecx", 31)).status == "added-by-quirk"  # unscoped: applies
    # the host's own CPUID names the vendor when KVM's leaf 0 does not
    known = snapshot(kgsc, host=Cpuid("amd"))
    assert Ctx(known, qk.Options()).vendor is Vendor.AMD


def _explain_text(args: list[str], from_file: str) -> str:
    from kvmprobe.cli import main

    r = CliRunner().invoke(
        main, ["cpuid", "--no-color", *args, "--from", from_file], env={"COLUMNS": "200"},
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    return r.stdout


def test_explain_states_vendor_scope(tmp_path) -> None:
    amd = str(FIXTURES / "amd-epyc-pvm-6.18.json")
    out = _explain_text(["--explain", "fdp_excptn_only"], amd)
    assert "skipped  x87-inverted (note)" in out
    assert "when:     always  (Intel hosts only)" in out
    assert "here:     AMD host: this record concerns Intel hosts only" in out
    assert "Amd hosts" not in out and "applied  x87" not in out
    intel = tmp_path / "intel.json"
    intel.write_text(snapshot(Cpuid()).dumps())
    out = _explain_text(["--explain", "succor"], str(intel))
    assert "skipped  overflow-recov-succor (opt-in)" in out
    assert "(AMD hosts only)" in out and "Intel host: this record concerns AMD hosts only" in out
    assert "result: - unsupported" in out
    out = _explain_text(["--explain", "fdp_excptn_only"], str(intel))
    assert "applied  x87-inverted (note)" in out and "(Intel hosts only)" in out


def test_explanation_carries_the_raw_register() -> None:
    kgsc = Cpuid().set(0x1, 0, "ecx", 21, 24)
    a = analyse(snapshot(kgsc))
    story = explain(a, lookup("x2apic"))
    assert story is not None and story.kvm_register == bits(21, 24)
    assert [s.quirk for s in story.steps] == ["x2apic-needs-lapic", "x2apic-emulated"]
    assert story.steps[0].record.when == "the LAPIC is emulated in userspace"
    absent = explain(analyse(snapshot(Cpuid())), lookup("succor"))
    assert absent is not None and absent.kvm_register is None
