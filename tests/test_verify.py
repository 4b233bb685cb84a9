"""The vCPU verification on refusals our hosts do not show, built from documented error
behaviour: KVM_SET_XCRS answers EINVAL for an XCR0 value the vCPU may not have
(arch/x86/kvm/x86.c __kvm_set_xcr()), KVM_SET_CPUID2 answers E2BIG/EINVAL for a table it
refuses (api.rst 4.x KVM_SET_CPUID2), and any other errno is a fault, not an answer."""

from __future__ import annotations

import errno
from dataclasses import replace
from pathlib import Path

import pytest
from support.fakekvm import FakeKvm

from kvmprobe.analysis.doctor import diagnose
from kvmprobe.analysis.verify import verification
from kvmprobe.kvm import abi
from kvmprobe.kvm.probe import probe
from kvmprobe.snapshot import SetAttempt, Snapshot, Steps, load
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
