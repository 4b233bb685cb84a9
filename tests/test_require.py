"""--require: every spelling kvmprobe accepts, levels, MSR bits, unknown names with suggestions,
and unknown answers counted as missing."""

from __future__ import annotations

from dataclasses import replace

from conftest import FIXTURES

from kvmprobe.analysis import profile as P
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.guest import analysis_subject, profile_subject
from kvmprobe.analysis.quirks import Options
from kvmprobe.analysis.require import check, parse
from kvmprobe.snapshot import SetAttempt, Snapshot, load
from kvmprobe.vocab import Offered, PsabiLevel, RequireKind

PVM = str(FIXTURES / "amd-epyc-pvm-6.18.json")


def _verified(snap: Snapshot, accepted: bool, refused: tuple[int, ...]) -> Snapshot:
    """The snapshot as if kvmprobe had tried its ARCH_CAPABILITIES value on a vCPU."""
    value = snap.feature_msrs[0x10A]
    attempt = SetAttempt("KVM_SET_MSRS", "split", 0x10A, value, accepted, None, refused)
    return replace(snap, verification=(attempt,))


def test_parse_every_kind_and_spelling() -> None:
    reqs, bad = parse(" x86-64-v2, v3 ,avx2,tsc-deadline,X86_FEATURE_X2APIC,0x1.0.ecx[13],mds-no,,")
    assert bad == ()
    assert [r.kind for r in reqs] == [
        RequireKind.LEVEL, RequireKind.LEVEL, RequireKind.FEATURE, RequireKind.FEATURE,
        RequireKind.FEATURE, RequireKind.FEATURE, RequireKind.MSR_BIT,
    ]  # fmt: skip
    assert [r.label for r in reqs] == [
        "x86-64-v2", "x86-64-v3", "avx2", "tsc_deadline_timer", "x2apic", "cx16", "mds-no",
    ]  # fmt: skip
    assert reqs[0].level is PsabiLevel.V2


def test_duplicates_collapse() -> None:
    reqs, _ = parse("avx2,AVX2,X86_FEATURE_AVX2")
    assert len(reqs) == 1


def test_unknown_names_come_back_with_suggestions() -> None:
    reqs, bad = parse("avx2,avx3,mds_nope,x86-64-v9")
    assert [r.label for r in reqs] == ["avx2"]
    assert [b.text for b in bad] == ["avx3", "mds_nope", "x86-64-v9"]
    assert "avx2" in bad[0].suggestions
    assert "mds-no" in bad[1].suggestions
    assert "x86-64-v2" in bad[2].suggestions


def test_check_on_the_recorded_host() -> None:
    a = analyse(load(PVM)[0])
    reqs, _ = parse("x86-64-v1,x86-64-v2,cx16,sse4.2,mds-no,vmx-ept")
    result = check(reqs, analysis_subject(a))
    by = {o.requirement.label: o for o in result.outcomes}
    assert by["x86-64-v1"].met
    assert not by["x86-64-v2"].met
    # the missing rows grouped by answer, each answer said once (no nested parentheses)
    why = by["x86-64-v2"].why
    assert "x86-64-v1; not offered (host-only): POPCNT, SSE3 (pni), SSE4_1" in why
    assert why.count("host-only") == 1
    assert by["cx16"].met
    assert not by["sse4_2"].met and by["sse4_2"].offered is Offered.NO
    assert "host CPU has it" in by["sse4_2"].why
    # advertised, but a format-1 snapshot cannot tell whether a vCPU takes it
    assert not by["mds-no"].met and by["mds-no"].offered is Offered.UNKNOWN
    assert "0x400000000c000069" in by["mds-no"].why and "no vCPU verification" in by["mds-no"].why
    assert not by["vmx-ept"].met  # an AMD host reports no VMX capability MSRs
    assert "KVM reports no" in by["vmx-ept"].why
    assert [o.requirement.label for o in result.unmet] == [
        "x86-64-v2", "sse4_2", "mds-no", "vmx-ept",
    ]  # fmt: skip
    # a vCPU took the advertised value: met; it refused bit 5 (MDS_NO): not met, and why
    for accepted, refused, met in ((True, (), True), (False, (5,), False)):
        snap = _verified(load(PVM)[0], accepted, refused)
        (o,) = check(parse("mds-no")[0], analysis_subject(analyse(snap))).outcomes
        assert o.met is met and "0x400000000c000069" in o.why
        assert met or ("refused by KVM_SET_MSRS on a vCPU" in o.why and o.offered is Offered.NO)


def test_unknown_answers_do_not_meet_a_requirement() -> None:
    p = P.build(_verified(load(PVM)[0], True, ()), Options())
    cmov = P.feature_space().by_name["cmov"]  # an x86-64-v1 row
    unknown = replace(p, effective=p.effective & ~(1 << cmov), unknown=1 << cmov)
    reqs, _ = parse("cmov,x86-64-v1,mds-no")
    result = check(reqs, profile_subject(unknown))
    by = {o.requirement.label: o for o in result.outcomes}
    assert not by["cmov"].met and by["cmov"].offered is Offered.UNKNOWN
    assert not by["x86-64-v1"].met and by["x86-64-v1"].offered is Offered.UNKNOWN
    assert "; unknown: CMOV" in by["x86-64-v1"].why
    assert by["mds-no"].met
    no_msrs = replace(p, msr_feature_list=None)
    result2 = check(parse("mds-no")[0], profile_subject(no_msrs))
    assert not result2.met
    assert result2.outcomes[0].offered is Offered.UNKNOWN
    assert "KVM_GET_MSR_FEATURE_INDEX_LIST" in result2.outcomes[0].why
