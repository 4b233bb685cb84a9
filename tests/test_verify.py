"""The vCPU verification on refusals our hosts do not show, built from documented error
behaviour: KVM_SET_XCRS answers EINVAL for an XCR0 value the vCPU may not have
(arch/x86/kvm/x86.c __kvm_set_xcr()), KVM_SET_CPUID2 answers E2BIG/EINVAL for a table it
refuses (api.rst 4.x KVM_SET_CPUID2), and any other errno is a fault, not an answer."""

from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path

import pytest
from support.fakekvm import FakeKvm

from kvmprobe.analysis.doctor import diagnose
from kvmprobe.analysis.verify import verification
from kvmprobe.kvm import abi
from kvmprobe.kvm.probe import probe
from kvmprobe.snapshot import SetAttempt, Snapshot, Steps, load, loads
from kvmprobe.vocab import CheckStatus

SNAP, _ = load(str(Path(__file__).parent / "fixtures" / "amd-epyc-zen4-pvm-6.18.json"))


def replayed(snap: Snapshot, monkeypatch: pytest.MonkeyPatch) -> Snapshot:
    monkeypatch.setattr(abi, "KVM_RDEV", (1, 3))  # /dev/null stands in for KVM
    return probe("/dev/null", ioctl=FakeKvm(snap))


def with_attempt(snap: Snapshot, attempt: SetAttempt) -> Snapshot:
    kept = tuple(a for a in snap.verification or () if a.what != attempt.what)
    return replace(snap, verification=(*kept, attempt))


def qemu(snap: Snapshot):  # type: ignore[no-untyped-def]
    return {c.id: c for c in diagnose(snap).checks}["vmm.qemu"]


def test_the_recorded_host_refuses_arch_capabilities(monkeypatch, no_fd_leak) -> None:
    snap = replayed(SNAP, monkeypatch)
    r = verification(snap).refused_msr(0x10A)
    assert r is not None and {b.name for b in r.bits} >= {"MDS_NO", "RDCL_NO", "ITS_NO"}
    assert verification(snap).refused_msr_bit(0x10A, 5) is True
    assert verification(snap).refused_msr_bit(0x10A, 1) is None  # not advertised: no answer


def test_xcr0_component_refused(monkeypatch, no_fd_leak) -> None:
    xcr0 = 0xE7  # x87, SSE, AVX and the three AVX-512 components, as this host enumerates
    refusing = with_attempt(
        SNAP, SetAttempt("KVM_SET_XCRS", "split", 0, xcr0, False, errno.EINVAL, (5, 6, 7))
    )
    snap = replayed(refusing, monkeypatch)
    (a,) = [a for a in snap.verification or () if a.what == "KVM_SET_XCRS"]
    assert a.accepted is False and a.refused_bits == (5, 6, 7) and a.errno == errno.EINVAL
    check = qemu(snap)
    assert (
        check.status is CheckStatus.FAIL and "KVM_SET_XCRS(XCR0 = 0xe7) refused" in check.evidence
    )


def test_cpuid_table_refused(monkeypatch, no_fd_leak) -> None:
    refusing = with_attempt(
        SNAP, SetAttempt("KVM_SET_CPUID2", "split", None, 75, False, errno.E2BIG)
    )
    snap = replayed(refusing, monkeypatch)
    attempts = snap.verification or ()
    assert [a.what for a in attempts] == ["KVM_SET_CPUID2"]  # nothing more without a table
    assert attempts[0].accepted is False
    check = qemu(snap)
    assert check.status is CheckStatus.FAIL and "KVM_SET_CPUID2" in check.evidence


def test_a_fault_is_not_a_refusal(monkeypatch, no_fd_leak) -> None:
    """EIO from KVM_SET_CPUID2 says nothing about the table: could not ask, a warning."""
    monkeypatch.setattr(abi, "KVM_RDEV", (1, 3))
    snap = probe("/dev/null", ioctl=FakeKvm(SNAP, fail={"SET_CPUID2": errno.EIO}))
    (a,) = snap.verification or ()
    assert a.accepted is None and a.errno == errno.EIO
    assert any(e.step.startswith(Steps.VERIFY) for e in snap.errors)
    check = qemu(snap)
    assert check.status is CheckStatus.WARN and "could not try" in check.evidence


# -- kvmprobe's effective tables: tried on a vCPU of each irqchip set-up --------------------


def _effective_attempt(mode: str, accepted: bool, code: int | None = None) -> SetAttempt:
    return SetAttempt("KVM_SET_CPUID2", mode, None, 75, accepted, code, table="effective")


def test_recorded_attempts_without_a_table_are_the_supported_table() -> None:
    """Snapshots recorded before kvmprobe tried effective tables name no table: every attempt
    there followed KVM's own table."""
    assert SNAP.verification and {a.table for a in SNAP.verification} == {"supported"}
    assert verification(SNAP).effective == ()


