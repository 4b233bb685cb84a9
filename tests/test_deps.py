"""Feature dependencies (violations, closure) and XSAVE-state consistency checks, on the
recorded AMD host, on synthetic hosts from QEMU's models, and on hand-made answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import hosts
from support.synth import Cpuid

from kvmprobe.analysis import deps
from kvmprobe.analysis.answers import UNKNOWN, YES, Answer, answers_from_cpuid, no
from kvmprobe.snapshot import CpuidEntry, Snapshot, load
from kvmprobe.tables import deps_data
from kvmprobe.vocab import ConsistencyCheck, DependencyKind, NotOfferedReason

PVM = Path(__file__).parent / "fixtures" / "amd-epyc-pvm-6.18.json"


@pytest.fixture(scope="module")
def pvm() -> Snapshot:
    snap, warnings = load(str(PVM))
    assert warnings == []
    return snap


def answers(**kw: Answer) -> dict[str, Answer]:
    return dict(kw)


# ---- the dependency model -----------------------------------------------------------------


def test_dependencies_hold_both_kinds() -> None:
    by = {(d.feature, d.requires, d.kind) for d in deps.dependencies()}
    assert ("avx2", ("avx",), DependencyKind.CPUID_DEPS) in by
    assert ("avx", ("xsave",), DependencyKind.CPUID_DEPS) in by
    assert ("avx", ("xcr0_avx",), DependencyKind.XSAVE_STATE) in by
    for comp in ("xcr0_avx512_opmask", "xcr0_avx512_zmm_hi256", "xcr0_avx512_hi16_zmm"):
        assert ("avx512f", (comp,), DependencyKind.XSAVE_STATE) in by
    assert ("amx_tile", ("xcr0_tileconfig",), DependencyKind.XSAVE_STATE) in by
    assert ("amx_tile", ("xcr0_tiledata",), DependencyKind.XSAVE_STATE) in by
    # PKRU state belongs to the runtime bit OSPKE in Linux; the offered feature stands in
    assert ("pku", ("xcr0_pkru",), DependencyKind.XSAVE_STATE) in by
    # x87 and SSE state are not required: FXSAVE handles them without XSAVE
    assert not [d for d in deps.dependencies() if d.requires[0] in ("xcr0_x87", "xcr0_sse")]
    assert not {d.kind for d in deps.dependencies(state=False)} - {DependencyKind.CPUID_DEPS}


def test_nothing_is_silently_left_out() -> None:
    assert deps.unresolved() == ()
    assert [c.name for c in deps.unnamed_state_components()] == ["APX"]
    assert {r.feature_names for r in deps.superseded()} == {("gfni",), ("vaes",), ("vpclmulqdq",)}


def test_a_requirement_with_two_positions_is_met_by_either() -> None:
    [dep] = [d for d in deps.dependencies() if d.feature == "per_thread_mba"]
    assert dep.requires == ("mba", "mba_80000008")
    assert deps.violations(answers(per_thread_mba=YES, mba=no(), mba_80000008=YES)) == ()
    [v] = deps.violations(answers(per_thread_mba=YES, mba=no(), mba_80000008=no()))
    assert v.chain == ("per_thread_mba", "mba")


# ---- violations ---------------------------------------------------------------------------


def test_offered_without_its_requirement() -> None:
    found = deps.violations(
        answers(avx2=YES, avx=no(NotOfferedReason.HOST_ONLY), xsave=YES, fxsr=YES, fpu=YES)
    )
    [v] = found
    assert v.chain == ("avx2", "avx") and v.direct and v.certain
    assert v.describe() == "avx2 is offered but needs avx, which is not offered (host-only)"


def test_transitive_violation_carries_its_chain() -> None:
    found = deps.violations(
        answers(
            avx2=YES,
            avx=YES,
            xcr0_avx=YES,
            xsave=no(NotOfferedReason.UNSUPPORTED),
            fxsr=YES,
            fpu=YES,
        ),
    )
    assert [v.chain for v in found] == [("avx", "xsave"), ("avx2", "avx", "xsave")]
    assert "through avx2 -> avx -> xsave" in found[1].describe()


def test_unknown_requirement_is_reported_but_not_certain() -> None:
    [v] = deps.violations(answers(avx2=YES, avx=UNKNOWN), state=False)
    assert v.missing == "avx" and not v.certain
    # a requirement the mapping does not hold at all is unknown too
    [v] = deps.violations(answers(avx2=YES), state=False)
    assert v.answer == UNKNOWN


def test_state_dependencies_in_violations() -> None:
    base = answers(avx=YES, xsave=YES, fxsr=YES, fpu=YES)
    [v] = deps.violations({**base, "xcr0_avx": no()})
    assert v.chain == ("avx", "xcr0_avx")
    assert deps.violations({**base, "xcr0_avx": no()}, state=False) == ()


# ---- closure (what baseline keeps) --------------------------------------------------------

V3_SET = {
    "fpu", "fxsr", "sse", "sse2", "xsave", "avx", "avx2", "fma", "f16c",
    "xcr0_x87", "xcr0_sse", "xcr0_avx",
}  # fmt: skip


def test_closure_keeps_a_consistent_set() -> None:
    kept, dropped = deps.close_under_deps(V3_SET)
    assert kept == V3_SET and dropped == ()


def test_avx2_without_avx_is_dropped_with_its_reason() -> None:
    kept, dropped = deps.close_under_deps(V3_SET - {"avx"})
    assert [d.chain for d in dropped] == [("avx2", "avx"), ("fma", "avx")]
    assert "avx2" not in kept and "f16c" in kept  # f16c needs only sse2
    assert dropped[0].reason("host-b lacks") == "avx2 dropped: needs avx, which host-b lacks"


def test_a_chain_is_dropped_through_its_links() -> None:
    """Without xsave, avx goes, and with it everything built on avx."""
    kept, dropped = deps.close_under_deps(V3_SET - {"xsave"})
    chains = {d.feature: d.chain for d in dropped}
    assert chains == {
        "avx": ("avx", "xsave"),
        "avx2": ("avx2", "avx", "xsave"),
        "fma": ("fma", "avx", "xsave"),
    }
    assert dropped[1].reason() == (
        "avx2 dropped: needs xsave (through avx), which is not in the set"
    )
    assert kept == V3_SET - {"xsave", "avx", "avx2", "fma"}


def test_avx512_without_its_xsave_components_is_dropped() -> None:
    v4 = V3_SET | {"avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512cd", "avx512_vnni"}
    with_state = v4 | {"xcr0_avx512_opmask", "xcr0_avx512_zmm_hi256", "xcr0_avx512_hi16_zmm"}
    assert deps.close_under_deps(with_state).dropped == ()
    kept, dropped = deps.close_under_deps(v4)
    assert {d.feature for d in dropped} == {
        "avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512cd", "avx512_vnni",
    }  # fmt: skip
    chains = {d.feature: d.chain for d in dropped}
    assert chains["avx512f"] == ("avx512f", "xcr0_avx512_opmask")
    assert chains["avx512_vnni"] == ("avx512_vnni", "avx512vl", "avx512f", "xcr0_avx512_opmask")
    assert kept == V3_SET
    # without the state dependencies only cpuid-deps.c applies: nothing to drop here
    assert deps.close_under_deps(v4, state=False).dropped == ()


def test_closure_of_a_synthetic_host_keeps_everything() -> None:
    """A real model's feature set is closed under the dependencies (no false drops)."""
    for model in hosts.MODELS:
        offered = {n for n, a in answers_from_cpuid(hosts.entries(model)).items() if a.yes}
        assert deps.close_under_deps(offered).dropped == (), model.name


