"""kvmprobe baseline's analysis: one host's baseline is its effective set, a dependency chain
is dropped with its reason, left-out features name the hosts that lack them and why, fields
take their common or smallest value, XSAVE layouts must agree, unknown answers are left out,
chunks merge to the same result, and the baseline guest's CPUID registers."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import FIXTURES
from support import hosts

from kvmprobe.analysis import profile as P
from kvmprobe.analysis.baseline import BaselineBuilder, baseline
from kvmprobe.analysis.guest import baseline_subject
from kvmprobe.analysis.quirks import Options
from kvmprobe.analysis.require import check, parse
from kvmprobe.snapshot import Snapshot, load
from kvmprobe.vocab import CompareRule, Irqchip, NotOfferedReason, Offered

PVM = str(FIXTURES / "amd-epyc-pvm-6.18.json")
ZEN4 = str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")


def _named(snap: Snapshot, name: str, **kw: object) -> P.HostProfile:
    return replace(P.build(snap, Options(**kw)), name=name)  # type: ignore[arg-type]


def _model(model: hosts.HostModel, *, clear: tuple[str, ...] = ()) -> Snapshot:
    c = hosts.cpuid(model)
    for name in clear:
        f = next(hosts.resolve(w, name) for w, ns in model.words.items() if name in ns)
        c.clear(f.leaf, f.subleaf, f.register, f.bit)
    return hosts.host_snapshot(model, c)


def _pos(name: str) -> int:
    return P.feature_space().by_name[name]


@pytest.mark.parametrize("irqchip", list(Irqchip))
def test_baseline_of_one_host_is_its_effective_set(irqchip: Irqchip) -> None:
    snaps = [load(PVM)[0], load(ZEN4)[0], *(hosts.host_snapshot(m) for m in hosts.MODELS)]
    for snap in snaps:
        p = P.build(snap, Options(irqchip=irqchip))
        b = baseline([p])
        assert b.features == p.effective, snap.source
        # only what the host cannot tell is left out (arch_capabilities without a vCPU
        # verification, in a format-1 snapshot)
        unknown = {P.feature_space().name(pos) for pos in P.positions(p.unknown)}
        assert {x.feature.name for x in b.left_out} == unknown and b.dropped == {}
        assert b.vendor == p.vendor


def test_recorded_pvm_host_keeps_what_its_own_answer_lacks() -> None:
    """The PVM host enumerates AVX state without AVX: a feature every host gives is kept even
    when a dependency is missing on every host (cpuid warns about it)."""
    b = baseline([P.build(load(PVM)[0], Options())])
    assert b.features == P.build(load(PVM)[0], Options()).effective


def test_baseline_drops_a_dependency_chain() -> None:
    full = _named(_model(hosts.SKYLAKE_SERVER), "sky-1")
    no_avx = _named(_model(hosts.SKYLAKE_SERVER, clear=("avx",)), "sky-2")
    b = baseline([full, no_avx])
    for name in ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"):
        assert not b.features >> _pos(name) & 1, name
    assert "avx" not in b.dropped  # avx is simply lacking on sky-2, not dropped by a rule
    assert b.dropped["avx2"] == "avx2 dropped: needs avx, which sky-2 lacks"
    # a chain: avx512bw needs avx512f, which needs avx (Linux cpuid_deps[])
    assert b.dropped["avx512f"] == "avx512f dropped: needs avx, which sky-2 lacks"
    assert (
        b.dropped["avx512bw"] == "avx512bw dropped: needs avx (through avx512f), which sky-2 lacks"
    )
    # what stays: everything both give that does not depend on avx
    for name in ("sse4_2", "popcnt", "xsave", "bmi2", "clwb"):
        assert b.features >> _pos(name) & 1, name
    left = {lo.name: lo for lo in b.left_out}
    assert left["avx"].giving == 1
    assert [(x.host, x.answer.why) for x in left["avx"].lacking] == [
        ("sky-2", NotOfferedReason.HOST_ONLY)
    ]
    assert left["avx2"].dropped == b.dropped["avx2"]
    assert left["avx2"].giving == 2


def test_left_out_counts_hosts_and_reasons() -> None:
    snap = _model(hosts.HASWELL)
    profiles = [_named(snap, f"h{i}") for i in range(5)]
    profiles += [_named(_model(hosts.HASWELL, clear=("rdrand",)), f"r{i}") for i in range(3)]
    b = baseline(profiles)
    lo = next(x for x in b.left_out if x.name == "rdrand")
    assert lo.giving == 5 and len(lo.lacking) == 3
    assert [x.host for x in lo.lacking] == ["r0", "r1", "r2"]
    assert "3 of 8 hosts lack it: r0 (not offered (host-only))" in b.why_not(_pos("rdrand"))


def test_fields_smallest_where_safe_and_vendor_common() -> None:
    c1, c2 = hosts.cpuid(hosts.HASWELL), hosts.cpuid(hosts.HASWELL)
    c1.put(0x80000008, 0, eax=46 | 48 << 8)
    c2.put(0x80000008, 0, eax=39 | 48 << 8)
    b = baseline([
        _named(hosts.host_snapshot(hosts.HASWELL, c1), "a"),
        _named(hosts.host_snapshot(hosts.HASWELL, c2), "b"),
    ])  # fmt: skip
    phys = next(f for f in b.fields if f.name == "phys_addr_bits")
    assert (phys.value, phys.lowest, phys.highest, phys.rule) == (39, 39, 46, CompareRule.NOT_LESS)
    assert b.common_fields["phys_addr_bits"] == 39
    assert b.common_fields["virt_addr_bits"] == 48
    assert b.vendor == "GenuineIntel"
    mixed = baseline([_named(hosts.host_snapshot(hosts.HASWELL), "i"),
                      _named(hosts.host_snapshot(hosts.EPYC_MILAN), "m")])  # fmt: skip
    assert mixed.vendor is None and set(mixed.vendors) == {"GenuineIntel", "AuthenticAMD"}
    model = next(f for f in mixed.fields if f.name == "family")
    assert model.value is None and model.differs


def test_xsave_layout_mismatch_drops_the_component_and_its_features() -> None:
    a = _named(_model(hosts.SKYLAKE_SERVER), "a")
    moved = tuple(replace(c, offset=c.offset + 64) if c.number == 6 else c
                  for c in a.xsave_components)  # fmt: skip
    b = replace(a, name="b", xsave_components=moved)
    base = baseline([a, b])
    assert "xcr0_avx512_zmm_hi256" in base.dropped
    assert "size or offset differs" in base.dropped["xcr0_avx512_zmm_hi256"]
    assert base.dropped["avx512f"].startswith("avx512f dropped: needs xcr0_avx512_zmm_hi256")
    assert not base.features >> _pos("avx512f") & 1
    assert base.features >> _pos("avx2") & 1
    assert 6 not in {c.number for c in base.xsave_components}
    assert base.xcr0 is not None and not base.xcr0 >> 6 & 1


def test_max_leaf_limits_features() -> None:
    gr = _named(hosts.host_snapshot(hosts.GRANITE_RAPIDS), "gr")
    low = hosts.cpuid(hosts.GRANITE_RAPIDS)
    low.put(0x0, 0, eax=0x6)  # this host's KVM stops at leaf 6
    b = baseline([gr, _named(hosts.host_snapshot(hosts.GRANITE_RAPIDS, low), "low")])
    assert "avx512f" in b.dropped and "beyond the common maximum 0x6" in b.dropped["avx512f"]
    assert b.features >> _pos("sse4_2") & 1


def test_unknown_answers_are_left_out_as_unknown() -> None:
    a = _named(load(PVM)[0], "a")
    cx16 = _pos("cx16")
    b = replace(a, name="b", effective=a.effective & ~(1 << cx16), unknown=1 << cx16)
    base = baseline([a, b])
    assert not base.features >> cx16 & 1
    lo = next(x for x in base.left_out if x.name == "cx16")
    assert [(x.host, x.answer.offered) for x in lo.lacking] == [("b", Offered.UNKNOWN)]
    assert base.answers()["cx16"].offered is Offered.UNKNOWN
    reqs, _ = parse("cx16")
    result = check(reqs, baseline_subject(base))
    assert not result.met and result.outcomes[0].offered is Offered.UNKNOWN


def test_chunks_merge_to_the_same_baseline() -> None:
    profiles = [
        _named(load(PVM)[0], "p"), _named(load(ZEN4)[0], "z"),
        _named(_model(hosts.EPYC_MILAN, clear=("sha-ni",)), "m1"),
        _named(hosts.host_snapshot(hosts.EPYC_MILAN), "m2"),
    ]  # fmt: skip
    whole = baseline(profiles)
    left, right = BaselineBuilder(), BaselineBuilder()
    for p in profiles[:2]:
        left.add(p)
    for p in profiles[2:]:
        right.add(p)
    merged = BaselineBuilder()
    merged.merge(left)
    merged.merge(right)
    assert merged.finish() == whole


def test_registers_hold_the_baseline_features_and_fields() -> None:
    p = _named(hosts.host_snapshot(hosts.SKYLAKE_SERVER), "s")
    b = baseline([p])
    entries = {(e.function, e.index): e for e in b.registers()}
    space = P.feature_space()
    for pos in P.positions(b.features):
        leaf, sub, reg, bit = space.loc(pos)
        assert entries[(leaf, sub)].reg(reg) >> bit & 1, space.name(pos)
    leaf0 = entries[(0, 0)]
    raw = b"".join(x.to_bytes(4, "little") for x in (leaf0.ebx, leaf0.edx, leaf0.ecx))
    assert raw == b"GenuineIntel"
    assert leaf0.eax == hosts.SKYLAKE_SERVER.level
    assert entries[(7, 0)].flags == 1  # leaf 7's subleaf is significant
    xcr0 = entries[(0xD, 0)].eax
    assert xcr0 == b.xcr0
    for c in b.xsave_components:
        assert (entries[(0xD, c.number)].eax, entries[(0xD, c.number)].ebx) == (c.size, c.offset)


def test_empty_baseline_is_an_error() -> None:
    with pytest.raises(ValueError):
        BaselineBuilder().finish()


def test_host_with_a_failed_step_is_named_for_its_unknown_answers() -> None:
    from kvmprobe.snapshot import ProbeError

    snap = load(PVM)[0]
    failed = replace(
        snap,
        emulated_cpuid=None,
        errors=(ProbeError("KVM_GET_EMULATED_CPUID", 5, "Input/output error"),),
    )
    b = baseline([_named(snap, "ok"), _named(failed, "bad")])
    movbe = next(x for x in b.left_out if x.name == "movbe")
    assert [(x.host, x.answer.offered) for x in movbe.lacking] == [("bad", Offered.UNKNOWN)]
    assert "KVM_GET_EMULATED_CPUID" in movbe.lacking[0].detail
    assert "bad" in b.errors
