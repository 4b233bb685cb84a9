"""Cross-check kvmprobe's effective CPUID against QEMU's own `-cpu host` expansion.

QEMU is the most-used consumer of the quirks kvmprobe applies. For every feature both name,
kvmprobe's `effective` must equal QEMU's answer, unless the difference is one QEMU's own
policy explains. Each such rule is listed in EXPECTED below with its reason and the QEMU
source behind it (details: tests/peers/qemu_policy.md). A difference no rule explains fails.

Two ways to run: live (QEMU and /dev/kvm here; KVMPROBE_REQUIRE_QEMU=1 turns a skip into a
failure), and offline on the recorded host (tests/fixtures) paired with QEMU's answers
recorded on that same host (tests/peers/recorded), so the logic is checked everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from conftest import FIXTURES

from kvmprobe.analysis.effective import CpuidAnalysis, FeatureResult, analyse
from kvmprobe.analysis.quirks import Options
from kvmprobe.vocab import FeatureStatus, Irqchip

MODES = tuple(Irqchip)
MIN_COMPARED = 60  # this many features must be compared in every mode, or the test is vacuous


@dataclass(frozen=True)
class Rule:
    id: str
    reason: str
    source: str
    match: Callable[[FeatureResult, str, bool], bool]  # (feature, irqchip, qemu value)


def _status(*statuses: FeatureStatus) -> Callable[[FeatureResult, str, bool], bool]:
    return lambda r, mode, q: r.verdict.status in statuses


def _names(*names: str, modes: tuple[Irqchip, ...] = MODES) -> Callable[..., bool]:
    return lambda r, mode, q: r.feature.qemu_name in names and mode in modes


EXPECTED: tuple[Rule, ...] = (
    Rule(
        "opt-in",
        "kvmprobe reports what a VMM may offer on request; QEMU's -cpu host turns such bits on "
        "only when asked (no_autoenable_flags, -overcommit cpu-pm) or in the split-irqchip case",
        "QEMU target/i386/cpu.c x86_cpu_expand_features(); target/i386/kvm/kvm.c",
        _status(FeatureStatus.OPT_IN),
    ),
    Rule(
        "runtime",
        "bits KVM computes from guest state (OSXSAVE, OSPKE, APIC) are not VMM choices",
        "QEMU target/i386/cpu.c cpu_x86_cpuid()",
        _status(FeatureStatus.RUNTIME),
    ),
    Rule(
        "emulated",
        "QEMU's -cpu host uses only KVM_GET_SUPPORTED_CPUID, not the emulated list",
        "QEMU target/i386/kvm/kvm.c kvm_arch_get_supported_cpuid()",
        _status(FeatureStatus.EMULATED),
    ),
    Rule(
        "migratable",
        "QEMU's default migratable=on drops non-migratable features such as invariant TSC",
        "QEMU target/i386/cpu.c x86_cpu_get_migratable_flags()",
        _names("invtsc"),
    ),
    Rule(
        "userspace-lapic-timer",
        "QEMU only ever adds tsc-deadline; with a userspace irqchip its own LAPIC has no "
        "TSC-deadline mode, so kvmprobe removes it and QEMU does not",
        "QEMU target/i386/kvm/kvm.c kvm_arch_get_supported_cpuid(); hw/intc/apic.c",
        _names("tsc-deadline", modes=(Irqchip.USERSPACE,)),
    ),
    Rule(
        "userspace-async-pf",
        "KVM refuses to enable async page faults without an in-kernel LAPIC; QEMU 7.2 still "
        "offers them and its userspace-irqchip guests abort writing MSR 0x4b564d06",
        "Linux arch/x86/kvm/x86.c kvm_pv_enable_async_pf_int()",
        _names("kvm-asyncpf", "kvm-asyncpf-int", "kvm-asyncpf-vmexit", modes=(Irqchip.USERSPACE,)),
    ),
    Rule(
        "fast-string-passthrough-newer-qemu",
        "kvmprobe follows upstream QEMU, which passes the host's fast-string hints (ERMS, "
        "FSRM, FZRM, FSRS, FSRC, MCDT_NO) through when KVM omits them; QEMU 7.2 predates that",
        "QEMU target/i386/kvm/kvm.c kvm_arch_get_supported_cpuid() (upstream, not 7.2)",
        lambda r, mode, q: "fast-string-passthrough" in r.verdict.quirks and not q,
    ),
    Rule(
        "no-autoenable",
        "QEMU marks TOPOEXT supported but never enables it for -cpu host unless asked, because "
        "it needs cache-topology leaves to match",
        "QEMU target/i386/cpu.c feature_word_info[].no_autoenable_flags",
        _names("topoext"),
    ),
    Rule(
        "xsave-dependants",
        "QEMU enables XSAVE sub-features and components only when XSAVE itself is on in "
        "leaf 1; KVM reports leaf 0xD bits independently",
        "QEMU target/i386/cpu.c feature_dependencies[], x86_cpu_enable_xsave_components()",
        lambda r, mode, q: r.feature.leaf == 0xD,
    ),
    Rule(
        "vcpu-refuses-arch-capabilities",
        "QEMU's -cpu host copies KVM's ARCH_CAPABILITIES advertisement without trying it; "
        "kvmprobe removes the CPUID bit when a vCPU refused every advertised bit (QEMU then "
        "aborts at start-up setting MSR 0x10a), and cannot tell without a vCPU verification "
        "(a format-1 snapshot: unknown)",
        "QEMU target/i386/kvm/kvm.c kvm_arch_get_supported_cpuid(), kvm_put_msrs(); kvmprobe "
        "quirk arch-capabilities-refused",
        lambda r, mode, q: (
            q
            and any(
                s.quirk == "arch-capabilities-refused" and s.applied is not False
                for s in r.verdict.steps
            )
        ),
    ),
    Rule(
        "qemu-word-missing",
        "QEMU 7.2 has no feature word for this leaf and reports it as zero",
        "QEMU 7.2 target/i386/cpu.c feature_word_info[]",
        lambda r, mode, q: r.feature.leaf == 0x80000021,
    ),
)


def _qemu_bool(props: dict[str, object], name: str) -> bool | None:
    v = props.get(name)
    return v if isinstance(v, bool) else None


def compare(a: CpuidAnalysis, props: dict[str, object]) -> tuple[int, list, list]:
    """(number compared, explained differences, unexplained differences)."""
    compared, explained, unexplained = 0, [], []
    mode = a.options.irqchip
    for r in a.features:
        name = r.feature.qemu_name
        if not name:
            continue
        q = _qemu_bool(props, name)
        if q is None:
            continue
        compared += 1
        if q == r.verdict.effective:
            continue
        rule = next((x for x in EXPECTED if x.match(r, mode, q)), None)
        item = (name, r.feature.where, r.verdict.status, r.verdict.effective, q)
        (explained if rule else unexplained).append((*item, rule.id if rule else None))
    return compared, explained, unexplained


def _report(mode: str, explained: list, unexplained: list) -> str:
    lines = [f"irqchip={mode}"]
    for name, where, status, eff, q, rule in explained + unexplained:
        lines.append(
            f"  {name:24s} {where:24s} kvmprobe {eff!s:5s} ({status}) qemu {q!s:5s} "
            f"-> {rule or 'UNEXPLAINED'}"
        )
    return "\n".join(lines)


def _fixture_snapshot():
    from kvmprobe.snapshot import load

    snap, _ = load(str(FIXTURES / "amd-epyc-pvm-6.18.json"))
    return snap


@pytest.mark.parametrize("mode", MODES)
def test_recorded_host_matches_recorded_qemu(mode: str) -> None:
    """Offline: the recorded host against QEMU's answers recorded on that host."""
    from support.qemu_peer import load_recorded

    rec = load_recorded(mode)
    snap = _fixture_snapshot()
    assert rec["host"]["kernel"] == snap.host.kernel_release, "recordings must pair up"
    a = analyse(snap, Options(irqchip=mode))
    compared, explained, unexplained = compare(a, rec["model"]["props"])
    assert compared >= MIN_COMPARED
    assert not unexplained, _report(mode, explained, unexplained)