# ---- XSAVE consistency on raw CPUID -------------------------------------------------------


def test_recorded_host_xsave_state_without_xsave(pvm: Snapshot) -> None:
    """KVM offers no XSAVE (leaf 1 ECX 0x81202000) yet 0xD.0 enumerates XCR0 0xe7, AVX and
    AVX-512 state included."""
    findings = deps.xsave_findings(pvm.supported_cpuid or ())
    by_check = {(f.check, f.features): f for f in findings}
    assert set(by_check) == {
        (ConsistencyCheck.XSAVE_STATE_WITHOUT_XSAVE, ("xsave",)),
        (ConsistencyCheck.STATE_WITHOUT_FEATURE, ("avx",)),
        (ConsistencyCheck.STATE_WITHOUT_FEATURE, ("avx512f",)),
    }
    no_xsave = by_check[(ConsistencyCheck.XSAVE_STATE_WITHOUT_XSAVE, ("xsave",))]
    assert no_xsave.components == (2, 5, 6, 7)
    assert no_xsave.raw == (("0xd.0.eax", 0xE7), ("0xd.0.edx", 0), ("0x1.0.ecx", 0x81202000))
    assert "0xe7" in no_xsave.evidence and "0x81202000" in no_xsave.evidence
    assert "xsave (0x1.0.ecx[26]) is not offered" in no_xsave.evidence
    avx512 = by_check[(ConsistencyCheck.STATE_WITHOUT_FEATURE, ("avx512f",))]
    assert avx512.components == (
        deps_data.XFEATURE_OPMASK,
        deps_data.XFEATURE_ZMM_HI256,
        deps_data.XFEATURE_HI16_ZMM,
    )
    assert ("0x7.0.ebx", 0x01800002) in avx512.raw
    assert "5 (OPMASK), 6 (ZMM_Hi256), 7 (Hi16_ZMM)" in avx512.evidence
    avx = by_check[(ConsistencyCheck.STATE_WITHOUT_FEATURE, ("avx",))]
    assert avx.components == (deps_data.XFEATURE_YMM,)


