"""Feature-MSR bits as features (``cpuid mds-no``, ``cpuid --explain mds-no``), the quirk
``arch-capabilities-refused`` built on kvmprobe's own vCPU verification, and libvirt's and
QEMU's CPUID names accepted wherever kvmprobe takes a feature name."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES

from kvmprobe.analysis import cpuid_query as cq
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.msr import lookup_bit
from kvmprobe.analysis.msr_features import advertised_bits, bit_result
from kvmprobe.analysis.quirks import Options
from kvmprobe.analysis.require import parse
from kvmprobe.cli import main
from kvmprobe.snapshot import ProbeError, SetAttempt, Snapshot, Steps, load
from kvmprobe.tables import libvirt_data as lv
from kvmprobe.vocab import FeatureStatus, Offered

PVM = str(FIXTURES / "amd-epyc-pvm-6.18.json")  # format 1: no vCPU verification
ZEN4 = str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")  # format 2: every ARCH_CAP bit refused
ARCH = 0x10A


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _arch(snap: Snapshot) -> object:
    a = analyse(snap, Options())
    return next(r for r in a.features if r.feature.name == "arch_capabilities")


def _with(snap: Snapshot, *attempts: SetAttempt) -> Snapshot:
    return replace(snap, verification=attempts)


def _msr(
    value: int, accepted: bool | None, refused: tuple[int, ...] = (), errno: int | None = None
):
    return SetAttempt("KVM_SET_MSRS", "split", ARCH, value, accepted, errno, refused)


# ---- the quirk record --------------------------------------------------------------------------


def test_every_advertised_bit_refused_removes_the_cpuid_bit() -> None:
    r = _arch(load(ZEN4)[0])
    v = r.verdict
    assert (v.status, v.effective, v.quirks) == (
        FeatureStatus.REMOVED_BY_QUIRK, False, ["arch-capabilities-refused"],
    )  # fmt: skip
    assert any(c.startswith("kvmprobe's own vCPU check") and ".py" not in c for c in v.citations)
    step = next(s for s in v.steps if s.quirk == "arch-capabilities-refused")
    # the attempt, as --explain shows it: MSR, value, answer, refused bits by name
    for text in ("KVM_SET_MSRS(0x10a", "= 0x400000000c000069", "refused", "MDS_NO, PSCHANGE_MC_NO"):
        assert text in step.evidence


def test_partly_refused_or_accepted_keeps_the_cpuid_bit() -> None:
    snap = load(PVM)[0]
    value = snap.feature_msrs[ARCH]
    for attempt in (_msr(value, True), _msr(value, False, (5,))):
        v = _arch(_with(snap, attempt)).verdict
        assert (v.status, v.effective) == (FeatureStatus.SUPPORTED, True), attempt
    # refused, and no single bit was named: the whole value counts as refused
    v = _arch(_with(snap, _msr(value, False))).verdict
    assert v.status is FeatureStatus.REMOVED_BY_QUIRK


def test_without_verification_the_answer_is_unknown_with_the_missing_step() -> None:
    v = _arch(load(PVM)[0]).verdict
    assert (v.status, v.effective, v.quirks) == (FeatureStatus.UNKNOWN, None, [])
    assert v.unknowns and "no vCPU verification in this snapshot" in v.unknowns[0]
    # a failed verification step is named with its errno
    snap = load(PVM)[0]
    failed = replace(snap, errors=(*snap.errors, ProbeError(Steps.VERIFY, 12, "ENOMEM")))
    v = _arch(failed).verdict
    assert v.status is FeatureStatus.UNKNOWN and v.unknowns == ["vCPU verification failed (ENOMEM)"]
    # an attempt that could not be made
    v = _arch(_with(snap, _msr(snap.feature_msrs[ARCH], None, errno=5))).verdict
    assert v.status is FeatureStatus.UNKNOWN and "could not be tried (EIO)" in v.unknowns[0]


def test_nothing_to_verify_needs_no_verification() -> None:
    """The record reads the verification only when KVM advertises bits it could refuse."""
    snap = load(PVM)[0]
    zero = replace(snap, feature_msrs={**snap.feature_msrs, ARCH: 0})
    assert _arch(zero).verdict.status is FeatureStatus.SUPPORTED
    unlisted = replace(
        snap,
        msr_feature_index_list=tuple(i for i in snap.msr_feature_index_list or () if i != ARCH),
    )
    assert _arch(unlisted).verdict.status is FeatureStatus.SUPPORTED


def test_explain_shows_the_attempt() -> None:
    r = run("cpuid", "--explain", "arch_capabilities", "--from", ZEN4, "--no-color")
    assert r.exit_code == 0
    out = " ".join(r.stdout.split())
    assert "applied arch-capabilities-refused (remove)" in out
    assert "KVM_SET_MSRS(0x10a MSR_IA32_ARCH_CAPABILITIES = 0x400000000c000069) on a vCPU" in out
    assert "bits refused alone: RDCL_NO, SKIP_VMENTRY_L1DFLUSH, MDS_NO" in out
    r = run("cpuid", "--explain", "arch_capabilities", "--from", PVM, "--no-color")
    out = " ".join(r.stdout.split())
    assert "result: ? unknown; whether a guest in this set-up can be given it is unknown" in out
    assert "unknown arch-capabilities-refused (remove)" in out


# ---- feature-MSR bits as features ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "attempts", "offered", "why"),
    [
        (PVM, None, Offered.UNKNOWN, "no vCPU verification in this snapshot"),
        (ZEN4, None, Offered.NO, "refused by KVM_SET_MSRS on a vCPU"),
        (PVM, "took", Offered.YES, "a vCPU takes it"),
    ],
)
def test_a_bit_is_given_only_when_a_vcpu_takes_it(
    fixture: str, attempts: str | None, offered: Offered, why: str
) -> None:
    snap = load(fixture)[0]
    if attempts == "took":
        snap = _with(snap, _msr(snap.feature_msrs[ARCH], True))
    (ref,) = lookup_bit("mds-no")
    r = bit_result(analyse(snap), ref)
    assert r.answer.offered is offered and why in r.why
    assert r.index == ARCH and r.advertised == 0x400000000C000069 and r.set_in_advertised
    assert r.announced_by is not None and r.announced_by.feature.name == "arch_capabilities"


def test_advertised_bits_are_every_named_set_bit() -> None:
    a = analyse(load(ZEN4)[0])
    bits = {(r.index, r.bit.lo) for r in advertised_bits(a) if r.index == ARCH}
    value = a.snap.feature_msrs[ARCH]
    assert bits == {(ARCH, b) for b in range(64) if value >> b & 1}
    assert all(r.effective is False for r in advertised_bits(a) if r.index == ARCH)


@pytest.mark.parametrize("name", ["mds-no", "MDS_NO", "ARCH_CAP_MDS_NO", "mds_no"])
def test_cpuid_explain_answers_an_msr_bit(name: str) -> None:
    r = run("cpuid", "--explain", name, "--from", ZEN4, "--no-color")
    assert r.exit_code == 0, r.output
    out = " ".join(r.stdout.split())
    assert out.startswith("MDS_NO (Linux ARCH_CAP_MDS_NO, QEMU mds-no, libvirt mds-no)")
    assert "where: MSR 0x10a MSR_IA32_ARCH_CAPABILITIES bit 5" in out
    assert "is given it: no" in out and "[msr-bit-refused]" in out
    assert "KVM_GET_MSRS (advertised): 0x400000000c000069, bit set" in out
    assert "announced by CPUID arch_capabilities (0x7.0.edx[29]): removed-by-quirk" in out


def test_cpuid_filter_and_json_name_msr_bits() -> None:
    r = run("cpuid", "mds-no", "--from", ZEN4, "--no-color")
    assert r.exit_code == 0 and "Feature MSR bits" in r.stdout
    assert "mds-no  MSR 0x10a MSR_IA32_ARCH_CAPABILITIES bit 5  KVM: set  guest: no" in r.stdout
    doc = json.loads(run("cpuid", "rdctl-no", "--json", "--from", PVM).stdout)
    (bit,) = doc["msr_bits"]
    assert (bit["name"], bit["msr"], bit["bit"], bit["kvm"], bit["effective"]) == (
        "rdctl-no", ARCH, 0, True, None,
    )  # fmt: skip
    assert bit["offered"] == "unknown" and doc["features"] == []
    doc = json.loads(run("cpuid", "--explain", "mds-no", "--json", "--from", ZEN4).stdout)
    (bit,) = doc["msr_bits"]
    assert bit["effective"] is False and bit["attempt"]["refused_bits"] == [0, 3, 5, 6, 26, 27, 62]
    assert bit["announced_by"]["quirks"] == ["arch-capabilities-refused"]
    # a name neither CPUID nor an MSR bit is still a usage error with suggestions
    bad = run("cpuid", "--explain", "mds-nope", "--from", ZEN4)
    assert bad.exit_code == 2 and "unknown CPUID feature" in bad.stderr


# ---- libvirt's and QEMU's names ----------------------------------------------------------------


def test_every_libvirt_cpuid_name_resolves_to_its_bit() -> None:
    """Every libvirt cpu_map CPUID name kvmprobe's table has a row for resolves there."""
    from kvmprobe.analysis import cpuid as cp

    table = cp.by_loc()
    for loc, name in lv.FEATURES.items():
        if loc not in table:
            continue
        f, _ = cq.resolve(name)
        assert f is not None and f.loc == loc, name


