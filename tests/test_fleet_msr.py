"""Feature-MSR bits (mds-no, rdctl-no, ...) in the fleet outputs: ``kvmprobe metrics``
(kvmprobe_msr_bit_effective / _unknown / _answers), ``kvmprobe fact`` (msr_bits) and
``kvmprobe nfd`` (guest-msr.<bit>). A bit is given only when KVM lists the MSR, reports the bit
set and a vCPU took it: the format-1 fixture (no vCPU verification) is unknown everywhere,
the Zen 4 fixture (every ARCH_CAPABILITIES bit refused) is 0, and a synthetic snapshot whose
vCPU takes the value is 1."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES
from support import synth_msr
from support.prom import one, samples
from support.schema_check import errors as schema_errors

from kvmprobe.analysis.fleet_facts import (
    bit_name,
    host_facts,
    msr_bit_facts,
    resolve_msr_bits,
)
from kvmprobe.analysis.msr import layout_rows, lookup_bit
from kvmprobe.cli import main
from kvmprobe.render import nfd as rn
from kvmprobe.render.ansible_fact import fact_body, fact_document
from kvmprobe.render.metrics import exposition
from kvmprobe.snapshot import ProbeError, SetAttempt, Snapshot, Steps, load
from kvmprobe.tables import msr_data as T
from kvmprobe.vocab import MsrLayoutKind

PVM = str(FIXTURES / "amd-epyc-pvm-6.18.json")  # format 1: no vCPU verification
ZEN4 = str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")  # format 2: every ARCH_CAP bit refused
ARCH = 0x10A
ARCH_NAME = "MSR_IA32_ARCH_CAPABILITIES"
#: the ARCH_CAPABILITIES bits both recorded hosts' KVM reports set (0x400000000c000069)
ARCH_BITS = {"rdctl-no", "skip-l1dfl-vmentry", "mds-no", "pschange-mc-no", "gds-no",
             "rfds-no", "its-no"}  # fmt: skip
NS = rn.DEFAULT_NAMESPACE


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def took(snap: Snapshot) -> Snapshot:
    """The snapshot with a vCPU verification in which KVM_SET_MSRS took KVM's whole
    ARCH_CAPABILITIES value; the recording's other attempts are kept (the format-1 fixture
    has none, so there no other MSR was tried)."""
    value = snap.feature_msrs[ARCH]
    attempt = SetAttempt("KVM_SET_MSRS", "split", ARCH, value, True, None, ())
    others = tuple(a for a in snap.verification or () if a.target != ARCH)
    return replace(snap, verification=(*others, attempt))


def arch_series(text: str, name: str) -> dict[str, float]:
    return {lab["bit"]: v for lab, v in samples(text).get(name, []) if lab["msr"] == ARCH_NAME}


def labels(snap: Snapshot) -> dict[str, str]:
    h = host_facts(snap)
    out = rn.nfd_labels(h, h.setups[0])
    return {k.removeprefix(NS + "/"): v for k, v in out.labels}


# ---- the facts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "synthetic", "expected"),
    [(PVM, False, None), (ZEN4, False, False), (PVM, True, True), (ZEN4, True, True)],
)
def test_every_advertised_bit_with_its_answer(
    fixture: str, synthetic: bool, expected: bool | None
) -> None:
    snap = load(fixture)[0]
    if synthetic:
        snap = took(snap)
    known, bits = msr_bit_facts(snap)
    assert known
    arch = [b for b in bits if b.msr == ARCH]
    value = snap.feature_msrs[ARCH]
    # every set bit of KVM's value, each once, each named as QEMU names it where QEMU does
    assert sorted(b.bit for b in arch) == [i for i in range(64) if value >> i & 1]
    assert {b.name for b in arch} == ARCH_BITS
    mds = next(b for b in arch if b.name == "mds-no")
    assert (mds.qemu, mds.kernel, mds.bit, mds.msr_name) == ("mds-no", "ARCH_CAP_MDS_NO", 5,
                                                            ARCH_NAME)  # fmt: skip
    assert not any(b.asked for b in bits)
    assert {b.effective for b in arch} == {expected}
    why = {None: "no vCPU verification", False: "refused by KVM_SET_MSRS", True: "a vCPU takes it"}
    assert all(why[expected] in b.why for b in arch)


def test_a_failed_verification_is_unknown_with_its_step() -> None:
    snap = replace(load(PVM)[0], errors=(ProbeError(Steps.VERIFY, 12, "Cannot allocate memory"),))
    _known, bits = msr_bit_facts(snap)
    assert bits and all(b.effective is None for b in bits)
    assert all("vCPU verification failed (ENOMEM)" in b.why for b in bits)


def test_without_kvms_msr_list_nothing_is_known() -> None:
    snap = replace(load(ZEN4)[0], msr_feature_index_list=None)
    h = host_facts(snap)
    assert (h.msr_known, h.msr_bits) == (False, ())
    # a bit asked for by name is then unknown, not "no"
    h = host_facts(snap, msr_bits=lookup_bit("mds-no"))
    (b,) = h.msr_bits
    assert (b.asked, b.effective) == (True, None)
    assert "KVM_GET_MSR_FEATURE_INDEX_LIST was not answered" in b.why


def test_every_fleet_name_finds_its_bit_and_is_unique_per_msr() -> None:
    """The name a fleet output uses is one lookup_bit takes, for every bit of every plain-bits
    feature MSR, and no two bits of one MSR share it."""
    for index, layout in T.MSR_LAYOUT.items():
        if MsrLayoutKind(T.LAYOUT_KIND[layout]) is not MsrLayoutKind.BITS:
            continue
        names = [bit_name(r) for r in layout_rows(layout) if r.lo == r.hi]
        assert len(names) == len(set(names)), (hex(index), names)
        for r in layout_rows(layout):
            if r.lo == r.hi:
                assert any(ref.bit == r for ref in lookup_bit(bit_name(r))), bit_name(r)
                assert rn.name_problem(f"guest-msr.{bit_name(r)}") is None, bit_name(r)


# ---- metrics --------------------------------------------------------------------------------


def test_metrics_format1_host_is_unknown_never_0_or_1() -> None:
    text = exposition(host_facts(load(PVM)[0]))
    assert arch_series(text, "kvmprobe_msr_bit_effective") == {}
    assert arch_series(text, "kvmprobe_msr_bit_unknown") == dict.fromkeys(ARCH_BITS, 1)
    assert one(text, "kvmprobe_msr_bit_unknown", msr="MSR_PLATFORM_INFO", bit="cpuid-fault") == 1
    assert one(text, "kvmprobe_msr_bit_answers", state="unknown") == 8
    assert one(text, "kvmprobe_msr_bit_answers", state="effective") == 0


def test_metrics_refused_bits_are_0() -> None:
    text = exposition(host_facts(load(ZEN4)[0]))
    assert arch_series(text, "kvmprobe_msr_bit_effective") == dict.fromkeys(ARCH_BITS, 0)
    assert arch_series(text, "kvmprobe_msr_bit_unknown") == {}
    # PLATFORM_INFO's CPUID-faulting bit: a vCPU took it in this recording
    assert one(text, "kvmprobe_msr_bit_effective", msr="MSR_PLATFORM_INFO", bit="cpuid-fault") == 1
    assert one(text, "kvmprobe_msr_bit_answers", state="not_effective") == 7
    assert one(text, "kvmprobe_msr_bit_answers", state="effective") == 1


def test_metrics_taken_bits_are_1() -> None:
    text = exposition(host_facts(took(load(PVM)[0])))
    assert arch_series(text, "kvmprobe_msr_bit_effective") == dict.fromkeys(ARCH_BITS, 1)
    # the verification did not try PLATFORM_INFO: still unknown
    assert one(text, "kvmprobe_msr_bit_unknown", msr="MSR_PLATFORM_INFO", bit="cpuid-fault") == 1


@pytest.mark.parametrize("spelling", ["mds-no", "MDS_NO", "ARCH_CAP_MDS_NO", "mds_no"])
def test_metrics_features_takes_msr_bits_in_any_spelling(spelling: str) -> None:
    r = run("metrics", "--from", ZEN4, "--features", f"avx2,{spelling}")
    assert r.exit_code == 0, r.stderr
    s = samples(r.stdout)
    assert [lab["feature"] for lab, _ in s["kvmprobe_feature_effective"]] == ["avx2"]
    assert s["kvmprobe_msr_bit_effective"] == [({"msr": ARCH_NAME, "bit": "mds-no"}, 0)]
    assert "kvmprobe_msr_bit_unknown" not in s
    # the counts still cover every advertised bit
    assert one(r.stdout, "kvmprobe_msr_bit_answers", state="not_effective") == 7


def test_metrics_features_filters_msr_bits_like_cpuid_features() -> None:
    # only CPUID features named: no per-bit series
    r = run("metrics", "--from", PVM, "--features", "avx2")
    s = samples(r.stdout)
    assert "kvmprobe_msr_bit_unknown" not in s and "kvmprobe_msr_bit_effective" not in s
    # only an MSR bit named: no per-feature CPUID series
    r = run("metrics", "--from", PVM, "--features", "rdctl-no")
    s = samples(r.stdout)
    assert "kvmprobe_feature_effective" not in s and "kvmprobe_feature_unknown" not in s
    assert s["kvmprobe_msr_bit_unknown"] == [({"msr": ARCH_NAME, "bit": "rdctl-no"}, 1)]


def test_metrics_features_answers_a_bit_kvm_does_not_set() -> None:
    """A bit asked for by name that KVM reports clear, or whose MSR KVM does not list, is a
    known "no" (0); it is not among the counts of advertised bits."""
    r = run("metrics", "--from", PVM, "--features", "taa-no,vmx-ept")
    assert r.exit_code == 0, r.stderr
    s = samples(r.stdout)
    assert sorted((lab["msr"], lab["bit"], v) for lab, v in s["kvmprobe_msr_bit_effective"]) == [
        (ARCH_NAME, "taa-no", 0),
        ("MSR_IA32_VMX_PROCBASED_CTLS2", "vmx-ept", 0),
    ]
    assert one(r.stdout, "kvmprobe_msr_bit_answers", state="unknown") == 8


def test_metrics_features_still_rejects_what_names_nothing() -> None:
    r = run("metrics", "--from", PVM, "--features", "mds-no,nonsense")
    assert r.exit_code == 2 and "unknown CPUID feature 'nonsense'" in r.stderr


def test_metrics_without_kvm_have_no_msr_samples() -> None:
    r = run("metrics", "--device", "/nonexistent/kvm")
    assert r.exit_code == 0
    s = samples(r.stdout)
    for name in ("kvmprobe_msr_bit_effective", "kvmprobe_msr_bit_unknown",
                 "kvmprobe_msr_bit_answers"):  # fmt: skip
        assert name not in s, name


def test_promtool_accepts_the_msr_bit_series(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    intel = synth_msr.intel_nested_vmx()
    for facts in (
        host_facts(took(load(ZEN4)[0])),
        host_facts(load(PVM)[0], msr_bits=resolve_msr_bits(["vmx-ept", "taa-no", "mds-no"])),
        host_facts(intel),
    ):
        r = subprocess.run([promtool, "check", "metrics"], input=exposition(facts),
                           capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


def test_intel_host_bits_are_named_and_unknown_without_verification() -> None:
    text = exposition(host_facts(synth_msr.intel_nested_vmx()))
    unk = arch_series(text, "kvmprobe_msr_bit_unknown")
    value = synth_msr.INTEL_ARCH_CAPABILITIES
    assert len(unk) == bin(value).count("1") and {"mds-no", "taa-no", "rdctl-no"} <= set(unk)
    assert arch_series(text, "kvmprobe_msr_bit_effective") == {}


# ---- fact -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "synthetic", "given", "unknown", "answer"),
    [
        (PVM, False, [], sorted(ARCH_BITS | {"cpuid-fault"}), None),
        (ZEN4, False, ["cpuid-fault"], [], False),
        (PVM, True, sorted(ARCH_BITS), ["cpuid-fault"], True),
    ],
)
def test_fact_carries_the_bits_and_their_answers(
    fixture: str, synthetic: bool, given: list[str], unknown: list[str], answer: bool | None
) -> None:
    snap = load(fixture)[0]
    if synthetic:
        snap = took(snap)
    h = host_facts(snap)
    doc = fact_document(snap, h, h.setups[0])
    assert schema_errors(doc) == []
    assert doc["msr_known"] is True
    assert doc["msr_features"] == given and doc["unknown_msr_features"] == unknown
    mds = next(b for b in doc["msr_bits"] if b["name"] == "mds-no")
    assert mds["msr"] == ARCH and mds["bit"] == 5 and mds["effective"] is answer
    assert mds["kernel"] == "ARCH_CAP_MDS_NO" and mds["reason"]
    # unknown is null, never true or false
    assert all(
        (b["name"] in unknown) == (b["effective"] is None) for b in doc["msr_bits"]
    )  # fmt: skip


def test_fact_without_kvm() -> None:
    r = run("fact", "--device", "/nonexistent/kvm")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and schema_errors(doc) == []
    assert (doc["msr_known"], doc["msr_bits"], doc["msr_features"]) == (False, [], [])


def test_fact_command_from_a_synthetic_snapshot_file(tmp_path: Path) -> None:
    path = tmp_path / "took.json"
    path.write_text(took(load(ZEN4)[0]).dumps())
    r = run("fact", "--from", str(path))
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["msr_features"]) == ARCH_BITS | {"cpuid-fault"}


def test_fact_body_keeps_asked_bits_out() -> None:
    snap = load(ZEN4)[0]
    h = host_facts(snap, msr_bits=resolve_msr_bits(["taa-no"]))
    body = fact_body(h, h.setups[0])
    assert "taa-no" not in {b["name"] for b in body["msr_bits"]}


# ---- nfd ------------------------------------------------------------------------------------


def test_nfd_labels_only_bits_a_guest_is_given() -> None:
    pvm = labels(load(PVM)[0])
    assert not any(k.startswith("guest-msr.") for k in pvm)
    assert pvm["unknown-msr-bits"] == "8"
    zen4 = labels(load(ZEN4)[0])
    assert {k for k in zen4 if k.startswith("guest-msr.")} == {"guest-msr.cpuid-fault"}
    assert "unknown-msr-bits" not in zen4
    given = labels(took(load(ZEN4)[0]))
    assert {k for k in given if k.startswith("guest-msr.")} == {
        f"guest-msr.{n}" for n in ARCH_BITS | {"cpuid-fault"}
    }
    assert given["guest-msr.mds-no"] == "true"
    for k, v in given.items():
        assert rn.label_problem(f"{NS}/{k}", v) is None


def test_nfd_command_writes_msr_labels(tmp_path: Path) -> None:
    path = tmp_path / "took.json"
    path.write_text(took(load(PVM)[0]).dumps())
    r = run("nfd", "--from", str(path))
    assert r.exit_code == 0, r.stderr
    assert f"{NS}/guest-msr.mds-no=true" in r.stdout.splitlines()
    assert f"{NS}/unknown-msr-bits=1" in r.stdout.splitlines()  # cpuid-fault was not tried