def test_recorded_host_consistency_findings(pvm: Snapshot) -> None:
    """On KVM's raw answer the XSAVE findings are all there is: no cpuid-deps.c violation."""
    findings = deps.consistency_findings(pvm.supported_cpuid, pvm.emulated_cpuid)
    assert {f.check for f in findings} == {
        ConsistencyCheck.XSAVE_STATE_WITHOUT_XSAVE,
        ConsistencyCheck.STATE_WITHOUT_FEATURE,
    }
    assert deps.consistency_findings(None) == ()


def test_recorded_host_cpu_is_consistent(pvm: Snapshot) -> None:
    assert deps.consistency_findings(pvm.host.cpuid) == ()


@pytest.mark.parametrize("model", hosts.MODELS, ids=lambda m: m.name)
def test_synthetic_hosts_are_consistent(model: hosts.HostModel) -> None:
    snap = hosts.host_snapshot(model)
    assert deps.consistency_findings(snap.supported_cpuid, snap.emulated_cpuid) == ()


def gnr() -> Cpuid:
    return hosts.cpuid(hosts.GRANITE_RAPIDS)


def findings_of(c: Cpuid) -> dict[ConsistencyCheck, list[deps.Finding]]:
    out: dict[ConsistencyCheck, list[deps.Finding]] = {}
    for f in deps.consistency_findings(c.entries()):
        out.setdefault(f.check, []).append(f)
    return out


def clear(c: Cpuid, name: str) -> None:
    from kvmprobe.analysis import cpuid as cp

    f = cp.lookup(name)
    assert f is not None
    c.clear(f.leaf, f.subleaf, f.register, f.bit)


def test_avx512_state_without_avx512f() -> None:
    c = gnr()
    for name in ("avx512f", "avx512dq", "avx512ifma", "avx512cd", "avx512bw", "avx512vl"):
        clear(c, name)
    found = findings_of(c)
    [f] = found[ConsistencyCheck.STATE_WITHOUT_FEATURE]
    assert f.features == ("avx512f",) and f.components == (5, 6, 7)
    # the AVX-512 extensions still offered now violate their dependency on avx512f/vl
    assert {d.features[0] for d in found[ConsistencyCheck.DEPENDENCY]} >= {"avx512vbmi"}


