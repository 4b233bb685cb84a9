"""Unknown is an answer: a failed probe step makes what depends on it unknown (status
"unknown", effective null, the step and errno in the reason), in every command, live or from a
snapshot that recorded the failure; never a silent yes or no."""

from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.fakekvm import FakeKvm

from kvmprobe.analysis.doctor import diagnose
from kvmprobe.analysis.effective import analyse
from kvmprobe.cli import main
from kvmprobe.kvm import abi
from kvmprobe.kvm.probe import probe
from kvmprobe.snapshot import ProbeError, Snapshot, Steps, load
from kvmprobe.tables.caps_data import KVM_CAP_EXIT_HYPERCALL, KVM_CAP_IRQCHIP
from kvmprobe.vocab import CheckStatus, FeatureStatus

FIXTURE = Path(__file__).parent / "fixtures" / "amd-epyc-pvm-6.18.json"
SNAP, _ = load(str(FIXTURE))


def failed(step: str) -> ProbeError:
    return ProbeError(step, errno.EIO, "EIO: Input/output error")


def with_failures(snap: Snapshot, *steps: str) -> Snapshot:
    """The snapshot a probe would record had these steps failed with EIO."""
    caps = {k: dict(v) if v is not None else None for k, v in snap.caps.items()}
    changes: dict[str, object] = {}
    for step in steps:
        if step == Steps.EMULATED_CPUID:
            changes["emulated_cpuid"] = None
        for number in (KVM_CAP_IRQCHIP, KVM_CAP_EXIT_HYPERCALL):
            if step == Steps.cap(number, "system") and caps["system"] is not None:
                caps["system"].pop(number, None)
        if step == Steps.attr(0, 0):
            changes["device_attrs"] = {k: v for k, v in snap.device_attrs.items() if k != "0/0"}
    return replace(snap, caps=caps, errors=snap.errors + tuple(failed(s) for s in steps), **changes)  # type: ignore[arg-type]


def feature(snap: Snapshot, name: str):
    return next(r for r in analyse(snap).features if r.feature.name == name)


def test_emulated_cpuid_failure_makes_movbe_unknown_not_host_only() -> None:
    assert feature(SNAP, "movbe").verdict.status is FeatureStatus.EMULATED
    v = feature(with_failures(SNAP, Steps.EMULATED_CPUID), "movbe").verdict
    assert v.status is FeatureStatus.UNKNOWN and v.effective is None
    assert "KVM_GET_EMULATED_CPUID failed (EIO)" in v.reason
    # a feature KVM supports does not depend on the emulated list: still known
    x2apic = feature(with_failures(SNAP, Steps.EMULATED_CPUID), "x2apic").verdict
    assert x2apic.status is FeatureStatus.SUPPORTED and x2apic.effective is True


def test_failed_capability_check_makes_the_opt_in_unknown() -> None:
    name = "kvm_hc_map_gpa_range"
    assert feature(SNAP, name).verdict.status is FeatureStatus.OPT_IN
    v = feature(with_failures(SNAP, Steps.cap(KVM_CAP_EXIT_HYPERCALL, "system")), name).verdict
    assert v.status is FeatureStatus.UNKNOWN and v.effective is None
    assert f"KVM_CHECK_EXTENSION({KVM_CAP_EXIT_HYPERCALL}) on system failed (EIO)" in v.reason
    assert any(s.applied is None for s in v.steps)


def test_failed_capability_is_null_in_caps_json_and_never_differs(tmp_path: Path) -> None:
    bad = with_failures(SNAP, Steps.cap(KVM_CAP_IRQCHIP, "system"))
    path = tmp_path / "bad.json"
    path.write_text(bad.dumps())
    r = CliRunner().invoke(main, ["caps", "--json", "--from", str(path)])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    cap = next(c for c in doc["caps"] if c["number"] == KVM_CAP_IRQCHIP)
    assert cap["system"] is None and cap["vm"] == 1 and cap["differs"] is False
    assert "EIO" in cap["unknown"]["system"]
    assert [e["step"] for e in doc["probe_errors"]] == [Steps.cap(KVM_CAP_IRQCHIP, "system")]
    assert "1 probe step failed" in r.stderr


