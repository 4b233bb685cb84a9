"""Synthetic snapshots for what our hosts cannot show: an Intel host with nested VMX, and a
KVM with Hyper-V emulation. Every value names the document it comes from.

Intel VMX values (``VMX_DUMP``): a recorded public dump of one Intel host's VMX capability
MSRs, as VirtualBox logs them ("HM: MSR_IA32_VMX_* = ..."; host CPUID 1.EAX 0x000906ea, a
Coffee Lake part). The same log lines, with the same values for BASIC, PINBASED, PROCBASED,
TRUE_PINBASED, TRUE_PROCBASED, TRUE_ENTRY, TRUE_EXIT, MISC, VMCS_ENUM and EPT_VPID_CAP, are
posted in public GitHub issues myspaghetti/macos-virtualbox #135 (turn 12), #224 (turn 3) and
#357 (turns 4 and 10). PROCBASED_CTLS2, ENTRY_CTLS, EXIT_CTLS, VMFUNC and the CR0/CR4 fixed
MSRs come from a complete copy of such a log found in a public code index without a named
repository (its other values match the issue threads line for line). These are hardware
values: a real KVM reports a subset for nested guests (its own VMCS revision and size, fewer
controls), so the snapshot stands for "an Intel host with nested VMX", not for one kernel.

The other Intel feature MSRs are built from documented bit positions (the generated tables),
not recorded from a host; they exist so that every decoder path runs.

Hyper-V (``hyperv_entries``): the leaves Linux arch/x86/kvm/hyperv.c kvm_get_hv_cpuid()
(intel-lab-lkp/linux @ 2c53dbea974cc9d44f2709c1367afc64df0d3c11) builds for the system ioctl
(no vCPU, so direct synthetic timers and cluster IPIs are included), on a host whose vendor
module offers no enlightened VMCS (evmcs_ver 0, e.g. AMD) and where SMT is possible. The
maximum vCPU count (KVM_MAX_VCPUS) depends on the kernel configuration; 1024 stands in for it.
"""

from __future__ import annotations

from dataclasses import replace

from kvmprobe.snapshot import CpuidEntry, ProbeError, Snapshot
from kvmprobe.tables import caps_data
from kvmprobe.tables import msr_data as M
from support.synth import Cpuid, snapshot

# -- Intel host with nested VMX ---------------------------------------------------------------

VMX_DUMP: dict[int, int] = {
    M.MSR_IA32_VMX_BASIC: 0xDA040000000004,
    M.MSR_IA32_VMX_PINBASED_CTLS: 0x7F00000016,
    M.MSR_IA32_VMX_PROCBASED_CTLS: 0xFFF9FFFE0401E172,
    M.MSR_IA32_VMX_EXIT_CTLS: 0x1FFFFFF00036DFF,
    M.MSR_IA32_VMX_ENTRY_CTLS: 0x3FFFF000011FF,
    M.MSR_IA32_VMX_MISC: 0x7004C1E7,
    M.MSR_IA32_VMX_CR0_FIXED0: 0x80000021,
    M.MSR_IA32_VMX_CR0_FIXED1: 0xFFFFFFFF,
    M.MSR_IA32_VMX_CR4_FIXED0: 0x2000,
    M.MSR_IA32_VMX_CR4_FIXED1: 0x3727FF,
    M.MSR_IA32_VMX_VMCS_ENUM: 0x2E,
    M.MSR_IA32_VMX_PROCBASED_CTLS2: 0x5FBCFF00000000,
    M.MSR_IA32_VMX_EPT_VPID_CAP: 0xF0106734141,
    M.MSR_IA32_VMX_TRUE_PINBASED_CTLS: 0x7F00000016,
    M.MSR_IA32_VMX_TRUE_PROCBASED_CTLS: 0xFFF9FFFE04006172,
    M.MSR_IA32_VMX_TRUE_EXIT_CTLS: 0x1FFFFFF00036DFB,
    M.MSR_IA32_VMX_TRUE_ENTRY_CTLS: 0x3FFFF000011FB,
    M.MSR_IA32_VMX_VMFUNC: 0x1,
}


def bit(*positions: int) -> int:
    v = 0
    for p in positions:
        v |= 1 << p
    return v


# From documented bit positions (not a recorded host): an Intel part told it is immune to
# Meltdown, MDS, TAA, the MMIO stale-data variants and GDS, with eIBRS and TSX_CTRL.
INTEL_ARCH_CAPABILITIES = bit(0, 1, 3, 4, 5, 6, 7, 8, 13, 14, 15, 26)
# LBR format 5 (field 5:0), PEBS trap and arch-reg, PEBS format 4 (field 11:8), full-width
# writes: a documented layout, chosen values.
INTEL_PERF_CAPABILITIES = 0x5 | bit(6, 7) | (4 << 8) | bit(13)
# Intel keeps the microcode revision in bits 63:32.
INTEL_UCODE_REV = 0xF8 << 32