def test_amx_tile_state_without_amx_tile() -> None:
    c = gnr()
    for name in ("amx_tile", "amx_bf16", "amx_int8", "amx_fp16"):
        clear(c, name)
    [f] = findings_of(c)[ConsistencyCheck.STATE_WITHOUT_FEATURE]
    assert f.features == ("amx_tile",)
    assert f.components == (deps_data.XFEATURE_XTILE_CFG, deps_data.XFEATURE_XTILE_DATA)
    assert set(findings_of(c)) == {ConsistencyCheck.STATE_WITHOUT_FEATURE}


def test_amx_tile_without_its_state() -> None:
    c = gnr()
    hosts.set_xcr0(c, [b for b in hosts.GRANITE_RAPIDS.xcr0 if b not in hosts.AMX_XCR0])
    found = findings_of(c)
    [f] = found[ConsistencyCheck.FEATURE_WITHOUT_STATE]
    assert f.features == ("amx_tile",) and f.components == (17, 18)
    assert "amx_tile (0x7.0.edx[24]) is offered" in f.evidence
    assert set(found) == {ConsistencyCheck.FEATURE_WITHOUT_STATE}


def test_avx_without_avx_state() -> None:
    c = hosts.cpuid(hosts.HASWELL)
    hosts.set_xcr0(c, list(hosts.BASE_XCR0))
    [f] = findings_of(c)[ConsistencyCheck.FEATURE_WITHOUT_STATE]
    assert f.features == ("avx",) and f.components == (deps_data.XFEATURE_YMM,)


def test_pkru_state_follows_pku_not_the_runtime_bit() -> None:
    """Linux ties PKRU state to OSPKE, which KVM never offers; PKU stands in for it."""
    c = hosts.cpuid(hosts.EPYC_MILAN)
    assert findings_of(c) == {}
    clear(c, "pku")
    [f] = findings_of(c)[ConsistencyCheck.STATE_WITHOUT_FEATURE]
    assert f.features == ("pku",) and f.components == (deps_data.XFEATURE_PKRU,)


def test_component_without_its_size_subleaf() -> None:
    c = gnr()
    del c.regs[(0xD, deps_data.XFEATURE_ZMM_HI256)]
    [f] = findings_of(c)[ConsistencyCheck.COMPONENT_WITHOUT_SIZE]
    assert f.components == (6,) and "is missing" in f.evidence
    c = gnr()
    c.put(0xD, deps_data.XFEATURE_ZMM_HI256, flags=1, eax=0)
    [f] = findings_of(c)[ConsistencyCheck.COMPONENT_WITHOUT_SIZE]
    assert "reports size 0" in f.evidence and ("0xd.6.eax", 0) in f.raw


def test_xsave_without_leaf_0xd() -> None:
    c = gnr()
    for key in [k for k in c.regs if k[0] == 0xD]:
        del c.regs[key]
    found = findings_of(c)
    [f] = found[ConsistencyCheck.XSAVE_LEAF_MISSING]
    assert f.features == ("xsave",) and f.raw[0][0] == "0x1.0.ecx"


def test_no_leaf_1_no_findings() -> None:
    assert deps.xsave_findings([CpuidEntry(0, 0, 0, 0xD, 0, 0, 0)]) == ()


def test_dependency_finding_carries_raw_registers() -> None:
    c = hosts.cpuid(hosts.HASWELL)
    clear(c, "avx")
    found = findings_of(c)
    fma = next(f for f in found[ConsistencyCheck.DEPENDENCY] if f.features == ("fma", "avx"))
    assert dict(fma.raw)["0x1.0.ecx"] == c.regs[(1, 0)]["ecx"]
    assert "avx is 0x1.0.ecx[28]" in fma.evidence
    # avx gone but its state still enumerated: the XSAVE check says so too
    [state] = found[ConsistencyCheck.STATE_WITHOUT_FEATURE]
    assert state.features == ("avx",)
