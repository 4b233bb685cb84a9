"""x86-64 psABI levels: the recorded AMD host (KVM gives v1), synthetic hosts built from QEMU's
model definitions, and the rules for emulated, OS-enabled and unknown features."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import hosts

from kvmprobe.analysis.answers import (
    UNKNOWN,
    YES,
    Answer,
    answer_from_status,
    answers_from_cpuid,
    no,
)
from kvmprobe.analysis.levels import psabi_level, requirements, requirements_of
from kvmprobe.snapshot import Snapshot, load
from kvmprobe.vocab import FeatureStatus, NotOfferedReason, Offered, PsabiLevel, RequirementKind

PVM = Path(__file__).parent / "fixtures" / "amd-epyc-pvm-6.18.json"


@pytest.fixture(scope="module")
def pvm() -> Snapshot:
    snap, warnings = load(str(PVM))
    assert warnings == []
    return snap


def kvm_answers(snap: Snapshot) -> dict[str, Answer]:
    return answers_from_cpuid(snap.supported_cpuid, snap.emulated_cpuid)


# ---- the recorded host --------------------------------------------------------------------


def test_recorded_amd_host_gives_a_v1_guest(pvm: Snapshot) -> None:
    report = psabi_level(kvm_answers(pvm))
    assert report.highest is PsabiLevel.V1
    assert report.result(PsabiLevel.V1).met
    v2 = report.result(PsabiLevel.V2)
    assert not v2.met
    assert [m.requirement.feature for m in v2.missing] == [
        "popcnt",
        "pni",
        "sse4_1",
        "sse4_2",
        "ssse3",
    ]
    assert {m.reason for m in v2.missing} == {NotOfferedReason.UNSUPPORTED}
    assert [m.requirement.psabi_name for m in v2.missing] == [
        "POPCNT",
        "SSE3",
        "SSE4_1",
        "SSE4_2",
        "SSSE3",
    ]
    assert report.next_level == v2
    assert report.missing_through(PsabiLevel.V2) == v2.missing


def test_recorded_host_leaf_1_ecx_is_the_issue_value(pvm: Snapshot) -> None:
    """The numbers behind the finding: KVM's leaf 1 ECX is 0x81202000 (CMPXCHG16B yes, SSE3,
    SSSE3, SSE4.x, POPCNT, AVX, XSAVE no), LAHF-SAHF is there."""
    leaf1 = next(e for e in pvm.supported_cpuid or () if e.function == 1)
    assert leaf1.ecx == 0x81202000
    answers = kvm_answers(pvm)
    assert answers["cx16"] == YES
    assert answers["lahf_lm"] == YES


def test_recorded_host_movbe_is_emulated_only(pvm: Snapshot) -> None:
    answers = kvm_answers(pvm)
    assert answers["movbe"] == no(NotOfferedReason.EMULATED)
    v3 = psabi_level(answers).result(PsabiLevel.V3)
    assert [r.feature for r in v3.emulated] == ["movbe"]
    movbe = next(m for m in v3.missing if m.requirement.feature == "movbe")
    assert movbe.reason is NotOfferedReason.EMULATED
    # counting emulated features does not lift this guest: v2 is still short
    counted = psabi_level(answers, count_emulated=True)
    assert counted.highest is PsabiLevel.V1
    assert "movbe" not in {m.requirement.feature for m in counted.result(PsabiLevel.V3).missing}


def test_recorded_host_itself_is_v4(pvm: Snapshot) -> None:
    """The host CPU (read from /dev/cpu/0/cpuid) reaches v4: the gap is KVM's, not the CPU's."""
    assert pvm.host.cpuid is not None
    assert psabi_level(answers_from_cpuid(pvm.host.cpuid)).highest is PsabiLevel.V4


def test_unprobed_cpuid_is_unknown_not_below_v1(pvm: Snapshot) -> None:
    report = psabi_level(answers_from_cpuid(None))
    assert report.highest is PsabiLevel.BELOW_V1
    assert {m.answer for m in report.result(PsabiLevel.V1).missing} == {UNKNOWN}
    assert {m.reason for m in report.result(PsabiLevel.V1).missing} == {NotOfferedReason.UNKNOWN}


# ---- synthetic hosts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "level"),
    [
        (hosts.HASWELL, PsabiLevel.V3),
        (hosts.SKYLAKE_SERVER, PsabiLevel.V4),
        (hosts.EPYC_MILAN, PsabiLevel.V3),
        (hosts.GRANITE_RAPIDS, PsabiLevel.V4),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_synthetic_host_levels(model: hosts.HostModel, level: PsabiLevel) -> None:
    snap = hosts.host_snapshot(model)
    assert psabi_level(kvm_answers(snap)).highest is level
    assert snap.host.cpuid is not None
    assert psabi_level(answers_from_cpuid(snap.host.cpuid)).highest is level


def test_milan_misses_exactly_the_v4_rows() -> None:
    report = psabi_level(kvm_answers(hosts.host_snapshot(hosts.EPYC_MILAN)))
    nxt = report.next_level
    assert nxt is not None and nxt.level is PsabiLevel.V4
    assert [m.requirement.feature for m in nxt.missing] == [
        "avx512f",
        "avx512bw",
        "avx512cd",
        "avx512dq",
        "avx512vl",
        "xcr0_avx512_opmask",
        "xcr0_avx512_zmm_hi256",
        "xcr0_avx512_hi16_zmm",
    ]


def test_v4_needs_the_avx512_state_components() -> None:
    """A Skylake-SP whose KVM enumerates no AVX-512 state in XCR0 is v3, the state rows named."""
    c = hosts.cpuid(hosts.SKYLAKE_SERVER)
    hosts.set_xcr0(c, [b for b in hosts.SKYLAKE_SERVER.xcr0 if b not in hosts.AVX512_XCR0])
    report = psabi_level(kvm_answers(hosts.host_snapshot(hosts.SKYLAKE_SERVER, c)))
    assert report.highest is PsabiLevel.V3
    missing = report.result(PsabiLevel.V4).missing
    assert {m.requirement.kind for m in missing} == {RequirementKind.XSAVE_STATE}
    assert len(missing) == 3


def test_osxsave_counts_through_xsave() -> None:
    """KVM never offers the OSXSAVE bit; XSAVE being offered meets the OSXSAVE row."""
    answers = kvm_answers(hosts.host_snapshot(hosts.HASWELL))
    assert answers["osxsave"].offered is Offered.NO
    assert psabi_level(answers).highest is PsabiLevel.V3
    answers["xsave"] = no(NotOfferedReason.HOST_ONLY)
    report = psabi_level(answers)
    assert report.highest is PsabiLevel.V2
    [short] = report.result(PsabiLevel.V3).missing
    assert short.requirement.psabi_name == "OSXSAVE"
    assert short.requirement.kind is RequirementKind.OS_ENABLE
    assert short.reason is NotOfferedReason.HOST_ONLY


# ---- rules --------------------------------------------------------------------------------


def all_yes() -> dict[str, Answer]:
    return {r.feature: YES for r in requirements()}


def test_everything_offered_is_v4() -> None:
    assert psabi_level(all_yes()).highest is PsabiLevel.V4
    assert psabi_level(all_yes()).next_level is None


@pytest.mark.parametrize("level", PsabiLevel.levels())
def test_unknown_never_meets_a_level(level: PsabiLevel) -> None:
    for req in requirements_of(level):
        answers = all_yes()
        answers[req.feature] = UNKNOWN
        report = psabi_level(answers, count_emulated=True)
        assert report.highest.rank == level.rank - 1, req.feature
        missing = report.result(level).missing
        assert missing and {m.requirement.feature for m in missing} == {req.feature}
        assert {m.reason for m in missing} == {NotOfferedReason.UNKNOWN}
        # a feature the mapping does not hold is unknown too
        del answers[req.feature]
        assert psabi_level(answers).highest.rank == level.rank - 1


def test_emulated_counts_only_when_asked() -> None:
    answers = all_yes()
    answers["movbe"] = no(NotOfferedReason.EMULATED)
    default = psabi_level(answers)
    assert default.highest is PsabiLevel.V2
    assert default.result(PsabiLevel.V3).missing[0].reason is NotOfferedReason.EMULATED
    counted = psabi_level(answers, count_emulated=True)
    assert counted.highest is PsabiLevel.V4
    assert counted.count_emulated
    assert [r.feature for r in counted.result(PsabiLevel.V3).emulated] == ["movbe"]


def test_a_level_needs_every_lower_level() -> None:
    answers = all_yes()
    answers["cmov"] = no(NotOfferedReason.REMOVED_BY_QUIRK)
    report = psabi_level(answers)
    assert report.highest is PsabiLevel.BELOW_V1
    assert report.result(PsabiLevel.V4).met  # its own rows are met...
    assert not report.meets(PsabiLevel.V1)  # ...but the level is not reached
    assert [m.requirement.feature for m in report.missing_through(PsabiLevel.V4)] == ["cmov"]


def test_requirement_labels() -> None:
    by_name = {r.psabi_name: r for r in requirements() if r.psabi_name}
    assert by_name["LAHF-SAHF"].label == "LAHF-SAHF (lahf_lm)"
    assert by_name["SSE4_1"].label == "SSE4_1"
    assert by_name["LZCNT"].where == "0x80000001.0.ecx[5]"


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("x86-64-v2", PsabiLevel.V2),
        ("X86_64-V3", PsabiLevel.V3),
        ("v4", PsabiLevel.V4),
        ("x86-64", PsabiLevel.V1),
        ("baseline", PsabiLevel.V1),
        ("x86-64-v1", PsabiLevel.V1),
        ("x86-64-v5", None),
        ("below-x86-64-v1", None),
        ("avx2", None),
    ],
)
def test_level_parse(text: str, level: PsabiLevel | None) -> None:
    assert PsabiLevel.parse(text) is level


def test_level_ranks() -> None:
    assert [lv.rank for lv in PsabiLevel] == [0, 1, 2, 3, 4]
    assert PsabiLevel.levels() == (PsabiLevel.V1, PsabiLevel.V2, PsabiLevel.V3, PsabiLevel.V4)


# ---- answers ------------------------------------------------------------------------------


def test_answer_from_status() -> None:
    assert answer_from_status(FeatureStatus.SUPPORTED, True) == YES
    assert answer_from_status(FeatureStatus.HOST_ONLY, None) == UNKNOWN
    assert answer_from_status(FeatureStatus.HOST_ONLY, False) == no(NotOfferedReason.HOST_ONLY)
    assert answer_from_status(FeatureStatus.EMULATED, False) == no(NotOfferedReason.EMULATED)
    assert answer_from_status(FeatureStatus.REMOVED_BY_QUIRK, False).why is (
        NotOfferedReason.REMOVED_BY_QUIRK
    )
    assert answer_from_status(FeatureStatus.SUPPORTED, False) == no(NotOfferedReason.UNKNOWN)
    assert answer_from_status(None, False) == no(NotOfferedReason.UNKNOWN)


def test_answer_invariants() -> None:
    assert Answer(Offered.NO).reason is NotOfferedReason.UNKNOWN
    with pytest.raises(ValueError):
        Answer(Offered.YES, NotOfferedReason.HOST_ONLY)
    with pytest.raises(ValueError):
        Answer(Offered.UNKNOWN, NotOfferedReason.UNSUPPORTED)
    assert YES.why is None and UNKNOWN.why is NotOfferedReason.UNKNOWN
    assert no(NotOfferedReason.HOST_ONLY).label() == "not offered (host-only)"
