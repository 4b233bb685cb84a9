"""Host profiles: the short way to the effective answers equals the full analysis, bit for bit,
on every recorded and synthetic host, in every irqchip set-up, and on randomly altered hosts;
snapshots with failed steps take the full analysis; unknown stays unknown."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from conftest import RECORDED_HOSTS
from support import hosts

from kvmprobe.analysis import profile as P
from kvmprobe.analysis.answers import UNKNOWN, YES
from kvmprobe.analysis.compare import reason_masks
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.quirks import Options
from kvmprobe.snapshot import CpuidEntry, ProbeError, Snapshot, load
from kvmprobe.vocab import DisableExit, Irqchip, NotOfferedReason, Offered


def _recorded() -> list[Snapshot]:
    return [load(str(p))[0] for p in RECORDED_HOSTS]


def _synthetic() -> list[Snapshot]:
    return [hosts.host_snapshot(m) for m in hosts.MODELS]


def _assert_same(snap: Snapshot, opts: Options) -> None:
    a = analyse(snap, opts)
    p = P.build(snap, opts)
    space = P.feature_space()
    for r in a.features:
        pos = space.position(r.feature.loc)
        assert pos is not None, r.feature.where
        assert p.status(pos) is r.verdict.status, (r.feature.name, p.status(pos))
        assert bool(p.effective >> pos & 1) is bool(r.verdict.effective), r.feature.name
    offered = {space.position(r.feature.loc) for r in a.features if r.verdict.effective}
    assert set(P.positions(p.effective)) == offered


SETUPS = [
    Options(irqchip=Irqchip.KERNEL),
    Options(irqchip=Irqchip.SPLIT),
    Options(irqchip=Irqchip.USERSPACE),
    Options(irqchip=Irqchip.KERNEL, disable_exits=frozenset(DisableExit)),
]


@pytest.mark.parametrize("opts", SETUPS, ids=lambda o: f"{o.irqchip}-{len(o.disable_exits)}")
def test_profile_equals_the_full_analysis(opts: Options) -> None:
    for snap in _recorded() + _synthetic():
        _assert_same(snap, opts)


def _mutate(snap: Snapshot, rng: random.Random) -> Snapshot:
    entries = list(snap.supported_cpuid or ())
    for _ in range(rng.randint(1, 12)):
        i = rng.randrange(len(entries))
        e = entries[i]
        reg = rng.choice(("eax", "ebx", "ecx", "edx"))
        value = e.reg(reg) ^ (1 << rng.randrange(32))
        entries[i] = replace(e, **{reg: value})
    return replace(snap, supported_cpuid=tuple(entries))


def test_profile_equals_the_full_analysis_on_altered_hosts() -> None:
    rng = random.Random(7)
    bases = _recorded() + _synthetic()
    for _ in range(40):
        snap = _mutate(rng.choice(bases), rng)
        _assert_same(snap, rng.choice(SETUPS))


def test_snapshot_with_a_failed_step_takes_the_full_analysis(monkeypatch) -> None:
    snap = _recorded()[0]
    failed = replace(
        snap,
        emulated_cpuid=None,
        errors=(ProbeError("KVM_GET_EMULATED_CPUID", 5, "Input/output error"),),
    )
    calls: list[Snapshot] = []
    import kvmprobe.analysis.effective as eff

    real = eff.analyse

    def spy(s: Snapshot, o: Options | None = None):  # type: ignore[no-untyped-def]
        calls.append(s)
        return real(s, o)

    monkeypatch.setattr(eff, "analyse", spy)
    p = P.build(failed, Options())
    assert calls == [failed]
    assert not p.emulated_known
    _assert_same(failed, Options())


def test_no_supported_cpuid_makes_every_answer_unknown() -> None:
    snap = replace(
        _recorded()[0],
        supported_cpuid=None,
        errors=(ProbeError("KVM_GET_SUPPORTED_CPUID", 7, "Argument list too long"),),
    )
    p = P.build(snap, Options())
    assert not p.cpuid_known
    assert p.effective == 0
    avx2 = P.feature_space().by_name["avx2"]
    assert p.answer(avx2) == UNKNOWN
    assert "KVM_GET_SUPPORTED_CPUID failed (E2BIG)" in (p.cpuid_error() or "")
    assert p.answers(["cx16"]) == {"cx16": UNKNOWN}


def test_failed_capability_check_is_unknown_not_zero() -> None:
    snap = _recorded()[0]
    caps = dict(snap.caps)
    system = dict(caps["system"] or {})
    system.pop(61, None)  # KVM_CAP_GET_TSC_KHZ
    caps["system"] = system
    failed = replace(
        snap,
        caps=caps,
        errors=(ProbeError("KVM_CHECK_EXTENSION(61) on system", 5, "Input/output error"),),
    )
    assert P.cap_value(failed, 61) is None
    assert P.cap_value(replace(failed, errors=()), 61) == 0
    assert P.build(failed, Options()).caps["KVM_CAP_GET_TSC_KHZ"] is None
    no_scope = replace(snap, caps={**snap.caps, "vm": None})
    assert P.cap_value(no_scope, 208, "vm") is None


def test_emulated_only_feature_is_offered_but_does_not_count_for_a_level() -> None:
    """MOVBE on the recorded AMD host: only in KVM_GET_EMULATED_CPUID. The effective analysis
    offers it (status emulated: it works, slowly); the x86-64 level does not count it."""
    p = P.build(_recorded()[0], Options())
    movbe = P.feature_space().by_name["movbe"]
    assert p.answer(movbe) == YES
    assert p.answer(movbe, level=True).why is NotOfferedReason.EMULATED
    assert p.emulated_offered >> movbe & 1


def test_reason_masks_agree_with_answers() -> None:
    for snap in _recorded() + _synthetic()[:1]:
        p = P.build(snap, Options(irqchip=Irqchip.USERSPACE))
        masks = reason_masks(p)
        space = P.feature_space()
        for pos in space.named:
            a = p.answer(pos)
            if a.offered is not Offered.NO:
                assert not any(m >> pos & 1 for m in masks.values())
                continue
            hits = [r for r, m in masks.items() if m >> pos & 1]
            assert hits == [a.why], space.name(pos)


def test_unnamed_bits_are_positions_and_keep_their_location() -> None:
    space = P.feature_space()
    f = P.feature_space().feature(space.by_name["avx2"])
    assert f.name == "avx2"
    # leaf 1 ECX bit 31 is named (hypervisor); find a register bit no row names
    unnamed = next(
        pos for slot in range(len(space.slots)) for bit in range(32)
        if (pos := slot * 32 + bit) not in space.named and space.space[slot] >> bit & 1
    )  # fmt: skip
    g = space.feature(unnamed)
    assert not g.known and g.name == g.where


def test_profile_is_small_and_picklable() -> None:
    import pickle

    p = P.build(_recorded()[0], Options())
    data = pickle.dumps(p)
    assert pickle.loads(data) == p
    assert len(data) < 8000


def test_answer_yes_for_an_offered_feature() -> None:
    p = P.build(_recorded()[0], Options())
    assert p.answer(P.feature_space().by_name["cx16"]) == YES
    assert p.vendor == "AuthenticAMD"
    assert p.field("phys_addr_bits") == 48


def test_fast_entry_construction_gives_the_normal_object() -> None:
    from kvmprobe.snapshot import _new_entry

    a = _new_entry((1, 2, 3, 4, 5, 6, 7))
    b = CpuidEntry(1, 2, 3, 4, 5, 6, 7)
    assert a == b and hash(a) == hash(b) and repr(a) == repr(b)
    with pytest.raises(AttributeError):
        a.eax = 9  # type: ignore[misc]