def test_failed_attribute_is_null_and_named(tmp_path: Path) -> None:
    bad = with_failures(SNAP, Steps.attr(0, 0))
    path = tmp_path / "bad.json"
    path.write_text(bad.dumps())
    r = CliRunner().invoke(main, ["cpuid", "--json", "--from", str(path)])
    doc = json.loads(r.stdout)
    assert doc["strings"]["xcomp_guest_supp"] is None
    assert doc["probe_errors"][0]["step"] == "KVM_GET_DEVICE_ATTR(0/0)"
    assert doc["probe_errors"][0]["errno_name"] == "EIO"


def test_doctor_says_could_not_ask_never_missing() -> None:
    report = diagnose(with_failures(SNAP, Steps.cap(KVM_CAP_IRQCHIP, "system")))
    checks = {c.id: c for c in report.checks}
    for vmm in ("vmm.firecracker", "vmm.cloud-hypervisor"):
        assert checks[vmm].status is CheckStatus.WARN
        assert "could not ask" in checks[vmm].evidence and "missing" not in checks[vmm].evidence
    assert report.verdict.exit_status == 0


@pytest.mark.parametrize(
    "fail,name,step",
    [
        ("GET_EMULATED_CPUID", "movbe", Steps.EMULATED_CPUID),
        (f"CHECK_EXTENSION:{KVM_CAP_EXIT_HYPERCALL}", "kvm_hc_map_gpa_range",
         Steps.cap(KVM_CAP_EXIT_HYPERCALL, "system")),
    ],
)  # fmt: skip
def test_live_path_records_the_failure_and_reports_unknown(
    monkeypatch, no_fd_leak, fail: str, name: str, step: str
) -> None:
    monkeypatch.setattr(abi, "KVM_RDEV", (1, 3))  # /dev/null stands in for KVM
    snap = probe("/dev/null", ioctl=FakeKvm(SNAP, fail={fail: errno.EIO}))
    assert snap.failure(step) is not None
    v = feature(snap, name).verdict
    assert v.status is FeatureStatus.UNKNOWN and step in v.reason
    # the same answer again from the recorded file
    again, _ = load_text(snap.dumps())
    assert feature(again, name).verdict.status is FeatureStatus.UNKNOWN


def load_text(text: str) -> tuple[Snapshot, list[str]]:
    from kvmprobe.snapshot import loads

    return loads(text, "recorded")


def test_without_root_host_features_come_from_cpuinfo() -> None:
    nonroot = replace(
        SNAP,
        host=replace(SNAP.host, cpuid=None, cpuid_source=None, cpuid_error="Permission denied"),
    )
    a = analyse(nonroot)
    assert a.host_source == "cpuinfo"
    avx2 = next(r for r in a.features if r.feature.name == "avx2")
    assert avx2.verdict.host is True and avx2.verdict.status is FeatureStatus.HOST_ONLY
    counts = a.counts()
    assert counts[FeatureStatus.HOST_ONLY] > 40
    # a bit Linux hides in /proc/cpuinfo stays unknown for the host, never "no"
    hidden = next(r for r in a.features if r.feature.name == "fdp_excptn_only")
    assert hidden.verdict.host is None


@pytest.mark.parametrize("command", ["caps", "cpuid", "doctor", "msr", "hyperv"])
def test_every_json_document_has_probe_errors(command: str) -> None:
    r = CliRunner().invoke(main, [command, "--json", "--from", str(FIXTURE)])
    doc = json.loads(r.stdout)
    assert doc["probe_errors"] == []


@pytest.mark.parametrize("name", ["mds-no", "MDS_NO", "rdctl-no"])
def test_an_msr_bit_given_to_cpuid_is_explained_as_unknown_without_verification(
    name: str,
) -> None:
    """A feature-MSR bit is a feature: --explain answers it. This format-1 snapshot has no
    vCPU verification, so whether a guest is given the bit is unknown, and says why."""
    r = CliRunner().invoke(main, ["cpuid", "--explain", name, "--from", str(FIXTURE)])
    assert r.exit_code == 0, r.output
    assert "where: MSR 0x10a MSR_IA32_ARCH_CAPABILITIES bit" in r.stdout
    assert "is given it: unknown" in r.stdout
    assert "no vCPU verification in this snapshot" in r.stdout
