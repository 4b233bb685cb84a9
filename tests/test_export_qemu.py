"""kvmprobe export qemu: a -cpu argument QEMU accepts with enforce."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES
from test_export_cpuid2 import refused_arch_caps

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.export import QEMU_NAMES_FROM, qemu_host
from kvmprobe.analysis.guest_cpuid import guest_cpu_from_analysis
from kvmprobe.analysis.quirks import Options
from kvmprobe.cli import main
from kvmprobe.snapshot import Snapshot, load
from kvmprobe.vocab import Irqchip

FIX = str(FIXTURES / "amd-epyc-pvm-6.18.json")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def fixture() -> Snapshot:
    return load(FIX)[0]


def test_names_come_from_the_source_the_table_cites() -> None:
    from kvmprobe.tables import cpuid_data

    assert QEMU_NAMES_FROM in Path(cpuid_data.__file__).read_text()


def test_host_base_removes_what_the_guest_must_not_have() -> None:
    g = guest_cpu_from_analysis(analyse(refused_arch_caps(fixture())))
    q = qemu_host(g)
    assert q.base == "host" and q.value.startswith("host,") and q.value.endswith(",enforce")
    assert "arch-capabilities" in q.minus
    # erms/fsrm are effective (added by a quirk) but KVM does not offer them
    assert {"erms", "fsrm"} <= set(q.not_addable)
    offered = cp.CpuidView(g.offered)
    for name in q.minus:
        f = cp.lookup(name)
        assert f is not None and offered.has_loc(f.loc) and not g.has(f.loc)
    # nothing effective is removed, nothing KVM offers and the guest lacks is kept silently
    for f in cp.features():
        if offered.has_loc(f.loc) and not g.has(f.loc):
            assert f.qemu_name in q.minus or f"-{f.name}" in q.unnamed


def test_userspace_irqchip_removes_the_lapic_features() -> None:
    g = guest_cpu_from_analysis(analyse(fixture(), Options(irqchip=Irqchip.USERSPACE)))
    q = qemu_host(g)
    assert {"x2apic", "tsc-deadline"} <= set(q.minus)
    kernel = qemu_host(guest_cpu_from_analysis(analyse(fixture())))
    assert "x2apic" not in kernel.minus


def test_cli_text() -> None:
    r = run("export", "qemu", "--from", FIX)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1].startswith("-cpu host") and lines[-1].endswith(",enforce")
    assert all(line.startswith("# ") for line in lines[:-1])
    assert any(QEMU_NAMES_FROM in line for line in lines)
    assert any("erms" in line for line in lines[:-1]), "not-addable features are named"
    r = run("export", "qemu", "--from", FIX, "--cpuid-r")
    assert r.exit_code == 2 and "--cpuid-r applies to the cpuid2 format only" in r.stderr


def _qemu_or_skip() -> str:
    from support.qemu_peer import QemuUnavailable, _check_kvm_device, find_qemu

    qemu = find_qemu()
    why = None if qemu else "no qemu-system-x86_64"
    if qemu:
        try:
            _check_kvm_device()
        except QemuUnavailable as e:
            why = str(e)
    if why or qemu is None:
        if os.environ.get("KVMPROBE_REQUIRE_QEMU") == "1":
            pytest.fail(f"KVMPROBE_REQUIRE_QEMU=1 but QEMU cannot be used: {why}")
        pytest.skip(f"the QEMU consumer test needs QEMU with KVM: {why}")
    return qemu


def start_qemu(qemu: str, cpu: str) -> subprocess.CompletedProcess[str]:
    qmp = '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'
    argv = [qemu, "-accel", "kvm", "-machine", "pc", "-S", "-nodefaults", "-display", "none"]
    return subprocess.run(
        [*argv, "-qmp", "stdio", "-cpu", cpu],
        input=qmp, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_qemu_starts_with_the_live_export() -> None:
    qemu = _qemu_or_skip()
    r = run("export", "qemu")
    assert r.exit_code == 0, r.stderr
    cpu = r.stdout.splitlines()[-1].removeprefix("-cpu ")
    assert cpu.endswith(",enforce")
    p = start_qemu(qemu, cpu)
    assert p.returncode == 0, f"-cpu {cpu}: {p.stderr[-2000:]}"
    assert '"host-qmp-quit"' in p.stdout


def test_the_live_export_is_needed() -> None:
    """Where a vCPU refuses KVM's ARCH_CAPABILITIES, plain -cpu host does not start: the
    removal in the export is what makes the difference (skipped where host starts anyway)."""
    qemu = _qemu_or_skip()
    from kvmprobe.kvm.probe import probe

    g = guest_cpu_from_analysis(analyse(probe("/dev/kvm")))
    if not g.refused_msrs:
        pytest.skip("a vCPU here accepts every MSR value KVM advertises")
    assert "arch-capabilities" in qemu_host(g).minus
    assert start_qemu(qemu, "host,enforce").returncode != 0


def test_live_guest_keeps_its_vendor() -> None:
    _qemu_or_skip()
    from kvmprobe.kvm.probe import probe

    snap = probe("/dev/kvm")
    g = guest_cpu_from_analysis(analyse(dataclasses.replace(snap)))
    assert g.vendor == cp.vendor_string(cp.CpuidView(snap.supported_cpuid), 0)