def intel_nested_vmx(overrides: dict[int, int] | None = None) -> Snapshot:
    """An Intel host whose KVM reports nested-VMX feature MSRs (values above)."""
    values = {
        M.MSR_IA32_UCODE_REV: INTEL_UCODE_REV,
        M.MSR_IA32_ARCH_CAPABILITIES: INTEL_ARCH_CAPABILITIES,
        M.MSR_IA32_PERF_CAPABILITIES: INTEL_PERF_CAPABILITIES,
        M.MSR_PLATFORM_INFO: bit(31),
        **VMX_DUMP,
    }
    values.update(overrides or {})
    snap = snapshot(
        Cpuid("intel"),
        caps={caps_data.KVM_CAP_GET_MSR_FEATURES: 1},
        msr_index_list=(M.MSR_IA32_TSC, M.MSR_IA32_ARCH_CAPABILITIES, M.MSR_IA32_VMX_BASIC),
        kernel="6.18.0-synthetic",
    )
    return replace(
        snap,
        msr_feature_index_list=tuple(values),
        feature_msrs=dict(values),
        host=replace(snap.host, cpu_vendor="GenuineIntel"),
    )


# -- KVM with Hyper-V emulation ---------------------------------------------------------------


def _sig(text: str) -> tuple[int, int, int]:
    raw = text.encode("ascii")
    a, b, c = (int.from_bytes(raw[i : i + 4], "little") for i in (0, 4, 8))
    return a, b, c


KVM_MAX_VCPUS_EXAMPLE = 1024  # configuration-dependent; see the module docstring


def hyperv_entries(*, evmcs_version: int = 0) -> tuple[CpuidEntry, ...]:
    """What kvm_get_hv_cpuid() returns on /dev/kvm (no vCPU), leaf by leaf."""
    vendor = _sig("Linux KVM Hv")
    features_eax = bit(0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 15)
    features_ebx = bit(4, 5, 20, 11)
    features_edx = bit(4, 8, 10, 1, 11, 14, 19)
    enlight_eax = bit(2, 3, 5, 10, 11, 9) | (bit(14) if evmcs_version else 0)
    nested_eax = evmcs_version | bit(17, 19)
    e = CpuidEntry
    return (
        e(0x40000000, 0, 0, 0x40000082, *vendor),
        e(0x40000001, 0, 0, int.from_bytes(b"Hv#1", "little"), 0, 0, 0),
        e(0x40000002, 0, 0, 0x00003839, 0x000A0000, 0, 0),
        e(0x40000003, 0, 0, features_eax, features_ebx, 0, features_edx),
        e(0x40000004, 0, 0, enlight_eax, 0x00000FFF, 0, 0),
        e(0x40000005, 0, 0, KVM_MAX_VCPUS_EXAMPLE, 64, 0, 0),
        e(0x40000080, 0, 0, 0, *vendor),
        e(0x40000081, 0, 0, int.from_bytes(b"VS#1", "little"), 0, 0, 0),
        e(0x40000082, 0, 0, bit(1), 0, 0, 0),
        e(0x4000000A, 0, 0, nested_eax, bit(0), 0, 0),
    )


def hyperv_host(
    entries: tuple[CpuidEntry, ...] | None = None, *, errors: tuple[ProbeError, ...] = ()
) -> Snapshot:
    """A KVM with Hyper-V emulation: the Hyper-V caps answer 1, the ioctl answered."""
    caps = {number: 1 for number, (name, _a) in caps_data.CAPS.items() if "HYPERV" in name}
    snap = snapshot(Cpuid("amd"), caps=caps, kernel="6.18.0-synthetic")
    return replace(
        snap,
        supported_hv_cpuid=hyperv_entries() if entries is None else entries,
        errors=errors,
        host=replace(snap.host, cpu_vendor="AuthenticAMD"),
    )


def no_hyperv_host(*, error: ProbeError | None = None, hv_cap: int = 0) -> Snapshot:
    """A KVM without the Hyper-V answer: caps 0 (built without it) unless told otherwise."""
    caps = {caps_data.KVM_CAP_HYPERV: hv_cap} if hv_cap else {}
    if error is not None:
        caps[caps_data.KVM_CAP_SYS_HYPERV_CPUID] = 1
    snap = snapshot(Cpuid("amd"), caps=caps, kernel="6.18.0-synthetic")
    return replace(snap, errors=(error,) if error else ())