@pytest.mark.parametrize(
    ("typed", "name"),
    [("pclmuldq", "pclmulqdq"), ("cmt", "cqm"), ("mbm_total", "cqm_mbm_total"),
     ("sse4.2", "sse4_2"), ("i64", "lm"), ("ffxsr", "fxsr_opt"), ("tsc-deadline",
     "tsc_deadline_timer"), ("lahf_lm", "lahf_lm")],
)  # fmt: skip
def test_libvirt_and_qemu_names_everywhere(typed: str, name: str) -> None:
    # --require
    (req,), bad = parse(typed)
    assert bad == () and req.feature is not None and req.feature.name == name
    # the filter and --explain
    doc = json.loads(run("cpuid", typed, "--json", "--from", ZEN4).stdout)
    assert name in {f["name"] for f in doc["features"]}
    r = run("cpuid", "--explain", typed, "--from", ZEN4, "--no-color")
    assert r.exit_code == 0 and r.stdout.startswith(name)
    # metrics --features
    r = run("metrics", "--from", ZEN4, "--features", typed)
    assert r.exit_code == 0 and f'feature="{name}"' in r.stdout
    # --require on cpuid and diff
    assert run("cpuid", "--from", ZEN4, "--require", typed).exit_code in (0, 5)
    assert run("diff", ZEN4, ZEN4, "--require", typed).exit_code in (0, 5)


def test_a_filter_naming_a_cpuid_feature_and_an_msr_bit_shows_both() -> None:
    r = run("cpuid", "ssb-no", "--from", ZEN4, "--no-color")
    assert r.exit_code == 0
    assert "1 feature and 1 feature-MSR bit match 'ssb-no'" in r.stdout
    assert "Feature-MSR bits a guest can be given: 0 of 1" in r.stdout
    assert r.stdout.index("Feature MSR bits") < r.stdout.index("Summary: ")
    assert "ssb-no  MSR 0x10a MSR_IA32_ARCH_CAPABILITIES bit 4  KVM: clear  guest: no" in r.stdout
    doc = json.loads(run("cpuid", "ssb-no", "--json", "--from", ZEN4).stdout)
    assert [b["name"] for b in doc["msr_bits"]] == ["ssb-no"] and doc["features"]