def _live_props(mode: str) -> dict[str, object]:
    from support.qemu_peer import QemuUnavailable, host_cpu_expansion

    try:
        return host_cpu_expansion(mode)
    except QemuUnavailable as e:
        if os.environ.get("KVMPROBE_REQUIRE_QEMU") == "1":
            pytest.fail(f"KVMPROBE_REQUIRE_QEMU=1 but QEMU cannot be used: {e}")
        pytest.skip(f"QEMU cross-check needs QEMU with KVM: {e}")


@pytest.mark.parametrize("mode", MODES)
def test_live_matches_qemu(mode: str, live_device: str) -> None:
    from kvmprobe.kvm.probe import probe

    props = _live_props(mode)
    a = analyse(probe(live_device), Options(irqchip=mode))
    compared, explained, unexplained = compare(a, props)
    assert compared >= MIN_COMPARED
    assert not unexplained, _report(mode, explained, unexplained)


def test_rules_are_not_vacuous() -> None:
    """The userspace rules must actually fire on the recorded host (else they hide nothing)."""
    from support.qemu_peer import load_recorded

    a = analyse(_fixture_snapshot(), Options(irqchip=Irqchip.USERSPACE))
    _, explained, _ = compare(a, load_recorded("userspace")["model"]["props"])
    rules = {e[-1] for e in explained}
    assert {"userspace-lapic-timer", "userspace-async-pf"} <= rules, rules
    # and the irqchip-dependent bits agree with QEMU without any rule
    agreed = {r.feature.qemu_name: r.verdict.effective for r in a.features}
    assert agreed.get("x2apic") is False and agreed.get("kvm-pv-unhalt") is False