def test_each_differing_effective_table_is_tried_in_its_own_set_up(monkeypatch, no_fd_leak) -> None:
    from kvmprobe.analysis.guest_cpuid import effective_tables
    from kvmprobe.kvm.probe import try_tables

    monkeypatch.setattr(abi, "KVM_RDEV", (1, 3))
    fake = FakeKvm(SNAP)
    snap = probe("/dev/null", ioctl=fake)
    tables = effective_tables(snap)
    assert set(tables) == {"kernel", "split", "userspace"}
    differing = {m for m, t in tables.items() if t != snap.supported_cpuid}
    assert differing  # on this host every mode clears at least the refused ARCH_CAPABILITIES
    fake.calls.clear()
    tried = try_tables(snap, tables, "/dev/null", ioctl=fake)
    assert fake.calls.count("CREATE_IRQCHIP") == ("kernel" in differing)
    v = verification(tried)
    assert v.attempts == verification(snap).attempts  # KVM's own answers are untouched
    for mode in differing:
        calls = v.effective_table(mode)
        assert [a.what for a in calls][:1] == ["KVM_SET_CPUID2"]
        assert calls[0].accepted is True and calls[0].value == len(tables[mode])
    assert tried.dumps() != snap.dumps()
    again, _ = loads(tried.dumps(), "tried.json")
    assert verification(again).effective == v.effective  # a raw fact that survives --from


def test_a_refused_effective_table_is_named_and_never_exported(
    monkeypatch, tmp_path, no_fd_leak
) -> None:
    from click.testing import CliRunner

    from kvmprobe.cli import main
    from kvmprobe.kvm.probe import try_tables

    refusing = replace(
        SNAP,
        verification=(
            *(SNAP.verification or ()),
            _effective_attempt("kernel", False, errno.EINVAL),
        ),
    )
    monkeypatch.setattr(abi, "KVM_RDEV", (1, 3))
    fake = FakeKvm(refusing)
    snap = probe("/dev/null", ioctl=fake)
    from kvmprobe.analysis.guest_cpuid import effective_tables

    snap = try_tables(snap, effective_tables(snap), "/dev/null", ioctl=fake)
    v = verification(snap)
    r = v.effective_refusal("kernel")
    assert r is not None and r.attempt.errno == errno.EINVAL
    assert "effective table, kernel irqchip" in r.what
    assert v.effective_refusal("split") is None
    assert not v.refusals or all(x.attempt.table == "supported" for x in v.refusals)
    checks = {c.id: c for c in diagnose(snap).checks}
    assert checks["vmm.exported_tables"].status is CheckStatus.FAIL
    assert "kernel irqchip" in checks["vmm.exported_tables"].evidence
    path = tmp_path / "refusing.json"
    path.write_text(snap.dumps())
    runner = CliRunner()
    res = runner.invoke(main, ["export", "cpuid2", "--from", str(path)])
    assert res.exit_code == 5, res.output
    assert "a vCPU refused the table this export would give" in res.output
    assert "Traceback" not in res.output
    split = runner.invoke(main, ["export", "cpuid2", "--from", str(path), "--irqchip", "split"])
    assert split.exit_code == 0, split.output
    doc = json.loads(split.output)
    assert doc["tried_on_vcpu"]["irqchip"] == "split"
    assert doc["tried_on_vcpu"]["calls"][0] == {
        "what": "KVM_SET_CPUID2",
        "accepted": True,
        "errno_name": None,
    }
    # a table record did not try (opt-in bits asked for) is exported, and says it was not tried
    opt = runner.invoke(main, ["export", "cpuid2", "--from", str(path), "--with-opt-in"])
    assert opt.exit_code == 0 and json.loads(opt.output)["tried_on_vcpu"] is None


def test_a_vm_that_cannot_be_set_up_is_a_failed_step(monkeypatch, no_fd_leak) -> None:
    """KVM_CREATE_IRQCHIP failing (EEXIST, ENOMEM...) is no answer about the table: that mode's
    attempt is 'could not ask' with the errno, named in errors, and doctor warns."""
    from kvmprobe.analysis.guest_cpuid import effective_tables
    from kvmprobe.kvm.probe import try_tables

    monkeypatch.setattr(abi, "KVM_RDEV", (1, 3))
    fake = FakeKvm(SNAP, fail={"CREATE_IRQCHIP": errno.ENOMEM})
    snap = probe("/dev/null", ioctl=fake)
    snap = try_tables(snap, effective_tables(snap), "/dev/null", ioctl=fake)
    v = verification(snap)
    (kernel,) = v.effective_table("kernel")
    assert kernel.accepted is None and kernel.errno == errno.ENOMEM
    assert v.effective_refusal("kernel") is None
    assert any(e.step.startswith(Steps.VERIFY) and e.errno == errno.ENOMEM for e in snap.errors)
    check = {c.id: c for c in diagnose(snap).checks}["vmm.exported_tables"]
    assert check.status is CheckStatus.WARN and "kernel" in check.evidence
