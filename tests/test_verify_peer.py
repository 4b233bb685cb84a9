"""Trust, but verify, against the real consumer: kvmprobe's prediction of QEMU's start-up
(doctor's "QEMU start-up" check, from the vCPU verification) must match what QEMU does.

On our AMD PVM hosts KVM advertises IA32_ARCH_CAPABILITIES bits that a vCPU refuses, and
QEMU's `-cpu host` aborts ("failed to set MSR 0x10a"); kvmprobe predicts that and suggests
`-cpu host,-arch-capabilities`, with which QEMU must start. On a host where nothing is
refused, kvmprobe predicts a start and QEMU must start. Needs QEMU and /dev/kvm: skipped with
the reason otherwise, and KVMPROBE_REQUIRE_QEMU=1 (set by CI) makes that a failure.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from support.qemu_peer import find_qemu

from kvmprobe.analysis.doctor import diagnose
from kvmprobe.analysis.verify import qemu_host_fix, verification
from kvmprobe.kvm.probe import probe
from kvmprobe.vocab import CheckStatus

QMP_QUIT = b'{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'


def _qemu() -> str:
    qemu = find_qemu()
    if qemu is None:
        if os.environ.get("KVMPROBE_REQUIRE_QEMU") == "1":
            pytest.fail("KVMPROBE_REQUIRE_QEMU=1 but qemu-system-x86_64 is not installed")
        pytest.skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
    return qemu


def start(qemu: str, cpu: str) -> subprocess.CompletedProcess[bytes]:
    """Start QEMU with KVM and this -cpu (no guest code runs: -S), then quit over QMP."""
    argv = [
        qemu, "-accel", "kvm", "-machine", "pc", "-cpu", cpu, "-S", "-nodefaults",
        "-display", "none", "-qmp", "stdio",
    ]  # fmt: skip
    return subprocess.run(argv, input=QMP_QUIT, capture_output=True, timeout=120)


def test_qemu_starts_exactly_when_kvmprobe_predicts(live_device: str) -> None:
    qemu = _qemu()
    snap = probe(live_device)
    assert snap.verification is not None, snap.errors
    report = diagnose(snap)
    predicted = {c.id: c for c in report.checks}["vmm.qemu"]
    result = start(qemu, "host")
    started = result.returncode == 0
    stderr = result.stderr.decode(errors="replace")
    if predicted.status is CheckStatus.FAIL:
        assert not started, "kvmprobe predicted an abort, but QEMU -cpu host started"
        assert "failed to set MSR" in stderr, stderr[-2000:]
        fix = qemu_host_fix(verification(snap))
        assert fix is not None and fix in (predicted.hint or "")
        fixed = start(qemu, fix.removeprefix("-cpu "))
        assert fixed.returncode == 0, fixed.stderr.decode(errors="replace")[-2000:]
    else:
        assert started, f"kvmprobe predicted {predicted.status}, but QEMU failed: {stderr[-2000:]}"
