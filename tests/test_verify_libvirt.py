"""Trust, but verify, against libvirt: kvmprobe's "libvirt host-model" prediction (doctor,
from the vCPU verification) must match what libvirtd does with a transient host-model domain,
started paused and destroyed at once; with the features kvmprobe says to disable, it starts.

Needs a running libvirtd with the QEMU driver and /dev/kvm (`virsh -c qemu:///system`):
skipped with the reason otherwise; KVMPROBE_REQUIRE_LIBVIRT=1 (set by CI, which starts
libvirtd) makes that a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from kvmprobe.analysis.doctor import diagnose
from kvmprobe.kvm.probe import probe
from kvmprobe.vocab import CheckStatus

URI = "qemu:///system"
#: unique per run: two test runs on one libvirtd (or a leftover of a killed run) never collide
NAME = f"kvmprobe-verify-{os.getpid()}-{uuid.uuid4().hex[:8]}"
DOMAIN = """<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <cpu mode='host-model'>{features}</cpu>
  <devices><emulator>{qemu}</emulator></devices>
</domain>
"""


def _virsh(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _libvirt() -> str:
    why = None
    qemu = shutil.which("qemu-system-x86_64")
    if shutil.which("virsh") is None or qemu is None:
        why = "virsh or qemu-system-x86_64 not installed"
    else:
        r = _virsh("version", timeout=30)
        if r.returncode != 0:
            why = f"libvirtd not reachable at {URI}: {r.stderr.strip()[:200]}"
    if why:
        if os.environ.get("KVMPROBE_REQUIRE_LIBVIRT") == "1":
            pytest.fail(f"KVMPROBE_REQUIRE_LIBVIRT=1 but {why}")
        pytest.skip(why)
    assert qemu is not None
    return qemu


def _start(qemu: str, disabled: list[str]) -> subprocess.CompletedProcess[str]:
    features = "".join(f"<feature policy='disable' name='{n}'/>" for n in disabled)
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "domain.xml"
        xml.write_text(DOMAIN.format(name=NAME, features=features, qemu=qemu))
        try:
            return _virsh("create", str(xml), "--paused")
        finally:
            _virsh("destroy", NAME, timeout=60)


def test_host_model_starts_exactly_when_kvmprobe_predicts(live_device: str) -> None:
    qemu = _libvirt()
    report = diagnose(probe(live_device))
    predicted = {c.id: c for c in report.checks}["vmm.libvirt-host-model"]
    result = _start(qemu, [])
    if predicted.status is CheckStatus.FAIL:
        assert result.returncode != 0, "kvmprobe predicted a failure, but host-model started"
        assert "failed to set MSR" in result.stderr, result.stderr[-2000:]
        names = re.findall(r"name='([\w.-]+)'", predicted.hint or "")
        assert names
        fixed = _start(qemu, names)
        assert fixed.returncode == 0, fixed.stderr[-2000:]
    else:
        assert predicted.status is CheckStatus.PASS
        assert result.returncode == 0, result.stderr[-2000:]
