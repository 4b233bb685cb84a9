"""The guest's x86-64 level next to the host's (recorded and synthetic hosts), the host's level
from /proc/cpuinfo flags when its CPUID is missing, and the consistency warnings."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import FIXTURES
from support import hosts

from kvmprobe.analysis import guest
from kvmprobe.analysis import profile as P
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.levels import psabi_level
from kvmprobe.analysis.quirks import Options
from kvmprobe.render.guest_report import consistency_lines, guest_lines
from kvmprobe.snapshot import Snapshot, load
from kvmprobe.vocab import ConsistencyCheck, Irqchip, NotOfferedReason, PsabiLevel

PVM = FIXTURES / "amd-epyc-pvm-6.18.json"
ZEN4 = FIXTURES / "amd-epyc-zen4-pvm-6.18.json"


def _load(path) -> Snapshot:  # type: ignore[no-untyped-def]
    return load(str(path))[0]


@pytest.mark.parametrize("path", [PVM, ZEN4], ids=lambda p: p.name)
def test_recorded_hosts_guest_v1_host_v4(path) -> None:  # type: ignore[no-untyped-def]
    s = guest.psabi_summary(analyse(_load(path)))
    assert s.guest.highest is PsabiLevel.V1
    assert s.host is not None and s.host.highest is PsabiLevel.V4
    assert s.host_source == guest.HOST_FROM_CPUID
    v2 = s.guest.next_level
    assert v2 is not None and v2.level is PsabiLevel.V2
    assert [m.requirement.feature for m in v2.missing] == [
        "popcnt", "pni", "sse4_1", "sse4_2", "ssse3",
    ]  # fmt: skip
    # the host has them all: KVM does not pass them on
    assert {m.reason for m in v2.missing} == {NotOfferedReason.HOST_ONLY}


def test_guest_level_text_names_each_missing_row_and_why() -> None:
    lines = guest_lines(guest.psabi_summary(analyse(_load(PVM))))
    assert lines[0] == "x86-64 level a guest can be given: x86-64-v1 (host CPU: x86-64-v4)"
    assert lines[1] == "  x86-64-v2 needs:"
    assert "    POPCNT at 0x1.0.ecx[23]: not offered (host-only)" in lines
    assert any("movbe" in line and "emulated-only" in line for line in lines)


@pytest.mark.parametrize(
    ("model", "level"),
    [
        (hosts.HASWELL, PsabiLevel.V3),
        (hosts.SKYLAKE_SERVER, PsabiLevel.V4),
        (hosts.EPYC_MILAN, PsabiLevel.V3),
        (hosts.GRANITE_RAPIDS, PsabiLevel.V4),
    ],
    ids=lambda x: getattr(x, "name", str(x)),
)
def test_synthetic_hosts_levels(model: hosts.HostModel, level: PsabiLevel) -> None:
    snap = hosts.host_snapshot(model)
    s = guest.psabi_summary(analyse(snap))
    assert s.guest.highest is level
    assert s.host is not None and s.host.highest is level
    p = P.build(snap, Options())
    assert psabi_level(p.answers(level=True)).highest is level


def test_skylake_without_avx512_state_is_v3() -> None:
    """AVX-512 offered but its XCR0 state not enumerated: the psABI's v4 needs the state."""
    c = hosts.cpuid(hosts.SKYLAKE_SERVER)
    hosts.set_xcr0(c, [*hosts.BASE_XCR0, 2])
    snap = hosts.host_snapshot(hosts.SKYLAKE_SERVER, c)
    s = guest.psabi_summary(analyse(snap))
    assert s.guest.highest is PsabiLevel.V3
    v4 = s.guest.result(PsabiLevel.V4)
    assert {m.requirement.feature for m in v4.missing} == {
        "xcr0_avx512_opmask", "xcr0_avx512_zmm_hi256", "xcr0_avx512_hi16_zmm",
    }  # fmt: skip


def test_host_level_from_cpuinfo_flags_when_host_cpuid_is_missing() -> None:
    snap = _load(PVM)
    no_cpuid = replace(
        snap, host=replace(snap.host, cpuid=None, cpuid_error="/dev/cpu/0/cpuid: EACCES")
    )
    s = guest.psabi_summary(analyse(no_cpuid))
    assert s.host_source == guest.HOST_FROM_CPUINFO
    assert s.host is not None and s.host.highest is PsabiLevel.V4
    assert s.host_cpuid_error == "/dev/cpu/0/cpuid: EACCES"
    assert "from /proc/cpuinfo flags" in guest_lines(s)[0]
    flags = tuple(f for f in snap.host.cpuinfo_flags if not f.startswith("avx512"))
    fewer = replace(no_cpuid, host=replace(no_cpuid.host, cpuinfo_flags=flags))
    t = guest.psabi_summary(analyse(fewer))
    assert t.host is not None and t.host.highest is PsabiLevel.V3
    none = replace(no_cpuid, host=replace(no_cpuid.host, cpuinfo_flags=()))
    u = guest.psabi_summary(analyse(none))
    assert u.host is None and u.host_source is None
    assert "host CPU: unknown" in guest_lines(u)[0]


def test_emulated_only_never_meets_a_level() -> None:
    """A Haswell whose KVM only emulates MOVBE: x86-64-v3 is not met, MOVBE named."""
    c = hosts.cpuid(hosts.HASWELL)
    f = hosts.resolve("FEAT_1_ECX", "movbe")
    c.clear(f.leaf, f.subleaf, f.register, f.bit)
    snap = hosts.host_snapshot(hosts.HASWELL, c)
    s = guest.psabi_summary(analyse(snap))
    assert s.guest.highest is PsabiLevel.V2
    v3 = s.guest.result(PsabiLevel.V3)
    assert [m.requirement.feature for m in v3.missing] == ["movbe"]
    assert v3.missing[0].reason is NotOfferedReason.EMULATED


def test_consistency_on_the_pvm_host() -> None:
    findings = guest.cpuid_consistency(_load(PVM))
    checks = [f.check for f in findings]
    assert ConsistencyCheck.XSAVE_STATE_WITHOUT_XSAVE in checks
    assert ConsistencyCheck.STATE_WITHOUT_FEATURE in checks
    lines = consistency_lines(findings)
    assert all(line.startswith("warning: KVM's CPUID answer contradicts itself") for line in lines)
    assert any("0x1.0.ecx = 0x81202000" in line for line in lines)


def test_consistency_none_on_a_clean_host_and_none_when_unknown() -> None:
    assert guest.cpuid_consistency(hosts.host_snapshot(hosts.SKYLAKE_SERVER)) == ()
    assert guest.cpuid_consistency(replace(_load(PVM), supported_cpuid=None)) == ()


def test_dependency_finding_avx2_without_avx() -> None:
    c = hosts.cpuid(hosts.HASWELL)
    f = hosts.resolve("FEAT_1_ECX", "avx")
    c.clear(f.leaf, f.subleaf, f.register, f.bit)
    findings = guest.cpuid_consistency(hosts.host_snapshot(hosts.HASWELL, c))
    deps = [x for x in findings if x.check is ConsistencyCheck.DEPENDENCY]
    assert any(x.features == ("avx2", "avx") for x in deps)


@pytest.mark.parametrize("irqchip", list(Irqchip))
def test_levels_in_every_set_up(irqchip: Irqchip) -> None:
    s = guest.psabi_summary(analyse(_load(ZEN4), Options(irqchip=irqchip)))
    assert s.guest.highest is PsabiLevel.V1
